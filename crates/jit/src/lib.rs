//! The Cranelift JIT of dyn: compiles a flattened step program — signals, updates and the
//! whole integration loop with recording — to native code, and runs it on the interpreter's
//! buffers, so params and initial values are run-time data and never force a recompile.
//!
//! Programs with constructs the code generator does not handle yet (`randn()` inside `if`,
//! an index computed from the model's values, tensors in mode-dependent systems, the current
//! time) are reported as unsupported; `dyn run` then uses the interpreter.

mod codegen;
pub mod driver;
mod emit;
mod init;
mod inline;
pub mod linalg;
pub mod rerun;
pub mod shims;
mod tensor;
mod tensor_ops;

use codegen::Gen;
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use dyn_interp::run::{Method, Probe, RunError, RunSpec, Sim, state_name};
use dyn_ir::flat::Flat;
use dyn_ir::system::TimeKind;
use std::time::{Duration, Instant};

pub use codegen::{Unsupported, supported};
pub use init::{EmittedInit, INIT_ARGS, emit_init, override_words, param_slots};
pub use rerun::Runner;

/// State-sized scratch buffers of the driver: k1…k7, the stage input, the other state.
pub const WORK_BUFFERS: usize = 10;

/// How long compilation took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Code generation and Cranelift compilation.
    pub compile: Duration,
    /// The run itself.
    pub run: Duration,
}

type Driver = unsafe extern "C" fn(*mut f64, *const f64, *mut f64, *mut f64, *mut f64, *mut f64);

/// A compiled program: the module owning the code (and its data: the item tables) and the
/// driver. The code holds no address of its own: the generator and the input table are
/// found through the io buffer of each call.
pub struct Compiled {
    _module: JITModule,
    driver: Driver,
    /// Scratch slots for tensor temporaries.
    scratch: usize,
    probes: Vec<Probe>,
    names: Vec<String>,
}

fn err(e: impl std::fmt::Display) -> Unsupported {
    format!("code generation failed: {e}")
}

/// Why `spec` cannot run compiled, if so.
pub fn supported_run(flat: &Flat, spec: &RunSpec) -> Result<(), Unsupported> {
    supported(flat)?;
    if noisy(flat) && flat.time == TimeKind::Continuous && spec.method != Method::Euler {
        return Err("`randn()` outside Euler–Maruyama".into());
    }
    Ok(())
}

/// Does a `der`/`next` of some system sample noise? (The interpreter's rule for scaling.)
pub fn noisy(flat: &Flat) -> bool {
    flat.program
        .systems
        .iter()
        .any(|s| s.updates.iter().any(|a| a.value.has_randn()))
}

/// The signal slot of every scalar root input, in order (tensor inputs expand).
pub fn root_input_slots(flat: &Flat) -> Vec<usize> {
    let g = &flat.groups[0];
    let sys = &flat.program.systems[g.system as usize];
    let mut v = Vec::new();
    for (i, port) in sys.inputs.iter().enumerate() {
        let base = g.sig(0, g.in_off[i]);
        v.extend(base..base + dyn_ir::system::slots(&port.shape).max(1));
    }
    v
}

/// Number of (element, event) pairs: the length of the event flags.
pub fn n_events(flat: &Flat) -> usize {
    flat.groups
        .iter()
        .map(|g| g.count as usize * flat.program.systems[g.system as usize].events.len())
        .sum()
}

/// Compiles `flat` for the recording of `spec`.
pub fn compile(flat: &Flat, spec: &RunSpec) -> Result<Result<Compiled, Unsupported>, RunError> {
    if let Err(u) = supported_run(flat, spec) {
        return Ok(Err(u));
    }
    let (names, probes) = dyn_interp::run::recorded(flat, spec)?;
    Ok(build(flat, spec, names, probes, false))
}

