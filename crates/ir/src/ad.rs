//! Reverse-mode automatic differentiation of IR expressions: the expansion of
//! `grad(expr, wrt)` into an ordinary IR expression that computes the gradient.
//!
//! # Approach
//!
//! 1. **Forward graph.** `expr` is turned into a DAG of nodes with hash-consing, so equal
//!    subexpressions are one node. Calls of fns are inlined (arguments substituted), and a
//!    `let` whose definition depends on `wrt` is inlined too, so the derivative goes through
//!    lets and fns. Every node knows its static shape and scalar kind, and whether it depends
//!    differentiably on `wrt` (only Real nodes do; comparisons, Int arithmetic, `floor`,
//!    `ceil`, `round`, `int`, `argmax`, `argmin`, `one_hot`, `eye` and mode values cut the
//!    dependence: their derivative is zero).
//! 2. **Reverse sweep.** Node ids are a topological order (arguments first). The adjoint of
//!    the root is 1; nodes are visited from the root down, and each adds its contributions
//!    to its arguments' adjoints as new nodes of the same graph (which reuse the forward nodes
//!    as operands). Broadcast scalars receive the sum of their contributions. The result is
//!    the adjoint of `wrt` (zero if `expr` does not depend on it).
//! 3. **Branches.** A node that the forward pass evaluates only under some `if` conditions
//!    has a *guard* (the conjunction of those conditions along each path, or-ed over paths);
//!    its contributions are wrapped in `if guard then … else 0`, so the gradient is that of the
//!    branch taken and a NaN or infinity computed for a branch not taken never leaks in.
//! 4. **Emission with sharing.** The adjoint DAG is written back as an IR tree. A node used
//!    more than once (or one that would make the tree too deep) becomes a *temporary*,
//!    computed once. Temporaries are bound by calls of generated fns — `(λ t. body)(value)`,
//!    the classic encoding of `let` — which both backends already run: a call evaluates its
//!    arguments once and runs the body in the caller's frame. Temporaries are grouped by
//!    level (a temporary's level is one more than the highest level it reads), one generated
//!    fn per level, each receiving the temporaries still needed. A forward value held by a
//!    `let` slot is read from the slot (`Expr::Let`), so the backward pass reuses the forward
//!    pass the system's schedule already computed.
//!
//! [`grad_many`] differentiates with respect to several variables at once: they are all
//! leaves that depend, one reverse sweep gives every adjoint, and the result is their
//! concatenation (an `Array` of scalars).
//!
//! `randn()` on the path from `expr` to `wrt` is refused: the expansion recomputes forward
//! values, and a fresh sample would not be the one the forward pass drew.
//!
//! Evaluation is eager where a compiled backward pass is eager: conditions and shared
//! temporaries are computed before they are selected, so a run-time error (an index out of
//! range) inside a branch the forward pass skips can still be raised by the gradient.

use crate::expr::{Bin, Expr, Num, Reduce, Sel, TensorOp, Un};
use crate::system::{Function, Kind, Shape};
use std::collections::{BTreeSet, HashMap};

/// What the expansion needs to know about the context of `grad`.
pub trait Context {
    /// Shape and kind of a leaf (`Param`, `State`, `Input`, `Let`, `Arg`, `BoxOut`, `Loop`,
    /// `Time`), or `None` if it is unknown here (the expansion then fails).
    fn leaf(&self, x: &Expr) -> Option<(Shape, Kind)>;
    /// The definition of let `i`, if it is lowered.
    fn let_def(&self, i: u32) -> Option<&Expr>;
    /// The body of fn `f`.
    fn fn_body(&self, f: u32) -> Option<&Expr>;
    /// The index the first generated fn will get in the program.
    fn next_fn(&self) -> u32;
}

/// An expanded `grad`: the expression, and the fns it calls that must be appended to the
/// program (in order, from index [`Context::next_fn`]).
#[derive(Debug, Clone)]
pub struct Expansion {
    /// The gradient, with the shape of `wrt`.
    pub expr: Expr,
    /// Generated fns (the levels of temporaries).
    pub fns: Vec<Function>,
}

/// Why a `grad` could not be expanded: the reason, and how to fix it if there is a fix.
#[derive(Debug, Clone, PartialEq)]
pub struct AdError(pub String, pub Option<String>);

type R<T> = Result<T, AdError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(AdError(msg.into(), None))
}

/// `randn()` is on the path from the expression to the variable.
fn noise<T>() -> R<T> {
    Err(AdError(
        "`randn()` lies on the way to the variable: the gradient would draw a different sample than the value".into(),
        Some("draw the noise in a `let` of its own: `grad` treats the let's value as a constant".into()),
    ))
}

/// The most nodes one expansion may build (inlining can multiply an expression).
pub const MAX_NODES: usize = 1_000_000;
/// The deepest nesting of operations, lets and fn calls the expansion follows.
pub const MAX_DEPTH: usize = 1000;
/// The deepest expression tree emitted before a subexpression becomes a temporary.
const MAX_INLINE: u32 = 24;

/// `grad(e, wrt)` in context `cx`: the gradient of the Real scalar `e` with respect to the
/// variable `wrt` (a `Param`, `State`, `Input`, `Let` or `Arg`).
pub fn grad(e: &Expr, wrt: &Expr, cx: &dyn Context) -> Result<Expansion, AdError> {
    let (key, wshape) = variable(wrt, cx, true)?;
    let mut ad = Ad::new(cx, vec![key]);
    let root = ad.build(e, None)?;
    if !ad.nodes[root].shape.is_empty() {
        return err("`grad` differentiates a scalar");
    }
    let adj = ad.adjoints(root)?;
    let result = ad.adjoint_of(&adj, key, &wshape)?;
    ad.emit(result)
}

/// The gradients of the Real scalar `e` with respect to several variables `wrts` at once,
/// from one reverse sweep: a vector (`Real[n]`, `n` the total number of slots of the
/// variables) holding each variable's gradient flattened row-major, one after the other.
///
/// It is what `grad` of `e` with respect to the variables packed into one vector would give,
/// without reading them out of a vector: every read of a scalar variable adds a scalar to
/// that variable's adjoint instead of a one-hot vector to the vector's. An Int or Bool
/// variable (read as it is) gets a zero gradient.
pub fn grad_many(e: &Expr, wrts: &[Expr], cx: &dyn Context) -> Result<Expansion, AdError> {
    let mut vars = Vec::with_capacity(wrts.len());
    for w in wrts {
        vars.push(variable(w, cx, false)?);
    }
    let mut ad = Ad::new(cx, vars.iter().map(|(k, _)| *k).collect());
    let root = ad.build(e, None)?;
    if !ad.nodes[root].shape.is_empty() {
        return err("`grad` differentiates a scalar");
    }
    let adj = ad.adjoints(root)?;
    let mut items = Vec::new();
    for (key, shape) in &vars {
        let a = ad.adjoint_of(&adj, *key, shape)?;
        let n: u64 = shape.iter().product();
        for j in 0..n {
            if shape.is_empty() {
                items.push(a);
                break;
            }
            let mut idx = Vec::with_capacity(shape.len() + 1);
            idx.push(a);
            let mut rest = j;
            let mut ks = Vec::with_capacity(shape.len());
            for d in shape.iter().rev() {
                ks.push(rest % d);
                rest /= d;
            }
            for k in ks.into_iter().rev() {
                idx.push(ad.konst(k as f64));
            }
            items.push(ad.node(Op::Index, idx)?);
        }
    }
    if items.is_empty() {
        return err("`grad` of no variables");
    }
    let result = ad.node(Op::Array, items)?;
    ad.emit(result)
}

