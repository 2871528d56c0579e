//! The generated driver: the whole run — integrator stages, signals, updates, the
//! non-finite check and recording at the record times — in one native function, with the
//! interpreter's arithmetic in the interpreter's order.

use crate::emit::{at, counted, mem};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;
use dyn_interp::run::{Method, Probe};

const F64: types::Type = types::F64;
const I64: types::Type = types::I64;

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
    /// In: the first record (step, for discrete models) this call computes; 1 at the start.
    /// A run can be cut into calls that each continue where the last one stopped.
    pub const START: i32 = 48;
    /// In: the time at the start of this call.
    pub const T0: i32 = 56;
    /// In: relative tolerance (rk45).
    pub const RTOL: i32 = 64;
    /// In: absolute tolerance (rk45).
    pub const ATOL: i32 = 72;
    /// In and out: rk45's step size, carried from one call to the next.
    pub const H: i32 = 80;
    /// In: the address of `randn()`'s generator state ([`dyn_ir::numeric::Noise`]); the
    /// noise scale follows it (`RNG` and `SCALE` are the cell `dyn_randn` reads).
    pub const RNG: i32 = 88;
    /// In: the scale of `randn()` samples (1/sqrt(dt) under Euler–Maruyama).
    pub const SCALE: i32 = 96;
    /// In: the address of the input stream's table (rows of root-input values).
    pub const STREAM: i32 = 104;
    /// In: the address of scratch memory for tensor temporaries (`Emitted::scratch` slots).
    pub const SCRATCH: i32 = 112;
    /// In: the step of a fused Euler update (`Part::EulerStep`).
    pub const HSTEP: i32 = 120;
    /// Out: the finite-check flags of a fused Euler update (bit 63 set: a non-finite value).
    pub const FLAGS: i32 = 128;
    /// In: the run's total number of steps (discrete) or records (continuous), whichever
    /// calls it is cut into (`COUNT` is the end of the current call).
    pub const TOTAL: i32 = 136;
    /// Words in the io buffer.
    pub const WORDS: usize = 18;
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
    /// The model has `when` events.
    pub events: bool,
    /// Within a step the state lives in registers (small models, Euler and RK4, no events):
    /// the stages call `model_regs`, not `model`.
    pub regs: bool,
    /// Euler steps call `Part::EulerStep` (every state has one `der`).
    pub fused_euler: bool,
    /// Discrete models: every state slot has a `next` (so the new state need not start as a
    /// copy of the old one).
    pub next_all: bool,
    /// Input stream: the signal slot of each root input it feeds, in table column order
    /// (the table's address is the io word `STREAM`).
    pub stream: Option<Vec<usize>>,
}

/// `for i in 0..n { body(i) }` over state slots: unrolled for small state vectors.
fn each(b: &mut FunctionBuilder, n: usize, body: &mut dyn FnMut(&mut FunctionBuilder, Value)) {
    counted(b, n, 16, body)
}

/// Writes row `tick` (an i64 value) of the input stream into the root's input slots.
fn set_tick(b: &mut FunctionBuilder, l: &Layout, s_ptr: Value, io_ptr: Value, tick: Value) {
    let Some(slots) = &l.stream else {
        return;
    };
    let table = b.ins().load(I64, mem(), io_ptr, io::STREAM);
    let row = b.ins().imul_imm_s(tick, (slots.len() * 8) as i64);
    let base = b.ins().iadd(table, row);
    for (j, slot) in slots.iter().enumerate() {
        let v = b.ins().load(F64, mem(), base, (j * 8) as i32);
        b.ins().store(mem(), v, s_ptr, (*slot * 8) as i32);
    }
}

/// Where a model call reads the state and writes its results.
pub enum Bufs<'a> {
    /// Buffers: the state, and the output (updates) or scratch (signals) buffer.
    Mem(Value, Value),
    /// The state's values in registers; updates are returned by slot.
    Regs(&'a [Value]),
}

/// Which part of the model a call computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The signals the integration loop needs from the state `x` (the second pointer is
    /// scratch).
    Signals,
    /// Every signal from the state `x`, before a record.
    Record,
    /// A whole Euler step fused with the updates: `x + h · der` into the second pointer,
    /// with `h` the io word `HSTEP` and the finite-check flags left in the io word `FLAGS`.
    EulerStep,
    /// Derivatives or next values of the state `x` into the second pointer.
    Updates,
    /// `when` events: conditions and jumps computed from the first pointer (the state
    /// before the jumps), jumps written into the second.
    Events,
    /// Whether some event condition computed from the first pointer is true where its last
    /// value (the event flags) is false: returns one i8 value (flags are left unchanged).
    Rising,
}

/// Pointer values of the driver's parameters.
pub struct Args {
    /// State.
    pub x: Value,
    /// Signals.
    pub s: Value,
    /// Scratch: 10 × n slots, then the event flags.
    pub work: Value,
    /// `dyn_powf` (rk45's step-size control).
    pub powf: cranelift_codegen::ir::FuncRef,
    /// `dyn_max` (Rust's `max`).
    pub max: cranelift_codegen::ir::FuncRef,
    /// Record buffer.
    pub rec: Value,
    /// The io buffer.
    pub io: Value,
}

