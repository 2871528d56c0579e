//! Forward-mode automatic differentiation of a flattened program with dual numbers.
//!
//! The right-hand side of the whole model — every signal in schedule order (lets, readouts,
//! wires, across all groups and box arrays), then the `der` derivatives or `next` values —
//! is evaluated on dual numbers `v + d ε` (ε² = 0). Seeding state slot `j` with `d = 1`
//! gives column `j` of the Jacobian exactly (to rounding), with no step size. The value
//! parts are computed with the interpreter's operations in the interpreter's order
//! (`crates/interp/src/machine.rs`), so they equal its right-hand side to the bit.
//!
//! Conventions: `randn()` is 0 (the drift of a stochastic model), the time is 0 (autonomous
//! models), root inputs hold their values in the `inputs` given, and `when` events are not
//! part of the right-hand side. Int and Bool operations, comparisons, `floor`, `ceil`,
//! `round`, `int`, `argmax`, `argmin` and `one_hot` have derivative 0; `abs`, `min`, `max`,
//! `relu` and `if` take the derivative of the branch their value takes.

use dyn_ir::expr::{Bin, Expr, Num, Reduce, Sel, TensorOp, Un};
use dyn_ir::flat::{Flat, OpKind};
use dyn_ir::numeric::reduce_sum;
use dyn_ir::system::{Readout, TimeKind, slots};

/// A dual number: a value and its derivative along one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct D {
    /// Value.
    pub v: f64,
    /// Derivative.
    pub d: f64,
}

impl D {
    /// A constant.
    pub fn c(v: f64) -> D {
        D { v, d: 0.0 }
    }
}

/// A value on dual numbers: scalar, tensor (row-major elements and dims) or mode value.
#[derive(Debug, Clone)]
enum V {
    S(D),
    T(Vec<D>, Vec<usize>),
    M(u32, Vec<V>),
}

impl V {
    fn s(&self) -> D {
        match self {
            V::S(x) => *x,
            V::T(xs, _) => xs.first().copied().unwrap_or(D::c(f64::NAN)),
            V::M(m, _) => D::c(*m as f64),
        }
    }
    fn elems(&self) -> Vec<D> {
        match self {
            V::T(xs, _) => xs.clone(),
            v => vec![v.s()],
        }
    }
    fn from_slots(shape: &[u64], data: &[D]) -> V {
        if shape.is_empty() {
            V::S(data[0])
        } else {
            V::T(data.to_vec(), shape.iter().map(|&d| d as usize).collect())
        }
    }
    fn to_slots(&self, out: &mut [D]) {
        match self {
            V::S(x) => out.iter_mut().for_each(|o| *o = *x),
            V::T(xs, _) => {
                for (o, v) in out.iter_mut().zip(xs) {
                    *o = *v;
                }
            }
            V::M(m, _) => out.iter_mut().for_each(|o| *o = D::c(*m as f64)),
        }
    }
    fn map(self, f: impl Fn(D) -> D) -> V {
        match self {
            V::S(x) => V::S(f(x)),
            V::T(xs, sh) => V::T(xs.into_iter().map(f).collect(), sh),
            m => m,
        }
    }
}

type E<T> = Result<T, String>;

/// `Σ term(i)` in the shared reduction order, for values and derivatives alike.
fn dsum(n: usize, term: impl Fn(usize) -> D) -> D {
    D {
        v: reduce_sum(n, |i| term(i).v),
        d: reduce_sum(n, |i| term(i).d),
    }
}

fn int(x: f64) -> i64 {
    x as i64
}

