//! IR expressions: resolved, typed and with explicit conversions.
//!
//! Every scalar is an `f64` at run time (Int and Bool values are exact integers in it, up
//! to 2^53); the operator's [`Num`] says how to compute. Names are replaced by slots of the
//! system they are evaluated in.

/// How an arithmetic or comparison operator computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Num {
    /// Floating point.
    Real,
    /// 64-bit integer (wrapping is an error at run time).
    Int,
    /// Booleans.
    Bool,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bin {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*` (element-wise on tensors)
    Mul,
    /// `/` (truncating on Int)
    Div,
    /// `%` (Euclidean on Int)
    Rem,
    /// `^`
    Pow,
    /// `@` matrix product
    MatMul,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `min(a, b)`
    Min,
    /// `max(a, b)`
    Max,
    /// `atan2(a, b)`
    Atan2,
}

/// Unary operators and element-wise functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Un {
    /// `-x`
    Neg,
    /// `!x`
    Not,
    /// Int to Real.
    ToReal,
    /// Real to Int, truncating.
    ToInt,
    /// `exp`
    Exp,
    /// `log`
    Log,
    /// `sqrt`
    Sqrt,
    /// `abs`
    Abs,
    /// `sin`
    Sin,
    /// `cos`
    Cos,
    /// `tan`
    Tan,
    /// `tanh`
    Tanh,
    /// `sinh`
    Sinh,
    /// `cosh`
    Cosh,
    /// `atan`
    Atan,
    /// `floor`
    Floor,
    /// `ceil`
    Ceil,
    /// `round`
    Round,
    /// `sigmoid`
    Sigmoid,
    /// `relu`
    Relu,
}

/// Reductions of a tensor to a scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduce {
    /// `sum`
    Sum,
    /// `norm` (Euclidean)
    Norm,
    /// `len` (number of elements along the first axis)
    Len,
}

/// An IR expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A scalar constant.
    Const(f64),
    /// A parameter of the system, by index.
    Param(u32),
    /// A state variable of the system, by index.
    State(u32),
    /// An input port of the system, by index.
    Input(u32),
    /// A `let`, by index.
    Let(u32),
    /// A `for` loop variable, by nesting depth.
    Loop(u32),
    /// An argument of the enclosing fn.
    Arg(u32),
    /// The current time.
    Time,
    /// An out port of an inner box (`b.port`, `b[i].port`).
    BoxOut {
        /// The box.
        b: u32,
        /// The element of a box array.
        index: Option<Box<Expr>>,
        /// The out port.
        port: u32,
    },
    /// A unary operation (element-wise on tensors).
    Un(Un, Box<Expr>),
    /// A binary operation (element-wise with broadcasting, except `MatMul`).
    Bin(Bin, Num, Box<Expr>, Box<Expr>),
    /// A reduction.
    Reduce(Reduce, Box<Expr>),
    /// `dot(a, b)`.
    Dot(Box<Expr>, Box<Expr>),
    /// A call of a user fn.
    Call(u32, Vec<Expr>),
    /// `if c then a else b`.
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// A tensor literal (rows).
    Array(Vec<Expr>),
    /// Indexing (indices are Int).
    Index(Box<Expr>, Vec<Expr>),
    /// A mode value: mode index and the values of its out ports.
    Mode(u32, Vec<Expr>),
    /// A standard normal sample.
    Randn,
    /// A tensor operation (see [`TensorOp`]) of its arguments.
    Tensor(TensorOp, Vec<Expr>),
}

/// One axis of a slice `x[…]`: an index (an Int argument, dropping the axis) or a static
/// half-open range `lo..hi` (keeping the axis with `hi - lo` elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sel {
    /// `i`: the next Int argument selects one element along this axis.
    At,
    /// `lo..hi`.
    Range(u64, u64),
}

/// Tensor operations beyond element-wise arithmetic, `@`, `sum`, `norm` and `dot`.
///
/// Every reduction inside them (the sums of `mean`, `softmax` and `logsumexp`) adds its
/// terms in the shared order of [`crate::numeric::reduce_sum`]. Static sizes and bounds are
/// part of the operation; the shapes of the arguments are those the checker gave them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TensorOp {
    /// `transpose(m)`: `Real[m, n]` to `Real[n, m]`. One argument.
    Transpose,
    /// `mean(x)`: the sum of the elements (in the reduction order) over their number.
    Mean,
    /// `max(x)`: the largest element, `f64::max` folded from the first element (NaNs are
    /// skipped unless every element is NaN).
    MaxAll,
    /// `min(x)`: the smallest element, as [`TensorOp::MaxAll`].
    MinAll,
    /// `argmax(x)` of a vector: the index of the first element equal to `max(x)` (ties go to
    /// the lowest index; 0 if every element is NaN). An Int.
    Argmax,
    /// `argmin(x)`: as [`TensorOp::Argmax`] with `min(x)`.
    Argmin,
    /// `outer(a, b)`: `Real[m]` and `Real[n]` to the `Real[m, n]` of `a[i] * b[j]`.
    Outer,
    /// `softmax(x)` of a vector: `exp(x[i] - max(x)) / s` with `s` the reduction-order sum of
    /// the numerators (subtracting the max first keeps `exp` from overflowing).
    Softmax,
    /// `logsumexp(x)` of a vector: `m + log(s)` with `m = max(x)` and `s` the reduction-order
    /// sum of `exp(x[i] - m)`; `m` itself when `m` is infinite.
    LogSumExp,
    /// `one_hot(k, n)`: the `Real[n]` that is 1 at the Int argument `k` and 0 elsewhere; `k`
    /// outside `0..n` is a run-time error.
    OneHot(u64),
    /// `x[sels]`: the first argument is the tensor, then one Int argument per [`Sel::At`].
    /// Axes after the selected ones are kept whole.
    Slice(Vec<Sel>),
    /// The adjoint of [`TensorOp::Slice`]: the tensor of the given shape that is zero except
    /// at the selected place, which holds the first argument (a scalar fills the place). The
    /// Int arguments of the `Sel::At` axes follow.
    Embed(Vec<Sel>, Vec<u64>),
    /// A scalar broadcast to a tensor of the given shape.
    Fill(Vec<u64>),
    /// Element-wise `if c then a else b` with arguments `c`, `a`, `b` (a scalar `a` or `b`
    /// broadcasts; a scalar `c` selects the whole of `a` or `b`).
    Select,
    /// `solve(A, b)`: the solution `x` of `A x = b` for a square `Real[n, n]` `A` and a
    /// `Real[n]` or `Real[n, k]` `b` (LU with partial pivoting, [`crate::linalg::solve`]);
    /// a singular `A` is a run-time error.
    Solve,
    /// `spectral_radius(A)`: the largest modulus of the eigenvalues of a square matrix
    /// ([`crate::linalg::spectral_radius`]).
    SpectralRadius,
    /// `eye(n)`: the `Real[n, n]` identity matrix. No arguments.
    Eye(u64),
}

impl TensorOp {
    /// Is this a dense linear-algebra operation ([`crate::linalg`]): `solve` or
    /// `spectral_radius`, computed by a library call rather than element by element?
    pub fn is_linalg(&self) -> bool {
        matches!(self, TensorOp::Solve | TensorOp::SpectralRadius)
    }
}

impl Expr {
    /// `Const(x)` as a boxed expression, for builders.
    pub fn c(x: f64) -> Expr {
        Expr::Const(x)
    }

    /// Does the expression sample noise (`randn()`)?
    pub fn has_randn(&self) -> bool {
        match self {
            Expr::Randn => true,
            Expr::Un(_, a) | Expr::Reduce(_, a) => a.has_randn(),
            Expr::Bin(_, _, a, b) | Expr::Dot(a, b) => a.has_randn() || b.has_randn(),
            Expr::If(a, b, c) => a.has_randn() || b.has_randn() || c.has_randn(),
            Expr::Call(_, xs) | Expr::Array(xs) | Expr::Mode(_, xs) | Expr::Tensor(_, xs) => {
                xs.iter().any(Expr::has_randn)
            }
            Expr::Index(a, xs) => a.has_randn() || xs.iter().any(Expr::has_randn),
            Expr::BoxOut { index: Some(i), .. } => i.has_randn(),
            _ => false,
        }
    }

    /// The first dense linear-algebra operation ([`TensorOp::is_linalg`]) in the expression.
    pub fn linalg_op(&self) -> Option<&TensorOp> {
        match self {
            Expr::Tensor(op, _) if op.is_linalg() => Some(op),
            Expr::Un(_, a) | Expr::Reduce(_, a) => a.linalg_op(),
            Expr::Bin(_, _, a, b) | Expr::Dot(a, b) => a.linalg_op().or_else(|| b.linalg_op()),
            Expr::If(a, b, c) => a
                .linalg_op()
                .or_else(|| b.linalg_op())
                .or_else(|| c.linalg_op()),
            Expr::Call(_, xs) | Expr::Array(xs) | Expr::Mode(_, xs) | Expr::Tensor(_, xs) => {
                xs.iter().find_map(Expr::linalg_op)
            }
            Expr::Index(a, xs) => a
                .linalg_op()
                .or_else(|| xs.iter().find_map(Expr::linalg_op)),
            Expr::BoxOut { index: Some(i), .. } => i.linalg_op(),
            _ => None,
        }
    }
}
