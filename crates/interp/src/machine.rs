//! The machine: parameter, signal and state buffers of a flattened program, expression
//! evaluation in the frame of one group element, and the model's right-hand side
//! (signals, then derivatives or next states, then events).

use crate::value::Val;
use dyn_ir::expr::{Bin, Expr, Num, Reduce, Sel, TensorOp, Un};
use dyn_ir::flat::{Flat, OpKind};
use dyn_ir::numeric::{Noise, reduce_sum};
use dyn_ir::system::{Readout, TimeKind, slots};
use ndarray::{ArrayD, IxDyn};

/// A run-time failure inside an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError(pub String);

type E<T> = Result<T, EvalError>;

/// Buffers and random state of one running model.
pub struct Machine<'f> {
    /// The program.
    pub flat: &'f Flat,
    /// Param values.
    pub params: Vec<f64>,
    /// Signal values (ports, lets, modes).
    pub sig: Vec<f64>,
    /// Current time.
    pub time: f64,
    /// Noise scale for `randn()` inside `der` (1/sqrt(dt) under Euler–Maruyama).
    pub noise_scale: f64,
    rng: Noise,
}

/// Where an element is evaluated: group, element, loop values.
#[derive(Clone, Copy)]
struct Frame<'a> {
    g: u32,
    e: u64,
    loops: &'a [i64],
}

fn int(x: f64) -> i64 {
    x as i64
}

fn binop(op: Bin, num: Num, x: f64, y: f64) -> E<f64> {
    let b = |c: bool| if c { 1.0 } else { 0.0 };
    Ok(match num {
        Num::Int => {
            let (a, c) = (int(x), int(y));
            let ovf = || EvalError("Int arithmetic overflowed or divided by zero".into());
            match op {
                Bin::Add => a.checked_add(c).ok_or_else(ovf)? as f64,
                Bin::Sub => a.checked_sub(c).ok_or_else(ovf)? as f64,
                Bin::Mul => a.checked_mul(c).ok_or_else(ovf)? as f64,
                Bin::Div => a.checked_div(c).ok_or_else(ovf)? as f64,
                Bin::Rem => a.checked_rem_euclid(c).ok_or_else(ovf)? as f64,
                Bin::Pow => a
                    .checked_pow(u32::try_from(c).map_err(|_| ovf())?)
                    .ok_or_else(ovf)? as f64,
                Bin::Min => a.min(c) as f64,
                Bin::Max => a.max(c) as f64,
                Bin::Atan2 => (x).atan2(y),
                Bin::MatMul => a.checked_mul(c).ok_or_else(ovf)? as f64,
                Bin::Eq => b(a == c),
                Bin::Ne => b(a != c),
                Bin::Lt => b(a < c),
                Bin::Le => b(a <= c),
                Bin::Gt => b(a > c),
                Bin::Ge => b(a >= c),
                Bin::And => b(a != 0 && c != 0),
                Bin::Or => b(a != 0 || c != 0),
            }
        }
        _ => match op {
            Bin::Add => x + y,
            Bin::Sub => x - y,
            Bin::Mul | Bin::MatMul => x * y,
            Bin::Div => x / y,
            Bin::Rem => x.rem_euclid(y),
            Bin::Pow => x.powf(y),
            Bin::Min => x.min(y),
            Bin::Max => x.max(y),
            Bin::Atan2 => x.atan2(y),
            Bin::Eq => b(x == y),
            Bin::Ne => b(x != y),
            Bin::Lt => b(x < y),
            Bin::Le => b(x <= y),
            Bin::Gt => b(x > y),
            Bin::Ge => b(x >= y),
            Bin::And => b(x != 0.0 && y != 0.0),
            Bin::Or => b(x != 0.0 || y != 0.0),
        },
    })
}