fn bin(op: Bin, num: Num, x: D, y: D) -> E<D> {
    let b = |c: bool| D::c(if c { 1.0 } else { 0.0 });
    if num == Num::Int {
        // Int values are exact integers: derivative 0, the interpreter's value.
        let (a, c) = (int(x.v), int(y.v));
        let ovf = || "Int arithmetic overflowed or divided by zero".to_string();
        return Ok(match op {
            Bin::Add => D::c(a.checked_add(c).ok_or_else(ovf)? as f64),
            Bin::Sub => D::c(a.checked_sub(c).ok_or_else(ovf)? as f64),
            Bin::Mul | Bin::MatMul => D::c(a.checked_mul(c).ok_or_else(ovf)? as f64),
            Bin::Div => D::c(a.checked_div(c).ok_or_else(ovf)? as f64),
            Bin::Rem => D::c(a.checked_rem_euclid(c).ok_or_else(ovf)? as f64),
            Bin::Pow => D::c(
                a.checked_pow(u32::try_from(c).map_err(|_| ovf())?)
                    .ok_or_else(ovf)? as f64,
            ),
            Bin::Min => D::c(a.min(c) as f64),
            Bin::Max => D::c(a.max(c) as f64),
            Bin::Atan2 => D::c(x.v.atan2(y.v)),
            Bin::Eq => b(a == c),
            Bin::Ne => b(a != c),
            Bin::Lt => b(a < c),
            Bin::Le => b(a <= c),
            Bin::Gt => b(a > c),
            Bin::Ge => b(a >= c),
            Bin::And => b(a != 0 && c != 0),
            Bin::Or => b(a != 0 || c != 0),
        });
    }
    Ok(match op {
        Bin::Add => D {
            v: x.v + y.v,
            d: x.d + y.d,
        },
        Bin::Sub => D {
            v: x.v - y.v,
            d: x.d - y.d,
        },
        Bin::Mul | Bin::MatMul => D {
            v: x.v * y.v,
            d: x.d * y.v + x.v * y.d,
        },
        Bin::Div => D {
            v: x.v / y.v,
            d: (x.d * y.v - x.v * y.d) / (y.v * y.v),
        },
        Bin::Rem => {
            // x - |y| ⌊x / |y|⌋ piecewise: derivative dx - q dy with q the integer quotient.
            let r = x.v.rem_euclid(y.v);
            let q = ((x.v - r) / y.v).round();
            D {
                v: r,
                d: x.d - q * y.d,
            }
        }
        Bin::Pow => {
            let v = x.v.powf(y.v);
            let mut d = 0.0;
            if x.d != 0.0 {
                d += y.v * x.v.powf(y.v - 1.0) * x.d;
            }
            if y.d != 0.0 {
                d += v * x.v.ln() * y.d;
            }
            D { v, d }
        }
        Bin::Min => {
            let v = x.v.min(y.v);
            D {
                v,
                d: if v == x.v { x.d } else { y.d },
            }
        }
        Bin::Max => {
            let v = x.v.max(y.v);
            D {
                v,
                d: if v == x.v { x.d } else { y.d },
            }
        }
        Bin::Atan2 => {
            let r2 = x.v * x.v + y.v * y.v;
            D {
                v: x.v.atan2(y.v),
                d: if r2 > 0.0 {
                    (y.v * x.d - x.v * y.d) / r2
                } else {
                    0.0
                },
            }
        }
        Bin::Eq => b(x.v == y.v),
        Bin::Ne => b(x.v != y.v),
        Bin::Lt => b(x.v < y.v),
        Bin::Le => b(x.v <= y.v),
        Bin::Gt => b(x.v > y.v),
        Bin::Ge => b(x.v >= y.v),
        Bin::And => b(x.v != 0.0 && y.v != 0.0),
        Bin::Or => b(x.v != 0.0 || y.v != 0.0),
    })
}

fn un(op: Un, x: D) -> D {
    let v = |v: f64, dv: f64| D { v, d: dv * x.d };
    match op {
        Un::Neg => D { v: -x.v, d: -x.d },
        Un::Not => D::c(if x.v != 0.0 { 0.0 } else { 1.0 }),
        Un::ToReal => x,
        Un::ToInt => D::c(x.v.trunc()),
        Un::Exp => {
            let e = x.v.exp();
            v(e, e)
        }
        Un::Log => v(x.v.ln(), 1.0 / x.v),
        Un::Sqrt => {
            let s = x.v.sqrt();
            v(s, 0.5 / s)
        }
        Un::Abs => v(
            x.v.abs(),
            if x.v > 0.0 {
                1.0
            } else if x.v < 0.0 {
                -1.0
            } else {
                0.0
            },
        ),
        Un::Sin => v(x.v.sin(), x.v.cos()),
        Un::Cos => v(x.v.cos(), -x.v.sin()),
        Un::Tan => {
            let c = x.v.cos();
            v(x.v.tan(), 1.0 / (c * c))
        }
        Un::Tanh => {
            let t = x.v.tanh();
            v(t, 1.0 - t * t)
        }
        Un::Sinh => v(x.v.sinh(), x.v.cosh()),
        Un::Cosh => v(x.v.cosh(), x.v.sinh()),
        Un::Atan => v(x.v.atan(), 1.0 / (1.0 + x.v * x.v)),
        Un::Floor => D::c(x.v.floor()),
        Un::Ceil => D::c(x.v.ceil()),
        Un::Round => D::c(x.v.round()),
        Un::Sigmoid => {
            let s = 1.0 / (1.0 + (-x.v).exp());
            v(s, s * (1.0 - s))
        }
        Un::Relu => v(x.v.max(0.0), if x.v > 0.0 { 1.0 } else { 0.0 }),
    }
}