/// As [`compile`], for callers that read only the recorded values: a record of states alone
/// (and no events) then computes no signals, so a discrete step evaluates the model once
/// instead of twice. The signal buffer after a run is then not the last record's (it holds
/// the signals of the last step's start), which is why `dyn run`, `dyn build` and
/// libraries, whose callers read signals, use [`compile`].
pub fn compile_lean(
    flat: &Flat,
    spec: &RunSpec,
) -> Result<Result<Compiled, Unsupported>, RunError> {
    if let Err(u) = supported_run(flat, spec) {
        return Ok(Err(u));
    }
    let (names, probes) = dyn_interp::run::recorded(flat, spec)?;
    Ok(build(flat, spec, names, probes, true))
}

/// What [`emit_program`] made.
#[derive(Debug, Clone, Copy)]
pub struct Emitted {
    /// The driver `(x, p, s, work, rec, io)`.
    pub driver: FuncId,
    /// Slots of scratch memory the code needs for tensor temporaries: the caller allocates
    /// them and puts their address in the io word `driver::io::SCRATCH`.
    pub scratch: usize,
}

/// Emits the whole program into `module`: the signal and update functions and the driver,
/// exported as `driver_name` with the signature `(x, p, s, work, rec, io)` (six pointers).
/// The JIT and the ahead-of-time compiler share it, so both run the same code.
pub fn emit_program<M: Module>(
    module: &mut M,
    flat: &Flat,
    spec: &RunSpec,
    probes: &[Probe],
    driver_name: &str,
) -> Result<Emitted, Unsupported> {
    emit_program_with(module, flat, spec, probes, driver_name, false)
}

