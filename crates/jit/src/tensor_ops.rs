//! The tensor operations of `Expr::Tensor` in generated code, with the interpreter's
//! semantics (`crates/interp/src/machine.rs`, `tensor_op`).
//!
//! Most are element-wise in the fused loops of [`crate::tensor`]: element `i` of a
//! transpose, an outer product, a slice, an embedding, a fill, a one-hot vector or a
//! select is computed from elements of the arguments by integer index arithmetic. `softmax`
//! is computed into scratch (it needs the max and the sum first). The scalar ones (`mean`,
//! `max`, `min`, `argmax`, `argmin`, `logsumexp`) are loops over the argument's elements;
//! `max`/`min` call Rust's `f64::max`/`min` so NaNs behave as in the interpreter.
//!
//! Known difference: a `one_hot` class outside `0..n` is an evaluation error in the
//! interpreter; the JIT fills the vector with NaN, so the run stops on a non-finite state.

use crate::codegen::{Ctx, Frame, Gen};
use crate::emit::{at, mem};
use crate::tensor::{Env, count_loop, reduce_contig};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::FunctionBuilder;
use dyn_ir::expr::{Expr, Sel, TensorOp};
use dyn_ir::system::{Shape, slots};

const F64: types::Type = types::F64;
const I64: types::Type = types::I64;

/// Row-major coordinates (i64 values) of flat index `i` in `dims`.
fn coords(b: &mut FunctionBuilder, i: Value, dims: &[u64]) -> Vec<Value> {
    let mut out = vec![i; dims.len()];
    let mut rest = i;
    for (k, d) in dims.iter().enumerate().rev() {
        let d = (*d).max(1) as i64;
        let q = b.ins().udiv_imm_u(rest, d);
        let qd = b.ins().imul_imm_s(q, d);
        out[k] = b.ins().isub(rest, qd);
        rest = q;
    }
    out
}

/// Flat row-major index of `cs` in `dims`.
fn flat_index(b: &mut FunctionBuilder, cs: &[Value], dims: &[u64]) -> Value {
    let mut idx = b.ins().iconst(I64, 0);
    for (c, d) in cs.iter().zip(dims) {
        let m = b.ins().imul_imm_s(idx, *d as i64);
        idx = b.ins().iadd(m, *c);
    }
    idx
}

/// The shape selected by `sels` from a tensor of shape `sa` (ranges keep their length, `At`
/// axes go, later axes stay whole).
pub(crate) fn slice_shape(sels: &[Sel], sa: &[u64]) -> Shape {
    let mut out = vec![];
    for (axis, n) in sa.iter().enumerate() {
        match sels.get(axis) {
            Some(Sel::At) => {}
            Some(Sel::Range(lo, hi)) => out.push(hi.saturating_sub(*lo)),
            None => out.push(*n),
        }
    }
    out
}

/// Are the `At` indices of a slice or embedding known without the model's values?
pub(crate) fn static_sels(op: &TensorOp, args: &[Expr]) -> bool {
    match op {
        TensorOp::Slice(_) | TensorOp::Embed(..) => {
            args.iter().skip(1).all(crate::tensor::static_index)
        }
        _ => true,
    }
}