fn one_row(b: &mut FunctionBuilder) -> Value {
    b.ins().iconst(I64, 1)
}

/// `o[i] = x[i] + coef * k[i]` for the first `2 * pairs` slots, two lanes at a time, and
/// the finite-check flags of the new values OR-ed into one i64 (bit 63 set when one is NaN
/// or infinite; see `emit`).
fn axpy2(
    b: &mut FunctionBuilder,
    x: Value,
    k: Value,
    o: Value,
    coef: Value,
    pairs: usize,
) -> Value {
    const F64X2: types::Type = types::F64X2;
    const I64X2: types::Type = types::I64X2;
    let c2 = b.ins().splat(F64X2, coef);
    let exp = b.ins().iconst(I64, 0x7ff0_0000_0000_0000u64 as i64);
    let exp2 = b.ins().splat(I64X2, exp);
    let one = b.ins().iconst(I64, 0x0010_0000_0000_0000u64 as i64);
    let one2 = b.ins().splat(I64X2, one);
    let zero = b.ins().iconst(I64, 0);
    let zero2 = b.ins().splat(I64X2, zero);
    let accv = b.declare_var(I64X2);
    b.def_var(accv, zero2);
    let i = b.declare_var(I64);
    b.def_var(i, zero);
    let head = b.create_block();
    let blk = b.create_block();
    let exit = b.create_block();
    b.ins().jump(head, &[]);
    b.switch_to_block(head);
    let iv = b.use_var(i);
    let done = b
        .ins()
        .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, iv, (2 * pairs) as i64);
    b.ins().brif(done, exit, &[], blk, &[]);
    b.switch_to_block(blk);
    let iv = b.use_var(i);
    let px = at(b, x, iv);
    let pk = at(b, k, iv);
    let po = at(b, o, iv);
    let xv = b.ins().load(F64X2, mem(), px, 0);
    let kv = b.ins().load(F64X2, mem(), pk, 0);
    let m = b.ins().fmul(c2, kv);
    let v = b.ins().fadd(xv, m);
    b.ins().store(mem(), v, po, 0);
    let bits = b.ins().bitcast(I64X2, MemFlagsData::new(), v);
    let e = b.ins().band(bits, exp2);
    let f = b.ins().iadd(e, one2);
    let cur = b.use_var(accv);
    let nx = b.ins().bor(cur, f);
    b.def_var(accv, nx);
    let inext = b.ins().iadd_imm_s(iv, 2);
    b.def_var(i, inext);
    b.ins().jump(head, &[]);
    b.seal_block(blk);
    b.seal_block(head);
    b.switch_to_block(exit);
    b.seal_block(exit);
    let fin = b.use_var(accv);
    let l0 = b.ins().extractlane(fin, 0);
    let l1 = b.ins().extractlane(fin, 1);
    b.ins().bor(l0, l1)
}

/// `o[i] = x[i]` for `n` slots, two at a time.
fn copy2(b: &mut FunctionBuilder, x: Value, o: Value, n: usize) {
    const F64X2: types::Type = types::F64X2;
    let flags = crate::emit::mem_v();
    counted(b, n / 2, 8, &mut |b, k| {
        let i = b.ins().ishl_imm_u(k, 1);
        let px = at(b, x, i);
        let v = b.ins().load(F64X2, flags, px, 0);
        let po = at(b, o, i);
        b.ins().store(flags, v, po, 0);
    });
    if n % 2 == 1 {
        let v = b.ins().load(F64, mem(), x, ((n - 1) * 8) as i32);
        b.ins().store(mem(), v, o, ((n - 1) * 8) as i32);
    }
}

/// The finite-check flags (see `emit`) of `n` slots at `o` OR-ed into one i64, two at a time.
fn flags2(b: &mut FunctionBuilder, o: Value, n: usize) -> Value {
    const F64X2: types::Type = types::F64X2;
    const I64X2: types::Type = types::I64X2;
    let exp = b.ins().iconst(I64, 0x7ff0_0000_0000_0000u64 as i64);
    let exp2 = b.ins().splat(I64X2, exp);
    let one = b.ins().iconst(I64, 0x0010_0000_0000_0000u64 as i64);
    let one2 = b.ins().splat(I64X2, one);
    let zero = b.ins().iconst(I64, 0);
    let zero2 = b.ins().splat(I64X2, zero);
    let accv = b.declare_var(I64X2);
    b.def_var(accv, zero2);
    // Eight slots (four pairs) an iteration, then the remaining pairs.
    let pair_flags = |b: &mut FunctionBuilder, base: Value, pairs: usize| {
        for k in 0..pairs {
            let v = b
                .ins()
                .load(F64X2, crate::emit::mem_v(), base, (k * 16) as i32);
            let bits = b.ins().bitcast(I64X2, MemFlagsData::new(), v);
            let e = b.ins().band(bits, exp2);
            let f = b.ins().iadd(e, one2);
            let cur = b.use_var(accv);
            let nx = b.ins().bor(cur, f);
            b.def_var(accv, nx);
        }
    };
    counted(b, n / 8, 2, &mut |b, k| {
        let i = b.ins().ishl_imm_u(k, 3);
        let po = at(b, o, i);
        pair_flags(b, po, 4);
    });
    let tail = b.ins().iadd_imm_s(o, (n / 8 * 64) as i64);
    pair_flags(b, tail, n % 8 / 2);
    let fin = b.use_var(accv);
    let l0 = b.ins().extractlane(fin, 0);
    let l1 = b.ins().extractlane(fin, 1);
    let mut all = b.ins().bor(l0, l1);
    if n % 2 == 1 {
        let v = b.ins().load(I64, mem(), o, ((n - 1) * 8) as i32);
        let e = b.ins().band_imm_u(v, 0x7ff0_0000_0000_0000u64 as i64);
        let f = b.ins().iadd_imm_u(e, 0x0010_0000_0000_0000u64 as i64);
        all = b.ins().bor(all, f);
    }
    all
}