/// The leaf of a variable and its shape; `real_only`: refuse an Int or Bool variable.
fn variable(wrt: &Expr, cx: &dyn Context, real_only: bool) -> R<(Leaf, Shape)> {
    let key = match wrt {
        Expr::Param(i) => Leaf::Param(*i),
        Expr::State(i) => Leaf::State(*i),
        Expr::Input(i) => Leaf::Input(*i),
        Expr::Let(i) => Leaf::Let(*i),
        Expr::Arg(i) => Leaf::Arg(*i),
        _ => return err("`grad` differentiates with respect to a variable"),
    };
    let Some((wshape, wkind)) = cx.leaf(wrt) else {
        return err("the variable's shape is not known here");
    };
    if real_only && wkind != Kind::Real {
        return err("`grad` differentiates with respect to a Real variable");
    }
    Ok((key, wshape))
}

/// A leaf: a value read from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Leaf {
    Param(u32),
    State(u32),
    Input(u32),
    Let(u32),
    Loop(u32),
    Arg(u32),
    Time,
    /// Box, port; its one argument (if any) is the array index.
    BoxOut(u32, u32),
}

/// The operation of a node; its operands are node ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Op {
    Const(u64),
    Leaf(Leaf),
    /// A `randn()` draw (numbered: two draws are never one node).
    Randn(usize),
    Un(Un),
    Bin(Bin, Num),
    Reduce(Reduce),
    Dot,
    If,
    Array,
    Index,
    Mode(u32),
    Tensor(TensorOp),
}

#[derive(Debug, Clone)]
struct Node {
    op: Op,
    args: Vec<usize>,
    shape: Shape,
    kind: Kind,
    /// Depends differentiably on one of the variables.
    dep: bool,
    /// A let whose slot holds this node's value.
    alias: Option<u32>,
}

struct Ad<'c> {
    cx: &'c dyn Context,
    nodes: Vec<Node>,
    memo: HashMap<(Op, Vec<usize>), usize>,
    /// The variables differentiated with respect to.
    wrt: Vec<Leaf>,
    /// Node of each let met (its inlined definition or its slot).
    lets: HashMap<u32, usize>,
    depth: usize,
    randn: usize,
}

fn broadcast(a: &Shape, b: &Shape) -> Shape {
    if a.is_empty() { b.clone() } else { a.clone() }
}

