//! Tensors in generated code.
//!
//! A tensor value is the address of its elements, row-major and contiguous. Slots (state,
//! params, ports, lets) are used in place; other tensors are computed into scratch memory
//! (the io word `SCRATCH` points at it), whose regions are allocated once per code site.
//!
//! An element-wise expression is *fused*: one loop computes each element of the result
//! directly from the elements of its operands, with no temporary per operation. Before the
//! loop, its scalar subexpressions and its non-element-wise parts (matrix products, array
//! literals, calls) are computed once ("hoisted").
//!
//! Every sum (`sum`, `norm`, `dot`, the entries of `@`) follows the reduction order of
//! [`dyn_ir::numeric`]: eight partial sums kept in four `f64x2` vectors, combined pairwise,
//! then the remainder term by term. The interpreter adds in the same order, so results agree
//! to the bit while the loop runs on SIMD lanes.

use crate::codegen::{Ctx, Frame, Gen, V};
use crate::emit::{at, mem, mem_v};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::FunctionBuilder;
use dyn_ir::expr::{Bin, Expr, Num, Reduce, Un};
use dyn_ir::system::{Shape, slots};
use std::collections::HashMap;

const F64: types::Type = types::F64;
const F64X2: types::Type = types::F64X2;
const I64: types::Type = types::I64;

/// Values of the hoisted parts of one fused expression, by node address.
pub(crate) type Env = HashMap<*const Expr, V>;

/// Where a two-lane element of a fused loop over a matrix's rows is: its column, the row
/// length, and the row factors of its outer products (see `Gen::row_factors`).
struct Row<'a> {
    col: Value,
    len: usize,
    splats: &'a HashMap<*const Expr, Value>,
}

/// Is this index expression known without reading the model's values (constants and loop
/// variables only)? Other indices are left to the interpreter, which checks their range.
pub fn static_index(e: &Expr) -> bool {
    match e {
        Expr::Const(_) | Expr::Loop(_) => true,
        Expr::Un(Un::Neg | Un::ToInt | Un::ToReal, a) => static_index(a),
        Expr::Bin(
            Bin::Add | Bin::Sub | Bin::Mul | Bin::Div | Bin::Rem | Bin::Min | Bin::Max,
            Num::Int,
            a,
            b,
        ) => static_index(a) && static_index(b),
        _ => false,
    }
}

/// `for i in 0..n { body(i) }` in generated code (straight-line when tiny).
pub(crate) fn count_loop(
    b: &mut FunctionBuilder,
    n: usize,
    body: &mut dyn FnMut(&mut FunctionBuilder, Value),
) {
    crate::emit::counted(b, n, 4, body)
}

/// Emits `Σ term(k)` for k < n in the shared reduction order, where `term` multiplies the
/// elements of `a` and `bb` (or takes `a`'s alone). Both are contiguous.
pub(crate) fn reduce_contig(
    b: &mut FunctionBuilder,
    a: Value,
    bb: Option<Value>,
    n: usize,
) -> Value {
    let full = n / 8 * 8;
    let zero_s = b.ins().f64const(0.0);
    let mut total = zero_s;
    if full > 0 {
        let zero_v = b.ins().splat(F64X2, zero_s);
        let accs: Vec<_> = (0..4).map(|_| b.declare_var(F64X2)).collect();
        for acc in &accs {
            b.def_var(*acc, zero_v);
        }
        let i = b.declare_var(I64);
        let z = b.ins().iconst(I64, 0);
        b.def_var(i, z);
        let head = b.create_block();
        let blk = b.create_block();
        let exit = b.create_block();
        b.ins().jump(head, &[]);
        b.switch_to_block(head);
        let iv = b.use_var(i);
        let done = b
            .ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, iv, full as i64);
        b.ins().brif(done, exit, &[], blk, &[]);
        b.switch_to_block(blk);
        let iv = b.use_var(i);
        let pa = at(b, a, iv);
        let pb = bb.map(|q| at(b, q, iv));
        for (k, acc) in accs.iter().enumerate() {
            let x = b.ins().load(F64X2, mem(), pa, (k * 16) as i32);
            let t = match pb {
                Some(pb) => {
                    let y = b.ins().load(F64X2, mem(), pb, (k * 16) as i32);
                    b.ins().fmul(x, y)
                }
                None => x,
            };
            let cur = b.use_var(*acc);
            let nx = b.ins().fadd(cur, t);
            b.def_var(*acc, nx);
        }
        let nx = b.ins().iadd_imm_s(iv, 8);
        b.def_var(i, nx);
        b.ins().jump(head, &[]);
        b.seal_block(blk);
        b.seal_block(head);
        b.switch_to_block(exit);
        b.seal_block(exit);
        // ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), lanes of the four vectors.
        let pairs: Vec<Value> = accs
            .iter()
            .map(|acc| {
                let v = b.use_var(*acc);
                let l0 = b.ins().extractlane(v, 0);
                let l1 = b.ins().extractlane(v, 1);
                b.ins().fadd(l0, l1)
            })
            .collect();
        let lo = b.ins().fadd(pairs[0], pairs[1]);
        let hi = b.ins().fadd(pairs[2], pairs[3]);
        total = b.ins().fadd(lo, hi);
    }
    for k in full..n {
        let x = b.ins().load(F64, mem(), a, (k * 8) as i32);
        let t = match bb {
            Some(q) => {
                let y = b.ins().load(F64, mem(), q, (k * 8) as i32);
                b.ins().fmul(x, y)
            }
            None => x,
        };
        total = b.ins().fadd(total, t);
    }
    total
}

