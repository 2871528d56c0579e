//! Ahead-of-time compilation of dyn models (`dyn build`).
//!
//! The model's code is the JIT's: [`dyn_jit::emit_program`] (the run loop, recording) and
//! [`dyn_jit::emit_init`] (params, initial states, signals, event flags) are emitted by
//! Cranelift into an object file instead of memory. A small C runtime (`runtime/` in this
//! crate, embedded in the `dyn` binary) provides what that code calls — the math shims with
//! Rust's arithmetic, the noise generator — and what a program needs around it: `main`
//! with `dyn run`'s flags, CSV in and out (executables), or the C API of `runtime/api.h`
//! (libraries). The system C compiler links them.
//!
//! What the runtime knows of the model (sizes, names, slots, the run block, the generated
//! functions) is written as C tables into a generated `model.c` (`DYN_MODEL`, see
//! `runtime/dyn_rt.h`). The runtime's own sources do not depend on the model: they are
//! compiled once per C compiler and kept in a cache directory (`$DYN_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/dyn`, else `~/.cache/dyn`), so a build is Cranelift plus one `cc` call
//! that compiles the tables and links:
//!
//! ```text
//! model.o         dyn_gen_init, dyn_gen_run (executable) or dyn_gen_step (library)
//! model_stream.o  dyn_gen_run_stream: the run loop reading an input stream (executables
//!                 of models with inputs; the same code with the stream's reads)
//! model.c         const dyn_model_info DYN_MODEL = {…}: sizes, names, slots, run block
//! rt.o            (cached) shims, noise generator, number formats
//! main.o / lib.o  (cached) `main` with `dyn run`'s flags and CSV, or the C API
//! ```

use cranelift_codegen::settings::{self, Configurable};
use cranelift_module::default_libcall_names;
use cranelift_object::{ObjectBuilder, ObjectModule};
use dyn_interp::run::{Method, Probe, RunSpec, Stream};
use dyn_ir::flat::Flat;
use dyn_ir::system::TimeKind;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The runtime's internal header.
pub const RT_H: &str = include_str!("../runtime/dyn_rt.h");
/// The runtime's shared part: shims, noise, number formats.
pub const RT_C: &str = include_str!("../runtime/rt.c");
/// The tables of the runtime's float-to-decimal conversion (written by `gen_pow5.py`).
pub const POW5_H: &str = include_str!("../runtime/pow5.h");
/// `main` of executables.
pub const MAIN_C: &str = include_str!("../runtime/main.c");
/// The library API's implementation.
pub const LIB_C: &str = include_str!("../runtime/lib.c");
/// The library API (the generated header is this, after a list of the model's names).
pub const API_H: &str = include_str!("../runtime/api.h");

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A standalone executable that runs the model's run block and writes CSV.
    Executable,
    /// A shared library with the C API of `runtime/api.h`, and its header.
    Library,
}

/// How to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// Executable or library.
    pub kind: Kind,
    /// The file to write (the library's header goes beside it, with the extension `.h`).
    pub output: PathBuf,
    /// The C compiler (default: `$CC`, else `cc`).
    pub cc: Option<String>,
    /// Keep the intermediate files (object files, C sources) in this directory.
    pub keep: Option<PathBuf>,
}

/// Why a build failed.
#[derive(Debug)]
pub enum BuildError {
    /// The code generator does not support the model.
    Unsupported(String),
    /// This machine is not one `dyn build` can compile for.
    Target(String),
    /// No C compiler could be started.
    NoCompiler(String),
    /// The C compiler failed (its output).
    Compiler(String),
    /// The run settings do not fit the model (an unknown param or record name).
    Settings(String),
    /// Reading or writing files.
    Io(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Unsupported(w) => write!(
                f,
                "the compiler does not support {w} yet (`dyn run` runs it in the interpreter)"
            ),
            BuildError::Target(m)
            | BuildError::NoCompiler(m)
            | BuildError::Compiler(m)
            | BuildError::Settings(m)
            | BuildError::Io(m) => f.write_str(m),
        }
    }
}

