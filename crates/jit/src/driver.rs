//! The generated driver: the whole run — integrator stages, signals, updates, the
//! non-finite check and recording at the record times — in one native function, with the
//! interpreter's arithmetic in the interpreter's order.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{FuncRef, InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;
use dyn_interp::run::{Method, Probe};

const F64: types::Type = types::F64;
const I64: types::Type = types::I64;

fn mem() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Slots of the `io` buffer shared with Rust.
pub mod io {
    /// In: number of records after the initial one (continuous) or steps (discrete).
    pub const COUNT: i32 = 0;
    /// In: recording interval (continuous: time; discrete: steps).
    pub const EVERY: i32 = 8;
    /// In: step size.
    pub const DT: i32 = 16;
    /// Out: rows written to the record buffer.
    pub const ROWS: i32 = 24;
    /// Out: time of a non-finite state.
    pub const BAD_T: i32 = 32;
    /// Out: slot of a non-finite state, or -1.
    pub const BAD_SLOT: i32 = 40;
}

/// What the driver needs to know at code generation.
pub struct Layout {
    /// State slots.
    pub n: usize,
    /// Recorded quantities.
    pub probes: Vec<Probe>,
    /// Method (continuous models).
    pub method: Method,
    /// Discrete model.
    pub discrete: bool,
}

/// Pointer values of the driver's parameters.
pub struct Args {
    /// State.
    pub x: Value,
    /// Params.
    pub p: Value,
    /// Signals.
    pub s: Value,
    /// Scratch: 6 × n slots.
    pub work: Value,
    /// Record buffer.
    pub rec: Value,
    /// The io buffer.
    pub io: Value,
}

fn one_row(b: &mut FunctionBuilder) -> Value {
    b.ins().iconst(I64, 1)
}

fn at(b: &mut FunctionBuilder, base: Value, i: Value) -> Value {
    let off = b.ins().imul_imm_s(i, 8);
    b.ins().iadd(base, off)
}

/// `for i in 0..n { body(i) }` as a runtime loop.
fn each(b: &mut FunctionBuilder, n: usize, body: &mut dyn FnMut(&mut FunctionBuilder, Value)) {
    // Small state vectors: unrolled, no loop overhead per step.
    if n <= 16 {
        for k in 0..n {
            let i = b.ins().iconst(I64, k as i64);
            body(b, i);
        }
        return;
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
        .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, iv, n as i64);
    b.ins().brif(done, exit, &[], blk, &[]);
    b.switch_to_block(blk);
    let iv = b.use_var(i);
    body(b, iv);
    let nx = b.ins().iadd_imm_s(iv, 1);
    b.def_var(i, nx);
    b.ins().jump(head, &[]);
    b.seal_block(blk);
    b.seal_block(head);
    b.switch_to_block(exit);
    b.seal_block(exit);
}