fn unop(op: Un, x: f64) -> f64 {
    match op {
        Un::Neg => -x,
        Un::Not => {
            if x != 0.0 {
                0.0
            } else {
                1.0
            }
        }
        Un::ToReal => x,
        Un::ToInt => x.trunc(),
        Un::Exp => x.exp(),
        Un::Log => x.ln(),
        Un::Sqrt => x.sqrt(),
        Un::Abs => x.abs(),
        Un::Sin => x.sin(),
        Un::Cos => x.cos(),
        Un::Tan => x.tan(),
        Un::Tanh => x.tanh(),
        Un::Sinh => x.sinh(),
        Un::Cosh => x.cosh(),
        Un::Atan => x.atan(),
        Un::Floor => x.floor(),
        Un::Ceil => x.ceil(),
        Un::Round => x.round(),
        Un::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Un::Relu => x.max(0.0),
    }
}

/// `a @ b` for ranks (2, 1), (2, 2), (1, 1) and (1, 2), each element summed in the
/// shared reduction order ([`reduce_sum`]).
fn matmul(a: &ArrayD<f64>, b: &ArrayD<f64>) -> Result<Val, String> {
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let (ad, bd) = (a.as_slice().unwrap_or(&[]), b.as_slice().unwrap_or(&[]));
    let (sa, sb) = (a.shape(), b.shape());
    // Rows of the left operand, the shared length, and columns of the right one.
    let (m, k, n) = match (sa.len(), sb.len()) {
        (2, 1) | (2, 2) => (sa[0], sa[1], sb.get(1).copied().unwrap_or(1)),
        (1, 1) | (1, 2) => (1, sa[0], sb.get(1).copied().unwrap_or(1)),
        _ => return Err("`@` of unsupported ranks".into()),
    };
    if sb[0] != k {
        return Err("`@` of mismatched shapes".into());
    }
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            out.push(reduce_sum(k, |l| ad[i * k + l] * bd[l * n + j]));
        }
    }
    let dims: Vec<usize> = match (sa.len(), sb.len()) {
        (2, 1) => vec![m],
        (2, 2) => vec![m, n],
        (1, 1) => return Ok(Val::S(out[0])),
        _ => vec![n],
    };
    Ok(Val::T(
        ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| e.to_string())?,
    ))
}

/// The elements of a value in logical (row-major) order.
fn elems(v: &Val) -> Vec<f64> {
    match v {
        Val::T(t) => t.iter().copied().collect(),
        v => vec![v.s()],
    }
}

fn tensor(dims: &[usize], data: Vec<f64>) -> Result<Val, String> {
    ArrayD::from_shape_vec(IxDyn(dims), data)
        .map(Val::T)
        .map_err(|e| e.to_string())
}

/// The largest (`max`) or smallest element, `f64::max`/`f64::min` folded from the first.
fn extreme(xs: &[f64], max: bool) -> f64 {
    let mut it = xs.iter().copied();
    let first = it.next().unwrap_or(f64::NAN);
    it.fold(first, |m, x| if max { m.max(x) } else { m.min(x) })
}