/// What a build made and how long it took.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The files written (the executable or library; the header).
    pub files: Vec<PathBuf>,
    /// Cranelift: code generation and object files.
    pub codegen: Duration,
    /// The C compiler and linker.
    pub link: Duration,
}

/// The targets `dyn build` supports: the machine it runs on, when that is x86-64 or
/// AArch64 under Linux or macOS.
pub fn check_target() -> Result<(), BuildError> {
    target_supported(std::env::consts::ARCH, std::env::consts::OS)
}

/// Whether `dyn build` supports a machine of this architecture and OS (Rust's names, as in
/// `std::env::consts`).
pub fn target_supported(arch: &str, os: &str) -> Result<(), BuildError> {
    if matches!(arch, "x86_64" | "aarch64") && matches!(os, "linux" | "macos") {
        Ok(())
    } else {
        Err(BuildError::Target(format!(
            "`dyn build` compiles for the machine it runs on, and supports x86_64 and aarch64 \
             under Linux or macOS; this is {arch} {os}"
        )))
    }
}

/// The C compiler to use: `opt`, else `$CC`, else `cc`.
pub fn c_compiler(opt: Option<&str>) -> String {
    opt.map(str::to_string)
        .or_else(|| std::env::var("CC").ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "cc".to_string())
}

fn isa() -> Result<cranelift_codegen::isa::OwnedTargetIsa, BuildError> {
    let e = |x: String| BuildError::Target(format!("no code generator for this machine: {x}"));
    let mut fb = settings::builder();
    fb.set("opt_level", "speed").map_err(|x| e(x.to_string()))?;
    // Position-independent code: the objects go into PIEs and shared libraries.
    fb.set("is_pic", "true").map_err(|x| e(x.to_string()))?;
    cranelift_native::builder()
        .map_err(|x| e(x.to_string()))?
        .finish(settings::Flags::new(fb))
        .map_err(|x| e(x.to_string()))
}

fn new_module(name: &str) -> Result<ObjectModule, BuildError> {
    let b = ObjectBuilder::new(isa()?, name, default_libcall_names())
        .map_err(|e| BuildError::Target(format!("cannot write objects for this machine: {e}")))?;
    Ok(ObjectModule::new(b))
}

fn finish(module: ObjectModule) -> Result<Vec<u8>, BuildError> {
    module
        .finish()
        .emit()
        .map_err(|e| BuildError::Io(format!("writing the object file: {e}")))
}

/// An object file: its name and bytes.
type Object = (&'static str, Vec<u8>);

/// The object files of `flat` and the scratch words its code needs.
fn objects(
    flat: &Flat,
    spec: &RunSpec,
    probes: &[Probe],
    kind: Kind,
) -> Result<(Vec<Object>, usize), BuildError> {
    let uns = BuildError::Unsupported;
    let mut out = Vec::new();
    let plain = RunSpec {
        stream: None,
        ..spec.clone()
    };
    let mut m = new_module("model")?;
    let (driver, recorded) = match kind {
        Kind::Executable => ("dyn_gen_run", probes),
        Kind::Library => ("dyn_gen_step", &[][..]),
    };
    let e = dyn_jit::emit_program(&mut m, flat, &plain, recorded, driver).map_err(uns)?;
    let i = dyn_jit::emit_init(&mut m, flat, "dyn_gen_init").map_err(uns)?;
    let mut scratch = e.scratch.max(i.scratch);
    out.push(("model.o", finish(m)?));
    if kind == Kind::Executable && !dyn_jit::root_input_slots(flat).is_empty() {
        let streamed = RunSpec {
            stream: Some(Stream::default()),
            ..spec.clone()
        };
        let mut m = new_module("model_stream")?;
        let e = dyn_jit::emit_program(&mut m, flat, &streamed, probes, "dyn_gen_run_stream")
            .map_err(uns)?;
        scratch = scratch.max(e.scratch);
        out.push(("model_stream.o", finish(m)?));
    }
    Ok((out, scratch))
}

/// A C string literal.
fn c_str(s: &str) -> String {
    let mut o = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                o.push('\\');
                o.push(b as char);
            }
            0x20..=0x7e => o.push(b as char),
            _ => {
                let _ = write!(o, "\\{b:03o}");
            }
        }
    }
    o.push('"');
    o
}