fn matmul(a: (&[D], &[usize]), b: (&[D], &[usize])) -> E<V> {
    let ((ad, sa), (bd, sb)) = (a, b);
    let (m, k, n) = match (sa.len(), sb.len()) {
        (2, 1) | (2, 2) => (sa[0], sa[1], sb.get(1).copied().unwrap_or(1)),
        (1, 1) | (1, 2) => (1, sa[0], sb.get(1).copied().unwrap_or(1)),
        _ => return Err("`@` of unsupported ranks".into()),
    };
    if sb.first() != Some(&k) {
        return Err("`@` of mismatched shapes".into());
    }
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            out.push(dsum(k, |l| {
                let (x, y) = (ad[i * k + l], bd[l * n + j]);
                D {
                    v: x.v * y.v,
                    d: x.d * y.v + x.v * y.d,
                }
            }));
        }
    }
    Ok(match (sa.len(), sb.len()) {
        (2, 1) => V::T(out, vec![m]),
        (2, 2) => V::T(out, vec![m, n]),
        (1, 1) => V::S(out[0]),
        _ => V::T(out, vec![n]),
    })
}

/// Index (first occurrence) of the largest (`max`) or smallest element, folded as
/// `f64::max`/`f64::min` from the first (NaNs are skipped unless all are NaN).
fn extreme(xs: &[D], max: bool) -> (usize, D) {
    let mut best = xs.first().copied().unwrap_or(D::c(f64::NAN));
    for x in xs.iter().skip(1) {
        let m = if max {
            best.v.max(x.v)
        } else {
            best.v.min(x.v)
        };
        if m != best.v || best.v.is_nan() {
            best = *x;
        }
    }
    let at = xs.iter().position(|x| x.v == best.v).unwrap_or(0);
    (at, best)
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// The flat positions (row-major in `dims`) selected by a slice, in row-major order of the
/// result, and the result's dims.
fn slice_positions(dims: &[usize], sels: &[Sel], idx: &[i64]) -> E<(Vec<usize>, Vec<usize>)> {
    let st = strides(dims);
    // Per axis: the list of coordinates, and whether the axis is kept.
    let mut axes: Vec<(Vec<usize>, bool)> = Vec::new();
    let mut k = 0;
    for (axis, n) in dims.iter().enumerate() {
        match sels.get(axis) {
            Some(Sel::At) => {
                let i = *idx.get(k).ok_or("a slice without its index")?;
                k += 1;
                if i < 0 || i as usize >= *n {
                    return Err(format!(
                        "index {i} out of range for axis {axis} of length {n}"
                    ));
                }
                axes.push((vec![i as usize], false));
            }
            Some(Sel::Range(lo, hi)) => {
                if lo > hi || *hi as usize > *n {
                    return Err(format!(
                        "slice {lo}..{hi} out of range for axis {axis} of length {n}"
                    ));
                }
                axes.push(((*lo as usize..*hi as usize).collect(), true));
            }
            None => axes.push(((0..*n).collect(), true)),
        }
    }
    let out_dims: Vec<usize> = axes.iter().filter(|a| a.1).map(|a| a.0.len()).collect();
    let mut pos = vec![0usize];
    for (a, (coords, _)) in axes.iter().enumerate() {
        let mut next = Vec::with_capacity(pos.len() * coords.len());
        for p in &pos {
            for c in coords {
                next.push(p + c * st[a]);
            }
        }
        pos = next;
    }
    Ok((pos, out_dims))
}

fn tensor_op(op: &TensorOp, vals: Vec<V>) -> E<V> {
    let arg = |i: usize| -> E<V> {
        vals.get(i)
            .cloned()
            .ok_or_else(|| "a tensor operation without its arguments".to_string())
    };
    let dims_of = |v: &V| match v {
        V::T(_, d) => d.clone(),
        _ => vec![],
    };
    Ok(match op {
        TensorOp::Transpose => {
            let V::T(xs, d) = arg(0)? else {
                return Err("`transpose` of a scalar".into());
            };
            if d.len() != 2 {
                return Err("`transpose` of a tensor that is not a matrix".into());
            }
            let (m, n) = (d[0], d[1]);
            let mut out = Vec::with_capacity(m * n);
            for j in 0..n {
                for i in 0..m {
                    out.push(xs[i * n + j]);
                }
            }
            V::T(out, vec![n, m])
        }
        TensorOp::Mean => {
            let xs = arg(0)?.elems();
            let s = dsum(xs.len(), |i| xs[i]);
            let n = xs.len() as f64;
            V::S(D {
                v: s.v / n,
                d: s.d / n,
            })
        }
        TensorOp::MaxAll | TensorOp::MinAll => {
            let xs = arg(0)?.elems();
            V::S(extreme(&xs, *op == TensorOp::MaxAll).1)
        }
        TensorOp::Argmax | TensorOp::Argmin => {
            let xs = arg(0)?.elems();
            V::S(D::c(extreme(&xs, *op == TensorOp::Argmax).0 as f64))
        }
        TensorOp::Outer => {
            let (a, b) = (arg(0)?.elems(), arg(1)?.elems());
            let mut out = Vec::with_capacity(a.len() * b.len());
            for x in &a {
                for y in &b {
                    out.push(D {
                        v: x.v * y.v,
                        d: x.d * y.v + x.v * y.d,
                    });
                }
            }
            V::T(out, vec![a.len(), b.len()])
        }
        TensorOp::Softmax => {
            let v = arg(0)?;
            let xs = v.elems();
            let m = extreme(&xs, true).1;
            let e: Vec<D> = xs
                .iter()
                .map(|x| {
                    let ev = (x.v - m.v).exp();
                    D {
                        v: ev,
                        d: ev * (x.d - m.d),
                    }
                })
                .collect();
            let s = dsum(e.len(), |i| e[i]);
            let out = e
                .iter()
                .map(|x| D {
                    v: x.v / s.v,
                    d: (x.d * s.v - x.v * s.d) / (s.v * s.v),
                })
                .collect();
            V::T(out, dims_of(&v))
        }
        TensorOp::LogSumExp => {
            let xs = arg(0)?.elems();
            let m = extreme(&xs, true).1;
            if m.v.is_infinite() {
                V::S(m)
            } else {
                let e: Vec<D> = xs
                    .iter()
                    .map(|x| {
                        let ev = (x.v - m.v).exp();
                        D {
                            v: ev,
                            d: ev * (x.d - m.d),
                        }
                    })
                    .collect();
                let s = dsum(e.len(), |i| e[i]);
                V::S(D {
                    v: m.v + s.v.ln(),
                    d: m.d + s.d / s.v,
                })
            }
        }
        TensorOp::Solve => {
            // x = A⁻¹ b, dx = A⁻¹ (db - dA x): two solves with the one matrix.
            let (a, b) = (arg(0)?, arg(1)?);
            let db = dims_of(&b);
            let (ae, be) = (a.elems(), b.elems());
            let n = dims_of(&a).first().copied().unwrap_or(0);
            let k = db.get(1).copied().unwrap_or(1);
            let av: Vec<f64> = ae.iter().map(|x| x.v).collect();
            let bv: Vec<f64> = be.iter().map(|x| x.v).collect();
            let x = dyn_ir::linalg::solve(&av, n, &bv, k)?;
            let mut r = Vec::with_capacity(n * k);
            for i in 0..n {
                for j in 0..k {
                    let dax = dsum(n, |l| D::c(ae[i * n + l].d * x[l * k + j])).v;
                    r.push(be[i * k + j].d - dax);
                }
            }
            let dx = dyn_ir::linalg::solve(&av, n, &r, k)?;
            let out = x.iter().zip(&dx).map(|(v, d)| D { v: *v, d: *d }).collect();
            V::T(out, db)
        }
        TensorOp::SpectralRadius => {
            let a = arg(0)?;
            let n = dims_of(&a).first().copied().unwrap_or(0);
            let ae = a.elems();
            if ae.iter().any(|x| x.d != 0.0) {
                return Err(
                    "spectral_radius of a matrix that depends on the state has no derivative here"
                        .into(),
                );
            }
            let av: Vec<f64> = ae.iter().map(|x| x.v).collect();
            V::S(D::c(dyn_ir::linalg::spectral_radius(&av, n)?))
        }
        TensorOp::Eye(n) => {
            let n = *n as usize;
            let mut out = vec![D::c(0.0); n * n];
            for i in 0..n {
                out[i * n + i] = D::c(1.0);
            }
            V::T(out, vec![n, n])
        }
        TensorOp::OneHot(n) => {
            let k = arg(0)?.s().v;
            if !(k >= 0.0 && k < *n as f64) {
                return Err(format!("one_hot: class {k} is outside 0..{n}"));
            }
            let mut out = vec![D::c(0.0); *n as usize];
            out[k as usize] = D::c(1.0);
            V::T(out, vec![*n as usize])
        }
        TensorOp::Slice(sels) => {
            let V::T(xs, d) = arg(0)? else {
                return Err("slicing a scalar".into());
            };
            let idx: Vec<i64> = vals[1..].iter().map(|v| v.s().v as i64).collect();
            let (pos, od) = slice_positions(&d, sels, &idx)?;
            let out: Vec<D> = pos.iter().map(|p| xs[*p]).collect();
            if od.is_empty() {
                V::S(out.first().copied().unwrap_or(D::c(f64::NAN)))
            } else {
                V::T(out, od)
            }
        }
        TensorOp::Embed(sels, shape) => {
            let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
            let mut out = vec![D::c(0.0); dims.iter().product()];
            let idx: Vec<i64> = vals[1..].iter().map(|v| v.s().v as i64).collect();
            let (pos, _) = slice_positions(&dims, sels, &idx)?;
            match arg(0)? {
                V::T(xs, _) if xs.len() == pos.len() => {
                    for (p, x) in pos.iter().zip(xs) {
                        out[*p] = x;
                    }
                }
                V::T(..) => return Err("`embed` of a mismatched shape".into()),
                v => {
                    for p in &pos {
                        out[*p] = v.s();
                    }
                }
            }
            V::T(out, dims)
        }
        TensorOp::Fill(shape) => {
            let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
            V::T(vec![arg(0)?.s(); dims.iter().product()], dims)
        }
        TensorOp::Select => {
            let (c, a, b) = (arg(0)?, arg(1)?, arg(2)?);
            match c {
                V::T(cs, d) => {
                    let at = |v: &V, i: usize| match v {
                        V::T(xs, _) => xs.get(i).copied(),
                        v => Some(v.s()),
                    };
                    let mut out = Vec::with_capacity(cs.len());
                    for (i, c) in cs.iter().enumerate() {
                        let v = if c.v != 0.0 { at(&a, i) } else { at(&b, i) };
                        out.push(v.ok_or("`select` of mismatched shapes")?);
                    }
                    V::T(out, d)
                }
                c => {
                    if c.s().v != 0.0 {
                        a
                    } else {
                        b
                    }
                }
            }
        }
    })
}

/// Evaluates a flattened program's right-hand side on dual numbers.
pub struct DualMachine<'f> {
    flat: &'f Flat,
    params: &'f [f64],
    sig: Vec<D>,
}