/// [`emit_program`]; `lean_records`: a record of states alone computes no signals (see
/// [`compile_lean`]).
fn emit_program_with<M: Module>(
    module: &mut M,
    flat: &Flat,
    spec: &RunSpec,
    probes: &[Probe],
    driver_name: &str,
    lean_records: bool,
) -> Result<Emitted, Unsupported> {
    let mut cg = Gen::new(flat, module)?;
    // Small models: the model's code is emitted inline at every stage, without calls (then
    // the separate model functions are not emitted at all).
    let work_items: usize =
        flat.schedule.iter().map(|o| o.items.len()).sum::<usize>() + flat.n_state;
    let inline = work_items <= 64;
    let continuous_no_events = flat.time == TimeKind::Continuous && n_events(flat) == 0;
    let regs = inline
        && cg.regs_ok()
        && continuous_no_events
        && matches!(spec.method, Method::Euler | Method::Rk4);
    let fused_euler =
        !regs && continuous_no_events && spec.method == Method::Euler && cg.fused_euler_ok();
    let sig5 = Gen::buffers_sig(module);
    let mut fbc = FunctionBuilderContext::new();
    let mut ctx = module.make_context();
    // signals(x, p, s, _, io) and updates(x, p, s, out, io)
    let sig_id = if !inline {
        Some(define_fn(
            module,
            &mut ctx,
            &mut fbc,
            "signals",
            Linkage::Local,
            &sig5,
            &mut |module, b, ps| {
                cg.signals_lean(module, b, [ps[0], ps[1], ps[2], ps[4]]);
                b.ins().return_(&[]);
            },
        )?)
    } else {
        None
    };
    let eul_id = if !inline && fused_euler {
        Some(define_fn(
            module,
            &mut ctx,
            &mut fbc,
            "euler_step",
            Linkage::Local,
            &sig5,
            &mut |module, b, ps| {
                cg.euler_step(module, b, [ps[0], ps[1], ps[2], ps[3], ps[4]]);
                b.ins().return_(&[]);
            },
        )?)
    } else {
        None
    };
    let all_id = if !inline {
        Some(define_fn(
            module,
            &mut ctx,
            &mut fbc,
            "signals_all",
            Linkage::Local,
            &sig5,
            &mut |module, b, ps| {
                cg.signals(module, b, [ps[0], ps[1], ps[2], ps[4]]);
                b.ins().return_(&[]);
            },
        )?)
    } else {
        None
    };
    let upd_id = if !inline {
        Some(define_fn(
            module,
            &mut ctx,
            &mut fbc,
            "updates",
            Linkage::Local,
            &sig5,
            &mut |module, b, ps| {
                cg.updates(module, b, [ps[0], ps[1], ps[2], ps[3], ps[4]]);
                b.ins().return_(&[]);
            },
        )?)
    } else {
        None
    };
    // Records read signals (or events read the signals computed before a record).
    let record_signals =
        !lean_records || n_events(flat) > 0 || probes.iter().any(|p| matches!(p, Probe::Signal(_)));
    // driver(x, p, s, work, rec, io)
    let mut dsig = sig5.clone();
    dsig.params.push(dsig.params[0]);
    let drv_id = define_fn(
        module,
        &mut ctx,
        &mut fbc,
        driver_name,
        Linkage::Export,
        &dsig,
        &mut |module, b, ps| {
            let sref = sig_id.map(|id| module.declare_func_in_func(id, b.func));
            let uref = upd_id.map(|id| module.declare_func_in_func(id, b.func));
            let aref = all_id.map(|id| module.declare_func_in_func(id, b.func));
            let eref = eul_id.map(|id| module.declare_func_in_func(id, b.func));
            let args = driver::Args {
                x: ps[0],
                s: ps[2],
                work: ps[3],
                rec: ps[4],
                io: ps[5],
                powf: cg.shim_ref(module, b, "dyn_powf"),
                max: cg.shim_ref(module, b, "dyn_max"),
            };
            let layout = driver::Layout {
                n: flat.n_state,
                probes: probes.to_vec(),
                method: spec.method,
                discrete: flat.time != TimeKind::Continuous,
                events: n_events(flat) > 0,
                stream: spec.stream.as_ref().map(|_| root_input_slots(flat)),
                regs: false,
                fused_euler: false,
                next_all: cg.next_all(),
            };
            // Small models: the model's code is emitted inline at every stage, without calls.
            let (p, s) = (ps[1], ps[2]);
            let (work, io) = (ps[3], ps[5]);
            let flags_at = (WORK_BUFFERS * flat.n_state.max(1) * 8) as i64;
            let layout = driver::Layout {
                regs,
                fused_euler,
                ..layout
            };
            let mut model = |b: &mut FunctionBuilder,
                             part: driver::Part,
                             bufs: driver::Bufs|
             -> Vec<cranelift_codegen::ir::Value> {
                let (x, o) = match bufs {
                    driver::Bufs::Mem(x, o) => (x, o),
                    driver::Bufs::Regs(xs) => {
                        let x = ps[0];
                        return match part {
                            driver::Part::Updates => cg.updates_regs(module, b, [x, p, s, io], xs),
                            _ => {
                                let lean = part == driver::Part::Signals;
                                cg.signals_regs(module, b, [x, p, s, io], xs, lean);
                                vec![]
                            }
                        };
                    }
                };
                // Lean records: a record of states alone needs no signals (nor does the run
                // after it: the next step computes the signals it reads).
                if part == driver::Part::Record && !record_signals {
                    return vec![];
                }
                match (inline, part) {
                    (_, driver::Part::Events) => {
                        let flags = b.ins().iadd_imm_s(work, flags_at);
                        cg.events(module, b, [x, p, s, o, flags, io]);
                    }
                    (_, driver::Part::Rising) => {
                        let flags = b.ins().iadd_imm_s(work, flags_at);
                        return vec![cg.rising(module, b, [x, p, s, flags, io])];
                    }
                    (true, driver::Part::Signals) => cg.signals_lean(module, b, [x, p, s, io]),
                    (true, driver::Part::Record) => cg.signals(module, b, [x, p, s, io]),
                    (false, driver::Part::Record) => {
                        b.ins()
                            .call(aref.expect("defined when not inline"), &[x, p, s, o, io]);
                    }
                    (true, driver::Part::Updates) => cg.updates(module, b, [x, p, s, o, io]),
                    (true, driver::Part::EulerStep) => {
                        cg.euler_step(module, b, [x, p, s, o, io]);
                    }
                    (false, driver::Part::EulerStep) => {
                        b.ins()
                            .call(eref.expect("defined when not inline"), &[x, p, s, o, io]);
                    }
                    (false, driver::Part::Signals) => {
                        b.ins()
                            .call(sref.expect("defined when not inline"), &[x, p, s, o, io]);
                    }
                    (false, driver::Part::Updates) => {
                        b.ins()
                            .call(uref.expect("defined when not inline"), &[x, p, s, o, io]);
                    }
                }
                vec![]
            };
            // The driver returns from its own exit blocks.
            driver::emit(b, &args, &layout, &mut model);
        },
    )?;
    Ok(Emitted {
        driver: drv_id,
        scratch: cg.scratch.get(),
    })
}