/// A C double constant with the same value.
fn c_f64(v: f64) -> String {
    if v.is_nan() {
        "NAN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "INFINITY" } else { "-INFINITY" }.into()
    } else {
        // Rust's `{:e}` is the shortest form that reads back as `v`; C compilers read
        // decimal constants correctly rounded.
        format!("{v:e}")
    }
}

fn c_array<T>(out: &mut String, ty: &str, name: &str, items: &[T], f: impl Fn(&T) -> String) {
    let _ = write!(out, "static const {ty} {name}[] = {{");
    if items.is_empty() {
        out.push('0');
    }
    for (k, it) in items.iter().enumerate() {
        if k % 8 == 0 {
            out.push_str("\n    ");
        }
        out.push_str(&f(it));
        out.push_str(", ");
    }
    out.push_str("\n};\n");
}

/// Names of the root's inputs or outputs (tensors expanded) with their signal slots.
fn root_ports(flat: &Flat, outputs: bool) -> Vec<(String, usize)> {
    let g = &flat.groups[0];
    let sys = &flat.program.systems[g.system as usize];
    let (ports, offs) = if outputs {
        (&sys.outputs, &g.out_off)
    } else {
        (&sys.inputs, &g.in_off)
    };
    let mut v = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let base = g.sig(0, offs[i]);
        if p.shape.is_empty() {
            v.push((p.name.clone(), base));
        } else {
            let n = dyn_ir::system::slots(&p.shape);
            v.extend((0..n).map(|j| (format!("{}[{j}]", p.name), base + j)));
        }
    }
    v
}

/// Diagnostic codes the runtime prints (`dyn run`'s).
#[derive(Debug, Clone)]
pub struct Codes {
    /// A state became NaN or infinite.
    pub not_finite: String,
    /// An unknown param path.
    pub bad_param: String,
    /// A bad run setting.
    pub bad_run: String,
    /// A bad input stream.
    pub bad_input: String,
}

