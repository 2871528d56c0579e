//! `dyn fit`: fits a model's params (and initial states) to a recorded trace (CSV) by
//! minimising the mean squared error, with gradients through time (`dyn-fit`).

use crate::run::{apply_block, check_file, parse_method, target};
use dyn_fit::{Backend, Data, FitError, FitOptions, Optimizer, Problem};
use dyn_interp::run::RunSpec;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `dyn fit`.
#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// The model file.
    pub file: PathBuf,
    /// The system to fit (default: the system of the file's `run` block).
    #[arg(long)]
    pub system: Option<String>,
    /// The observations: CSV with a column `t` and columns named as the model's recordable
    /// quantities (`prey`, `foxes.pop`, `x`); empty cells are missing values.
    #[arg(long, value_name = "CSV")]
    pub data: PathBuf,
    /// The fitted variables, comma-separated: param paths (`a`, `foxes.c`) or state names,
    /// whose initial values are then fitted (`x`, `rabbits.r`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub params: Vec<String>,
    /// The optimizer: lbfgs (L-BFGS with a Moré–Thuente line search) or adam.
    #[arg(long, default_value = "lbfgs")]
    pub method: String,
    /// Iterations at most.
    #[arg(long, default_value_t = 100)]
    pub iters: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// The integrator: euler or rk4 (default: the run block's).
    #[arg(long)]
    pub integrator: Option<String>,
    /// The step (default: the run block's).
    #[arg(long)]
    pub dt: Option<f64>,
    /// Starting values and fixed values of params: PATH=VALUE (repeatable).
    #[arg(long, value_name = "PATH=VALUE")]
    pub param: Vec<String>,
    /// Starting initial values of states: NAME=VALUE (repeatable; `x=9`, `W[3]=0.1`).
    #[arg(long, value_name = "STATE=VALUE")]
    pub init: Vec<String>,
    /// Steps per checkpointed segment of the backward sweep (default: √N for N steps).
    #[arg(long)]
    pub segment: Option<u64>,
    /// jit, interp or auto (the JIT when it supports the synthesised step systems).
    #[arg(long, default_value = "auto")]
    pub backend: String,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// `dyn fit`.
pub fn fit(a: &FitArgs, color: bool) -> ExitCode {
    let optimizer = match a.method.as_str() {
        "lbfgs" => Optimizer::Lbfgs,
        "adam" => Optimizer::Adam { lr: a.lr },
        m => return usage(format!("unknown optimizer `{m}`: use lbfgs or adam")),
    };
    let backend = match a.backend.as_str() {
        "auto" => Backend::Auto,
        "jit" => Backend::Jit,
        "interp" => Backend::Interp,
        b => return usage(format!("unknown backend `{b}`: use jit, interp or auto")),
    };
    let data = match Data::read(&a.data) {
        Ok(d) => d,
        Err(e) => return usage(format!("the data: {e}")),
    };
    let checked = match check_file(&a.file, color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (sig, block) = match target(&checked, a.system.as_deref()) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let mut spec = RunSpec::default();
    if let Some(b) = block
        && let Err(d) = apply_block(&mut spec, b)
    {
        eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
        return ExitCode::from(1);
    }
    if let Some(m) = &a.integrator {
        match parse_method(m) {
            Some(m) => spec.method = m,
            None => return usage(format!("unknown integrator `{m}`: use euler or rk4")),
        }
    }
    if let Some(dt) = a.dt {
        if !(dt > 0.0 && dt.is_finite()) {
            return usage(format!("`--dt {dt}`: the step must be positive"));
        }
        spec.dt = dt;
    }
    for (flag, list, out) in [
        ("param", &a.param, &mut spec.params),
        ("init", &a.init, &mut spec.init),
    ] {
        for p in list {
            let Some((k, v)) = p.split_once('=') else {
                return usage(format!(
                    "`--{flag} {p}`: expected NAME=VALUE, e.g. `--{flag} a=1.2`"
                ));
            };
            let Ok(v) = v.trim().parse::<f64>() else {
                return usage(format!("`--{flag} {p}`: `{v}` is not a number"));
            };
            out.push((k.trim().to_string(), v));
        }
    }
    let flat = match dyn_ir::lower(&checked, &sig).and_then(dyn_ir::flat::flatten) {
        Ok(f) => f,
        Err(d) => {
            eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
            return ExitCode::from(1);
        }
    };
    let report = |e: FitError| -> ExitCode {
        match e {
            FitError::Model(d) => {
                eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
                ExitCode::from(1)
            }
            FitError::Run(_) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
            FitError::Data(_) | FitError::Setting(_) => usage(e),
        }
    };
    let vars = match dyn_fit::resolve_vars(&flat, &a.params) {
        Ok(v) => v,
        Err(e) => return report(e),
    };
    let mut problem = match Problem::new(&flat, &spec, &data, backend) {
        Ok(p) => p,
        Err(e) => return report(e),
    };
    if let Some(s) = a.segment {
        if s == 0 {
            return usage("`--segment` must be at least 1");
        }
        problem.segment = s;
    }
    let bar = indicatif::ProgressBar::new(a.iters);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} loss {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let opts = FitOptions {
        optimizer,
        iters: a.iters,
    };
    let b2 = bar.clone();
    let result = dyn_fit::fit::fit(&problem, &vars, opts, &mut move |it, loss| {
        b2.set_position(it);
        b2.set_message(format!("{loss:.6e}"));
    });
    bar.finish_and_clear();
    let r = match result {
        Ok(r) => r,
        Err(e) => return report(e),
    };
    let method = match optimizer {
        Optimizer::Lbfgs => "lbfgs",
        Optimizer::Adam { .. } => "adam",
    };
    println!(
        "fitted {} of `{}` to {} ({} rows; {} steps, {})",
        vars.len(),
        sig.name,
        a.data.display(),
        data.rows.len(),
        problem.steps(),
        if problem.uses_jit() { "jit" } else { "interp" }
    );
    for (v, x) in vars.iter().zip(&r.values) {
        println!("{} = {x}", v.name());
    }
    println!(
        "loss = {} (initial {}, {} iterations of {method}; {})",
        r.loss, r.initial_loss, r.iters, r.stopped
    );
    ExitCode::SUCCESS
}