#[derive(Clone, Copy)]
struct Frame<'a> {
    g: u32,
    e: u64,
    loops: &'a [i64],
}

impl<'f> DualMachine<'f> {
    /// A machine over `flat` with the param values `params` (as `Sim::new` sets them).
    pub fn new(flat: &'f Flat, params: &'f [f64]) -> Self {
        DualMachine {
            flat,
            params,
            sig: vec![D::c(0.0); flat.n_signal],
        }
    }

    fn eval(&self, f: Frame, x: &Expr, state: &[D], args: &[V]) -> E<V> {
        let flat = self.flat;
        let grp = &flat.groups[f.g as usize];
        let sys = &flat.program.systems[grp.system as usize];
        Ok(match x {
            Expr::Const(c) => V::S(D::c(*c)),
            Expr::Time => V::S(D::c(0.0)),
            Expr::Loop(d) => V::S(D::c(*f.loops.get(*d as usize).unwrap_or(&0) as f64)),
            Expr::Arg(i) => args
                .get(*i as usize)
                .cloned()
                .unwrap_or(V::S(D::c(f64::NAN))),
            Expr::Param(i) => {
                let o = grp.param_base + grp.param_off[*i as usize];
                let sh = &sys.params[*i as usize].0.shape;
                let ds: Vec<D> = self.params[o..o + slots(sh).max(1)]
                    .iter()
                    .map(|p| D::c(*p))
                    .collect();
                V::from_slots(sh, &ds)
            }
            Expr::State(i) => {
                let o = grp.state(f.e, *i as usize);
                let sh = &sys.states[*i as usize].0.shape;
                V::from_slots(sh, &state[o..o + slots(sh).max(1)])
            }
            Expr::Input(i) => {
                let o = grp.sig(f.e, grp.in_off[*i as usize]);
                let sh = &sys.inputs[*i as usize].shape;
                V::from_slots(sh, &self.sig[o..o + slots(sh).max(1)])
            }
            Expr::Let(i) => {
                let o = grp.sig(f.e, grp.let_off[*i as usize]);
                let sh = &sys.lets[*i as usize].0.shape;
                V::from_slots(sh, &self.sig[o..o + slots(sh).max(1)])
            }
            Expr::BoxOut { b, index, port } => {
                let bx = &sys.boxes[*b as usize];
                let k = match index {
                    Some(i) => int(self.eval(f, i, state, args)?.s().v),
                    None => 0,
                };
                let n = bx.count.unwrap_or(1) as i64;
                if k < 0 || k >= n {
                    return Err(format!(
                        "index {k} out of range for box array `{}`",
                        bx.name
                    ));
                }
                let c = &flat.groups[grp.children[*b as usize] as usize];
                let ce = f.e * n as u64 + k as u64;
                let o = c.sig(ce, c.out_off[*port as usize]);
                let sh = &flat.program.systems[c.system as usize].outputs[*port as usize].shape;
                V::from_slots(sh, &self.sig[o..o + slots(sh).max(1)])
            }
            Expr::Un(op, a) => self.eval(f, a, state, args)?.map(|x| un(*op, x)),
            Expr::Bin(op, num, a, b) => {
                let x = self.eval(f, a, state, args)?;
                let y = self.eval(f, b, state, args)?;
                binary(*op, *num, x, y)?
            }
            Expr::Reduce(r, a) => {
                let v = self.eval(f, a, state, args)?;
                let V::T(xs, d) = v else {
                    return Ok(V::S(v.s()));
                };
                V::S(match r {
                    Reduce::Sum => dsum(xs.len(), |i| xs[i]),
                    Reduce::Norm => {
                        let s = dsum(xs.len(), |i| D {
                            v: xs[i].v * xs[i].v,
                            d: 2.0 * xs[i].v * xs[i].d,
                        });
                        let r = s.v.sqrt();
                        D {
                            v: r,
                            d: if r > 0.0 { s.d / (2.0 * r) } else { 0.0 },
                        }
                    }
                    Reduce::Len => D::c(d.first().copied().unwrap_or(0) as f64),
                })
            }
            Expr::Dot(a, b) => {
                let (V::T(x, _), V::T(y, _)) =
                    (self.eval(f, a, state, args)?, self.eval(f, b, state, args)?)
                else {
                    return Err("dot of non-tensors".into());
                };
                V::S(dsum(x.len().min(y.len()), |i| D {
                    v: x[i].v * y[i].v,
                    d: x[i].d * y[i].v + x[i].v * y[i].d,
                }))
            }
            Expr::Call(fi, xs) => {
                let vals = xs
                    .iter()
                    .map(|a| self.eval(f, a, state, args))
                    .collect::<E<Vec<_>>>()?;
                let body = &flat.program.fns[*fi as usize].body;
                self.eval(f, body, state, &vals)?
            }
            Expr::If(c, a, b) => {
                if self.eval(f, c, state, args)?.s().v != 0.0 {
                    self.eval(f, a, state, args)?
                } else {
                    self.eval(f, b, state, args)?
                }
            }
            Expr::Array(items) => {
                let vals = items
                    .iter()
                    .map(|a| self.eval(f, a, state, args))
                    .collect::<E<Vec<_>>>()?;
                let inner: Vec<usize> = match vals.first() {
                    Some(V::T(_, d)) => d.clone(),
                    _ => vec![],
                };
                let mut data = Vec::new();
                for v in &vals {
                    data.extend(v.elems());
                }
                let mut dims = vec![vals.len()];
                dims.extend(inner);
                V::T(data, dims)
            }
            Expr::Index(a, idx) => {
                let v = self.eval(f, a, state, args)?;
                let is = idx
                    .iter()
                    .map(|i| self.eval(f, i, state, args).map(|v| int(v.s().v)))
                    .collect::<E<Vec<_>>>()?;
                let V::T(xs, d) = v else {
                    return Err("indexing a scalar".into());
                };
                let sels = vec![Sel::At; is.len()];
                let (pos, od) = slice_positions(&d, &sels, &is)?;
                let out: Vec<D> = pos.iter().map(|p| xs[*p]).collect();
                if od.is_empty() {
                    V::S(out.first().copied().unwrap_or(D::c(f64::NAN)))
                } else {
                    V::T(out, od)
                }
            }
            Expr::Mode(m, xs) => V::M(
                *m,
                xs.iter()
                    .map(|a| self.eval(f, a, state, args))
                    .collect::<E<Vec<_>>>()?,
            ),
            Expr::Randn => V::S(D::c(0.0)),
            Expr::Tensor(op, xs) => {
                let vals = xs
                    .iter()
                    .map(|a| self.eval(f, a, state, args))
                    .collect::<E<Vec<_>>>()?;
                tensor_op(op, vals)?
            }
        })
    }