/// Evaluates a [`TensorOp`] of evaluated arguments.
fn tensor_op(op: &TensorOp, mut vals: Vec<Val>) -> Result<Val, String> {
    let arg = |vals: &[Val], i: usize| -> Result<Val, String> {
        vals.get(i)
            .cloned()
            .ok_or_else(|| "a tensor operation without its arguments".to_string())
    };
    let shape_of = |v: &Val| -> Vec<usize> {
        match v {
            Val::T(t) => t.shape().to_vec(),
            _ => vec![],
        }
    };
    Ok(match op {
        TensorOp::Transpose => {
            let Val::T(t) = arg(&vals, 0)? else {
                return Err("`transpose` of a scalar".into());
            };
            if t.ndim() != 2 {
                return Err("`transpose` of a tensor that is not a matrix".into());
            }
            let tt = t.t();
            tensor(tt.shape(), tt.iter().copied().collect())?
        }
        TensorOp::Mean => {
            let xs = elems(&arg(&vals, 0)?);
            Val::S(reduce_sum(xs.len(), |i| xs[i]) / xs.len() as f64)
        }
        TensorOp::MaxAll | TensorOp::MinAll => {
            let xs = elems(&arg(&vals, 0)?);
            Val::S(extreme(&xs, *op == TensorOp::MaxAll))
        }
        TensorOp::Argmax | TensorOp::Argmin => {
            let xs = elems(&arg(&vals, 0)?);
            let m = extreme(&xs, *op == TensorOp::Argmax);
            Val::S(xs.iter().position(|x| *x == m).unwrap_or(0) as f64)
        }
        TensorOp::Outer => {
            let (a, b) = (elems(&arg(&vals, 0)?), elems(&arg(&vals, 1)?));
            let mut out = Vec::with_capacity(a.len() * b.len());
            for x in &a {
                for y in &b {
                    out.push(x * y);
                }
            }
            tensor(&[a.len(), b.len()], out)?
        }
        TensorOp::Softmax => {
            let v = arg(&vals, 0)?;
            let xs = elems(&v);
            let m = extreme(&xs, true);
            let e: Vec<f64> = xs.iter().map(|x| (x - m).exp()).collect();
            let s = reduce_sum(e.len(), |i| e[i]);
            tensor(&shape_of(&v), e.iter().map(|x| x / s).collect())?
        }
        TensorOp::LogSumExp => {
            let xs = elems(&arg(&vals, 0)?);
            let m = extreme(&xs, true);
            if m.is_infinite() {
                Val::S(m)
            } else {
                Val::S(m + reduce_sum(xs.len(), |i| (xs[i] - m).exp()).ln())
            }
        }
        TensorOp::OneHot(n) => {
            let k = arg(&vals, 0)?.s();
            if !(k >= 0.0 && k < *n as f64) {
                return Err(format!("one_hot: class {k} is outside 0..{n}"));
            }
            let mut out = vec![0.0; *n as usize];
            out[k as usize] = 1.0;
            tensor(&[*n as usize], out)?
        }
        TensorOp::Solve => {
            let (a, b) = (arg(&vals, 0)?, arg(&vals, 1)?);
            let n = shape_of(&a).first().copied().unwrap_or(0);
            let sb = shape_of(&b);
            let k = sb.get(1).copied().unwrap_or(1);
            let x = dyn_ir::linalg::solve(&elems(&a), n, &elems(&b), k)?;
            tensor(&sb, x)?
        }
        TensorOp::SpectralRadius => {
            let a = arg(&vals, 0)?;
            let n = shape_of(&a).first().copied().unwrap_or(0);
            Val::S(dyn_ir::linalg::spectral_radius(&elems(&a), n)?)
        }
        TensorOp::Eye(n) => {
            let n = *n as usize;
            let mut out = vec![0.0; n * n];
            for i in 0..n {
                out[i * n + i] = 1.0;
            }
            tensor(&[n, n], out)?
        }
        TensorOp::Slice(sels) => {
            let Val::T(t) = arg(&vals, 0)? else {
                return Err("slicing a scalar".into());
            };
            let idx = indices(sels, vals.get(1..).unwrap_or(&[]), t.shape())?;
            let view = slice_view(t.view(), sels, &idx);
            if view.ndim() == 0 {
                Val::S(view.iter().next().copied().unwrap_or(f64::NAN))
            } else {
                tensor(view.shape(), view.iter().copied().collect())?
            }
        }
        TensorOp::Embed(sels, shape) => {
            let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
            let mut out = ArrayD::<f64>::zeros(IxDyn(&dims));
            let idx = indices(sels, vals.get(1..).unwrap_or(&[]), &dims)?;
            let g = match vals.first_mut() {
                Some(v) => std::mem::replace(v, Val::S(0.0)),
                None => return Err("`embed` without its value".into()),
            };
            let mut place = slice_view_mut(out.view_mut(), sels, &idx);
            match g {
                Val::T(t) if t.shape() == place.shape() => place.assign(&t),
                Val::T(t) if t.len() == place.len() => {
                    for (o, x) in place.iter_mut().zip(t.iter()) {
                        *o = *x;
                    }
                }
                Val::T(_) => return Err("`embed` of a mismatched shape".into()),
                v => place.fill(v.s()),
            }
            Val::T(out)
        }
        TensorOp::Fill(shape) => {
            let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
            Val::T(ArrayD::from_elem(IxDyn(&dims), arg(&vals, 0)?.s()))
        }
        TensorOp::Select => {
            let (c, a, b) = (arg(&vals, 0)?, arg(&vals, 1)?, arg(&vals, 2)?);
            match c {
                Val::T(ct) => {
                    // A scalar branch broadcasts; a tensor branch has the condition's shape.
                    let at = |v: &Val, i: usize| match v {
                        Val::T(t) => t.as_slice().and_then(|d| d.get(i).copied()),
                        v => Some(v.s()),
                    };
                    let (a, b) = (a.standard(), b.standard());
                    let mut out = Vec::with_capacity(ct.len());
                    for (i, c) in ct.iter().enumerate() {
                        let v = if *c != 0.0 { at(&a, i) } else { at(&b, i) };
                        out.push(v.ok_or("`select` of mismatched shapes")?);
                    }
                    tensor(ct.shape(), out)?
                }
                c => {
                    if c.s() != 0.0 {
                        a
                    } else {
                        b
                    }
                }
            }
        }
    })
}

