//! `dyn build`: ahead-of-time compilation into an executable or a shared library
//! (`dyn_aot`).

use crate::run::{SpecFlags, check_file, spec_from_flags, target};
use dyn_diag::codes;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `dyn build`.
#[derive(clap::Args, Debug, Default)]
pub struct BuildArgs {
    /// The file to compile.
    pub file: PathBuf,
    /// The file to write (default: the model file's name without `.dyn`; with --lib,
    /// `lib<name>.so`, or `.dylib` on macOS). A library's header goes beside it as `.h`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Build a shared library with a C API (and its header) instead of an executable.
    #[arg(long)]
    pub lib: bool,
    /// The system to compile (default: the system of the file's `run` block).
    #[arg(long)]
    pub system: Option<String>,
    /// Integration method compiled in: euler, rk4 or rk45 (default: the run block's).
    #[arg(long)]
    pub method: Option<String>,
    /// Default step size (the executable's --dt overrides it).
    #[arg(long)]
    pub dt: Option<f64>,
    /// Default end time.
    #[arg(long)]
    pub until: Option<f64>,
    /// Default number of steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Default recording interval.
    #[arg(long)]
    pub every: Option<f64>,
    /// Relative tolerance of RK45.
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute tolerance of RK45.
    #[arg(long)]
    pub atol: Option<f64>,
    /// Default seed of `randn()`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// What the executable records, comma-separated (default: the run block's, else the
    /// outputs).
    #[arg(long, value_delimiter = ',')]
    pub record: Vec<String>,
    /// A default param override, `--param foxes.c=2.5` (repeatable).
    #[arg(long, value_name = "PATH=VALUE")]
    pub param: Vec<String>,
    /// The C compiler that links the program (default: $CC, else `cc`).
    #[arg(long)]
    pub cc: Option<String>,
    /// Keep the intermediate files (object files, generated C) in this directory.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Print the code generation and link times to stderr.
    #[arg(long)]
    pub timings: bool,
}

fn default_output(a: &BuildArgs) -> PathBuf {
    let stem = a
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    if a.lib {
        let ext = if std::env::consts::OS == "macos" {
            "dylib"
        } else {
            "so"
        };
        PathBuf::from(format!("lib{stem}.{ext}"))
    } else {
        PathBuf::from(stem)
    }
}

/// `dyn build`.
pub fn build(a: &BuildArgs, color: bool) -> ExitCode {
    if let Err(e) = dyn_aot::check_target() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let checked = match check_file(&a.file, color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (sig, block) = match target(&checked, a.system.as_deref()) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let spec = match spec_from_flags(
        &checked,
        block,
        &SpecFlags {
            method: a.method.as_deref(),
            until: a.until,
            steps: a.steps,
            dt: a.dt,
            rtol: a.rtol,
            atol: a.atol,
            every: a.every,
            seed: a.seed,
            record: &a.record,
            param: &a.param,
        },
        color,
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let flat = match dyn_ir::lower(&checked, &sig).and_then(dyn_ir::flat::flatten) {
        Ok(f) => f,
        Err(d) => {
            eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
            return ExitCode::from(1);
        }
    };
    let opts = dyn_aot::Options {
        kind: if a.lib {
            dyn_aot::Kind::Library
        } else {
            dyn_aot::Kind::Executable
        },
        output: a.output.clone().unwrap_or_else(|| default_output(a)),
        cc: a.cc.clone(),
        keep: a.keep.clone(),
    };
    let codes = dyn_aot::Codes {
        not_finite: codes::NOT_FINITE_STATE.id.to_string(),
        bad_param: codes::BAD_PARAM.id.to_string(),
        bad_run: codes::BAD_RUN.id.to_string(),
        bad_input: codes::BAD_INPUT.id.to_string(),
    };
    match dyn_aot::build(&flat, &spec, &sig.name, &codes, &opts) {
        Ok(built) => {
            if a.timings {
                eprintln!(
                    "dyn build: code generation {:.1} ms, C compile and link {:.1} ms",
                    built.codegen.as_secs_f64() * 1e3,
                    built.link.as_secs_f64() * 1e3
                );
            }
            let files: Vec<String> = built
                .files
                .iter()
                .map(|f| format!("`{}`", f.display()))
                .collect();
            eprintln!("built {}", files.join(" and "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            match e {
                dyn_aot::BuildError::Settings(m) => {
                    eprintln!("error[{}]: {m}", codes::BAD_RUN.id)
                }
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(2)
        }
    }
}