impl Gen<'_> {
    /// The shape of `Expr::Tensor(op, args)`.
    pub(crate) fn tensor_op_shape(&self, f: &Frame, op: &TensorOp, args: &[Expr]) -> Shape {
        let sh = |k: usize| args.get(k).map(|a| self.shape(f, a)).unwrap_or_default();
        match op {
            TensorOp::Transpose => {
                let s = sh(0);
                if s.len() == 2 { vec![s[1], s[0]] } else { s }
            }
            TensorOp::Outer => vec![slots(&sh(0)) as u64, slots(&sh(1)) as u64],
            TensorOp::Softmax => sh(0),
            TensorOp::Solve => sh(1),
            TensorOp::Eye(n) => vec![*n, *n],
            TensorOp::OneHot(n) => vec![*n],
            TensorOp::Slice(sels) => slice_shape(sels, &sh(0)),
            TensorOp::Embed(_, shape) | TensorOp::Fill(shape) => shape.clone(),
            TensorOp::Select => {
                for k in 0..3 {
                    let s = sh(k);
                    if !s.is_empty() {
                        return s;
                    }
                }
                vec![]
            }
            TensorOp::Mean
            | TensorOp::MaxAll
            | TensorOp::MinAll
            | TensorOp::Argmax
            | TensorOp::Argmin
            | TensorOp::LogSumExp
            | TensorOp::SpectralRadius => vec![],
        }
    }

    /// Is this op computed into scratch before a fused loop (not element by element)?
    pub(crate) fn tensor_op_heavy(op: &TensorOp) -> bool {
        matches!(op, TensorOp::Softmax | TensorOp::Solve)
    }

    /// The `At` indices of a slice or embedding, clamped into their axes.
    fn at_indices(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        sels: &[Sel],
        idx_args: &[Expr],
        dims: &[u64],
    ) -> Vec<Option<Value>> {
        let mut k = 0;
        sels.iter()
            .enumerate()
            .map(|(axis, s)| match s {
                Sel::At => {
                    let v = match idx_args.get(k) {
                        Some(e) => self.iexpr(b, c, f, e),
                        None => b.ins().iconst(I64, 0),
                    };
                    k += 1;
                    let n = dims.get(axis).copied().unwrap_or(1) as i64;
                    let lo = b.ins().iconst(I64, 0);
                    let hi = b.ins().iconst(I64, (n - 1).max(0));
                    let v = b.ins().smax(v, lo);
                    Some(b.ins().smin(v, hi))
                }
                Sel::Range(..) => None,
            })
            .collect()
    }

    /// Element `i` of an element-wise tensor op; `elem` computes elements of its arguments.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tensor_op_elem(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        op: &TensorOp,
        args: &[Expr],
        i: Value,
        env: &Env,
    ) -> Value {
        match op {
            TensorOp::Transpose => {
                let s = self.shape(f, &args[0]);
                let (m, n) = (s[0] as i64, s.get(1).copied().unwrap_or(1) as i64);
                // Result [n, m]: element (r, col) is source (col, r).
                let r = b.ins().udiv_imm_u(i, m);
                let rm = b.ins().imul_imm_s(r, m);
                let col = b.ins().isub(i, rm);
                let src = b.ins().imul_imm_s(col, n);
                let src = b.ins().iadd(src, r);
                self.elem(b, c, f, &args[0], src, env)
            }
            TensorOp::Outer => {
                let n = slots(&self.shape(f, &args[1])).max(1) as i64;
                let r = b.ins().udiv_imm_u(i, n);
                let rn = b.ins().imul_imm_s(r, n);
                let col = b.ins().isub(i, rn);
                let x = self.elem(b, c, f, &args[0], r, env);
                let y = self.elem(b, c, f, &args[1], col, env);
                b.ins().fmul(x, y)
            }
            TensorOp::OneHot(n) => {
                let k = self.elem(b, c, f, &args[0], i, env);
                let zero = b.ins().f64const(0.0);
                let nf = b.ins().f64const(*n as f64);
                let ge = b.ins().fcmp(FloatCC::GreaterThanOrEqual, k, zero);
                let lt = b.ins().fcmp(FloatCC::LessThan, k, nf);
                let ok = b.ins().band(ge, lt);
                let ki = b.ins().fcvt_to_sint_sat(I64, k);
                let here = b.ins().icmp(IntCC::Equal, ki, i);
                let one = b.ins().f64const(1.0);
                let v = b.ins().select(here, one, zero);
                let nan = b.ins().f64const(f64::NAN);
                b.ins().select(ok, v, nan)
            }
            TensorOp::Fill(_) => self.elem(b, c, f, &args[0], i, env),
            TensorOp::Eye(n) => Self::eye_elem(b, i, *n),
            TensorOp::Select => {
                let cv = self.elem(b, c, f, &args[0], i, env);
                let zero = b.ins().f64const(0.0);
                let cond = b.ins().fcmp(FloatCC::NotEqual, cv, zero);
                let x = self.elem(b, c, f, &args[1], i, env);
                let y = self.elem(b, c, f, &args[2], i, env);
                b.ins().select(cond, x, y)
            }
            TensorOp::Slice(sels) => {
                let sa = self.shape(f, &args[0]);
                let rd = slice_shape(sels, &sa);
                let rc = coords(b, i, &rd);
                let ats = self.at_indices(b, c, f, sels, &args[1..], &sa);
                let mut k = 0;
                let mut src = vec![];
                for axis in 0..sa.len() {
                    match (sels.get(axis), ats.get(axis).copied().flatten()) {
                        (Some(Sel::At), Some(v)) => src.push(v),
                        (Some(Sel::Range(lo, _)), _) => {
                            let v = b.ins().iadd_imm_s(rc[k], *lo as i64);
                            src.push(v);
                            k += 1;
                        }
                        _ => {
                            src.push(rc[k]);
                            k += 1;
                        }
                    }
                }
                let si = flat_index(b, &src, &sa);
                self.elem(b, c, f, &args[0], si, env)
            }
            TensorOp::Embed(sels, shape) => {
                let rc = coords(b, i, shape);
                let ats = self.at_indices(b, c, f, sels, &args[1..], shape);
                let pd = slice_shape(sels, shape);
                let mut inside = b.ins().iconst(types::I8, 1);
                let mut pc = vec![];
                for (axis, ca) in rc.iter().enumerate() {
                    match (sels.get(axis), ats.get(axis).copied().flatten()) {
                        (Some(Sel::At), Some(v)) => {
                            let eq = b.ins().icmp(IntCC::Equal, *ca, v);
                            inside = b.ins().band(inside, eq);
                        }
                        (Some(Sel::Range(lo, hi)), _) => {
                            let ge = b.ins().icmp_imm_s(
                                IntCC::SignedGreaterThanOrEqual,
                                *ca,
                                *lo as i64,
                            );
                            let lt = b.ins().icmp_imm_s(IntCC::SignedLessThan, *ca, *hi as i64);
                            inside = b.ins().band(inside, ge);
                            inside = b.ins().band(inside, lt);
                            let v = b.ins().iadd_imm_s(*ca, -(*lo as i64));
                            // Clamped, so the (discarded) read outside the place stays in
                            // bounds.
                            let z = b.ins().iconst(I64, 0);
                            let top = b.ins().iconst(I64, (hi - lo).max(1) as i64 - 1);
                            let v = b.ins().smax(v, z);
                            pc.push(b.ins().smin(v, top));
                        }
                        _ => pc.push(*ca),
                    }
                }
                let pi = flat_index(b, &pc, &pd);
                let v = self.elem(b, c, f, &args[0], pi, env);
                let zero = b.ins().f64const(0.0);
                b.ins().select(inside, v, zero)
            }
            // Scalars are hoisted, softmax is computed into scratch.
            _ => unreachable!("not an element-wise tensor operation"),
        }
    }

    /// `f64::max`/`min` folded over `n` contiguous elements from the first, as Rust folds.
    fn extreme(&self, b: &mut FunctionBuilder, c: &Ctx, p: Value, n: usize, max: bool) -> Value {
        let first = b.ins().load(F64, mem(), p, 0);
        let m = b.declare_var(F64);
        b.def_var(m, first);
        let name = if max { "dyn_max" } else { "dyn_min" };
        let rest = b.ins().iadd_imm_s(p, 8);
        count_loop(b, n.saturating_sub(1), &mut |b, i| {
            let a = at(b, rest, i);
            let x = b.ins().load(F64, mem(), a, 0);
            let cur = b.use_var(m);
            let nx = Self::call(b, c, name, &[cur, x]);
            b.def_var(m, nx);
        });
        b.use_var(m)
    }

    /// The scalar tensor operations.
    pub(crate) fn tensor_op_scalar(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        op: &TensorOp,
        args: &[Expr],
    ) -> Value {
        if !self.tensor_op_shape(f, op, args).is_empty() {
            // A tensor read as a scalar: its first element, as the interpreter's `Val::s`.
            let x = Expr::Tensor(op.clone(), args.to_vec());
            let p = self.ptr_of(b, c, f, &x);
            return b.ins().load(F64, mem(), p, 0);
        }
        if let TensorOp::SpectralRadius = op {
            return self.spectral_radius(b, c, f, &args[0]);
        }
        if let TensorOp::Slice(_) = op {
            // Every axis selected by an index: one element.
            let mut env = Env::new();
            self.hoist(b, c, f, &args[0], &mut env);
            let zero = b.ins().iconst(I64, 0);
            return self.tensor_op_elem(b, c, f, op, args, zero, &env);
        }
        let n = slots(&self.shape(f, &args[0])).max(1);
        let p = self.ptr_of(b, c, f, &args[0]);
        match op {
            TensorOp::Mean => {
                let s = reduce_contig(b, p, None, n);
                let nf = b.ins().f64const(n as f64);
                b.ins().fdiv(s, nf)
            }
            TensorOp::MaxAll | TensorOp::MinAll => {
                self.extreme(b, c, p, n, *op == TensorOp::MaxAll)
            }
            TensorOp::Argmax | TensorOp::Argmin => {
                let m = self.extreme(b, c, p, n, *op == TensorOp::Argmax);
                let found = b.declare_var(I64);
                let none = b.ins().iconst(I64, -1);
                b.def_var(found, none);
                count_loop(b, n, &mut |b, i| {
                    let a = at(b, p, i);
                    let x = b.ins().load(F64, mem(), a, 0);
                    let eq = b.ins().fcmp(FloatCC::Equal, x, m);
                    let cur = b.use_var(found);
                    let fresh = b.ins().icmp_imm_s(IntCC::Equal, cur, -1);
                    let take = b.ins().band(eq, fresh);
                    let nx = b.ins().select(take, i, cur);
                    b.def_var(found, nx);
                });
                let k = b.use_var(found);
                let zero = b.ins().iconst(I64, 0);
                let missing = b.ins().icmp_imm_s(IntCC::Equal, k, -1);
                let k = b.ins().select(missing, zero, k);
                b.ins().fcvt_from_sint(F64, k)
            }
            TensorOp::LogSumExp => {
                let m = self.extreme(b, c, p, n, true);
                let e = self.exp_shifted(b, c, p, n, m);
                let s = reduce_contig(b, e, None, n);
                let l = Self::call(b, c, "dyn_log", &[s]);
                let v = b.ins().fadd(m, l);
                let am = b.ins().fabs(m);
                let inf = b.ins().f64const(f64::INFINITY);
                let infinite = b.ins().fcmp(FloatCC::Equal, am, inf);
                b.ins().select(infinite, m, v)
            }
            _ => unreachable!("not a scalar tensor operation"),
        }
    }

    /// `exp(x[i] - m)` for `n` elements at `p`, into fresh scratch; its address.
    fn exp_shifted(&self, b: &mut FunctionBuilder, c: &Ctx, p: Value, n: usize, m: Value) -> Value {
        let off = self.scratch.get();
        self.scratch.set(off + n);
        let e = b.ins().iadd_imm_s(c.scratch, (off * 8) as i64);
        count_loop(b, n, &mut |b, i| {
            let a = at(b, p, i);
            let x = b.ins().load(F64, mem(), a, 0);
            let d = b.ins().fsub(x, m);
            let v = Self::call(b, c, "dyn_exp", &[d]);
            let o = at(b, e, i);
            b.ins().store(mem(), v, o, 0);
        });
        e
    }

    /// `softmax(x)` into `dst`: `exp(x[i] - max(x))` over their reduction-order sum.
    pub(crate) fn softmax_into(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        arg: &Expr,
        dst: Value,
    ) {
        let n = slots(&self.shape(f, arg)).max(1);
        let p = self.ptr_of(b, c, f, arg);
        let m = self.extreme(b, c, p, n, true);
        count_loop(b, n, &mut |b, i| {
            let a = at(b, p, i);
            let x = b.ins().load(F64, mem(), a, 0);
            let d = b.ins().fsub(x, m);
            let v = Self::call(b, c, "dyn_exp", &[d]);
            let o = at(b, dst, i);
            b.ins().store(mem(), v, o, 0);
        });
        let s = reduce_contig(b, dst, None, n);
        count_loop(b, n, &mut |b, i| {
            let o = at(b, dst, i);
            let v = b.ins().load(F64, mem(), o, 0);
            let q = b.ins().fdiv(v, s);
            b.ins().store(mem(), q, o, 0);
        });
    }
}