/// The generated `model.c`: the model's tables, then the runtime's sources.
#[allow(clippy::too_many_arguments)]
fn model_c(
    flat: &Flat,
    spec: &RunSpec,
    system: &str,
    names: &[String],
    probes: &[Probe],
    scratch: usize,
    kind: Kind,
    codes: &Codes,
) -> String {
    use dyn_jit::driver::io;
    let mut o =
        String::from("/* Generated by `dyn build`: the model's tables for the runtime. */\n");
    let inputs = root_ports(flat, false);
    let outputs = root_ports(flat, true);
    let stream = kind == Kind::Executable && !inputs.is_empty();
    o.push_str("#include <math.h>\n#include \"dyn_rt.h\"\n\n");
    let driver = match kind {
        Kind::Executable => "dyn_gen_run",
        Kind::Library => "dyn_gen_step",
    };
    let _ = writeln!(
        o,
        "extern void dyn_gen_init(double *, double *, double *, double *, const double *,\n    const double *, double *);"
    );
    for d in [Some(driver), stream.then_some("dyn_gen_run_stream")]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            o,
            "extern void {d}(double *, const double *, double *, double *, double *, double *);"
        );
    }
    o.push('\n');
    let params = dyn_jit::param_slots(flat);
    let all = dyn_interp::run::probes(flat);
    let mut state_names = vec![String::new(); flat.n_state];
    for (n, p) in &all {
        if let Probe::State(i) = p
            && state_names[*i].is_empty()
        {
            state_names[*i] = n.clone();
        }
    }
    for (i, n) in state_names.iter_mut().enumerate() {
        if n.is_empty() {
            *n = format!("state #{i}");
        }
    }
    let s = |x: &String| c_str(x);
    let z = |x: &usize| format!("{x}");
    c_array(
        &mut o,
        "char *const",
        "block_param_paths",
        &spec.params,
        |(p, _)| c_str(p),
    );
    c_array(
        &mut o,
        "double",
        "block_param_values",
        &spec.params,
        |(_, v)| c_f64(*v),
    );
    c_array(&mut o, "char *const", "rec_names", names, s);
    let kinds: Vec<u8> = probes
        .iter()
        .map(|p| u8::from(matches!(p, Probe::Signal(_))))
        .collect();
    c_array(&mut o, "unsigned char", "rec_kind", &kinds, |k| {
        format!("{k}")
    });
    let slots: Vec<usize> = probes
        .iter()
        .map(|p| match p {
            Probe::State(i) | Probe::Signal(i) => *i,
        })
        .collect();
    c_array(&mut o, "size_t", "rec_slot", &slots, z);
    c_array(
        &mut o,
        "char *const",
        "param_paths",
        &params,
        |(p, _, _)| c_str(p),
    );
    c_array(&mut o, "size_t", "param_slot", &params, |(_, at, _)| {
        format!("{at}")
    });
    c_array(&mut o, "size_t", "param_len", &params, |(_, _, n)| {
        format!("{n}")
    });
    c_array(&mut o, "char *const", "input_names", &inputs, |(n, _)| {
        c_str(n)
    });
    c_array(&mut o, "size_t", "input_slot", &inputs, |(_, k)| {
        format!("{k}")
    });
    c_array(&mut o, "char *const", "output_names", &outputs, |(n, _)| {
        c_str(n)
    });
    c_array(&mut o, "size_t", "output_slot", &outputs, |(_, k)| {
        format!("{k}")
    });
    c_array(&mut o, "char *const", "state_names", &state_names, s);
    c_array(&mut o, "char *const", "probe_names", &all, |(n, _)| {
        c_str(n)
    });
    c_array(&mut o, "unsigned char", "probe_kind", &all, |(_, p)| {
        format!("{}", u8::from(matches!(p, Probe::Signal(_))))
    });
    c_array(&mut o, "size_t", "probe_slot", &all, |(_, p)| match p {
        Probe::State(i) | Probe::Signal(i) => format!("{i}"),
    });
    let w = |at: i32| at as usize / 8;
    let method = match spec.method {
        Method::Euler => 0,
        Method::Rk4 => 1,
        Method::Rk45 => 2,
    };
    let _ = write!(
        o,
        "\nconst dyn_model_info DYN_MODEL = {{
    .system = {system},
    .init = dyn_gen_init,
    .run = {driver},
    .run_stream = {run_stream},
    .discrete = {discrete},
    .method = {method},
    .noisy = {noisy},
    .n_state = {n_state}, .n_param = {n_param}, .n_signal = {n_signal}, .n_events = {n_events},
    .scratch = {scratch},
    .work_buffers = {work_buffers},
    .io_words = {io_words}, .io_count = {count}, .io_every = {every}, .io_dt = {dt},
    .io_rows = {rows}, .io_bad_t = {bad_t}, .io_bad_slot = {bad_slot}, .io_start = {start},
    .io_t0 = {t0}, .io_rtol = {rtol}, .io_atol = {atol}, .io_h = {h}, .io_rng = {rng},
    .io_scale = {scale}, .io_stream = {stream}, .io_scratch = {scr}, .io_total = {total},
    .has_until = {has_until}, .until = {until},
    .has_steps = {has_steps}, .steps = {steps}ULL,
    .dt = {sdt}, .rtol = {srtol}, .atol = {satol},
    .has_every = {has_every}, .every = {severy},
    .seed = {seed}ULL,
    .n_block_params = {nbp}, .block_param_paths = block_param_paths,
    .block_param_values = block_param_values,
    .n_rec = {n_rec}, .rec_names = rec_names, .rec_kind = rec_kind, .rec_slot = rec_slot,
    .n_params = {n_params}, .param_paths = param_paths, .param_slot = param_slot,
    .param_len = param_len,
    .n_inputs = {n_inputs}, .input_names = input_names, .input_slot = input_slot,
    .n_outputs = {n_outputs}, .output_names = output_names, .output_slot = output_slot,
    .state_names = state_names,
    .n_probes = {n_probes}, .probe_names = probe_names, .probe_kind = probe_kind,
    .probe_slot = probe_slot,
    .code_not_finite = {c1}, .code_bad_param = {c2}, .code_bad_run = {c3},
    .code_bad_input = {c4},
}};\n\n",
        system = c_str(system),
        run_stream = if stream { "dyn_gen_run_stream" } else { "NULL" },
        discrete = i32::from(flat.time != TimeKind::Continuous),
        noisy = i32::from(dyn_jit::noisy(flat)),
        n_state = flat.n_state,
        n_param = flat.n_param,
        n_signal = flat.n_signal,
        n_events = dyn_jit::n_events(flat),
        scratch = scratch.max(1),
        work_buffers = dyn_jit::WORK_BUFFERS,
        io_words = io::WORDS,
        count = w(io::COUNT),
        every = w(io::EVERY),
        dt = w(io::DT),
        rows = w(io::ROWS),
        bad_t = w(io::BAD_T),
        bad_slot = w(io::BAD_SLOT),
        start = w(io::START),
        t0 = w(io::T0),
        rtol = w(io::RTOL),
        atol = w(io::ATOL),
        h = w(io::H),
        rng = w(io::RNG),
        total = w(io::TOTAL),
        scale = w(io::SCALE),
        stream = w(io::STREAM),
        scr = w(io::SCRATCH),
        has_until = i32::from(spec.until.is_some()),
        until = c_f64(spec.until.unwrap_or(0.0)),
        has_steps = i32::from(spec.steps.is_some()),
        steps = spec.steps.unwrap_or(0),
        sdt = c_f64(spec.dt),
        srtol = c_f64(spec.rtol),
        satol = c_f64(spec.atol),
        has_every = i32::from(spec.every.is_some()),
        severy = c_f64(spec.every.unwrap_or(0.0)),
        seed = spec.seed,
        nbp = spec.params.len(),
        n_rec = names.len(),
        n_params = params.len(),
        n_inputs = inputs.len(),
        n_outputs = outputs.len(),
        n_probes = all.len(),
        c1 = c_str(&codes.not_finite),
        c2 = c_str(&codes.bad_param),
        c3 = c_str(&codes.bad_run),
        c4 = c_str(&codes.bad_input),
    );
    o
}