    fn store(&mut self, at: usize, shape: &[u64], v: &V) {
        let n = slots(&shape.to_vec()).max(1);
        v.to_slots(&mut self.sig[at..at + n]);
    }

    /// Computes every signal from `state` in schedule order; `inputs` sets the root's
    /// input slots first.
    pub fn signals(&mut self, state: &[D], inputs: &[(usize, f64)]) -> E<()> {
        for (slot, v) in inputs {
            self.sig[*slot] = D::c(*v);
        }
        let flat = self.flat;
        for op in &flat.schedule {
            match op.kind {
                OpKind::Let(g, l) => {
                    let grp = &flat.groups[g as usize];
                    let (slot, x) = &flat.program.systems[grp.system as usize].lets[l as usize];
                    for it in &op.items {
                        let fr = Frame {
                            g,
                            e: it.elem,
                            loops: &[],
                        };
                        let v = self.eval(fr, x, state, &[])?;
                        self.store(grp.sig(it.elem, grp.let_off[l as usize]), &slot.shape, &v);
                    }
                }
                OpKind::Out(g, p) => {
                    let grp = &flat.groups[g as usize];
                    let sys = &flat.program.systems[grp.system as usize];
                    let Readout::Ports(xs) = &sys.readout else {
                        continue;
                    };
                    for it in &op.items {
                        let fr = Frame {
                            g,
                            e: it.elem,
                            loops: &[],
                        };
                        let v = self.eval(fr, &xs[p as usize], state, &[])?;
                        self.store(
                            grp.sig(it.elem, grp.out_off[p as usize]),
                            &sys.outputs[p as usize].shape,
                            &v,
                        );
                    }
                }
                OpKind::Mode(g) => {
                    let grp = &flat.groups[g as usize];
                    let sys = &flat.program.systems[grp.system as usize];
                    let Readout::Mode(x, _, ports) = &sys.readout else {
                        continue;
                    };
                    let Some(mode_off) = grp.mode_off else {
                        return Err("a mode readout without its slot".into());
                    };
                    for it in &op.items {
                        let fr = Frame {
                            g,
                            e: it.elem,
                            loops: &[],
                        };
                        let V::M(m, vals) = self.eval(fr, x, state, &[])? else {
                            return Err("a readout that is not a mode".into());
                        };
                        self.sig[grp.sig(it.elem, mode_off)] = D::c(m as f64);
                        let Some(ps) = ports.get(m as usize) else {
                            return Err("a mode readout of an unknown mode".into());
                        };
                        for (pi, val) in ps.iter().zip(&vals) {
                            self.store(
                                grp.sig(it.elem, grp.out_off[*pi as usize]),
                                &sys.outputs[*pi as usize].shape,
                                val,
                            );
                        }
                    }
                }
                OpKind::Wire(g, w) => {
                    let grp = &flat.groups[g as usize];
                    let sys = &flat.program.systems[grp.system as usize];
                    let wire = &sys.wires[w as usize];
                    let child = &flat.groups[grp.children[wire.b as usize] as usize];
                    let shape = &flat.program.systems[child.system as usize].inputs
                        [wire.port as usize]
                        .shape;
                    for it in &op.items {
                        let fr = Frame {
                            g,
                            e: it.elem,
                            loops: &it.loops,
                        };
                        let v = self.eval(fr, &wire.value, state, &[])?;
                        self.store(
                            child.sig(it.target, child.in_off[wire.port as usize]),
                            shape,
                            &v,
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The updates of the groups in time domain `time` (the plain ones, then the arm of
    /// each element's mode), written at their states' slots of `out`; signals must be
    /// current.
    pub fn updates(&mut self, time: TimeKind, state: &[D], out: &mut [D]) -> E<()> {
        let flat = self.flat;
        for (gi, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            if sys.time != time {
                continue;
            }
            for e in 0..grp.count {
                let mode = grp.mode_off.map(|mo| self.sig[grp.sig(e, mo)].v as u32);
                let arms = sys
                    .mode_updates
                    .iter()
                    .filter(|(mi, _)| Some(*mi) == mode)
                    .flat_map(|(_, arm)| arm.iter());
                for a in sys.updates.iter().chain(arms) {
                    let fr = Frame {
                        g: gi as u32,
                        e,
                        loops: &[],
                    };
                    let v = self.eval(fr, &a.value, state, &[])?;
                    let o = grp.state(e, a.state as usize);
                    let n = slots(&sys.states[a.state as usize].0.shape).max(1);
                    v.to_slots(&mut out[o..o + n]);
                }
            }
        }
        Ok(())
    }
}

fn binary(op: Bin, num: Num, x: V, y: V) -> E<V> {
    if op == Bin::MatMul {
        let (V::T(a, sa), V::T(b, sb)) = (x, y) else {
            return Err("`@` of non-tensors".into());
        };
        return matmul((&a, &sa), (&b, &sb));
    }
    Ok(match (x, y) {
        (V::S(a), V::S(b)) => V::S(bin(op, num, a, b)?),
        (V::T(a, d), V::S(b)) => V::T(
            a.iter()
                .map(|v| bin(op, num, *v, b).unwrap_or(D::c(f64::NAN)))
                .collect(),
            d,
        ),
        (V::S(a), V::T(b, d)) => V::T(
            b.iter()
                .map(|v| bin(op, num, a, *v).unwrap_or(D::c(f64::NAN)))
                .collect(),
            d,
        ),
        (V::T(a, d), V::T(b, _)) => V::T(
            a.iter()
                .zip(&b)
                .map(|(x, y)| bin(op, num, *x, *y))
                .collect::<E<Vec<_>>>()?,
            d,
        ),
        (V::M(a, _), V::M(b, _)) => V::S(bin(op, Num::Int, D::c(a as f64), D::c(b as f64))?),
        _ => return Err("operation on a mode value".into()),
    })
}

/// The right-hand side `G(x)` whose zeros are the fixed points — the derivatives of a
/// continuous model, `next(x) − x` of a discrete one — and its Jacobian `∂G_i/∂x_j` over the
/// state slots `vars` (the other slots are held at their values in `x`). One dual
/// evaluation per variable gives one exact column.
pub fn residual_jacobian(
    flat: &Flat,
    params: &[f64],
    inputs: &[(usize, f64)],
    x: &[f64],
    vars: &[usize],
) -> Result<(Vec<f64>, Vec<Vec<f64>>), String> {
    let n = vars.len();
    let mut g = vec![0.0; n];
    let mut jac = vec![vec![0.0; n]; n];
    let mut dm = DualMachine::new(flat, params);
    let discrete = flat.time != TimeKind::Continuous;
    for (col, &slot) in vars.iter().enumerate() {
        let state: Vec<D> = x
            .iter()
            .enumerate()
            .map(|(i, v)| D {
                v: *v,
                d: if i == slot { 1.0 } else { 0.0 },
            })
            .collect();
        dm.signals(&state, inputs)?;
        let mut out: Vec<D> = if discrete {
            state.clone()
        } else {
            vec![D::c(0.0); x.len()]
        };
        let time = if discrete {
            TimeKind::Discrete
        } else {
            TimeKind::Continuous
        };
        dm.updates(time, &state, &mut out)?;
        for (row, &s) in vars.iter().enumerate() {
            let (v, d) = if discrete {
                (
                    out[s].v - x[s],
                    out[s].d - if s == slot { 1.0 } else { 0.0 },
                )
            } else {
                (out[s].v, out[s].d)
            };
            if col == 0 {
                g[row] = v;
            }
            jac[row][col] = d;
        }
    }
    Ok((g, jac))
}