impl<'c> Ad<'c> {
    fn new(cx: &'c dyn Context, wrt: Vec<Leaf>) -> Ad<'c> {
        Ad {
            cx,
            nodes: Vec::new(),
            memo: HashMap::new(),
            wrt,
            lets: HashMap::new(),
            depth: 0,
            randn: 0,
        }
    }

    /// The adjoints of the nodes up to `root` (none if `root` does not depend on the
    /// variables).
    fn adjoints(&mut self, root: usize) -> R<Vec<Option<usize>>> {
        if self.nodes[root].dep {
            self.reverse(root)
        } else {
            Ok(vec![])
        }
    }

    /// The adjoint of variable `key` (of shape `shape`), zeros if nothing flows to it.
    fn adjoint_of(&mut self, adj: &[Option<usize>], key: Leaf, shape: &Shape) -> R<usize> {
        let var = self.memo.get(&(Op::Leaf(key), vec![])).copied();
        match var.and_then(|v| adj.get(v).copied().flatten()) {
            Some(a) => self.fit(a, shape),
            None => self.zeros(shape),
        }
    }

    // ------------------------------------------------------------------ forward graph

    fn build(&mut self, x: &Expr, sub: Option<&[usize]>) -> R<usize> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(format!(
                "the expression is too deep to differentiate (more than {MAX_DEPTH} nested operations through its lets and fns)"
            ));
        }
        let r = self.build_inner(x, sub);
        self.depth -= 1;
        r
    }

    fn build_all(&mut self, xs: &[Expr], sub: Option<&[usize]>) -> R<Vec<usize>> {
        xs.iter().map(|x| self.build(x, sub)).collect()
    }

    fn build_inner(&mut self, x: &Expr, sub: Option<&[usize]>) -> R<usize> {
        Ok(match x {
            Expr::Const(c) => self.konst(*c),
            Expr::Arg(i) => match sub {
                Some(vals) => match vals.get(*i as usize) {
                    Some(v) => *v,
                    None => return err("a fn argument out of range"),
                },
                None => self.leaf(Leaf::Arg(*i), x, vec![])?,
            },
            Expr::Param(i) => self.leaf(Leaf::Param(*i), x, vec![])?,
            Expr::State(i) => self.leaf(Leaf::State(*i), x, vec![])?,
            Expr::Input(i) => self.leaf(Leaf::Input(*i), x, vec![])?,
            Expr::Loop(d) => self.leaf(Leaf::Loop(*d), x, vec![])?,
            Expr::Time => self.leaf(Leaf::Time, x, vec![])?,
            Expr::Let(i) => self.let_node(*i, x)?,
            Expr::BoxOut { b, index, port } => {
                let args = match index {
                    Some(ix) => vec![self.build(ix, sub)?],
                    None => vec![],
                };
                self.leaf(Leaf::BoxOut(*b, *port), x, args)?
            }
            Expr::Randn => {
                self.randn += 1;
                self.node(Op::Randn(self.randn), vec![])?
            }
            Expr::Un(u, a) => {
                let a = self.build(a, sub)?;
                self.node(Op::Un(*u), vec![a])?
            }
            Expr::Bin(b, n, p, q) => {
                let (p, q) = (self.build(p, sub)?, self.build(q, sub)?);
                self.node(Op::Bin(*b, *n), vec![p, q])?
            }
            Expr::Reduce(r, a) => {
                let a = self.build(a, sub)?;
                self.node(Op::Reduce(*r), vec![a])?
            }
            Expr::Dot(p, q) => {
                let (p, q) = (self.build(p, sub)?, self.build(q, sub)?);
                self.node(Op::Dot, vec![p, q])?
            }
            Expr::Call(f, xs) => {
                let vals = self.build_all(xs, sub)?;
                let cx = self.cx;
                let Some(body) = cx.fn_body(*f) else {
                    return err("a call of a fn that is not lowered yet");
                };
                self.build(body, Some(&vals))?
            }
            Expr::If(c, a, b) => {
                let args = vec![
                    self.build(c, sub)?,
                    self.build(a, sub)?,
                    self.build(b, sub)?,
                ];
                self.node(Op::If, args)?
            }
            Expr::Array(xs) => {
                let args = self.build_all(xs, sub)?;
                self.node(Op::Array, args)?
            }
            Expr::Index(a, xs) => {
                let mut args = vec![self.build(a, sub)?];
                args.extend(self.build_all(xs, sub)?);
                self.node(Op::Index, args)?
            }
            Expr::Mode(m, xs) => {
                let args = self.build_all(xs, sub)?;
                self.node(Op::Mode(*m), args)?
            }
            Expr::Tensor(op, xs) => {
                let args = self.build_all(xs, sub)?;
                self.node(Op::Tensor(op.clone()), args)?
            }
        })
    }

    /// A let: the variable itself, its inlined definition when that depends on `wrt` (the
    /// node then reads its value from the let's slot), or else its slot as a constant.
    fn let_node(&mut self, i: u32, x: &Expr) -> R<usize> {
        if self.wrt.contains(&Leaf::Let(i)) {
            return self.leaf(Leaf::Let(i), x, vec![]);
        }
        if let Some(n) = self.lets.get(&i) {
            return Ok(*n);
        }
        let cx = self.cx;
        let n = match cx.let_def(i) {
            Some(def) => {
                let n = self.build(def, None)?;
                if self.nodes[n].dep {
                    if self.nodes[n].alias.is_none() {
                        self.nodes[n].alias = Some(i);
                    }
                    n
                } else {
                    self.leaf(Leaf::Let(i), x, vec![])?
                }
            }
            None => self.leaf(Leaf::Let(i), x, vec![])?,
        };
        self.lets.insert(i, n);
        Ok(n)
    }

    fn leaf(&mut self, l: Leaf, x: &Expr, args: Vec<usize>) -> R<usize> {
        let key = (Op::Leaf(l), args);
        if let Some(n) = self.memo.get(&key) {
            return Ok(*n);
        }
        let Some((shape, kind)) = self.cx.leaf(x) else {
            return err("a value whose shape is not known here (a tensor of symbolic size?)");
        };
        let dep = kind == Kind::Real && self.wrt.contains(&l);
        self.push(key, shape, kind, dep)
    }

    fn push(&mut self, key: (Op, Vec<usize>), shape: Shape, kind: Kind, dep: bool) -> R<usize> {
        if self.nodes.len() >= MAX_NODES {
            return err(format!(
                "the gradient is too large to expand (more than {MAX_NODES} operations)"
            ));
        }
        let id = self.nodes.len();
        self.nodes.push(Node {
            op: key.0.clone(),
            args: key.1.clone(),
            shape,
            kind,
            dep,
            alias: None,
        });
        self.memo.insert(key, id);
        Ok(id)
    }

    fn konst(&mut self, c: f64) -> usize {
        let key = (Op::Const(c.to_bits()), vec![]);
        if let Some(n) = self.memo.get(&key) {
            return *n;
        }
        let id = self.nodes.len();
        self.nodes.push(Node {
            op: key.0.clone(),
            args: vec![],
            shape: vec![],
            kind: Kind::Real,
            dep: false,
            alias: None,
        });
        self.memo.insert(key, id);
        id
    }

    /// The node of `op` over `args` (an existing equal one if there is one).
    fn node(&mut self, op: Op, args: Vec<usize>) -> R<usize> {
        let key = (op, args);
        if let Some(n) = self.memo.get(&key) {
            return Ok(*n);
        }
        let (shape, kind) = self.infer(&key.0, &key.1)?;
        let dep = kind == Kind::Real && self.depends(&key.0, &key.1);
        self.push(key, shape, kind, dep)
    }

    fn depends(&self, op: &Op, args: &[usize]) -> bool {
        let d = |i: usize| args.get(i).is_some_and(|a| self.nodes[*a].dep);
        match op {
            Op::Const(_) | Op::Leaf(_) | Op::Randn(_) | Op::Mode(_) => false,
            Op::Un(Un::ToInt | Un::Floor | Un::Ceil | Un::Round | Un::Not) => false,
            Op::Bin(_, Num::Int | Num::Bool) => false,
            Op::Bin(Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge, _) => false,
            Op::Bin(Bin::And | Bin::Or, _) => false,
            Op::Reduce(Reduce::Len) => false,
            Op::Tensor(TensorOp::Argmax | TensorOp::Argmin | TensorOp::OneHot(_)) => false,
            Op::If | Op::Tensor(TensorOp::Select) => d(1) || d(2),
            Op::Index | Op::Tensor(TensorOp::Slice(_) | TensorOp::Embed(..)) => d(0),
            _ => args.iter().any(|a| self.nodes[*a].dep),
        }
    }

    /// Shape and kind of a node from its operands'.
    fn infer(&self, op: &Op, args: &[usize]) -> R<(Shape, Kind)> {
        let arg = |i: usize| -> R<&Node> {
            match args.get(i) {
                Some(a) => Ok(&self.nodes[*a]),
                None => err("an operation without its operands"),
            }
        };
        let num_kind = |n: Num| match n {
            Num::Real => Kind::Real,
            Num::Int => Kind::Int,
            Num::Bool => Kind::Bool,
        };
        Ok(match op {
            Op::Const(_) | Op::Randn(_) => (vec![], Kind::Real),
            Op::Leaf(_) => return err("a leaf built as an operation"),
            Op::Mode(_) => (vec![], Kind::Int),
            Op::Un(u) => {
                let a = arg(0)?;
                let kind = match u {
                    Un::Neg | Un::Abs => a.kind,
                    Un::Not => Kind::Bool,
                    Un::ToInt => Kind::Int,
                    _ => Kind::Real,
                };
                (a.shape.clone(), kind)
            }
            Op::Bin(b, n) => {
                let (p, q) = (arg(0)?, arg(1)?);
                let kind = match b {
                    Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge => Kind::Bool,
                    Bin::And | Bin::Or => Kind::Bool,
                    _ => num_kind(*n),
                };
                let shape = if *b == Bin::MatMul {
                    matmul_shape(&p.shape, &q.shape)?
                } else {
                    broadcast(&p.shape, &q.shape)
                };
                (shape, kind)
            }
            Op::Reduce(r) => {
                let a = arg(0)?;
                let kind = match r {
                    Reduce::Sum => a.kind,
                    Reduce::Norm => Kind::Real,
                    Reduce::Len => Kind::Int,
                };
                (vec![], kind)
            }
            Op::Dot => (vec![], Kind::Real),
            Op::If => {
                let a = arg(1)?;
                (a.shape.clone(), a.kind)
            }
            Op::Array => {
                let a = arg(0)?;
                let mut s = vec![args.len() as u64];
                s.extend(&a.shape);
                (s, a.kind)
            }
            Op::Index => {
                let a = arg(0)?;
                let k = args.len().saturating_sub(1);
                if k > a.shape.len() {
                    return err("an index of higher rank than its tensor");
                }
                (a.shape[k..].to_vec(), a.kind)
            }
            Op::Tensor(TensorOp::Eye(n)) => (vec![*n, *n], Kind::Real),
            Op::Tensor(t) => {
                let a = arg(0)?;
                match t {
                    TensorOp::Transpose => match a.shape.as_slice() {
                        [m, n] => (vec![*n, *m], a.kind),
                        _ => return err("`transpose` of a tensor that is not a matrix"),
                    },
                    TensorOp::Mean | TensorOp::LogSumExp => (vec![], Kind::Real),
                    TensorOp::MaxAll | TensorOp::MinAll => (vec![], a.kind),
                    TensorOp::Argmax | TensorOp::Argmin => (vec![], Kind::Int),
                    TensorOp::Outer => {
                        let b = arg(1)?;
                        match (a.shape.as_slice(), b.shape.as_slice()) {
                            ([m], [n]) => (vec![*m, *n], Kind::Real),
                            _ => return err("`outer` of tensors that are not vectors"),
                        }
                    }
                    TensorOp::Softmax => (a.shape.clone(), Kind::Real),
                    TensorOp::OneHot(n) => (vec![*n], Kind::Real),
                    TensorOp::Slice(sels) => (slice_shape(&a.shape, sels)?, a.kind),
                    TensorOp::Embed(_, shape) => (shape.clone(), Kind::Real),
                    TensorOp::Fill(shape) => (shape.clone(), a.kind),
                    TensorOp::Solve => (arg(1)?.shape.clone(), Kind::Real),
                    TensorOp::SpectralRadius => (vec![], Kind::Real),
                    TensorOp::Eye(n) => (vec![*n, *n], Kind::Real),
                    TensorOp::Select => {
                        let (p, q) = (arg(1)?, arg(2)?);
                        let s = if a.shape.is_empty() {
                            broadcast(&p.shape, &q.shape)
                        } else {
                            a.shape.clone()
                        };
                        (s, p.kind)
                    }
                }
            }
        })
    }

    // ------------------------------------------------------------------ builders

    fn is_const(&self, n: usize, c: f64) -> bool {
        self.nodes[n].op == Op::Const(c.to_bits())
    }

    fn const_of(&self, n: usize) -> Option<f64> {
        match self.nodes[n].op {
            Op::Const(b) => Some(f64::from_bits(b)),
            _ => None,
        }
    }

    fn bin(&mut self, b: Bin, x: usize, y: usize) -> R<usize> {
        if let (Some(p), Some(q)) = (self.const_of(x), self.const_of(y)) {
            let v = match b {
                Bin::Add => Some(p + q),
                Bin::Sub => Some(p - q),
                Bin::Mul => Some(p * q),
                Bin::Div => Some(p / q),
                _ => None,
            };
            if let Some(v) = v {
                return Ok(self.konst(v));
            }
        }
        self.node(Op::Bin(b, Num::Real), vec![x, y])
    }

    /// `s` if `x` is a filled tensor `fill(s)` of the same shape as `other` (so that the
    /// scalar broadcasts to the same result), else `x`.
    fn unfill(&self, x: usize, other: usize) -> usize {
        match &self.nodes[x].op {
            Op::Tensor(TensorOp::Fill(sh)) if *sh == self.nodes[other].shape => {
                self.nodes[x].args[0]
            }
            _ => x,
        }
    }

    /// At most one of `x`, `y` unfilled (see [`Ad::unfill`]).
    fn unfill2(&self, x: usize, y: usize) -> (usize, usize) {
        let x2 = self.unfill(x, y);
        if x2 != x {
            (x2, y)
        } else {
            (x, self.unfill(y, x))
        }
    }

    fn add(&mut self, x: usize, y: usize) -> R<usize> {
        let (x, y) = self.unfill2(x, y);
        if self.is_const(x, 0.0) && self.nodes[y].shape.len() >= self.nodes[x].shape.len() {
            return Ok(y);
        }
        if self.is_const(y, 0.0) && self.nodes[x].shape.len() >= self.nodes[y].shape.len() {
            return Ok(x);
        }
        self.bin(Bin::Add, x, y)
    }

    fn sub(&mut self, x: usize, y: usize) -> R<usize> {
        if self.is_const(y, 0.0) {
            return Ok(x);
        }
        self.bin(Bin::Sub, x, y)
    }

    fn mul(&mut self, x: usize, y: usize) -> R<usize> {
        let (x, y) = self.unfill2(x, y);
        if self.is_const(x, 1.0) {
            return Ok(y);
        }
        if self.is_const(y, 1.0) {
            return Ok(x);
        }
        self.bin(Bin::Mul, x, y)
    }

    fn div(&mut self, x: usize, y: usize) -> R<usize> {
        let (x, y) = self.unfill2(x, y);
        if self.is_const(y, 1.0) {
            return Ok(x);
        }
        self.bin(Bin::Div, x, y)
    }

    fn neg(&mut self, x: usize) -> R<usize> {
        if let Some(c) = self.const_of(x) {
            return Ok(self.konst(-c));
        }
        if self.nodes[x].op == Op::Un(Un::Neg) {
            return Ok(self.nodes[x].args[0]);
        }
        self.node(Op::Un(Un::Neg), vec![x])
    }

    fn un(&mut self, u: Un, x: usize) -> R<usize> {
        self.node(Op::Un(u), vec![x])
    }

    fn cmp(&mut self, b: Bin, x: usize, y: usize) -> R<usize> {
        self.node(Op::Bin(b, Num::Real), vec![x, y])
    }

    fn tensor(&mut self, t: TensorOp, args: Vec<usize>) -> R<usize> {
        self.node(Op::Tensor(t), args)
    }

    fn matmul(&mut self, x: usize, y: usize) -> R<usize> {
        self.node(Op::Bin(Bin::MatMul, Num::Real), vec![x, y])
    }

    fn zeros(&mut self, shape: &Shape) -> R<usize> {
        let z = self.konst(0.0);
        if shape.is_empty() {
            Ok(z)
        } else {
            self.tensor(TensorOp::Fill(shape.clone()), vec![z])
        }
    }

    /// `if c then x else y` for a scalar condition (`x`, `y` of one shape), element-wise
    /// selection for a tensor condition.
    fn select(&mut self, c: usize, x: usize, y: usize) -> R<usize> {
        if self.nodes[c].shape.is_empty() {
            let shape = broadcast(&self.nodes[x].shape, &self.nodes[y].shape);
            let (x, y) = (self.fit(x, &shape)?, self.fit(y, &shape)?);
            self.node(Op::If, vec![c, x, y])
        } else {
            self.tensor(TensorOp::Select, vec![c, x, y])
        }
    }

    /// `x` where the condition `c` holds, 0 elsewhere: a selection for a scalar condition, a
    /// product with the 0/1 mask for a tensor one (element-wise; `x` is a finite adjoint
    /// wherever this is used, so the product is exact).
    fn masked(&mut self, c: usize, x: usize) -> R<usize> {
        if self.nodes[c].shape.is_empty() {
            let z = self.konst(0.0);
            self.select(c, x, z)
        } else {
            self.node(Op::Bin(Bin::Mul, Num::Real), vec![x, c])
        }
    }

    /// `x` brought to `shape`: summed when `shape` is a scalar (the adjoint of a broadcast),
    /// filled when `x` is a scalar.
    fn fit(&mut self, x: usize, shape: &Shape) -> R<usize> {
        let xs = self.nodes[x].shape.clone();
        if xs == *shape {
            Ok(x)
        } else if shape.is_empty() {
            self.node(Op::Reduce(Reduce::Sum), vec![x])
        } else if xs.is_empty() {
            self.tensor(TensorOp::Fill(shape.clone()), vec![x])
        } else {
            err(format!(
                "internal: an adjoint of shape {xs:?} for a value of shape {shape:?}"
            ))
        }
    }

    // ------------------------------------------------------------------ reverse sweep

    /// Guards: for each node reachable from `root`, the condition under which the forward
    /// pass evaluates it (`None`: always).
    fn guards(&mut self, root: usize) -> R<Vec<Option<Option<usize>>>> {
        // Outer None: not reached; Some(None): always; Some(Some(c)): under condition c.
        let mut g: Vec<Option<Option<usize>>> = vec![None; root + 1];
        g[root] = Some(None);
        for n in (0..=root).rev() {
            let Some(gn) = g[n] else { continue };
            let node = self.nodes[n].clone();
            for (i, &a) in node.args.iter().enumerate() {
                let cg = if node.op == Op::If && i > 0 {
                    let c = node.args[0];
                    let c = if i == 1 {
                        c
                    } else {
                        self.node(Op::Un(Un::Not), vec![c])?
                    };
                    Some(match gn {
                        None => c,
                        Some(p) => self.node(Op::Bin(Bin::And, Num::Bool), vec![p, c])?,
                    })
                } else {
                    gn
                };
                g[a] = Some(match g[a] {
                    None => cg,
                    Some(None) => None,
                    Some(Some(prev)) => match cg {
                        None => None,
                        Some(c) if c == prev => Some(c),
                        Some(c) => Some(self.node(Op::Bin(Bin::Or, Num::Bool), vec![prev, c])?),
                    },
                });
            }
        }
        Ok(g)
    }

    /// The adjoints of the forward nodes up to `root`.
    fn reverse(&mut self, root: usize) -> R<Vec<Option<usize>>> {
        let guards = self.guards(root)?;
        let mut adj: Vec<Option<usize>> = vec![None; root + 1];
        adj[root] = Some(self.konst(1.0));
        for n in (0..=root).rev() {
            let Some(g) = adj[n] else { continue };
            if !self.nodes[n].dep || matches!(self.nodes[n].op, Op::Leaf(_)) {
                continue;
            }
            let guard = guards[n].flatten();
            for (a, c) in self.contributions(n, g)? {
                if !self.nodes[a].dep {
                    continue;
                }
                let shape = self.nodes[a].shape.clone();
                let mut c = self.fit(c, &shape)?;
                if let Some(gc) = guard {
                    let z = self.zeros(&shape)?;
                    c = self.node(Op::If, vec![gc, c, z])?;
                }
                adj[a] = Some(match adj[a] {
                    None => c,
                    Some(prev) => self.add(prev, c)?,
                });
            }
        }
        Ok(adj)
    }

    /// What node `n` with adjoint `g` adds to its operands' adjoints (before fitting them
    /// to the operands' shapes). Only operands that depend on `wrt` are used.
    fn contributions(&mut self, n: usize, g: usize) -> R<Vec<(usize, usize)>> {
        let node = self.nodes[n].clone();
        let args = node.args.clone();
        let dep = |s: &Self, i: usize| args.get(i).is_some_and(|a| s.nodes[*a].dep);
        let a = args.first().copied().unwrap_or(0);
        let b = args.get(1).copied().unwrap_or(0);
        let mut out = Vec::new();
        match &node.op {
            Op::Un(u) => {
                let c = match u {
                    Un::Neg => self.neg(g)?,
                    Un::Exp => self.mul(g, n)?,
                    Un::Log => self.div(g, a)?,
                    Un::Sqrt => {
                        let two = self.konst(2.0);
                        let d = self.mul(two, n)?;
                        self.div(g, d)?
                    }
                    Un::Abs => {
                        // The sign of a (0 at 0).
                        let z = self.konst(0.0);
                        let pos = self.cmp(Bin::Gt, a, z)?;
                        let negc = self.cmp(Bin::Lt, a, z)?;
                        if self.nodes[a].shape.is_empty() {
                            let ng = self.neg(g)?;
                            let inner = self.select(negc, ng, z)?;
                            self.select(pos, g, inner)?
                        } else {
                            let sign = self.node(Op::Bin(Bin::Sub, Num::Real), vec![pos, negc])?;
                            self.mul(g, sign)?
                        }
                    }
                    Un::Sin => {
                        let c = self.un(Un::Cos, a)?;
                        self.mul(g, c)?
                    }
                    Un::Cos => {
                        let s = self.un(Un::Sin, a)?;
                        let m = self.mul(g, s)?;
                        self.neg(m)?
                    }
                    Un::Tan => {
                        let one = self.konst(1.0);
                        let sq = self.mul(n, n)?;
                        let d = self.add(one, sq)?;
                        self.mul(g, d)?
                    }
                    Un::Tanh => {
                        let one = self.konst(1.0);
                        let sq = self.mul(n, n)?;
                        let d = self.sub(one, sq)?;
                        self.mul(g, d)?
                    }
                    Un::Sinh => {
                        let c = self.un(Un::Cosh, a)?;
                        self.mul(g, c)?
                    }
                    Un::Cosh => {
                        let s = self.un(Un::Sinh, a)?;
                        self.mul(g, s)?
                    }
                    Un::Atan => {
                        let one = self.konst(1.0);
                        let sq = self.mul(a, a)?;
                        let d = self.add(one, sq)?;
                        self.div(g, d)?
                    }
                    Un::Sigmoid => {
                        let one = self.konst(1.0);
                        let c = self.sub(one, n)?;
                        let d = self.mul(n, c)?;
                        self.mul(g, d)?
                    }
                    Un::Relu => {
                        let z = self.konst(0.0);
                        let pos = self.cmp(Bin::Gt, a, z)?;
                        self.masked(pos, g)?
                    }
                    // Not differentiable (not `dep`), or Int: nothing flows.
                    Un::Not | Un::ToReal | Un::ToInt | Un::Floor | Un::Ceil | Un::Round => {
                        return Ok(out);
                    }
                };
                out.push((a, c));
            }
            Op::Bin(op, Num::Real) => self.bin_adjoint(*op, n, a, b, g, &mut out)?,
            Op::Bin(..) => {}
            Op::Reduce(Reduce::Sum) => {
                let shape = self.nodes[a].shape.clone();
                let c = self.fit(g, &shape)?;
                out.push((a, c));
            }
            Op::Reduce(Reduce::Norm) => {
                if self.nodes[a].shape.is_empty() {
                    out.push((a, g));
                } else {
                    // g x / |x|, and 0 at x = 0 (a subgradient): dividing by
                    // max(|x|, the least normal f64) changes nothing else.
                    let tiny = self.konst(f64::MIN_POSITIVE);
                    let d = self.node(Op::Bin(Bin::Max, Num::Real), vec![n, tiny])?;
                    let s = self.div(g, d)?;
                    let c = self.mul(s, a)?;
                    out.push((a, c));
                }
            }
            Op::Reduce(Reduce::Len) => {}
            Op::Dot => {
                if dep(self, 0) {
                    let c = self.mul(g, b)?;
                    out.push((a, c));
                }
                if dep(self, 1) {
                    let c = self.mul(g, a)?;
                    out.push((b, c));
                }
            }
            Op::If => {
                let (c, x, y) = (args[0], args[1], args[2]);
                let shape = node.shape.clone();
                let z = self.zeros(&shape)?;
                if dep(self, 1) {
                    let v = self.node(Op::If, vec![c, g, z])?;
                    out.push((x, v));
                }
                if dep(self, 2) {
                    let v = self.node(Op::If, vec![c, z, g])?;
                    out.push((y, v));
                }
            }
            Op::Array => {
                for (i, &item) in args.iter().enumerate() {
                    if self.nodes[item].dep {
                        let k = self.konst(i as f64);
                        let v = self.node(Op::Index, vec![g, k])?;
                        out.push((item, v));
                    }
                }
            }
            Op::Index => {
                let shape = self.nodes[a].shape.clone();
                let sels = vec![Sel::At; args.len() - 1];
                let mut xs = vec![g];
                xs.extend(&args[1..]);
                let v = self.tensor(TensorOp::Embed(sels, shape), xs)?;
                out.push((a, v));
            }
            Op::Tensor(t) => self.tensor_adjoint(t, n, &args, g, &mut out)?,
            Op::Randn(_) => {
                return noise();
            }
            Op::Const(_) | Op::Leaf(_) | Op::Mode(_) => {}
        }
        Ok(out)
    }

    fn bin_adjoint(
        &mut self,
        op: Bin,
        n: usize,
        a: usize,
        b: usize,
        g: usize,
        out: &mut Vec<(usize, usize)>,
    ) -> R<()> {
        let (da, db) = (self.nodes[a].dep, self.nodes[b].dep);
        match op {
            Bin::Add => {
                out.push((a, g));
                out.push((b, g));
            }
            Bin::Sub => {
                out.push((a, g));
                if db {
                    let c = self.neg(g)?;
                    out.push((b, c));
                }
            }
            Bin::Mul => {
                if da {
                    let c = self.mul(g, b)?;
                    out.push((a, c));
                }
                if db {
                    let c = self.mul(g, a)?;
                    out.push((b, c));
                }
            }
            Bin::Div => {
                if da {
                    let c = self.div(g, b)?;
                    out.push((a, c));
                }
                if db {
                    // d(a/b)/db = -(a/b)/b
                    let m = self.mul(g, n)?;
                    let q = self.div(m, b)?;
                    let c = self.neg(q)?;
                    out.push((b, c));
                }
            }
            Bin::Rem => {
                // rem_euclid(a, b) = a - b k with k piecewise constant: d/db = -k = -(a - r)/b.
                out.push((a, g));
                if db {
                    let d = self.sub(a, n)?;
                    let k = self.div(d, b)?;
                    let m = self.mul(g, k)?;
                    let c = self.neg(m)?;
                    out.push((b, c));
                }
            }
            Bin::Pow => {
                if da {
                    let c = match self.const_of(b) {
                        Some(p) => {
                            let pm1 = self.konst(p - 1.0);
                            let pw = if p - 1.0 == 1.0 {
                                a
                            } else if p - 1.0 == 0.0 {
                                self.konst(1.0)
                            } else {
                                self.node(Op::Bin(Bin::Pow, Num::Real), vec![a, pm1])?
                            };
                            let k = self.konst(p);
                            let s = self.mul(g, k)?;
                            self.mul(s, pw)?
                        }
                        None => {
                            let one = self.konst(1.0);
                            let bm1 = self.sub(b, one)?;
                            let pw = self.node(Op::Bin(Bin::Pow, Num::Real), vec![a, bm1])?;
                            let s = self.mul(g, b)?;
                            self.mul(s, pw)?
                        }
                    };
                    out.push((a, c));
                }
                if db {
                    // d(a^b)/db = a^b log a, taken as 0 where a <= 0.
                    let z = self.konst(0.0);
                    let pos = self.cmp(Bin::Gt, a, z)?;
                    let l = self.un(Un::Log, a)?;
                    let m = self.mul(g, n)?;
                    let c = self.mul(m, l)?;
                    let c = self.select(pos, c, z)?;
                    out.push((b, c));
                }
            }
            Bin::Min | Bin::Max => {
                // Ties go to the first argument.
                let (first, second) = if op == Bin::Max {
                    (Bin::Ge, Bin::Lt)
                } else {
                    (Bin::Le, Bin::Gt)
                };
                let m = self.cmp(first, a, b)?;
                if self.nodes[m].shape.is_empty() {
                    let z = self.konst(0.0);
                    if da {
                        let c = self.select(m, g, z)?;
                        out.push((a, c));
                    }
                    if db {
                        let c = self.select(m, z, g)?;
                        out.push((b, c));
                    }
                } else {
                    if da {
                        let c = self.masked(m, g)?;
                        out.push((a, c));
                    }
                    if db {
                        let m2 = self.cmp(second, a, b)?;
                        let c = self.masked(m2, g)?;
                        out.push((b, c));
                    }
                }
            }
            Bin::Atan2 => {
                // atan2(a, b): d/da = b / (a² + b²), d/db = -a / (a² + b²).
                let a2 = self.mul(a, a)?;
                let b2 = self.mul(b, b)?;
                let r = self.add(a2, b2)?;
                if da {
                    let m = self.mul(g, b)?;
                    let c = self.div(m, r)?;
                    out.push((a, c));
                }
                if db {
                    let m = self.mul(g, a)?;
                    let q = self.div(m, r)?;
                    let c = self.neg(q)?;
                    out.push((b, c));
                }
            }
            Bin::MatMul => {
                let (ra, rb) = (self.nodes[a].shape.len(), self.nodes[b].shape.len());
                match (ra, rb) {
                    // y[m] = A[m,k] x[k]: dA = g ⊗ x, dx = g @ A.
                    (2, 1) => {
                        if da {
                            let c = self.tensor(TensorOp::Outer, vec![g, b])?;
                            out.push((a, c));
                        }
                        if db {
                            let c = self.matmul(g, a)?;
                            out.push((b, c));
                        }
                    }
                    // Y = A B: dA = G Bᵀ, dB = Aᵀ G.
                    (2, 2) => {
                        if da {
                            let bt = self.tensor(TensorOp::Transpose, vec![b])?;
                            let c = self.matmul(g, bt)?;
                            out.push((a, c));
                        }
                        if db {
                            let at = self.tensor(TensorOp::Transpose, vec![a])?;
                            let c = self.matmul(at, g)?;
                            out.push((b, c));
                        }
                    }
                    // s = x · y.
                    (1, 1) => {
                        if da {
                            let c = self.mul(g, b)?;
                            out.push((a, c));
                        }
                        if db {
                            let c = self.mul(g, a)?;
                            out.push((b, c));
                        }
                    }
                    // y[n] = x[k] B[k,n]: dx = B g, dB = x ⊗ g.
                    (1, 2) => {
                        if da {
                            let c = self.matmul(b, g)?;
                            out.push((a, c));
                        }
                        if db {
                            let c = self.tensor(TensorOp::Outer, vec![a, g])?;
                            out.push((b, c));
                        }
                    }
                    _ => return err("`@` of unsupported ranks"),
                }
            }
            Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge | Bin::And | Bin::Or => {}
        }
        Ok(())
    }

    fn tensor_adjoint(
        &mut self,
        t: &TensorOp,
        n: usize,
        args: &[usize],
        g: usize,
        out: &mut Vec<(usize, usize)>,
    ) -> R<()> {
        let a = args.first().copied().unwrap_or(0);
        let shape_a = self.nodes[a].shape.clone();
        match t {
            TensorOp::Transpose => {
                let c = self.tensor(TensorOp::Transpose, vec![g])?;
                out.push((a, c));
            }
            TensorOp::Mean => {
                let count = shape_a.iter().product::<u64>().max(1) as f64;
                let k = self.konst(count);
                let q = self.div(g, k)?;
                let c = self.fit(q, &shape_a)?;
                out.push((a, c));
            }
            TensorOp::MaxAll | TensorOp::MinAll => {
                // Ties share the gradient equally.
                let mask = self.cmp(Bin::Eq, a, n)?;
                let count = self.node(Op::Reduce(Reduce::Sum), vec![mask])?;
                let q = self.div(g, count)?;
                let c = self.masked(mask, q)?;
                out.push((a, c));
            }
            TensorOp::Outer => {
                let b = args[1];
                if self.nodes[a].dep {
                    let c = self.matmul(g, b)?;
                    out.push((a, c));
                }
                if self.nodes[b].dep {
                    let c = self.matmul(a, g)?;
                    out.push((b, c));
                }
            }
            TensorOp::Softmax => {
                // dx = s * (g - <g, s>)
                let d = self.node(Op::Dot, vec![g, n])?;
                let diff = self.sub(g, d)?;
                let c = self.mul(n, diff)?;
                out.push((a, c));
            }
            TensorOp::LogSumExp => {
                let s = self.tensor(TensorOp::Softmax, vec![a])?;
                let c = self.mul(g, s)?;
                out.push((a, c));
            }
            TensorOp::Slice(sels) => {
                let mut xs = vec![g];
                xs.extend(&args[1..]);
                let c = self.tensor(TensorOp::Embed(sels.clone(), shape_a), xs)?;
                out.push((a, c));
            }
            TensorOp::Embed(sels, _) => {
                let mut xs = vec![g];
                xs.extend(&args[1..]);
                let c = self.tensor(TensorOp::Slice(sels.clone()), xs)?;
                out.push((a, c));
            }
            TensorOp::Fill(_) => {
                let c = self.node(Op::Reduce(Reduce::Sum), vec![g])?;
                out.push((a, c));
            }
            TensorOp::Select => {
                let (c, x, y) = (args[0], args[1], args[2]);
                let z = self.konst(0.0);
                if self.nodes[x].dep {
                    let v = self.select(c, g, z)?;
                    out.push((x, v));
                }
                if self.nodes[y].dep {
                    let v = self.select(c, z, g)?;
                    out.push((y, v));
                }
            }
            TensorOp::Solve => {
                // x = A⁻¹ b: the adjoint of b is b̄ = A⁻ᵀ x̄ (one more solve, with the
                // transposed matrix), and the adjoint of A is Ā = -b̄ xᵀ (`outer` for a vector
                // right-hand side, b̄ @ Xᵀ for a matrix one).
                let b = args[1];
                let at = self.tensor(TensorOp::Transpose, vec![a])?;
                let gb = self.tensor(TensorOp::Solve, vec![at, g])?;
                if self.nodes[b].dep {
                    out.push((b, gb));
                }
                if self.nodes[a].dep {
                    let prod = if self.nodes[n].shape.len() == 1 {
                        self.tensor(TensorOp::Outer, vec![gb, n])?
                    } else {
                        let xt = self.tensor(TensorOp::Transpose, vec![n])?;
                        self.matmul(gb, xt)?
                    };
                    let c = self.neg(prod)?;
                    out.push((a, c));
                }
            }
            TensorOp::SpectralRadius => {
                return Err(AdError(
                    "`spectral_radius` has no derivative here: the largest eigenvalue modulus is not differentiable where eigenvalues cross".into(),
                    Some("use a spectral radius computed once, outside the differentiated expression (a state's initial value or a param), or leave the matrix it reads out of `grad`".into()),
                ));
            }
            TensorOp::Argmax | TensorOp::Argmin | TensorOp::OneHot(_) | TensorOp::Eye(_) => {}
        }
        Ok(())
    }

    // ------------------------------------------------------------------ emission

    /// Writes node `root` back as an IR expression, binding shared nodes as temporaries.
    fn emit(&self, root: usize) -> R<Expansion> {
        // Nodes reachable from the root, and how many times each is used.
        let mut uses: HashMap<usize, u32> = HashMap::new();
        let mut stack = vec![root];
        uses.insert(root, 1);
        let mut seen: BTreeSet<usize> = BTreeSet::from([root]);
        while let Some(n) = stack.pop() {
            if let Op::Randn(_) = self.nodes[n].op {
                return noise();
            }
            if self.nodes[n].alias.is_some() {
                continue;
            }
            for &a in &self.nodes[n].args {
                *uses.entry(a).or_insert(0) += 1;
                if seen.insert(a) {
                    stack.push(a);
                }
            }
        }
        let order: Vec<usize> = seen.into_iter().collect();
        let cheap = |n: usize| {
            let nd = &self.nodes[n];
            nd.alias.is_some()
                || matches!(nd.op, Op::Const(_))
                || (matches!(nd.op, Op::Leaf(_)) && nd.args.is_empty())
        };
        let is_arg = |n: usize| matches!(self.nodes[n].op, Op::Leaf(Leaf::Arg(_)));
        // Temporaries: shared nodes, and nodes whose inline tree would be too deep.
        let mut bound: BTreeSet<usize> = BTreeSet::new();
        let mut height: HashMap<usize, u32> = HashMap::new();
        for &n in &order {
            if cheap(n) {
                height.insert(n, 0);
                continue;
            }
            let h = 1 + self.nodes[n]
                .args
                .iter()
                .map(|a| if bound.contains(a) { 0 } else { height[a] })
                .max()
                .unwrap_or(0);
            if uses[&n] > 1 || h > MAX_INLINE {
                bound.insert(n);
                height.insert(n, 0);
            } else {
                height.insert(n, h);
            }
        }
        if bound.is_empty() {
            return Ok(Expansion {
                expr: self.emit_node(root, &HashMap::new(), true)?,
                fns: vec![],
            });
        }
        // The temporaries each node reads directly (through nodes that are not bound).
        // Arguments of the enclosing fn are bound values of level 0.
        let mut deps: HashMap<usize, BTreeSet<usize>> = HashMap::new();
        for &n in &order {
            let mut d = BTreeSet::new();
            if self.nodes[n].alias.is_none() {
                for a in &self.nodes[n].args {
                    if bound.contains(a) || is_arg(*a) {
                        d.insert(*a);
                    } else if let Some(s) = deps.get(a) {
                        d.extend(s.iter().copied());
                    }
                }
            }
            deps.insert(n, d);
        }
        let mut level: HashMap<usize, usize> = HashMap::new();
        for &n in &order {
            if is_arg(n) {
                level.insert(n, 0);
            } else if bound.contains(&n) {
                let l = 1 + deps[&n].iter().map(|d| level[d]).max().unwrap_or(0);
                level.insert(n, l);
            }
        }
        let top = level.values().copied().max().unwrap_or(0);
        let temps_at = |k: usize| -> Vec<usize> {
            order
                .iter()
                .copied()
                .filter(|n| bound.contains(n) && level[n] == k)
                .collect()
        };
        let final_deps: BTreeSet<usize> = if bound.contains(&root) {
            BTreeSet::from([root])
        } else {
            deps[&root].clone()
        };
        // Bound values still needed from scope k on: by temporaries of higher levels or by
        // the final expression.
        let needed = |k: usize| -> Vec<usize> {
            let mut need: BTreeSet<usize> = final_deps.clone();
            for &t in bound.iter() {
                if level[&t] > k {
                    need.extend(deps[&t].iter().copied());
                }
            }
            need.into_iter().filter(|b| level[b] < k).collect()
        };
        let base = self.cx.next_fn();
        let mut fns: Vec<Function> = Vec::with_capacity(top);
        let mut scopes: Vec<HashMap<usize, u32>> = vec![HashMap::new(); top + 1];
        let mut calls: Vec<(Vec<usize>, Vec<usize>)> = vec![(vec![], vec![]); top + 1];
        for k in 1..=top {
            let pass = needed(k);
            let new = temps_at(k);
            let mut map = HashMap::new();
            for (i, n) in pass.iter().chain(&new).enumerate() {
                map.insert(*n, i as u32);
            }
            scopes[k] = map;
            calls[k] = (pass, new);
        }
        // The call into scope k, evaluated in scope k - 1.
        let call = |k: usize| -> R<Expr> {
            let (pass, new) = &calls[k];
            let mut xs = Vec::with_capacity(pass.len() + new.len());
            for p in pass {
                xs.push(self.emit_node(*p, &scopes[k - 1], k == 1)?);
            }
            for t in new {
                xs.push(self.emit_def(*t, &scopes[k - 1], k == 1)?);
            }
            Ok(Expr::Call(base + (k - 1) as u32, xs))
        };
        for (k, (pass, new)) in calls.iter().enumerate().skip(1) {
            let body = if k == top {
                self.emit_node(root, &scopes[top], false)?
            } else {
                call(k + 1)?
            };
            fns.push(Function {
                name: format!("grad_tmp{}", base + (k - 1) as u32),
                arity: (pass.len() + new.len()) as u32,
                body,
            });
        }
        Ok(Expansion {
            expr: call(1)?,
            fns,
        })
    }

    /// Node `n` in a scope: a bound value is read from the scope's arguments.
    fn emit_node(&self, n: usize, scope: &HashMap<usize, u32>, outer: bool) -> R<Expr> {
        if let Some(i) = scope.get(&n) {
            return Ok(Expr::Arg(*i));
        }
        if !outer && matches!(self.nodes[n].op, Op::Leaf(Leaf::Arg(_))) {
            return err("internal: a fn argument not passed to a temporary's scope");
        }
        self.emit_def(n, scope, outer)
    }

    /// The operation of node `n` over its operands in a scope.
    fn emit_def(&self, n: usize, scope: &HashMap<usize, u32>, outer: bool) -> R<Expr> {
        let node = &self.nodes[n];
        if let Some(l) = node.alias {
            return Ok(Expr::Let(l));
        }
        let e = |i: usize| -> R<Expr> { self.emit_node(node.args[i], scope, outer) };
        let all = || -> R<Vec<Expr>> { (0..node.args.len()).map(e).collect::<R<Vec<_>>>() };
        let bx = |x: Expr| Box::new(x);
        Ok(match &node.op {
            Op::Const(b) => Expr::Const(f64::from_bits(*b)),
            Op::Leaf(l) => match l {
                Leaf::Param(i) => Expr::Param(*i),
                Leaf::State(i) => Expr::State(*i),
                Leaf::Input(i) => Expr::Input(*i),
                Leaf::Let(i) => Expr::Let(*i),
                Leaf::Loop(d) => Expr::Loop(*d),
                Leaf::Arg(i) => Expr::Arg(*i),
                Leaf::Time => Expr::Time,
                Leaf::BoxOut(b, port) => Expr::BoxOut {
                    b: *b,
                    index: match node.args.first() {
                        Some(_) => Some(bx(e(0)?)),
                        None => None,
                    },
                    port: *port,
                },
            },
            Op::Randn(_) => Expr::Randn,
            Op::Un(u) => Expr::Un(*u, bx(e(0)?)),
            Op::Bin(b, num) => Expr::Bin(*b, *num, bx(e(0)?), bx(e(1)?)),
            Op::Reduce(r) => Expr::Reduce(*r, bx(e(0)?)),
            Op::Dot => Expr::Dot(bx(e(0)?), bx(e(1)?)),
            Op::If => Expr::If(bx(e(0)?), bx(e(1)?), bx(e(2)?)),
            Op::Array => Expr::Array(all()?),
            Op::Index => {
                let xs = all()?;
                let mut it = xs.into_iter();
                let a = it.next().unwrap_or(Expr::Const(f64::NAN));
                Expr::Index(bx(a), it.collect())
            }
            Op::Mode(m) => Expr::Mode(*m, all()?),
            Op::Tensor(t) => Expr::Tensor(t.clone(), all()?),
        })
    }
}

/// The shape of `a @ b`.
fn matmul_shape(a: &Shape, b: &Shape) -> R<Shape> {
    Ok(match (a.as_slice(), b.as_slice()) {
        ([m, _], [_]) => vec![*m],
        ([m, _], [_, n]) => vec![*m, *n],
        ([_], [_]) => vec![],
        ([_], [_, n]) => vec![*n],
        _ => return err("`@` of unsupported ranks"),
    })
}

/// The shape of a slice of a tensor of shape `a`.
pub fn slice_shape(a: &Shape, sels: &[Sel]) -> Result<Shape, AdError> {
    if sels.len() > a.len() {
        return err("a slice of higher rank than its tensor");
    }
    let mut out = Vec::new();
    for s in sels {
        if let Sel::Range(lo, hi) = s {
            out.push(hi.saturating_sub(*lo));
        }
    }
    out.extend(&a[sels.len()..]);
    Ok(out)
}