/// The library's header: a list of the model's names with their indices, then the API.
pub fn header(flat: &Flat, system: &str) -> String {
    let mut o = format!(
        "/* Generated by `dyn build --lib`: the model `{system}` as a shared library.\n *\n"
    );
    let list = |o: &mut String, title: &str, names: &[String]| {
        let _ = writeln!(o, " * {title} ({}):", names.len());
        for (i, n) in names.iter().enumerate().take(50) {
            let _ = writeln!(o, " *   {i:>4}  {n}");
        }
        if names.len() > 50 {
            let _ = writeln!(o, " *   … ({} more)", names.len() - 50);
        }
    };
    let params: Vec<String> = dyn_jit::param_slots(flat)
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    let ins: Vec<String> = root_ports(flat, false).into_iter().map(|p| p.0).collect();
    let outs: Vec<String> = root_ports(flat, true).into_iter().map(|p| p.0).collect();
    list(&mut o, "params", &params);
    list(&mut o, "inputs", &ins);
    list(&mut o, "outputs", &outs);
    o.push_str(" */\n\n");
    o.push_str(API_H);
    o
}

/// Flags of every C compilation: no contraction into fused multiply-adds (the generated
/// code and Rust round every operation), position-independent code (for libraries),
/// only the API visible from a library.
pub const CFLAGS: [&str; 6] = [
    "-std=gnu11",
    "-O2",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-fPIC",
    "-fvisibility=hidden",
];

/// A command running the C compiler `cc`, which may carry arguments (`CC="ccache gcc"`).
pub fn cc_command(cc: &str) -> Command {
    let mut words = cc.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap_or("cc"));
    cmd.args(words);
    cmd
}