fn build(
    flat: &Flat,
    spec: &RunSpec,
    names: Vec<String>,
    probes: Vec<Probe>,
    lean_records: bool,
) -> Result<Compiled, Unsupported> {
    let mut fb = settings::builder();
    fb.set("opt_level", "speed").map_err(err)?;
    let isa = cranelift_native::builder()
        .map_err(err)?
        .finish(settings::Flags::new(fb))
        .map_err(err)?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, _, ptr) in shims::SHIMS {
        jb.symbol(*name, *ptr);
    }
    jb.symbol("dyn_randn", shims::dyn_randn as *const u8);
    linalg::register(&mut jb);
    let mut module = JITModule::new(jb);
    let emitted = emit_program_with(&mut module, flat, spec, &probes, "driver", lean_records)?;
    let drv_id = emitted.driver;
    module.finalize_definitions().map_err(err)?;
    let code = module.get_finalized_function(drv_id);
    // SAFETY: `code` is the driver just defined with the signature `dsig`: six pointers, no
    // result, the platform's C calling convention.
    let driver: Driver = unsafe { std::mem::transmute::<*const u8, Driver>(code) };
    Ok(Compiled {
        _module: module,
        driver,
        scratch: emitted.scratch,
        probes,
        names,
    })
}

/// Declares a function, builds its body from the entry block's parameters (the body emits
/// its own returns), and defines it in `module`.
fn define_fn<M: Module>(
    module: &mut M,
    ctx: &mut cranelift_codegen::Context,
    fbc: &mut FunctionBuilderContext,
    name: &str,
    linkage: Linkage,
    sig: &cranelift_codegen::ir::Signature,
    body: &mut dyn FnMut(&mut M, &mut FunctionBuilder, &[cranelift_codegen::ir::Value]),
) -> Result<FuncId, Unsupported> {
    let id = module.declare_function(name, linkage, sig).map_err(err)?;
    ctx.func.signature = sig.clone();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fbc);
        let blk = b.create_block();
        b.append_block_params_for_function_params(blk);
        b.switch_to_block(blk);
        b.seal_block(blk);
        let ps = b.block_params(blk).to_vec();
        body(module, &mut b, &ps);
        b.finalize(module.target_config());
    }
    // `DYN_JIT_DUMP=1` prints the generated Cranelift IR (after the frontend, before
    // optimisation) of every function, `DYN_JIT_DUMP=asm` also the machine code: for looking
    // at what the code generator emits.
    if std::env::var_os("DYN_JIT_DUMP").is_some() {
        eprintln!("; {name}\n{}", ctx.func.display());
    }
    let asm = std::env::var("DYN_JIT_DUMP").is_ok_and(|v| v == "asm");
    ctx.set_disasm(asm);
    module
        .define_function(id, ctx)
        .map_err(|e| err(format!("{name}: {e:?}")))?;
    if asm && let Some(code) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()) {
        eprintln!("; {name} (machine code)\n{code}");
    }
    module.clear_context(ctx);
    Ok(id)
}