/// The `At` indices of a slice, checked against the axes they index.
fn indices(sels: &[Sel], vals: &[Val], shape: &[usize]) -> Result<Vec<usize>, String> {
    if sels.len() > shape.len() {
        return Err("a slice of higher rank than its tensor".into());
    }
    let mut out = Vec::new();
    let mut k = 0;
    for (axis, s) in sels.iter().enumerate() {
        let n = shape.get(axis).copied().unwrap_or(0);
        match s {
            Sel::At => {
                let i = vals.get(k).map(Val::s).unwrap_or(f64::NAN) as i64;
                k += 1;
                if i < 0 || i as usize >= n {
                    return Err(format!(
                        "index {i} out of range for axis {axis} of length {n}"
                    ));
                }
                out.push(i as usize);
            }
            Sel::Range(lo, hi) => {
                if *lo > *hi || *hi as usize > n {
                    return Err(format!(
                        "slice {lo}..{hi} out of range for axis {axis} of length {n}"
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn slice_view<'a>(
    mut view: ndarray::ArrayViewD<'a, f64>,
    sels: &[Sel],
    idx: &[usize],
) -> ndarray::ArrayViewD<'a, f64> {
    let (mut axis, mut k) = (0, 0);
    for s in sels {
        match s {
            Sel::At => {
                view = view.index_axis_move(ndarray::Axis(axis), idx[k]);
                k += 1;
            }
            Sel::Range(lo, hi) => {
                view.slice_axis_inplace(
                    ndarray::Axis(axis),
                    ndarray::Slice::from(*lo as usize..*hi as usize),
                );
                axis += 1;
            }
        }
    }
    view
}

fn slice_view_mut<'a>(
    mut view: ndarray::ArrayViewMutD<'a, f64>,
    sels: &[Sel],
    idx: &[usize],
) -> ndarray::ArrayViewMutD<'a, f64> {
    let (mut axis, mut k) = (0, 0);
    for s in sels {
        match s {
            Sel::At => {
                view = view.index_axis_move(ndarray::Axis(axis), idx[k]);
                k += 1;
            }
            Sel::Range(lo, hi) => {
                view.slice_axis_inplace(
                    ndarray::Axis(axis),
                    ndarray::Slice::from(*lo as usize..*hi as usize),
                );
                axis += 1;
            }
        }
    }
    view
}

impl<'f> Machine<'f> {
    /// A machine with zeroed buffers.
    pub fn new(flat: &'f Flat, seed: u64) -> Self {
        Machine {
            flat,
            params: vec![0.0; flat.n_param],
            sig: vec![0.0; flat.n_signal],
            time: 0.0,
            noise_scale: 1.0,
            rng: Noise::new(seed),
        }
    }

    /// The random generator behind `randn()`, for backends that sample the same sequence.
    pub fn rng_ptr(&mut self) -> *mut Noise {
        &mut self.rng
    }

    fn eval(&mut self, f: Frame, x: &Expr, state: &[f64], args: &[Val]) -> E<Val> {
        let flat = self.flat;
        let grp = &flat.groups[f.g as usize];
        let sys = &flat.program.systems[grp.system as usize];
        Ok(match x {
            Expr::Const(c) => Val::S(*c),
            Expr::Time => Val::S(self.time),
            Expr::Loop(d) => Val::S(*f.loops.get(*d as usize).unwrap_or(&0) as f64),
            Expr::Arg(i) => args.get(*i as usize).cloned().unwrap_or(Val::S(f64::NAN)),
            Expr::Param(i) => {
                let o = grp.param_base + grp.param_off[*i as usize];
                let sh = &sys.params[*i as usize].0.shape;
                Val::from_slots(sh, &self.params[o..o + slots(sh).max(1)])
            }
            Expr::State(i) => {
                let o = grp.state(f.e, *i as usize);
                let sh = &sys.states[*i as usize].0.shape;
                Val::from_slots(sh, &state[o..o + slots(sh).max(1)])
            }
            Expr::Input(i) => {
                let o = grp.sig(f.e, grp.in_off[*i as usize]);
                let sh = &sys.inputs[*i as usize].shape;
                Val::from_slots(sh, &self.sig[o..o + slots(sh).max(1)])
            }
            Expr::Let(i) => {
                let o = grp.sig(f.e, grp.let_off[*i as usize]);
                let sh = &sys.lets[*i as usize].0.shape;
                Val::from_slots(sh, &self.sig[o..o + slots(sh).max(1)])
            }
            Expr::BoxOut { b, index, port } => {
                let bx = &sys.boxes[*b as usize];
                let k = match index {
                    Some(i) => int(self.eval(f, i, state, args)?.s()),
                    None => 0,
                };
                let n = bx.count.unwrap_or(1) as i64;
                if k < 0 || k >= n {
                    return Err(EvalError(format!(
                        "index {k} out of range for box array `{}`",
                        bx.name
                    )));
                }
                let c = &flat.groups[grp.children[*b as usize] as usize];
                let ce = f.e * n as u64 + k as u64;
                let o = c.sig(ce, c.out_off[*port as usize]);
                let sh = &flat.program.systems[c.system as usize].outputs[*port as usize].shape;
                Val::from_slots(sh, &self.sig[o..o + slots(sh).max(1)])
            }
            Expr::Un(op, a) => {
                let v = self.eval(f, a, state, args)?;
                v.map(|x| unop(*op, x))
            }
            Expr::Bin(op, num, a, b) => {
                let x = self.eval(f, a, state, args)?;
                let y = self.eval(f, b, state, args)?;
                self.binary(*op, *num, x, y)?
            }
            Expr::Reduce(r, a) => {
                let v = self.eval(f, a, state, args)?;
                let Val::T(t) = v else {
                    return Ok(Val::S(v.s()));
                };
                let xs = t
                    .as_slice()
                    .map(<[f64]>::to_vec)
                    .unwrap_or_else(|| t.iter().copied().collect());
                Val::S(match r {
                    Reduce::Sum => reduce_sum(xs.len(), |i| xs[i]),
                    Reduce::Norm => reduce_sum(xs.len(), |i| xs[i] * xs[i]).sqrt(),
                    Reduce::Len => t.shape().first().copied().unwrap_or(0) as f64,
                })
            }
            Expr::Dot(a, b) => {
                let (Val::T(x), Val::T(y)) =
                    (self.eval(f, a, state, args)?, self.eval(f, b, state, args)?)
                else {
                    return Err(EvalError("dot of non-tensors".into()));
                };
                let (x, y): (Vec<f64>, Vec<f64>) =
                    (x.iter().copied().collect(), y.iter().copied().collect());
                Val::S(reduce_sum(x.len().min(y.len()), |i| x[i] * y[i]))
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
                if self.eval(f, c, state, args)?.s() != 0.0 {
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
                let inner: Vec<usize> = match &vals[0] {
                    Val::T(t) => t.shape().to_vec(),
                    _ => vec![],
                };
                let mut data = Vec::new();
                for v in &vals {
                    match v {
                        Val::T(t) => data.extend(t.iter().copied()),
                        v => data.push(v.s()),
                    }
                }
                let mut dims = vec![vals.len()];
                dims.extend(inner);
                Val::T(
                    ArrayD::from_shape_vec(IxDyn(&dims), data)
                        .map_err(|e| EvalError(e.to_string()))?,
                )
            }
            Expr::Index(a, idx) => {
                let v = self.eval(f, a, state, args)?;
                let is = idx
                    .iter()
                    .map(|i| self.eval(f, i, state, args).map(|v| int(v.s())))
                    .collect::<E<Vec<_>>>()?;
                let Val::T(t) = v else {
                    return Err(EvalError("indexing a scalar".into()));
                };
                let mut view = t.view();
                for (axis, i) in is.iter().enumerate() {
                    let n = view.shape()[0] as i64;
                    if *i < 0 || *i >= n {
                        return Err(EvalError(format!(
                            "index {i} out of range for axis {axis} of length {n}"
                        )));
                    }
                    view = view.index_axis_move(ndarray::Axis(0), *i as usize);
                }
                if view.ndim() == 0 {
                    Val::S(*view.iter().next().unwrap_or(&f64::NAN))
                } else {
                    Val::T(view.to_owned())
                }
            }
            Expr::Mode(m, xs) => Val::M(
                *m,
                xs.iter()
                    .map(|a| self.eval(f, a, state, args))
                    .collect::<E<Vec<_>>>()?,
            ),
            Expr::Randn => Val::S(self.rng.normal() * self.noise_scale),
            Expr::Tensor(op, xs) => {
                let vals = xs
                    .iter()
                    .map(|a| self.eval(f, a, state, args))
                    .collect::<E<Vec<_>>>()?;
                tensor_op(op, vals).map_err(EvalError)?
            }
        })
    }

    fn binary(&mut self, op: Bin, num: Num, x: Val, y: Val) -> E<Val> {
        if op == Bin::MatMul {
            let (Val::T(a), Val::T(b)) = (x, y) else {
                return Err(EvalError("`@` of non-tensors".into()));
            };
            return matmul(&a, &b).map_err(EvalError);
        }
        Ok(match (x, y) {
            (Val::S(a), Val::S(b)) => Val::S(binop(op, num, a, b)?),
            (Val::T(a), Val::S(b)) => Val::T(a.mapv(|v| binop(op, num, v, b).unwrap_or(f64::NAN))),
            (Val::S(a), Val::T(b)) => Val::T(b.mapv(|v| binop(op, num, a, v).unwrap_or(f64::NAN))),
            (Val::T(a), Val::T(b)) => {
                let mut out = a.clone();
                for (o, v) in out.iter_mut().zip(b.iter()) {
                    *o = binop(op, num, *o, *v)?;
                }
                Val::T(out)
            }
            (Val::M(a, _), Val::M(b, _)) => Val::S(binop(op, Num::Int, a as f64, b as f64)?),
            _ => return Err(EvalError("operation on a mode value".into())),
        })
    }

    /// Evaluates an expression of element `e` of group `g` with params only (init values).
    pub fn eval_init(&mut self, g: u32, e: u64, x: &Expr, state: &[f64]) -> E<Val> {
        self.eval(Frame { g, e, loops: &[] }, x, state, &[])
    }

    fn store(&mut self, at: usize, shape: &[u64], v: &Val) {
        let n = slots(&shape.to_vec()).max(1);
        v.to_slots(&mut self.sig[at..at + n]);
    }

    /// Computes every signal (lets, readouts, wires) from `state`, in schedule order.
    /// `inputs` sets the root's inputs first.
    pub fn signals(&mut self, state: &[f64], inputs: &[(usize, f64)]) -> E<()> {
        for (slot, v) in inputs {
            self.sig[*slot] = *v;
        }
        let flat = self.flat;
        for op in &flat.schedule {
            match op.kind {
                OpKind::Let(g, l) => {
                    let grp = &flat.groups[g as usize];
                    let (slot, x) = &flat.program.systems[grp.system as usize].lets[l as usize];
                    for it in &op.items {
                        let v = self.eval(
                            Frame {
                                g,
                                e: it.elem,
                                loops: &[],
                            },
                            x,
                            state,
                            &[],
                        )?;
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
                        let v = self.eval(
                            Frame {
                                g,
                                e: it.elem,
                                loops: &[],
                            },
                            &xs[p as usize],
                            state,
                            &[],
                        )?;
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
                    for it in &op.items {
                        let v = self.eval(
                            Frame {
                                g,
                                e: it.elem,
                                loops: &[],
                            },
                            x,
                            state,
                            &[],
                        )?;
                        let Val::M(m, vals) = v else {
                            return Err(EvalError("a readout that is not a mode".into()));
                        };
                        self.sig[grp.sig(it.elem, grp.mode_off.expect("mode slot"))] = m as f64;
                        for (pi, val) in ports[m as usize].iter().zip(&vals) {
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
                        let v = self.eval(
                            Frame {
                                g,
                                e: it.elem,
                                loops: &it.loops,
                            },
                            &wire.value,
                            state,
                            &[],
                        )?;
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

    /// The updates of element `e` of group `g`: the plain ones, then the arm of its mode.
    fn assigns_for(
        &self,
        g: u32,
        e: u64,
    ) -> impl Iterator<Item = &'f dyn_ir::system::Assign> + use<'f> {
        let flat: &'f Flat = self.flat;
        let grp = &flat.groups[g as usize];
        let sys = &flat.program.systems[grp.system as usize];
        let mode = grp.mode_off.map(|mo| self.sig[grp.sig(e, mo)] as u32);
        let arms = sys
            .mode_updates
            .iter()
            .filter(move |(mi, _)| Some(*mi) == mode)
            .flat_map(|(_, arm)| arm.iter());
        sys.updates.iter().chain(arms)
    }

    /// Writes the derivative of every continuous state into `out` (zeros elsewhere);
    /// signals must be current.
    pub fn derivatives(&mut self, state: &[f64], out: &mut [f64]) -> E<()> {
        out.iter_mut().for_each(|o| *o = 0.0);
        self.write_updates(TimeKind::Continuous, state, out)
    }

    /// Computes the next state of every discrete state into `next` (a copy of `state`
    /// beforehand); signals must be current.
    pub fn next_state(&mut self, state: &[f64], next: &mut [f64]) -> E<()> {
        self.write_updates(TimeKind::Discrete, state, next)
    }

    /// Evaluates the updates of every element of the groups in time domain `time` and writes
    /// them at their states' slots of `out`.
    fn write_updates(&mut self, time: TimeKind, state: &[f64], out: &mut [f64]) -> E<()> {
        let flat = self.flat;
        for (gi, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            if sys.time != time {
                continue;
            }
            for e in 0..grp.count {
                for a in self.assigns_for(gi as u32, e) {
                    let frame = Frame {
                        g: gi as u32,
                        e,
                        loops: &[],
                    };
                    let v = self.eval(frame, &a.value, state, &[])?;
                    let o = grp.state(e, a.state as usize);
                    let n = slots(&sys.states[a.state as usize].0.shape).max(1);
                    v.to_slots(&mut out[o..o + n]);
                }
            }
        }
        Ok(())
    }

    /// Evaluates every event condition: one flag per (group, element, event), in order.
    pub fn event_conditions(&mut self, state: &[f64]) -> E<Vec<bool>> {
        let flat = self.flat;
        let mut out = Vec::new();
        for (gi, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            for e in 0..grp.count {
                for ev in &sys.events {
                    out.push(
                        self.eval(
                            Frame {
                                g: gi as u32,
                                e,
                                loops: &[],
                            },
                            &ev.cond,
                            state,
                            &[],
                        )?
                        .s() != 0.0,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Applies the jumps of the events whose flag in `fire` is set.
    pub fn apply_events(&mut self, state: &mut [f64], fire: &[bool]) -> E<usize> {
        let flat = self.flat;
        let mut k = 0;
        let mut fired = 0;
        let before = state.to_vec();
        for (gi, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            for e in 0..grp.count {
                for ev in &sys.events {
                    if fire[k] {
                        fired += 1;
                        for a in &ev.assigns {
                            let v = self.eval(
                                Frame {
                                    g: gi as u32,
                                    e,
                                    loops: &[],
                                },
                                &a.value,
                                &before,
                                &[],
                            )?;
                            let o = grp.state(e, a.state as usize);
                            let n = slots(&sys.states[a.state as usize].0.shape).max(1);
                            v.to_slots(&mut state[o..o + n]);
                        }
                    }
                    k += 1;
                }
            }
        }
        Ok(fired)
    }
}