/// Emits the driver body. `signals` and `updates` are the compiled model functions.
pub fn emit(b: &mut FunctionBuilder, a: &Args, l: &Layout, signals: FuncRef, updates: FuncRef) {
    let n = l.n;
    let np = l.probes.len();
    let buf = |b: &mut FunctionBuilder, k: i64| b.ins().iadd_imm_s(a.work, k * n as i64 * 8);
    let (k1, k2, k3, k4, tmp, out) = (
        buf(b, 0),
        buf(b, 1),
        buf(b, 2),
        buf(b, 3),
        buf(b, 4),
        buf(b, 5),
    );
    let call = |b: &mut FunctionBuilder, f: FuncRef, x: Value, o: Value| {
        b.ins().call(f, &[x, a.p, a.s, o]);
    };
    let record = |b: &mut FunctionBuilder, row: Value| {
        let base = b.ins().imul_imm_s(row, (np * 8) as i64);
        let dst = b.ins().iadd(a.rec, base);
        for (j, pr) in l.probes.iter().enumerate() {
            let v = match pr {
                Probe::State(i) => b.ins().load(F64, mem(), a.x, (*i * 8) as i32),
                Probe::Signal(i) => b.ins().load(F64, mem(), a.s, (*i * 8) as i32),
            };
            b.ins().store(mem(), v, dst, (j * 8) as i32);
        }
    };
    let count = b.ins().load(I64, mem(), a.io, io::COUNT);
    let every = b.ins().load(F64, mem(), a.io, io::EVERY);
    let dt = b.ins().load(F64, mem(), a.io, io::DT);
    let minus1 = b.ins().iconst(I64, -1);
    b.ins().store(mem(), minus1, a.io, io::BAD_SLOT);
    // Initial record.
    call(b, signals, a.x, a.work);
    let zero_i = b.ins().iconst(I64, 0);
    record(b, zero_i);
    let one_r = one_row(b);
    b.ins().store(mem(), one_r, a.io, io::ROWS);
    let r = b.declare_var(I64);
    let one = b.ins().iconst(I64, 1);
    b.def_var(r, one);
    let t = b.declare_var(F64);
    let t0 = b.ins().f64const(0.0);
    b.def_var(t, t0);
    let outer = b.create_block();
    let outer_body = b.create_block();
    let done = b.create_block();
    let fail = b.create_block();
    b.ins().jump(outer, &[]);
    b.switch_to_block(outer);
    let rv = b.use_var(r);
    let over = b.ins().icmp(IntCC::SignedGreaterThan, rv, count);
    b.ins().brif(over, done, &[], outer_body, &[]);
    b.switch_to_block(outer_body);

    // The non-finite check on `out`: jumps to `fail` with the slot in a variable.
    let bad = b.declare_var(I64);
    b.def_var(bad, minus1);
    let check_and_commit = |b: &mut FunctionBuilder, tnow: Value| {
        each(b, n, &mut |b, i| {
            let pa = at(b, out, i);
            let v = b.ins().load(F64, mem(), pa, 0);
            let d = b.ins().fsub(v, v);
            let zero = b.ins().f64const(0.0);
            let ok = b.ins().fcmp(FloatCC::Equal, d, zero);
            let cur = b.use_var(bad);
            let first = b.ins().icmp_imm_s(IntCC::Equal, cur, -1);
            let notok = b.ins().bxor_imm_s(ok, 1);
            let mark = b.ins().band(notok, first);
            let nb = b.ins().select(mark, i, cur);
            b.def_var(bad, nb);
        });
        let bv = b.use_var(bad);
        let is_bad = b.ins().icmp_imm_s(IntCC::NotEqual, bv, -1);
        let cont = b.create_block();
        b.ins().store(mem(), tnow, a.io, io::BAD_T);
        b.ins().brif(is_bad, fail, &[], cont, &[]);
        b.switch_to_block(cont);
        b.seal_block(cont);
        each(b, n, &mut |b, i| {
            let po = at(b, out, i);
            let v = b.ins().load(F64, mem(), po, 0);
            let px = at(b, a.x, i);
            b.ins().store(mem(), v, px, 0);
        });
    };

    if l.discrete {
        // One step: signals, xn = x, next(x) into xn, check, commit; record every `every`.
        call(b, signals, a.x, a.work);
        each(b, n, &mut |b, i| {
            let px = at(b, a.x, i);
            let v = b.ins().load(F64, mem(), px, 0);
            let po = at(b, out, i);
            b.ins().store(mem(), v, po, 0);
        });
        call(b, updates, a.x, out);
        let rv = b.use_var(r);
        let tk = b.ins().fcvt_from_sint(F64, rv);
        check_and_commit(b, tk);
        let every_i = b.ins().fcvt_to_sint_sat(I64, every);
        let rv = b.use_var(r);
        let m = b.ins().srem(rv, every_i);
        let is_rec = b.ins().icmp_imm_s(IntCC::Equal, m, 0);
        let rec_blk = b.create_block();
        let after = b.create_block();
        b.ins().brif(is_rec, rec_blk, &[], after, &[]);
        b.switch_to_block(rec_blk);
        b.seal_block(rec_blk);
        call(b, signals, a.x, a.work);
        let rv = b.use_var(r);
        let row = b.ins().sdiv(rv, every_i);
        record(b, row);
        let rows = b.ins().iadd_imm_s(row, 1);
        b.ins().store(mem(), rows, a.io, io::ROWS);
        b.ins().jump(after, &[]);
        b.switch_to_block(after);
        b.seal_block(after);
    } else {
        // target = r * every; while t < target - 1e-12 * max(|target|, 1): one step.
        let rv = b.use_var(r);
        let rf = b.ins().fcvt_from_sint(F64, rv);
        let target = b.ins().fmul(rf, every);
        let at_ = b.ins().fabs(target);
        let onef = b.ins().f64const(1.0);
        let mx = b.ins().fmax(at_, onef);
        let tiny = b.ins().f64const(1e-12);
        let eps = b.ins().fmul(tiny, mx);
        let limit = b.ins().fsub(target, eps);
        let inner = b.create_block();
        let step_blk = b.create_block();
        let inner_done = b.create_block();
        b.ins().jump(inner, &[]);
        b.switch_to_block(inner);
        let tv = b.use_var(t);
        let go = b.ins().fcmp(FloatCC::LessThan, tv, limit);
        b.ins().brif(go, step_blk, &[], inner_done, &[]);
        b.switch_to_block(step_blk);
        let tv = b.use_var(t);
        let rem = b.ins().fsub(target, tv);
        let h = b.ins().fmin(dt, rem);
        call(b, signals, a.x, a.work);
        call(b, updates, a.x, k1);
        let axpy = |b: &mut FunctionBuilder, dst: Value, coef: Value, k: Value| {
            each(b, n, &mut |b, i| {
                let px = at(b, a.x, i);
                let xv = b.ins().load(F64, mem(), px, 0);
                let pk = at(b, k, i);
                let kv = b.ins().load(F64, mem(), pk, 0);
                let m = b.ins().fmul(coef, kv);
                let v = b.ins().fadd(xv, m);
                let pd = at(b, dst, i);
                b.ins().store(mem(), v, pd, 0);
            });
        };
        match l.method {
            Method::Euler | Method::Rk45 => axpy(b, out, h, k1),
            Method::Rk4 => {
                let half = b.ins().f64const(0.5);
                let hh = b.ins().fmul(half, h);
                axpy(b, tmp, hh, k1);
                call(b, signals, tmp, a.work);
                call(b, updates, tmp, k2);
                axpy(b, tmp, hh, k2);
                call(b, signals, tmp, a.work);
                call(b, updates, tmp, k3);
                axpy(b, tmp, h, k3);
                call(b, signals, tmp, a.work);
                call(b, updates, tmp, k4);
                let six = b.ins().f64const(6.0);
                let h6 = b.ins().fdiv(h, six);
                let two = b.ins().f64const(2.0);
                each(b, n, &mut |b, i| {
                    let ld = |b: &mut FunctionBuilder, base: Value| {
                        let p = at(b, base, i);
                        b.ins().load(F64, mem(), p, 0)
                    };
                    let (xv, a1, a2, a3, a4) =
                        (ld(b, a.x), ld(b, k1), ld(b, k2), ld(b, k3), ld(b, k4));
                    let t2 = b.ins().fmul(two, a2);
                    let s1 = b.ins().fadd(a1, t2);
                    let t3 = b.ins().fmul(two, a3);
                    let s2 = b.ins().fadd(s1, t3);
                    let s3 = b.ins().fadd(s2, a4);
                    let m = b.ins().fmul(h6, s3);
                    let v = b.ins().fadd(xv, m);
                    let po = at(b, out, i);
                    b.ins().store(mem(), v, po, 0);
                });
            }
        }
        let tv = b.use_var(t);
        let tn = b.ins().fadd(tv, h);
        b.def_var(t, tn);
        check_and_commit(b, tn);
        b.ins().jump(inner, &[]);
        b.seal_block(step_blk);
        b.seal_block(inner);
        b.switch_to_block(inner_done);
        b.seal_block(inner_done);
        b.def_var(t, target);
        call(b, signals, a.x, a.work);
        let rv = b.use_var(r);
        record(b, rv);
        let rows = b.ins().iadd_imm_s(rv, 1);
        b.ins().store(mem(), rows, a.io, io::ROWS);
    }
    let rv = b.use_var(r);
    let nr = b.ins().iadd_imm_s(rv, 1);
    b.def_var(r, nr);
    b.ins().jump(outer, &[]);
    b.seal_block(outer_body);
    b.seal_block(outer);
    b.switch_to_block(fail);
    b.seal_block(fail);
    let bv = b.use_var(bad);
    b.ins().store(mem(), bv, a.io, io::BAD_SLOT);
    b.ins().return_(&[]);
    b.switch_to_block(done);
    b.seal_block(done);
    b.ins().return_(&[]);
}
