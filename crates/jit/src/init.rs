//! The initial values as generated code, for programs that run without the interpreter
//! (ahead-of-time compiled executables and libraries).
//!
//! `init(x, p, s, flags, over, inputs, io)` (seven pointers) computes what
//! `dyn_interp::run::Sim::new` computes, in the same order and with the same operations:
//!
//! 1. zeroes the state `x`, the params `p` and the signals `s`;
//! 2. sets the params group by group, param by param: a box argument (evaluated in the
//!    parent's frame), else the default, else 0 — then, when word `2k` of `over` is not 0,
//!    slot `k` takes word `2k + 1` (the `--param` overrides, one pair of words per param slot);
//!    so an override is seen by the params of the boxes inside;
//! 3. sets the initial states, group by group, element by element, state by state;
//! 4. writes the root's inputs (`inputs`, one word per root input slot, in the order of
//!    [`crate::root_input_slots`]) into their signal slots;
//! 5. computes every signal, then every event condition into `flags` (1 or 0 per element
//!    and event, in the interpreter's order).
//!
//! `io` is the driver's io buffer: `randn()` in an initial value draws from the generator
//! of its `RNG` word (the interpreter draws at scale 1 there), and tensor temporaries use
//! its `SCRATCH` word.

use crate::codegen::{Frame, Gen};
use crate::emit::{counted, mem};
use crate::{Unsupported, define_fn, root_input_slots};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{AbiParam, InstBuilder, Value, types};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use dyn_ir::flat::Flat;
use dyn_ir::system::slots;

const F64: types::Type = types::F64;
const I64: types::Type = types::I64;

/// What [`emit_init`] made.
#[derive(Debug, Clone, Copy)]
pub struct EmittedInit {
    /// `init(x, p, s, flags, over, inputs, io)`.
    pub init: FuncId,
    /// Scratch slots its tensor temporaries need (see `driver::io::SCRATCH`).
    pub scratch: usize,
}

/// Number of pointer arguments of the generated `init`.
pub const INIT_ARGS: usize = 7;

/// `for e in 0..n { body(e) }` in generated code (straight-line for a few iterations).
fn each(b: &mut FunctionBuilder, n: u64, body: &mut dyn FnMut(&mut FunctionBuilder, Value)) {
    counted(b, n as usize, 4, body)
}

/// Stores 0 in the `n` words at `buf`.
fn zero(b: &mut FunctionBuilder, buf: Value, n: usize) {
    let z = b.ins().f64const(0.0);
    each(b, n as u64, &mut |b, i| {
        let off = b.ins().imul_imm_s(i, 8);
        let at = b.ins().iadd(buf, off);
        b.ins().store(mem(), z, at, 0);
    });
}