impl Gen<'_> {
    /// The shape of `x` in frame `f` (argument shapes come from the frame, so a fn generic
    /// in its sizes gets the shapes of each call site).
    pub(crate) fn shape(&self, f: &Frame, x: &Expr) -> Shape {
        let flat = self.flat;
        let grp = &flat.groups[f.g as usize];
        let sys = &flat.program.systems[grp.system as usize];
        match x {
            Expr::Param(i) => sys.params[*i as usize].0.shape.clone(),
            Expr::State(i) => sys.states[*i as usize].0.shape.clone(),
            Expr::Input(i) => sys.inputs[*i as usize].shape.clone(),
            Expr::Let(i) => sys.lets[*i as usize].0.shape.clone(),
            Expr::Arg(i) => f.arg_shapes.get(*i as usize).cloned().unwrap_or_default(),
            Expr::BoxOut { b: bi, port, .. } => {
                let child = &flat.groups[grp.children[*bi as usize] as usize];
                flat.program.systems[child.system as usize].outputs[*port as usize]
                    .shape
                    .clone()
            }
            Expr::Un(_, a) => self.shape(f, a),
            Expr::Bin(Bin::MatMul, _, a, b) => {
                let (sa, sb) = (self.shape(f, a), self.shape(f, b));
                match (sa.len(), sb.len()) {
                    (2, 1) => vec![sa[0]],
                    (2, 2) => vec![sa[0], sb[1]],
                    (1, 2) => vec![sb[1]],
                    _ => vec![],
                }
            }
            Expr::Bin(_, _, a, b) => {
                let sa = self.shape(f, a);
                if sa.is_empty() { self.shape(f, b) } else { sa }
            }
            Expr::If(_, a, b) => {
                let sa = self.shape(f, a);
                if sa.is_empty() { self.shape(f, b) } else { sa }
            }
            Expr::Array(items) => {
                let mut s = vec![items.len() as u64];
                if let Some(first) = items.first() {
                    s.extend(self.shape(f, first));
                }
                s
            }
            Expr::Index(a, is) => {
                let sa = self.shape(f, a);
                sa.get(is.len()..).map(<[u64]>::to_vec).unwrap_or_default()
            }
            Expr::Call(fi, xs) => {
                let inner = self.call_shapes(f, xs);
                self.shape(&inner, &self.flat.program.fns[*fi as usize].body)
            }
            Expr::Tensor(op, args) => self.tensor_op_shape(f, op, args),
            _ => vec![],
        }
    }

    /// A frame holding only the argument shapes of a call (for shape queries).
    fn call_shapes(&self, f: &Frame, xs: &[Expr]) -> Frame {
        Frame {
            arg_shapes: xs.iter().map(|a| self.shape(f, a)).collect(),
            args: vec![],
            ..f.clone()
        }
    }

    /// The frame of a call of a user fn: scalar arguments computed, tensor ones by address.
    pub(crate) fn call_frame(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        xs: &[Expr],
    ) -> Frame {
        let mut args = Vec::with_capacity(xs.len());
        let mut arg_shapes = Vec::with_capacity(xs.len());
        for a in xs {
            let sh = self.shape(f, a);
            args.push(if sh.is_empty() {
                V::S(self.expr(b, c, f, a))
            } else {
                V::T(self.ptr_of(b, c, f, a))
            });
            arg_shapes.push(sh);
        }
        Frame {
            args,
            arg_shapes,
            ..f.clone()
        }
    }

    /// The address of a slot leaf's first element, if `x` is one.
    fn leaf_addr(&self, b: &mut FunctionBuilder, c: &Ctx, f: &Frame, x: &Expr) -> Option<Value> {
        let flat = self.flat;
        let grp = &flat.groups[f.g as usize];
        let (buf, slot) = match x {
            Expr::Param(i) => {
                let s = b
                    .ins()
                    .iconst(I64, (grp.param_base + grp.param_off[*i as usize]) as i64);
                (c.p, s)
            }
            Expr::State(i) => (
                c.x,
                Self::slot(
                    b,
                    grp.state_base,
                    f.e,
                    grp.state_stride,
                    grp.state_off[*i as usize],
                ),
            ),
            Expr::Input(i) => (
                c.s,
                Self::slot(
                    b,
                    grp.sig_base,
                    f.e,
                    grp.sig_stride,
                    grp.in_off[*i as usize],
                ),
            ),
            Expr::Let(i) => (
                c.s,
                Self::slot(
                    b,
                    grp.sig_base,
                    f.e,
                    grp.sig_stride,
                    grp.let_off[*i as usize],
                ),
            ),
            Expr::BoxOut { .. } => (c.s, self.box_out_slot(b, c, f, x)),
            Expr::Arg(i) => match f.args.get(*i as usize) {
                Some(V::T(p)) => return Some(*p),
                _ => return None,
            },
            _ => return None,
        };
        Some(at(b, buf, slot))
    }

    /// The address of `x`'s elements: a slot in place, else computed into scratch.
    pub(crate) fn ptr_of(&self, b: &mut FunctionBuilder, c: &Ctx, f: &Frame, x: &Expr) -> Value {
        if let Some(p) = self.leaf_addr(b, c, f, x) {
            return p;
        }
        if let Expr::Index(a, is) = x {
            // A sub-tensor of a slot is a view, not a copy.
            if let Some(base) = self.leaf_addr(b, c, f, a) {
                let off = self.index_offset(b, c, f, a, is);
                return at(b, base, off);
            }
        }
        self.materialize(b, c, f, x)
    }

    /// Computes tensor `x` into a fresh scratch region and returns its address.
    fn materialize(&self, b: &mut FunctionBuilder, c: &Ctx, f: &Frame, x: &Expr) -> Value {
        let n = slots(&self.shape(f, x)).max(1);
        let off = self.scratch.get();
        self.scratch.set(off + n);
        let dst = b.ins().iadd_imm_s(c.scratch, (off * 8) as i64);
        self.fill(b, c, f, x, dst, n);
        dst
    }

    /// Row-major element offset (an i64 value) of the sub-tensor `a[is…]`, each index clamped
    /// into its axis (indices are static, and checked by the checker where constant).
    fn index_offset(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        a: &Expr,
        is: &[Expr],
    ) -> Value {
        let sh = self.shape(f, a);
        let mut off = b.ins().iconst(I64, 0);
        for (axis, ix) in is.iter().enumerate() {
            let n = sh.get(axis).copied().unwrap_or(1) as i64;
            let stride: u64 = sh.get(axis + 1..).map(|r| r.iter().product()).unwrap_or(1);
            let v = self.iexpr(b, c, f, ix);
            let lo = b.ins().iconst(I64, 0);
            let hi = b.ins().iconst(I64, (n - 1).max(0));
            let v = b.ins().smax(v, lo);
            let v = b.ins().smin(v, hi);
            let part = b.ins().imul_imm_s(v, stride as i64);
            off = b.ins().iadd(off, part);
        }
        off
    }

    /// Writes `x` into `dst[0..n]` (a scalar is broadcast, as the interpreter stores it).
    pub(crate) fn fill(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
        dst: Value,
        n: usize,
    ) {
        let sh = self.shape(f, x);
        if sh.is_empty() {
            let v = self.expr(b, c, f, x);
            count_loop(b, n, &mut |b, i| {
                let p = at(b, dst, i);
                b.ins().store(mem(), v, p, 0);
            });
            return;
        }
        match x {
            Expr::Bin(Bin::MatMul, _, l, r) => self.matmul(b, c, f, l, r, dst),
            Expr::Array(items) => {
                let inner = slots(&self.shape(f, &items[0])).max(1);
                for (k, item) in items.iter().enumerate() {
                    let d = b.ins().iadd_imm_s(dst, (k * inner * 8) as i64);
                    self.fill(b, c, f, item, d, inner);
                }
            }
            Expr::Call(fi, xs) => {
                let inner = self.call_frame(b, c, f, xs);
                self.fill(
                    b,
                    c,
                    &inner,
                    &self.flat.program.fns[*fi as usize].body,
                    dst,
                    n,
                );
            }
            Expr::Tensor(dyn_ir::expr::TensorOp::Softmax, args) => {
                self.softmax_into(b, c, f, &args[0], dst)
            }
            Expr::Tensor(dyn_ir::expr::TensorOp::Solve, args) => {
                self.solve_into(b, c, f, &args[0], &args[1], dst)
            }
            _ => {
                let mut env = Env::new();
                self.hoist(b, c, f, x, &mut env);
                let len = n.min(slots(&sh));
                // Two elements at a time when every operation is one a vector lane computes
                // alike (IEEE arithmetic, so each lane equals the scalar result); the odd
                // last element, if any, on its own.
                let pairs = if len >= 4 && self.lanewise(f, x, &env) {
                    len / 2
                } else {
                    0
                };
                let rows = match sh.as_slice() {
                    [m, n] if n % 2 == 0 && len as u64 == m * n => Some((*m as usize, *n as usize)),
                    _ => None,
                };
                match rows {
                    // A matrix: a loop over rows and one over pairs in the row, so an outer
                    // product's row and column are the loop counters (no division).
                    Some((m, ncols)) if pairs > 0 => count_loop(b, m, &mut |b, r| {
                        let row = b.ins().imul_imm_s(r, ncols as i64);
                        // Each outer product's row factor, once per row.
                        let mut splats = HashMap::new();
                        self.row_factors(b, c, f, x, r, ncols, &env, &mut splats);
                        crate::emit::counted_unrolled(b, ncols / 2, 4, &mut |b, k| {
                            let col = b.ins().ishl_imm_u(k, 1);
                            let i = b.ins().iadd(row, col);
                            let rc = Row {
                                col,
                                len: ncols,
                                splats: &splats,
                            };
                            let v = self.elem2(b, c, f, x, i, Some(&rc), &env);
                            let p = at(b, dst, i);
                            b.ins().store(mem_v(), v, p, 0);
                        });
                    }),
                    _ => crate::emit::counted_unrolled(b, pairs, 4, &mut |b, k| {
                        let i = b.ins().ishl_imm_u(k, 1);
                        let v = self.elem2(b, c, f, x, i, None, &env);
                        let p = at(b, dst, i);
                        b.ins().store(mem_v(), v, p, 0);
                    }),
                }
                let (rest, rest_len) = if pairs > 0 {
                    (2 * pairs, len - 2 * pairs)
                } else {
                    (0, len)
                };
                let dst_rest = b.ins().iadd_imm_s(dst, (rest * 8) as i64);
                count_loop(b, rest_len, &mut |b, k| {
                    let i = b.ins().iadd_imm_s(k, rest as i64);
                    let v = self.elem(b, c, f, x, i, &env);
                    let p = at(b, dst_rest, k);
                    b.ins().store(mem(), v, p, 0);
                });
            }
        }
    }

    /// The splatted row factor `a[r]` of every outer product `outer(a, b)` in the lane-wise
    /// expression `x` whose rows have length `len`, by node address.
    #[allow(clippy::too_many_arguments)]
    fn row_factors(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
        r: Value,
        len: usize,
        env: &Env,
        out: &mut HashMap<*const Expr, Value>,
    ) {
        if env.contains_key(&(x as *const Expr)) {
            return;
        }
        match x {
            Expr::Un(_, a) => self.row_factors(b, c, f, a, r, len, env, out),
            Expr::Bin(_, _, l, rr) => {
                self.row_factors(b, c, f, l, r, len, env, out);
                self.row_factors(b, c, f, rr, r, len, env, out);
            }
            Expr::Tensor(dyn_ir::expr::TensorOp::Outer, args)
                if slots(&self.shape(f, &args[1])).max(1) == len =>
            {
                let xs = self.elem(b, c, f, &args[0], r, env);
                let x2 = b.ins().splat(F64X2, xs);
                out.insert(x as *const Expr, x2);
            }
            // Another row length: `elem2` computes its row and column itself.
            Expr::Tensor(dyn_ir::expr::TensorOp::Outer, _) => {}
            Expr::Tensor(_, args) => self.row_factors(b, c, f, &args[0], r, len, env, out),
            _ => {}
        }
    }

    /// Can [`Gen::elem2`] compute `x` (after hoisting into `env`) two elements at a time?
    /// Leaves, IEEE arithmetic (`+ - * /`, negation), fills, and outer products whose rows
    /// have an even length (so both elements of a pair are in one row).
    fn lanewise(&self, f: &Frame, x: &Expr, env: &Env) -> bool {
        if env.contains_key(&(x as *const Expr)) {
            return true;
        }
        match x {
            Expr::Un(Un::Neg | Un::ToReal, a) => self.lanewise(f, a, env),
            Expr::Bin(Bin::Add | Bin::Sub | Bin::Mul | Bin::Div, num, l, r) => {
                *num != Num::Int && self.lanewise(f, l, env) && self.lanewise(f, r, env)
            }
            Expr::Tensor(dyn_ir::expr::TensorOp::Fill(_), args) => self.lanewise(f, &args[0], env),
            Expr::Tensor(dyn_ir::expr::TensorOp::Outer, args) => {
                slots(&self.shape(f, &args[1])).is_multiple_of(2) && self.lanewise(f, &args[1], env)
            }
            _ => false,
        }
    }

    /// Elements `i` and `i + 1` (`i` an even i64 value) of the fused expression `x` as one
    /// `f64x2`, for an `x` that [`Gen::lanewise`] accepts: lane by lane the operations of
    /// [`Gen::elem`]. `rc` describes the row of `i` when the loop runs over a matrix's rows.
    #[allow(clippy::too_many_arguments)]
    fn elem2(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
        i: Value,
        rc: Option<&Row>,
        env: &Env,
    ) -> Value {
        if let Some(v) = env.get(&(x as *const Expr)) {
            return match v {
                V::S(v) => b.ins().splat(F64X2, *v),
                V::T(p) => {
                    let a = at(b, *p, i);
                    b.ins().load(F64X2, mem_v(), a, 0)
                }
            };
        }
        match x {
            Expr::Un(Un::Neg, a) => {
                let v = self.elem2(b, c, f, a, i, rc, env);
                b.ins().fneg(v)
            }
            Expr::Un(_, a) => self.elem2(b, c, f, a, i, rc, env),
            Expr::Bin(op, _, l, r) => {
                let a = self.elem2(b, c, f, l, i, rc, env);
                let y = self.elem2(b, c, f, r, i, rc, env);
                match op {
                    Bin::Add => b.ins().fadd(a, y),
                    Bin::Sub => b.ins().fsub(a, y),
                    Bin::Mul => b.ins().fmul(a, y),
                    _ => b.ins().fdiv(a, y),
                }
            }
            Expr::Tensor(dyn_ir::expr::TensorOp::Outer, args) => {
                // As `tensor_op_elem`: element (r, col) is `a[r] * b[col]`.
                let n = slots(&self.shape(f, &args[1])).max(1);
                let key = x as *const Expr;
                let (x2, col) = match rc {
                    Some(row) if row.len == n && row.splats.contains_key(&key) => {
                        (row.splats[&key], row.col)
                    }
                    _ => {
                        let r = b.ins().udiv_imm_u(i, n as i64);
                        let rn = b.ins().imul_imm_s(r, n as i64);
                        let col = b.ins().isub(i, rn);
                        let xs = self.elem(b, c, f, &args[0], r, env);
                        (b.ins().splat(F64X2, xs), col)
                    }
                };
                // The operand's own elements: its index is the column, not the loop's.
                let y2 = self.elem2(b, c, f, &args[1], col, None, env);
                b.ins().fmul(x2, y2)
            }
            Expr::Tensor(_, args) => self.elem2(b, c, f, &args[0], i, rc, env),
            _ => unreachable!("not lane-wise (checked by `lanewise`)"),
        }
    }

    /// Computes, before a fused loop, the parts of `x` that are not element-wise.
    pub(crate) fn hoist(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
        env: &mut Env,
    ) {
        let key = x as *const Expr;
        if env.contains_key(&key) {
            return;
        }
        if self.shape(f, x).is_empty() {
            let v = self.expr(b, c, f, x);
            env.insert(key, V::S(v));
            return;
        }
        match x {
            Expr::Un(_, a) => self.hoist(b, c, f, a, env),
            Expr::Bin(Bin::MatMul, ..) | Expr::Array(_) | Expr::Call(..) => {
                let p = self.materialize(b, c, f, x);
                env.insert(key, V::T(p));
            }
            Expr::Bin(_, _, l, r) => {
                self.hoist(b, c, f, l, env);
                self.hoist(b, c, f, r, env);
            }
            Expr::If(cnd, t, e) if self.branches(f, x) => {
                let n = self.elems_of(f, x);
                let p = self.branch_into(b, c, f, cnd, t, e, n);
                env.insert(key, V::T(p));
            }
            Expr::If(cnd, t, e) => {
                self.hoist(b, c, f, cnd, env);
                self.hoist(b, c, f, t, env);
                self.hoist(b, c, f, e, env);
            }
            Expr::Index(..) => {
                let p = self.ptr_of(b, c, f, x);
                env.insert(key, V::T(p));
            }
            Expr::Tensor(op, _) if Self::tensor_op_heavy(op) => {
                let p = self.materialize(b, c, f, x);
                env.insert(key, V::T(p));
            }
            Expr::Tensor(_, args) => {
                for a in args {
                    self.hoist(b, c, f, a, env);
                }
            }
            _ => {
                if let Some(p) = self.leaf_addr(b, c, f, x) {
                    env.insert(key, V::T(p));
                }
            }
        }
    }

    /// Element `i` (an i64 value) of the fused expression `x`.
    pub(crate) fn elem(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
        i: Value,
        env: &Env,
    ) -> Value {
        if let Some(v) = env.get(&(x as *const Expr)) {
            return match v {
                V::S(v) => *v,
                V::T(p) => {
                    let a = at(b, *p, i);
                    b.ins().load(F64, mem(), a, 0)
                }
            };
        }
        match x {
            Expr::Un(op, a) => {
                let v = self.elem(b, c, f, a, i, env);
                self.un_val(b, c, *op, v)
            }
            Expr::Bin(op, num, l, r) => {
                let a = self.elem(b, c, f, l, i, env);
                let y = self.elem(b, c, f, r, i, env);
                self.bin_val(b, c, *op, *num, a, y, r)
            }
            Expr::If(cnd, t, e) => {
                let cv = self.elem(b, c, f, cnd, i, env);
                let zero = b.ins().f64const(0.0);
                let cond = b.ins().fcmp(
                    cranelift_codegen::ir::condcodes::FloatCC::NotEqual,
                    cv,
                    zero,
                );
                let tv = self.elem(b, c, f, t, i, env);
                let ev = self.elem(b, c, f, e, i, env);
                b.ins().select(cond, tv, ev)
            }
            Expr::Tensor(op, args) => self.tensor_op_elem(b, c, f, op, args, i, env),
            // Everything else was hoisted; a scalar is computed in place.
            other => self.expr(b, c, f, other),
        }
    }

    /// `l @ r` into `dst`: each entry a contiguous dot product (a right matrix is first
    /// transposed into scratch so its columns are contiguous).
    fn matmul(&self, b: &mut FunctionBuilder, c: &Ctx, f: &Frame, l: &Expr, r: &Expr, dst: Value) {
        let (sa, sb) = (self.shape(f, l), self.shape(f, r));
        let pa = self.ptr_of(b, c, f, l);
        let pb = self.ptr_of(b, c, f, r);
        let (m, k) = if sa.len() == 2 {
            (sa[0] as usize, sa[1] as usize)
        } else {
            (1, sa.first().copied().unwrap_or(0) as usize)
        };
        if sb.len() == 1 {
            count_loop(b, m, &mut |b, i| {
                let row = b.ins().imul_imm_s(i, (k * 8) as i64);
                let ra = b.ins().iadd(pa, row);
                let v = reduce_contig(b, ra, Some(pb), k);
                let d = at(b, dst, i);
                b.ins().store(mem(), v, d, 0);
            });
            return;
        }
        let n = sb.get(1).copied().unwrap_or(1) as usize;
        // bᵀ into scratch: column j of b is row j of bt.
        let off = self.scratch.get();
        self.scratch.set(off + k * n);
        let bt = b.ins().iadd_imm_s(c.scratch, (off * 8) as i64);
        count_loop(b, k, &mut |b, l| {
            count_loop(b, n, &mut |b, j| {
                let src_i = b.ins().imul_imm_s(l, n as i64);
                let src_i = b.ins().iadd(src_i, j);
                let s = at(b, pb, src_i);
                let v = b.ins().load(F64, mem(), s, 0);
                let dst_i = b.ins().imul_imm_s(j, k as i64);
                let dst_i = b.ins().iadd(dst_i, l);
                let d = at(b, bt, dst_i);
                b.ins().store(mem(), v, d, 0);
            });
        });
        count_loop(b, m, &mut |b, i| {
            let row = b.ins().imul_imm_s(i, (k * 8) as i64);
            let ra = b.ins().iadd(pa, row);
            count_loop(b, n, &mut |b, j| {
                let col = b.ins().imul_imm_s(j, (k * 8) as i64);
                let cb = b.ins().iadd(bt, col);
                let v = reduce_contig(b, ra, Some(cb), k);
                let o = b.ins().imul_imm_s(i, n as i64);
                let o = b.ins().iadd(o, j);
                let d = at(b, dst, o);
                b.ins().store(mem(), v, d, 0);
            });
        });
    }

    /// The scalar tensor operations: reductions, `dot`, a scalar `@`, and a scalar element.
    pub(crate) fn tensor_scalar(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
    ) -> Value {
        match x {
            Expr::Reduce(r, a) => {
                let sh = self.shape(f, a);
                if sh.is_empty() {
                    // As the interpreter: a reduction of a scalar is the scalar.
                    return self.expr(b, c, f, a);
                }
                match r {
                    Reduce::Len => b.ins().f64const(sh[0] as f64),
                    Reduce::Sum => {
                        let p = self.ptr_of(b, c, f, a);
                        reduce_contig(b, p, None, slots(&sh))
                    }
                    Reduce::Norm => {
                        let p = self.ptr_of(b, c, f, a);
                        let s = reduce_contig(b, p, Some(p), slots(&sh));
                        b.ins().sqrt(s)
                    }
                }
            }
            Expr::Dot(l, r) | Expr::Bin(Bin::MatMul, _, l, r) => {
                let n = slots(&self.shape(f, l)).min(slots(&self.shape(f, r)));
                let pa = self.ptr_of(b, c, f, l);
                let pb = self.ptr_of(b, c, f, r);
                reduce_contig(b, pa, Some(pb), n)
            }
            Expr::Index(a, is) => {
                let off = self.index_offset(b, c, f, a, is);
                let mut env = Env::new();
                self.hoist(b, c, f, a, &mut env);
                self.elem(b, c, f, a, off, &env)
            }
            _ => unreachable!("not a scalar tensor operation"),
        }
    }
}