/// Runs `flat` compiled, with the interpreter's semantics: same header, rows and errors.
/// `Ok(Err(reason))` when the program is not supported (nothing was called).
pub fn run(
    flat: &Flat,
    spec: &RunSpec,
    header: &mut dyn FnMut(&[String]),
    row: &mut dyn FnMut(f64, &[f64]),
) -> Result<Result<(u64, Timings), Unsupported>, RunError> {
    let t0 = Instant::now();
    let compiled = match compile(flat, spec)? {
        Ok(c) => c,
        Err(u) => return Ok(Err(u)),
    };
    let compile_time = t0.elapsed();
    header(&compiled.names);
    let mut sim = Sim::new(flat, spec)?;
    // As the interpreter: with noise in `der`, `randn()` is scaled by 1/sqrt(dt).
    let scale = if noisy(flat) && flat.time == TimeKind::Continuous {
        1.0 / spec.dt.sqrt()
    } else {
        1.0
    };
    let mut io = [0.0f64; driver::io::WORDS];
    let word = |at: i32| at as usize / 8;
    io[word(driver::io::RNG)] = f64::from_bits(sim.m.rng_ptr() as u64);
    io[word(driver::io::SCALE)] = scale;
    // The input table in root-input order; the interpreter's checks (columns, length) ran
    // in `Sim::new` and are repeated here for the run's length.
    let table: Vec<f64> = match &spec.stream {
        Some(st) => {
            let cols: Vec<usize> = sim.stream_columns().to_vec();
            st.rows
                .iter()
                .flat_map(|row| cols.iter().map(move |c| row[*c]))
                .collect()
        }
        None => vec![],
    };
    io[word(driver::io::STREAM)] = f64::from_bits(table.as_ptr() as u64);
    let mut scratch = vec![0.0f64; compiled.scratch.max(1)];
    io[word(driver::io::SCRATCH)] = f64::from_bits(scratch.as_mut_ptr() as u64);
    let n = flat.n_state;
    let np = compiled.probes.len();
    let (count, every, dt) = if flat.time == TimeKind::Continuous {
        if !(spec.dt > 0.0 && spec.dt.is_finite()) {
            return Err(RunError::Setting(format!(
                "the step dt must be positive, not {}",
                spec.dt
            )));
        }
        let until = match (spec.until, spec.steps) {
            (Some(u), _) => u,
            (None, Some(s)) => s as f64 * spec.dt,
            (None, None) => return Err(RunError::Setting("give `until T` (or `steps N`)".into())),
        };
        let every = spec.every.unwrap_or(spec.dt);
        if every.is_nan() || every <= 0.0 {
            return Err(RunError::Setting(
                "the recording interval must be positive".into(),
            ));
        }
        ((until / every + 1e-9).floor() as u64, every, spec.dt)
    } else {
        let steps = spec
            .steps
            .or(spec.until.map(|u| u.round() as u64))
            .ok_or_else(|| {
                RunError::Setting("give `steps N` (or `until T`) for a discrete system".into())
            })?;
        (
            steps,
            spec.every.map(|e| (e.round() as u64).max(1)).unwrap_or(1) as f64,
            0.0,
        )
    };
    let rows = if flat.time == TimeKind::Continuous {
        count + 1
    } else {
        count / every as u64 + 1
    };
    // The run is cut into calls of about 1% of the records each (at most 2^16 records or
    // steps), so the caller sees rows (and can show progress) while it runs; each call
    // continues where the last stopped. The record buffer holds one call's rows.
    let total = count;
    let chunk = (total / 100).clamp(1, 1 << 16);
    let per_call = if flat.time == TimeKind::Continuous {
        chunk
    } else {
        chunk / every as u64
    } + 2;
    let mut rec = vec![0.0; (per_call.min(rows) as usize) * np.max(1)];
    let mut work = vec![0.0; WORK_BUFFERS * n.max(1) + n_events(flat)];
    for (k, f) in sim.event_flags().iter().enumerate() {
        work[WORK_BUFFERS * n.max(1) + k] = if *f { 1.0 } else { 0.0 };
    }
    io[10] = spec.dt;
    io[8] = spec.rtol;
    io[9] = spec.atol;
    io[0] = f64::from_bits(count);
    io[1] = every;
    io[2] = dt;
    // The io slots COUNT, ROWS and BAD_SLOT hold i64s.
    let _ = linalg::take_error();
    let start = Instant::now();
    if let Some(st) = &spec.stream {
        let need = if flat.time == TimeKind::Continuous {
            (spec.until.unwrap_or(count as f64 * spec.dt) / spec.dt - 1e-9).ceil() as u64
        } else {
            count
        };
        if (st.rows.len() as u64) < need {
            // The interpreter writes the initial row, then stops: so does this.
            sim.m.signals(&sim.x, &sim.inputs).map_err(RunError::from)?;
            let vals: Vec<f64> = compiled
                .probes
                .iter()
                .map(|p| match p {
                    Probe::State(i) => sim.x[*i],
                    Probe::Signal(i) => sim.m.sig[*i],
                })
                .collect();
            row(0.0, &vals);
            return Err(RunError::Input(if flat.time == TimeKind::Continuous {
                format!(
                    "the input stream has {} rows but the run takes {need} steps of dt = {} (one row a step)",
                    st.rows.len(),
                    spec.dt
                )
            } else {
                format!(
                    "the input stream has {} rows but the run takes {need} steps (one row a step)",
                    st.rows.len()
                )
            }));
        }
    }
    io[word(driver::io::TOTAL)] = f64::from_bits(total);
    let mut r0 = 1u64;
    let mut emitted = 0usize;
    loop {
        let r1 = (r0 + chunk - 1).min(total);
        io[0] = f64::from_bits(r1);
        io[6] = f64::from_bits(r0);
        io[7] = if flat.time == TimeKind::Continuous {
            (r0 - 1) as f64 * every
        } else {
            0.0
        };
        // SAFETY: every buffer has the length the generated code indexes: x has n_state
        // slots, p n_param, s n_signal, work 10 × n plus the event flags, rec one call's rows,
        // io 11 words; the noise cell points at `sim`'s generator and the stream cell at
        // `table`, which has at least as many rows as the run reads (checked above).
        unsafe {
            (compiled.driver)(
                sim.x.as_mut_ptr(),
                sim.m.params.as_ptr(),
                sim.m.sig.as_mut_ptr(),
                work.as_mut_ptr(),
                // Row r of this call is written at `r - emitted` of `rec`: the code indexes
                // by the absolute row, so the pointer it gets is shifted back (it only
                // dereferences rows emitted..written, which are inside `rec`).
                rec.as_mut_ptr().wrapping_sub(emitted * np),
                io.as_mut_ptr(),
            );
        }
        let written = (io[3].to_bits() as usize).min(rows as usize);
        for r in emitted..written {
            // Record r is at r × every: a time, or (discrete) a step count.
            let k = r - emitted;
            row(r as f64 * every, &rec[k * np..(k + 1) * np]);
        }
        emitted = written;
        let bad = io[5].to_bits() as i64;
        if bad >= 0 {
            if let Some(msg) = linalg::take_error() {
                // A failed `solve` or `spectral_radius` made the NaN: the interpreter's error.
                return Err(RunError::Eval(msg));
            }
            let slot = bad as usize;
            return Err(RunError::NotFinite {
                name: state_name(flat, slot),
                time: io[4],
                last: sim.x[slot],
            });
        }
        if r1 >= total {
            break;
        }
        r0 = r1 + 1;
    }
    let run_time = start.elapsed();
    let steps = if flat.time == TimeKind::Continuous {
        (count as f64 * every / dt).round() as u64
    } else {
        count
    };
    Ok(Ok((
        steps,
        Timings {
            compile: compile_time,
            run: run_time,
        },
    )))
}