/// Emits `init` (see the module documentation) into `module`, exported as `name`.
pub fn emit_init<M: Module>(
    module: &mut M,
    flat: &Flat,
    name: &str,
) -> Result<EmittedInit, Unsupported> {
    crate::supported(flat)?;
    let mut cg = Gen::new(flat, module)?;
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    for _ in 0..INIT_ARGS {
        sig.params.push(AbiParam::new(ptr));
    }
    let mut fbc = FunctionBuilderContext::new();
    let mut ctx = module.make_context();
    let inputs_at = root_input_slots(flat);
    let id = define_fn(
        module,
        &mut ctx,
        &mut fbc,
        name,
        Linkage::Export,
        &sig,
        &mut |module, b, ps| {
            let [x, p, s, flags, over, inputs, io] =
                [ps[0], ps[1], ps[2], ps[3], ps[4], ps[5], ps[6]];
            zero(b, x, flat.n_state);
            zero(b, p, flat.n_param);
            zero(b, s, flat.n_signal);
            let c = cg.init_ctx(module, b, [x, p, s, io]);
            let e0 = b.ins().iconst(I64, 0);
            // Params, with the overrides applied as each is set.
            for (gi, g) in flat.groups.iter().enumerate() {
                let sys = &flat.program.systems[g.system as usize];
                for (i, (slot, default)) in sys.params.iter().enumerate() {
                    let at = g.param_base + g.param_off[i];
                    let n = slots(&slot.shape).max(1);
                    let arg = g.parent.and_then(|(pg, bi)| {
                        let parent = &flat.groups[pg as usize];
                        flat.program.systems[parent.system as usize].boxes[bi as usize].args[i]
                            .as_ref()
                            .map(|a| (pg, a))
                    });
                    let at_v = b.ins().iconst(I64, at as i64);
                    match (arg, default) {
                        (Some((pg, a)), _) => {
                            cg.put_init(b, &c, pg, e0, a, p, at_v, &slot.shape);
                        }
                        (None, Some(d)) => {
                            cg.put_init(b, &c, gi as u32, e0, d, p, at_v, &slot.shape);
                        }
                        (None, None) => {}
                    }
                    for k in at..at + n {
                        let flag = b.ins().load(F64, mem(), over, (16 * k) as i32);
                        let val = b.ins().load(F64, mem(), over, (16 * k + 8) as i32);
                        let cur = b.ins().load(F64, mem(), p, (8 * k) as i32);
                        let zero = b.ins().f64const(0.0);
                        let set = b.ins().fcmp(FloatCC::NotEqual, flag, zero);
                        let v = b.ins().select(set, val, cur);
                        b.ins().store(mem(), v, p, (8 * k) as i32);
                    }
                }
            }
            // Initial states.
            for (gi, g) in flat.groups.iter().enumerate() {
                let sys = &flat.program.systems[g.system as usize];
                if sys.states.is_empty() {
                    continue;
                }
                each(b, g.count, &mut |b, e| {
                    for (i, (slot, init)) in sys.states.iter().enumerate() {
                        let o = Gen::slot(b, g.state_base, e, g.state_stride, g.state_off[i]);
                        cg.put_init(b, &c, gi as u32, e, init, x, o, &slot.shape);
                    }
                });
            }
            // The root's inputs, then every signal.
            for (j, slot) in inputs_at.iter().enumerate() {
                let v = b.ins().load(F64, mem(), inputs, (8 * j) as i32);
                b.ins().store(mem(), v, s, (8 * slot) as i32);
            }
            cg.signals(module, b, [x, p, s, io]);
            // Event conditions, one flag per (group, element, event).
            let mut base = 0usize;
            for (gi, g) in flat.groups.iter().enumerate() {
                let sys = &flat.program.systems[g.system as usize];
                let nev = sys.events.len();
                if nev == 0 {
                    continue;
                }
                each(b, g.count, &mut |b, e| {
                    let f = Frame {
                        g: gi as u32,
                        e,
                        loops: vec![],
                        args: vec![],
                        arg_shapes: vec![],
                        ranges: vec![],
                    };
                    for (k, ev) in sys.events.iter().enumerate() {
                        let cond = cg.expr(b, &c, &f, &ev.cond);
                        let zero = b.ins().f64const(0.0);
                        let one = b.ins().f64const(1.0);
                        let on = b.ins().fcmp(FloatCC::NotEqual, cond, zero);
                        let v = b.ins().select(on, one, zero);
                        let row = b.ins().imul_imm_s(e, (nev * 8) as i64);
                        let addr = b.ins().iadd(flags, row);
                        b.ins().store(mem(), v, addr, ((base + k) * 8) as i32);
                    }
                });
                base += g.count as usize * nev;
            }
            b.ins().return_(&[]);
        },
    )?;
    Ok(EmittedInit {
        init: id,
        scratch: cg.scratch.get(),
    })
}

/// Every param path (`foxes.c`) with its first slot and its number of slots (a tensor
/// param has several; an override sets them all), in the order of
/// `dyn_interp::run::param_paths`.
pub fn param_slots(flat: &Flat) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for g in &flat.groups {
        let sys = &flat.program.systems[g.system as usize];
        let prefix: Vec<String> = g.path.iter().map(|(n, _)| n.clone()).collect();
        for (i, (p, _)) in sys.params.iter().enumerate() {
            let mut path = prefix.clone();
            path.push(p.name.clone());
            out.push((
                path.join("."),
                g.param_base + g.param_off[i],
                slots(&p.shape).max(1),
            ));
        }
    }
    out
}

/// The `over` buffer of `init` for these overrides (a later one of the same path wins), or
/// the first path that names no param.
pub fn override_words(flat: &Flat, params: &[(String, f64)]) -> Result<Vec<f64>, String> {
    let table = param_slots(flat);
    let mut over = vec![0.0; 2 * flat.n_param.max(1)];
    for (path, v) in params {
        let Some((_, at, n)) = table.iter().find(|(q, _, _)| q == path) else {
            return Err(path.clone());
        };
        for k in *at..at + n {
            over[2 * k] = 1.0;
            over[2 * k + 1] = *v;
        }
    }
    Ok(over)
}