/// Runs the C compiler; a compiler that cannot be started is [`BuildError::NoCompiler`].
fn run_cc(cc: &str, cmd: &mut Command) -> Result<(), BuildError> {
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BuildError::NoCompiler(format!(
                "no C compiler found: `{cc}` could not be started ({e}); install one \
                 (e.g. gcc or clang) or name it with the CC environment variable"
            ))
        } else {
            BuildError::NoCompiler(format!("cannot start the C compiler `{cc}`: {e}"))
        }
    })?;
    if !out.status.success() {
        return Err(BuildError::Compiler(format!(
            "the C compiler `{cc}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// The directory of compiled runtime objects, if one can be made.
fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let d = env("DYN_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("dyn")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("dyn")))?;
    std::fs::create_dir_all(&d).ok()?;
    Some(d)
}

/// FNV-1a: a stable hash of the compiler, the flags and the sources, naming cached objects.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The object file of one runtime source: from the cache, or compiled (and cached).
fn runtime_object(cc: &str, dir: &Path, name: &str, src: &str) -> Result<PathBuf, BuildError> {
    let key = fnv(&[cc, &CFLAGS.join(" "), RT_H, API_H, POW5_H, src]);
    let file = format!("{name}-{key:016x}.o");
    let cache = cache_dir();
    if let Some(c) = &cache {
        let p = c.join(&file);
        if p.is_file() {
            return Ok(p);
        }
    }
    write(dir, "dyn_rt.h", RT_H.as_bytes())?;
    write(dir, "api.h", API_H.as_bytes())?;
    write(dir, "pow5.h", POW5_H.as_bytes())?;
    let c_file = write(dir, &format!("{name}.c"), src.as_bytes())?;
    let obj = dir.join(format!("{name}.o"));
    let mut cmd = cc_command(cc);
    cmd.args(CFLAGS)
        .arg("-I")
        .arg(dir)
        .arg("-c")
        .arg(&c_file)
        .arg("-o")
        .arg(&obj);
    run_cc(cc, &mut cmd)?;
    if let Some(c) = cache {
        // Another build may be filling the cache too: write aside, then rename.
        let tmp = c.join(format!("{file}.{}.tmp", std::process::id()));
        if std::fs::copy(&obj, &tmp).is_ok() {
            let dst = c.join(&file);
            if std::fs::rename(&tmp, &dst).is_ok() {
                return Ok(dst);
            }
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(obj)
}

/// A fresh directory for the intermediate files.
fn work_dir(keep: Option<&Path>) -> Result<(PathBuf, bool), BuildError> {
    if let Some(k) = keep {
        std::fs::create_dir_all(k)
            .map_err(|e| BuildError::Io(format!("cannot create `{}`: {e}", k.display())))?;
        return Ok((k.to_path_buf(), false));
    }
    let base = std::env::temp_dir();
    for n in 0..1000u32 {
        let d = base.join(format!("dyn-build-{}-{n}", std::process::id()));
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok((d, true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(BuildError::Io(format!(
                    "cannot create a directory in `{}`: {e}",
                    base.display()
                )));
            }
        }
    }
    Err(BuildError::Io("cannot create a temporary directory".into()))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, BuildError> {
    let p = dir.join(name);
    std::fs::write(&p, bytes)
        .map_err(|e| BuildError::Io(format!("cannot write `{}`: {e}", p.display())))?;
    Ok(p)
}

/// Compiles `flat` as `spec` runs it into an executable or a library (see the crate
/// documentation). `system` names the model in messages and in the header.
pub fn build(
    flat: &Flat,
    spec: &RunSpec,
    system: &str,
    codes: &Codes,
    opts: &Options,
) -> Result<Built, BuildError> {
    check_target()?;
    dyn_jit::supported_run(flat, spec).map_err(BuildError::Unsupported)?;
    if let Some(op) = dyn_ir::linalg::used_in(&flat.program) {
        // The C runtime has no linear-algebra library to call (the JIT calls nalgebra).
        return Err(BuildError::Unsupported(format!(
            "`{op}`, a dense linear-algebra built-in (the C runtime links no linear-algebra library)"
        )));
    }
    let t0 = Instant::now();
    let (names, probes) = match opts.kind {
        Kind::Executable => dyn_interp::run::recorded(flat, spec).map_err(|e| match e {
            dyn_interp::run::RunError::UnknownRecord { name, .. } => BuildError::Settings(format!(
                "cannot record `{name}`: no such state, port or let"
            )),
            other => BuildError::Settings(format!("{other:?}")),
        })?,
        Kind::Library => (vec![], vec![]),
    };
    let params = dyn_jit::param_slots(flat);
    for (p, _) in &spec.params {
        if !params.iter().any(|(q, _, _)| q == p) {
            return Err(BuildError::Settings(format!(
                "the run block sets `{p}`, which names no param"
            )));
        }
    }
    let (objs, scratch) = objects(flat, spec, &probes, opts.kind)?;
    let codegen = t0.elapsed();
    let (dir, temporary) = work_dir(opts.keep.as_deref())?;
    let result = (|| {
        let t1 = Instant::now();
        let cc = c_compiler(opts.cc.as_deref());
        write(&dir, "dyn_rt.h", RT_H.as_bytes())?;
        let mut inputs = vec![write(
            &dir,
            "model.c",
            model_c(
                flat, spec, system, &names, &probes, scratch, opts.kind, codes,
            )
            .as_bytes(),
        )?];
        for (name, bytes) in &objs {
            inputs.push(write(&dir, name, bytes)?);
        }
        let part = match opts.kind {
            Kind::Executable => ("main", MAIN_C),
            Kind::Library => ("lib", LIB_C),
        };
        for (name, src) in [("rt", RT_C), part] {
            inputs.push(runtime_object(&cc, &dir, name, src)?);
        }
        let mut cmd = cc_command(&cc);
        cmd.args(CFLAGS);
        if opts.kind == Kind::Library {
            cmd.arg(if std::env::consts::OS == "macos" {
                "-dynamiclib"
            } else {
                "-shared"
            });
        }
        cmd.arg("-I").arg(&dir).args(&inputs);
        cmd.arg("-lm").arg("-o").arg(&opts.output);
        run_cc(&cc, &mut cmd)?;
        let mut files = vec![opts.output.clone()];
        if opts.kind == Kind::Library {
            let h = opts.output.with_extension("h");
            std::fs::write(&h, header(flat, system))
                .map_err(|e| BuildError::Io(format!("cannot write `{}`: {e}", h.display())))?;
            files.push(h);
        }
        Ok(Built {
            files,
            codegen,
            link: t1.elapsed(),
        })
    })();
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_other_than_x86_64_and_aarch64_linux_and_macos_are_refused() {
        assert!(target_supported("x86_64", "linux").is_ok());
        assert!(target_supported("aarch64", "macos").is_ok());
        for (arch, os) in [
            ("riscv64", "linux"),
            ("x86_64", "windows"),
            ("x86", "linux"),
        ] {
            let e = target_supported(arch, os).unwrap_err().to_string();
            assert!(
                e.contains(arch) && e.contains(os) && e.contains("supports"),
                "{e}"
            );
        }
        assert!(
            check_target().is_ok(),
            "the machine running the tests is supported"
        );
    }

    #[test]
    fn c_text_is_escaped_and_numbers_read_back() {
        assert_eq!(c_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\012\"");
        assert_eq!(c_f64(0.1), "1e-1");
        assert_eq!(c_f64(f64::NEG_INFINITY), "-INFINITY");
        assert_eq!(c_f64(-2.5e-300), "-2.5e-300");
        assert_eq!(fnv(&["a", "b"]), fnv(&["a", "b"]));
        assert_ne!(fnv(&["ab", ""]), fnv(&["a", "b"]));
    }

    #[test]
    fn cc_may_carry_arguments() {
        let c = cc_command("ccache  gcc -m64");
        assert_eq!(c.get_program(), "ccache");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(args, ["gcc", "-m64"]);
    }
}