/// Emits the driver body. `signals` and `updates` are the compiled model functions.
///
/// The state lives in two buffers, the caller's `x` and a scratch one: a step writes the new
/// state into the other buffer and the pointers swap, so no copy is made per step; the
/// final state is copied back into `x` on return. A step's values are checked for NaN and
/// infinities as they are computed (a flag per value from its exponent bits, OR-ed).
pub fn emit(
    b: &mut FunctionBuilder,
    a: &Args,
    l: &Layout,
    model: &mut dyn FnMut(&mut FunctionBuilder, Part, Bufs) -> Vec<Value>,
) {
    let n = l.n;
    let np = l.probes.len();
    let buf = |b: &mut FunctionBuilder, k: i64| b.ins().iadd_imm_s(a.work, k * n as i64 * 8);
    let (k1, k2, k3, k4, tmp, spare) = (
        buf(b, 0),
        buf(b, 1),
        buf(b, 2),
        buf(b, 3),
        buf(b, 4),
        buf(b, 5),
    );
    // rk45's stages 5 to 7, and the probe of its event location.
    let (k5, k6, k7, last) = (buf(b, 6), buf(b, 7), buf(b, 8), buf(b, 9));
    let ptr_ty = b.func.dfg.value_type(a.x);
    let xv = b.declare_var(ptr_ty);
    b.def_var(xv, a.x);
    let ov = b.declare_var(ptr_ty);
    b.def_var(ov, spare);
    let record = |b: &mut FunctionBuilder, row: Value| {
        let base = b.ins().imul_imm_s(row, (np * 8) as i64);
        let dst = b.ins().iadd(a.rec, base);
        let x = b.use_var(xv);
        for (j, pr) in l.probes.iter().enumerate() {
            let v = match pr {
                Probe::State(i) => b.ins().load(F64, mem(), x, (*i * 8) as i32),
                Probe::Signal(i) => b.ins().load(F64, mem(), a.s, (*i * 8) as i32),
            };
            b.ins().store(mem(), v, dst, (j * 8) as i32);
        }
    };
    let count = b.ins().load(I64, mem(), a.io, io::COUNT);
    let every = b.ins().load(F64, mem(), a.io, io::EVERY);
    let dt = b.ins().load(F64, mem(), a.io, io::DT);
    let rtol = b.ins().load(F64, mem(), a.io, io::RTOL);
    let atol = b.ins().load(F64, mem(), a.io, io::ATOL);
    // rk45's step size, carried across records as in the interpreter.
    let hv = b.declare_var(F64);
    let h0 = b.ins().load(F64, mem(), a.io, io::H);
    b.def_var(hv, h0);
    let minus1 = b.ins().iconst(I64, -1);
    b.ins().store(mem(), minus1, a.io, io::BAD_SLOT);
    // The initial record, on the first call only.
    let start = b.ins().load(I64, mem(), a.io, io::START);
    let first = b.ins().icmp_imm_s(IntCC::Equal, start, 1);
    let init = b.create_block();
    let begin = b.create_block();
    b.ins().brif(first, init, &[], begin, &[]);
    b.switch_to_block(init);
    b.seal_block(init);
    model(b, Part::Record, Bufs::Mem(a.x, a.work));
    let zero_i = b.ins().iconst(I64, 0);
    record(b, zero_i);
    let one_r = one_row(b);
    b.ins().store(mem(), one_r, a.io, io::ROWS);
    b.ins().jump(begin, &[]);
    b.switch_to_block(begin);
    b.seal_block(begin);
    let r = b.declare_var(I64);
    b.def_var(r, start);
    let t = b.declare_var(F64);
    let t0 = b.ins().load(F64, mem(), a.io, io::T0);
    b.def_var(t, t0);
    // The finite check: per value, bit 63 of `(bits & EXP) + 2^52` is set exactly when the
    // exponent is all ones (a NaN or an infinity); the values' flags are OR-ed (a one-cycle
    // chain, where summing `v - v` was a four-cycle one).
    let acc = b.declare_var(I64);
    let flag = |b: &mut FunctionBuilder, v: Value| {
        let bits = b.ins().bitcast(I64, MemFlagsData::new(), v);
        let e = b.ins().band_imm_u(bits, 0x7ff0_0000_0000_0000u64 as i64);
        b.ins().iadd_imm_u(e, 0x0010_0000_0000_0000u64 as i64)
    };
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

    // Stores `v` at slot i of the new state and adds `v - v` to the finite-check sum.
    let put = |b: &mut FunctionBuilder, i: Value, v: Value| {
        let o = b.use_var(ov);
        let po = at(b, o, i);
        b.ins().store(mem(), v, po, 0);
        let d = flag(b, v);
        let s0 = b.use_var(acc);
        let s1 = b.ins().bor(s0, d);
        b.def_var(acc, s1);
    };
    // After a step: if the sum is not 0, find the first bad slot and fail; else swap.
    let check_and_swap = |b: &mut FunctionBuilder, tnow: Value| {
        let sum = b.use_var(acc);
        let ok = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, sum, 0);
        let bad_blk = b.create_block();
        let cont = b.create_block();
        b.ins().brif(ok, cont, &[], bad_blk, &[]);
        b.switch_to_block(bad_blk);
        b.seal_block(bad_blk);
        b.ins().store(mem(), tnow, a.io, io::BAD_T);
        let bad = b.declare_var(I64);
        b.def_var(bad, minus1);
        let o = b.use_var(ov);
        each(b, n, &mut |b, i| {
            let po = at(b, o, i);
            let v = b.ins().load(F64, mem(), po, 0);
            let d = b.ins().fsub(v, v);
            let z = b.ins().f64const(0.0);
            let fine = b.ins().fcmp(FloatCC::Equal, d, z);
            let cur = b.use_var(bad);
            let first = b.ins().icmp_imm_s(IntCC::Equal, cur, -1);
            let notok = b.ins().bxor_imm_s(fine, 1);
            let mark = b.ins().band(notok, first);
            let nb = b.ins().select(mark, i, cur);
            b.def_var(bad, nb);
        });
        let bv = b.use_var(bad);
        b.ins().store(mem(), bv, a.io, io::BAD_SLOT);
        b.ins().jump(fail, &[]);
        b.switch_to_block(cont);
        b.seal_block(cont);
        let (x, o) = (b.use_var(xv), b.use_var(ov));
        b.def_var(xv, o);
        b.def_var(ov, x);
    };
    // After a step, as the interpreter: signals of the new state, then the events, whose
    // conditions are computed on a copy of it.
    let fire_events =
        |b: &mut FunctionBuilder,
         model: &mut dyn FnMut(&mut FunctionBuilder, Part, Bufs) -> Vec<Value>| {
            let x = b.use_var(xv);
            each(b, n, &mut |b, i| {
                let ps_ = at(b, x, i);
                let v = b.ins().load(F64, mem(), ps_, 0);
                let pd = at(b, tmp, i);
                b.ins().store(mem(), v, pd, 0);
            });
            model(b, Part::Signals, Bufs::Mem(x, a.work));
            model(b, Part::Events, Bufs::Mem(tmp, x));
        };
    let reset_acc = |b: &mut FunctionBuilder| {
        let z = b.ins().iconst(I64, 0);
        b.def_var(acc, z);
    };

    if l.discrete {
        // One step: signals, new = x, next(x) into new, check, swap; record every `every`.
        // Step k reads input row k - 1.
        let rv = b.use_var(r);
        let tick = b.ins().iadd_imm_s(rv, -1);
        set_tick(b, l, a.s, a.io, tick);
        let x = b.use_var(xv);
        model(b, Part::Signals, Bufs::Mem(x, a.work));
        let o = b.use_var(ov);
        if !l.next_all {
            // Slots without a `next` keep their value.
            copy2(b, x, o, n);
        }
        model(b, Part::Updates, Bufs::Mem(x, o));
        reset_acc(b);
        let fl = flags2(b, o, n);
        b.def_var(acc, fl);
        let rv = b.use_var(r);
        let tk = b.ins().fcvt_from_sint(F64, rv);
        check_and_swap(b, tk);
        let every_i = b.ins().fcvt_to_sint_sat(I64, every);
        let rv = b.use_var(r);
        let m = b.ins().srem(rv, every_i);
        let is_rec = b.ins().icmp_imm_s(IntCC::Equal, m, 0);
        let rec_blk = b.create_block();
        let after = b.create_block();
        b.ins().brif(is_rec, rec_blk, &[], after, &[]);
        b.switch_to_block(rec_blk);
        b.seal_block(rec_blk);
        if l.stream.is_some() {
            // As the interpreter: a record after step k < steps shows the inputs of row k.
            let rv = b.use_var(r);
            let total = b.ins().load(I64, mem(), a.io, io::TOTAL);
            let more = b.ins().icmp(IntCC::SignedLessThan, rv, total);
            let set = b.create_block();
            let go = b.create_block();
            b.ins().brif(more, set, &[], go, &[]);
            b.switch_to_block(set);
            b.seal_block(set);
            let rv = b.use_var(r);
            set_tick(b, l, a.s, a.io, rv);
            b.ins().jump(go, &[]);
            b.switch_to_block(go);
            b.seal_block(go);
        }
        let x = b.use_var(xv);
        model(b, Part::Record, Bufs::Mem(x, a.work));
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
        if l.stream.is_some() {
            // Row floor(t / dt + 1e-9) feeds this step.
            let q = b.ins().fdiv(tv, dt);
            let nudge = b.ins().f64const(1e-9);
            let q = b.ins().fadd(q, nudge);
            let fl = b.ins().floor(q);
            let zero = b.ins().f64const(0.0);
            let fl = b.ins().fmax(fl, zero);
            let tick = b.ins().fcvt_to_uint_sat(I64, fl);
            set_tick(b, l, a.s, a.io, tick);
        }
        if l.method == Method::Rk45 {
            // One Dormand–Prince 5(4) attempt, as the interpreter computes it.
            use dyn_interp::run::{DP_A as A, DP_B4 as B4, DP_B5 as B5};
            let hcur = b.use_var(hv);
            let tv = b.use_var(t);
            let rem = b.ins().fsub(target, tv);
            let step = b.ins().fmin(hcur, rem);
            let ks = [k1, k2, k3, k4, k5, k6, k7];
            // One attempt of length `step` from the state: the new state into the next state
            // buffer (with the finite-check flags) or into `dst`; returns the error norm.
            let attempt =
                |b: &mut FunctionBuilder,
                 model: &mut dyn FnMut(&mut FunctionBuilder, Part, Bufs) -> Vec<Value>,
                 step: Value,
                 dst: Option<Value>|
                 -> Value {
                    let x = b.use_var(xv);
                    model(b, Part::Signals, Bufs::Mem(x, a.work));
                    model(b, Part::Updates, Bufs::Mem(x, k1));
                    for st in 1..7 {
                        let coefs: Vec<Value> = (0..st)
                            .map(|j| {
                                let aj = b.ins().f64const(A[st][j]);
                                b.ins().fmul(step, aj)
                            })
                            .collect();
                        each(b, n, &mut |b, i| {
                            let px = at(b, x, i);
                            let mut acc_v = b.ins().load(F64, mem(), px, 0);
                            for (j, cj) in coefs.iter().enumerate() {
                                let pk = at(b, ks[j], i);
                                let kv = b.ins().load(F64, mem(), pk, 0);
                                let m = b.ins().fmul(*cj, kv);
                                acc_v = b.ins().fadd(acc_v, m);
                            }
                            let pt = at(b, tmp, i);
                            b.ins().store(mem(), acc_v, pt, 0);
                        });
                        model(b, Part::Signals, Bufs::Mem(tmp, a.work));
                        model(b, Part::Updates, Bufs::Mem(tmp, ks[st]));
                    }
                    if dst.is_none() {
                        reset_acc(b);
                    }
                    let err = b.declare_var(F64);
                    let z0 = b.ins().f64const(0.0);
                    b.def_var(err, z0);
                    each(b, n, &mut |b, i| {
                        let px = at(b, x, i);
                        let xv_ = b.ins().load(F64, mem(), px, 0);
                        let kv: Vec<Value> = ks
                            .iter()
                            .map(|k| {
                                let pk = at(b, *k, i);
                                b.ins().load(F64, mem(), pk, 0)
                            })
                            .collect();
                        let weighted = |b: &mut FunctionBuilder, w: &[f64; 7]| {
                            let mut sum: Option<Value> = None;
                            for (s_, k) in kv.iter().enumerate() {
                                let c = b.ins().f64const(w[s_]);
                                let term = b.ins().fmul(c, *k);
                                sum = Some(match sum {
                                    None => term,
                                    Some(acc_v) => b.ins().fadd(acc_v, term),
                                });
                            }
                            let m = b.ins().fmul(step, sum.expect("seven terms"));
                            b.ins().fadd(xv_, m)
                        };
                        let y5 = weighted(b, &B5);
                        let y4 = weighted(b, &B4);
                        match dst {
                            Some(d) => {
                                let pd = at(b, d, i);
                                b.ins().store(mem(), y5, pd, 0);
                            }
                            None => put(b, i, y5),
                        }
                        let ax = b.ins().fabs(xv_);
                        let ay = b.ins().fabs(y5);
                        let inst = b.ins().call(a.max, &[ax, ay]);
                        let mx = b.inst_results(inst)[0];
                        let r_ = b.ins().fmul(rtol, mx);
                        let sc = b.ins().fadd(atol, r_);
                        let d = b.ins().fsub(y5, y4);
                        let q = b.ins().fdiv(d, sc);
                        let q2 = b.ins().fmul(q, q);
                        let e0 = b.use_var(err);
                        let e1 = b.ins().fadd(e0, q2);
                        b.def_var(err, e1);
                    });
                    let e = b.use_var(err);
                    let nf = b.ins().f64const(n as f64);
                    let mean = b.ins().fdiv(e, nf);
                    b.ins().sqrt(mean)
                };
            let errn = attempt(b, model, step, None);
            let one_f = b.ins().f64const(1.0);
            let small = b.ins().fcmp(FloatCC::LessThanOrEqual, errn, one_f);
            let at_abs = b.ins().fabs(tv);
            let at_mx = b.ins().fmax(at_abs, one_f);
            let tiny = b.ins().f64const(1e-14);
            let lim = b.ins().fmul(tiny, at_mx);
            let too_small = b.ins().fcmp(FloatCC::LessThan, step, lim);
            let accept = b.ins().bor(small, too_small);
            let acc_blk = b.create_block();
            let rej_blk = b.create_block();
            let merge = b.create_block();
            b.ins().brif(accept, acc_blk, &[], rej_blk, &[]);
            // clamp(0.9 · errn^-0.2, lo, hi) with Rust's `clamp` (NaN stays NaN).
            let factor = |b: &mut FunctionBuilder, lo: f64, hi: f64| {
                let m02 = b.ins().f64const(-0.2);
                let inst = b.ins().call(a.powf, &[errn, m02]);
                let p = b.inst_results(inst)[0];
                let nine = b.ins().f64const(0.9);
                let f = b.ins().fmul(nine, p);
                let lo_v = b.ins().f64const(lo);
                let hi_v = b.ins().f64const(hi);
                let below = b.ins().fcmp(FloatCC::LessThan, f, lo_v);
                let f1 = b.ins().select(below, lo_v, f);
                let above = b.ins().fcmp(FloatCC::GreaterThan, f1, hi_v);
                b.ins().select(above, hi_v, f1)
            };
            b.switch_to_block(acc_blk);
            b.seal_block(acc_blk);
            let taken = if l.events {
                // As the interpreter: when an event condition rises over the step, the
                // crossing is located by bisection on the step length (at most 60 halvings)
                // and the step ends at the first length found where it has risen.
                let o = b.use_var(ov);
                let rising =
                    |b: &mut FunctionBuilder,
                     model: &mut dyn FnMut(&mut FunctionBuilder, Part, Bufs) -> Vec<Value>,
                     st: Value| {
                        model(b, Part::Signals, Bufs::Mem(st, a.work));
                        model(b, Part::Rising, Bufs::Mem(st, a.work))[0]
                    };
                let r0 = rising(b, model, o);
                let bis = b.create_block();
                let joined = b.create_block();
                b.append_block_param(joined, F64);
                b.ins().brif(r0, bis, &[], joined, &[step.into()]);
                b.switch_to_block(bis);
                b.seal_block(bis);
                let (lo, hi) = (b.declare_var(F64), b.declare_var(F64));
                let zero = b.ins().f64const(0.0);
                b.def_var(lo, zero);
                b.def_var(hi, step);
                // The state at `hi` and the buffer of the next probe (pointers, swapped when
                // a probe has the rising condition).
                let (at_hi, probe) = (b.declare_var(ptr_ty), b.declare_var(ptr_ty));
                b.def_var(at_hi, o);
                b.def_var(probe, last);
                let iter = b.declare_var(I64);
                let zi = b.ins().iconst(I64, 0);
                b.def_var(iter, zi);
                let head = b.create_block();
                let body = b.create_block();
                let fin = b.create_block();
                b.ins().jump(head, &[]);
                b.switch_to_block(head);
                let iv = b.use_var(iter);
                let more = b.ins().icmp_imm_s(IntCC::SignedLessThan, iv, 60);
                b.ins().brif(more, body, &[], fin, &[]);
                b.switch_to_block(body);
                let (lv, hv_) = (b.use_var(lo), b.use_var(hi));
                let sum = b.ins().fadd(lv, hv_);
                let half = b.ins().f64const(0.5);
                let mid = b.ins().fmul(half, sum);
                let pr = b.use_var(probe);
                attempt(b, model, mid, Some(pr));
                let rp = rising(b, model, pr);
                let yes = b.create_block();
                let no = b.create_block();
                let after = b.create_block();
                b.ins().brif(rp, yes, &[], no, &[]);
                b.switch_to_block(yes);
                b.seal_block(yes);
                b.def_var(hi, mid);
                let old = b.use_var(at_hi);
                b.def_var(at_hi, pr);
                b.def_var(probe, old);
                b.ins().jump(after, &[]);
                b.switch_to_block(no);
                b.seal_block(no);
                b.def_var(lo, mid);
                b.ins().jump(after, &[]);
                b.switch_to_block(after);
                b.seal_block(after);
                // hi - lo <= 1e-13 · max(|t + hi|, 1)
                let (lv, hv_) = (b.use_var(lo), b.use_var(hi));
                let width = b.ins().fsub(hv_, lv);
                let th = b.ins().fadd(tv, hv_);
                let ath = b.ins().fabs(th);
                let inst = b.ins().call(a.max, &[ath, one_f]);
                let scale = b.inst_results(inst)[0];
                let tol = b.ins().f64const(1e-13);
                let lim = b.ins().fmul(tol, scale);
                let narrow = b.ins().fcmp(FloatCC::LessThanOrEqual, width, lim);
                let iv = b.use_var(iter);
                let inext = b.ins().iadd_imm_s(iv, 1);
                b.def_var(iter, inext);
                b.ins().brif(narrow, fin, &[], head, &[]);
                b.seal_block(body);
                b.seal_block(head);
                b.switch_to_block(fin);
                b.seal_block(fin);
                // The state at `hi` becomes the new state (in the next state buffer), with
                // its finite-check flags.
                let src = b.use_var(at_hi);
                copy2(b, src, o, n);
                let fl = flags2(b, o, n);
                b.def_var(acc, fl);
                let hv_ = b.use_var(hi);
                b.ins().jump(joined, &[hv_.into()]);
                b.switch_to_block(joined);
                b.seal_block(joined);
                b.block_params(joined)[0]
            } else {
                step
            };
            let tn = b.ins().fadd(tv, taken);
            b.def_var(t, tn);
            check_and_swap(b, tn);
            if l.events {
                fire_events(b, model);
            }
            let cl = factor(b, 0.2, 5.0);
            let zero = b.ins().f64const(0.0);
            let exact = b.ins().fcmp(FloatCC::Equal, errn, zero);
            let five = b.ins().f64const(5.0);
            let fac = b.ins().select(exact, five, cl);
            let grown = b.ins().fmul(step, fac);
            let floor_h = b.ins().f64const(1e-14);
            let inst = b.ins().call(a.max, &[grown, floor_h]);
            let hn = b.inst_results(inst)[0];
            b.def_var(hv, hn);
            b.ins().jump(merge, &[]);
            b.switch_to_block(rej_blk);
            b.seal_block(rej_blk);
            let cl = factor(b, 0.1, 0.9);
            // As the interpreter: a NaN factor (non-finite error estimate) shrinks tenfold.
            let nan = b.ins().fcmp(FloatCC::Unordered, cl, cl);
            let tenth = b.ins().f64const(0.1);
            let cl = b.ins().select(nan, tenth, cl);
            let hn = b.ins().fmul(step, cl);
            b.def_var(hv, hn);
            b.ins().jump(merge, &[]);
            b.switch_to_block(merge);
            b.seal_block(merge);
        } else {
            if l.fused_euler && l.method == Method::Euler {
                let x = b.use_var(xv);
                b.ins().store(mem(), h, a.io, io::HSTEP);
                model(b, Part::Signals, Bufs::Mem(x, a.work));
                let o = b.use_var(ov);
                model(b, Part::EulerStep, Bufs::Mem(x, o));
                let flags = b.ins().load(I64, mem(), a.io, io::FLAGS);
                b.def_var(acc, flags);
            } else if l.regs {
                // The same arithmetic as below, on values in registers instead of buffers.
                let x = b.use_var(xv);
                let xs: Vec<Value> = (0..n)
                    .map(|i| b.ins().load(F64, mem(), x, (i * 8) as i32))
                    .collect();
                model(b, Part::Signals, Bufs::Regs(&xs));
                let k1 = model(b, Part::Updates, Bufs::Regs(&xs));
                reset_acc(b);
                let comb = |b: &mut FunctionBuilder, coef: Value, k: &[Value]| -> Vec<Value> {
                    xs.iter()
                        .zip(k)
                        .map(|(xv_, kv)| {
                            let m = b.ins().fmul(coef, *kv);
                            b.ins().fadd(*xv_, m)
                        })
                        .collect()
                };
                let new = match l.method {
                    Method::Rk4 => {
                        let half = b.ins().f64const(0.5);
                        let hh = b.ins().fmul(half, h);
                        let tmp = comb(b, hh, &k1);
                        model(b, Part::Signals, Bufs::Regs(&tmp));
                        let k2 = model(b, Part::Updates, Bufs::Regs(&tmp));
                        let tmp = comb(b, hh, &k2);
                        model(b, Part::Signals, Bufs::Regs(&tmp));
                        let k3 = model(b, Part::Updates, Bufs::Regs(&tmp));
                        let tmp = comb(b, h, &k3);
                        model(b, Part::Signals, Bufs::Regs(&tmp));
                        let k4 = model(b, Part::Updates, Bufs::Regs(&tmp));
                        let six = b.ins().f64const(6.0);
                        let h6 = b.ins().fdiv(h, six);
                        let two = b.ins().f64const(2.0);
                        (0..n)
                            .map(|i| {
                                let t2 = b.ins().fmul(two, k2[i]);
                                let s1 = b.ins().fadd(k1[i], t2);
                                let t3 = b.ins().fmul(two, k3[i]);
                                let s2 = b.ins().fadd(s1, t3);
                                let s3 = b.ins().fadd(s2, k4[i]);
                                let m = b.ins().fmul(h6, s3);
                                b.ins().fadd(xs[i], m)
                            })
                            .collect()
                    }
                    _ => comb(b, h, &k1),
                };
                for (i, v) in new.into_iter().enumerate() {
                    let iv = b.ins().iconst(I64, i as i64);
                    put(b, iv, v);
                }
            } else {
                let x = b.use_var(xv);
                model(b, Part::Signals, Bufs::Mem(x, a.work));
                model(b, Part::Updates, Bufs::Mem(x, k1));
                reset_acc(b);
                // dst[i] = x[i] + coef * k[i]
                let axpy = |b: &mut FunctionBuilder, dst: Option<Value>, coef: Value, k: Value| {
                    // One slot: the same operations as the two-lane loop, per element.
                    let mut one = |b: &mut FunctionBuilder, i: Value| {
                        let px = at(b, x, i);
                        let xv_ = b.ins().load(F64, mem(), px, 0);
                        let pk = at(b, k, i);
                        let kv = b.ins().load(F64, mem(), pk, 0);
                        let m = b.ins().fmul(coef, kv);
                        let v = b.ins().fadd(xv_, m);
                        match dst {
                            Some(d) => {
                                let pd = at(b, d, i);
                                b.ins().store(mem(), v, pd, 0);
                            }
                            None => put(b, i, v),
                        }
                    };
                    if n <= 16 {
                        each(b, n, &mut one);
                        return;
                    }
                    // Two lanes at a time, then the odd slot.
                    let o = match dst {
                        Some(d) => d,
                        None => b.use_var(ov),
                    };
                    let flags = axpy2(b, x, k, o, coef, n / 2);
                    if dst.is_none() {
                        let s0 = b.use_var(acc);
                        let s1 = b.ins().bor(s0, flags);
                        b.def_var(acc, s1);
                    }
                    if n % 2 == 1 {
                        let i = b.ins().iconst(I64, (n - 1) as i64);
                        one(b, i);
                    }
                };
                match l.method {
                    Method::Euler | Method::Rk45 => axpy(b, None, h, k1),
                    Method::Rk4 => {
                        let half = b.ins().f64const(0.5);
                        let hh = b.ins().fmul(half, h);
                        axpy(b, Some(tmp), hh, k1);
                        model(b, Part::Signals, Bufs::Mem(tmp, a.work));
                        model(b, Part::Updates, Bufs::Mem(tmp, k2));
                        axpy(b, Some(tmp), hh, k2);
                        model(b, Part::Signals, Bufs::Mem(tmp, a.work));
                        model(b, Part::Updates, Bufs::Mem(tmp, k3));
                        axpy(b, Some(tmp), h, k3);
                        model(b, Part::Signals, Bufs::Mem(tmp, a.work));
                        model(b, Part::Updates, Bufs::Mem(tmp, k4));
                        let six = b.ins().f64const(6.0);
                        let h6 = b.ins().fdiv(h, six);
                        let two = b.ins().f64const(2.0);
                        each(b, n, &mut |b, i| {
                            let ld = |b: &mut FunctionBuilder, base: Value| {
                                let p = at(b, base, i);
                                b.ins().load(F64, mem(), p, 0)
                            };
                            let (xv_, a1, a2, a3, a4) =
                                (ld(b, x), ld(b, k1), ld(b, k2), ld(b, k3), ld(b, k4));
                            let t2 = b.ins().fmul(two, a2);
                            let s1 = b.ins().fadd(a1, t2);
                            let t3 = b.ins().fmul(two, a3);
                            let s2 = b.ins().fadd(s1, t3);
                            let s3 = b.ins().fadd(s2, a4);
                            let m = b.ins().fmul(h6, s3);
                            let v = b.ins().fadd(xv_, m);
                            put(b, i, v);
                        });
                    }
                }
            }
            let tv = b.use_var(t);
            let tn = b.ins().fadd(tv, h);
            b.def_var(t, tn);
            check_and_swap(b, tn);
            if l.events {
                fire_events(b, model);
            }
        }
        b.ins().jump(inner, &[]);
        b.seal_block(step_blk);
        b.seal_block(inner);
        b.switch_to_block(inner_done);
        b.seal_block(inner_done);
        b.def_var(t, target);
        let x = b.use_var(xv);
        model(b, Part::Record, Bufs::Mem(x, a.work));
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
    // On return, the current state goes back into the caller's buffer.
    let copy_back = |b: &mut FunctionBuilder| {
        let x = b.use_var(xv);
        each(b, n, &mut |b, i| {
            let ps = at(b, x, i);
            let v = b.ins().load(F64, mem(), ps, 0);
            let pd = at(b, a.x, i);
            b.ins().store(mem(), v, pd, 0);
        });
    };
    b.switch_to_block(fail);
    b.seal_block(fail);
    copy_back(b);
    let hl = b.use_var(hv);
    b.ins().store(mem(), hl, a.io, io::H);
    b.ins().return_(&[]);
    b.switch_to_block(done);
    b.seal_block(done);
    copy_back(b);
    let hl = b.use_var(hv);
    b.ins().store(mem(), hl, a.io, io::H);
    b.ins().return_(&[]);
}
