//! `dyn run` and `dyn ir`: check, lower, flatten, and run with the interpreter or print.

use dyn_check::Checked;
use dyn_check::consteval::{self, ConstEnv, NotConst, Value};
use dyn_diag::{Diagnostic, Span, codes};
use dyn_interp::run::{Method, RunError, RunSpec};
use dyn_syntax::ast::{ExprKind, ItemKind, RunDef, RunItem};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `dyn run` that override the file's `run` block.
#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// The file to run.
    pub file: PathBuf,
    /// The system to run (default: the system of the file's `run` block).
    #[arg(long)]
    pub system: Option<String>,
    /// End time.
    #[arg(long)]
    pub until: Option<f64>,
    /// Number of steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Integration method: euler, rk4 or rk45.
    #[arg(long)]
    pub method: Option<String>,
    /// Step size (Euler, RK4) or first step (RK45).
    #[arg(long)]
    pub dt: Option<f64>,
    /// Relative tolerance of RK45.
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute tolerance of RK45.
    #[arg(long)]
    pub atol: Option<f64>,
    /// Override a param: `--param foxes.c=2.5` (repeatable).
    #[arg(long, value_name = "PATH=VALUE")]
    pub param: Vec<String>,
    /// What to record, comma-separated (default: the run block's, else the outputs).
    #[arg(long, value_delimiter = ',')]
    pub record: Vec<String>,
    /// Recording interval.
    #[arg(long)]
    pub every: Option<f64>,
    /// Seed of `randn()`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the trace (CSV) to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bind the root's inputs to the columns of this CSV file, one row a tick.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Bind a tensor input to numbered columns: `--bind x=p` reads `x[k]` from column `pk`
    /// (repeatable).
    #[arg(long)]
    pub bind: Vec<String>,
    /// Replay the input stream this many times (epochs).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Shuffle the input stream's rows every epoch, by this seed.
    #[arg(long)]
    pub shuffle: Option<u64>,
    /// After the training rows, run this CSV's rows once with the column `train` = 0 (it is
    /// 1 on the training rows): evaluation with updates gated off.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// After the run, write the final value of every state (the trained weights) to this CSV:
    /// a header of state names, one row of values.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Save only these states, comma-separated (a name takes its tensor elements and, for a
    /// box, its states): e.g. the weights without the evaluation counters.
    #[arg(long, value_delimiter = ',')]
    pub save_states: Vec<String>,
    /// Start from the states saved in this CSV (by `--save`): its last row overrides the
    /// initial values of the states its header names.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// Also draw the recorded series into this SVG or PNG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Backend: `jit` (Cranelift), `interp` (the reference interpreter), or `auto` (the JIT
    /// when it supports the model, else the interpreter).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Print compile and run times to stderr.
    #[arg(long)]
    pub timings: bool,
}

/// Literal values of a run block (numbers, possibly negated, and consts).
struct RunConsts;

impl ConstEnv for RunConsts {
    fn value(&mut self, name: &str, span: Span) -> Result<Value, NotConst> {
        Err(NotConst {
            span,
            why: format!("names `{name}`; run settings take numbers"),
            quiet: false,
            arith: false,
        })
    }
}

fn number(e: &dyn_syntax::ast::Expr) -> Result<f64, Box<Diagnostic>> {
    match consteval::eval(&mut RunConsts, e) {
        Ok(Value::Int(i)) => Ok(i as f64),
        Ok(Value::Real(r)) => Ok(r),
        _ => Err(Box::new(
            Diagnostic::new(codes::BAD_RUN, e.span, "expected a number").label("not a number"),
        )),
    }
}

fn path_text(e: &dyn_syntax::ast::Expr) -> Option<String> {
    Some(match &e.kind {
        ExprKind::Var(i) => i.name.clone(),
        ExprKind::Field(b, f) => format!("{}.{}", path_text(b)?, f.name),
        ExprKind::Index(b, i) if i.len() == 1 => {
            format!("{}[{}]", path_text(b)?, number(&i[0]).ok()? as i64)
        }
        _ => return None,
    })
}

/// Applies a `run` block's settings to a spec.
pub(crate) fn apply_block(spec: &mut RunSpec, r: &RunDef) -> Result<(), Box<Diagnostic>> {
    for it in &r.items {
        match it {
            RunItem::Setting { key, values, .. } => match key.name.as_str() {
                "until" => spec.until = Some(number(&values[0])?),
                "steps" => spec.steps = Some(number(&values[0])? as u64),
                "every" => spec.every = Some(number(&values[0])?),
                "seed" => spec.seed = number(&values[0])? as u64,
                "record" => spec.record = values.iter().filter_map(path_text).collect(),
                "method" => {
                    let (name, args) = match &values[0].kind {
                        ExprKind::Var(n) => (n.name.clone(), vec![]),
                        ExprKind::Call(f, a) => match &f.kind {
                            ExprKind::Var(n) => (n.name.clone(), a.clone()),
                            _ => continue,
                        },
                        _ => continue,
                    };
                    spec.method = parse_method(&name).unwrap_or(Method::Rk4);
                    for a in args {
                        let v = number(&a.value)?;
                        match a.name.as_ref().map(|n| n.name.as_str()) {
                            Some("dt") => spec.dt = v,
                            Some("rtol") => spec.rtol = v,
                            Some("atol") => spec.atol = v,
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
            RunItem::Param { path, value, .. } => {
                let p = path
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(".");
                spec.params.push((p, number(value)?));
            }
            RunItem::Error => {}
        }
    }
    Ok(())
}

pub(crate) fn parse_method(s: &str) -> Option<Method> {
    match s {
        "euler" => Some(Method::Euler),
        "rk4" => Some(Method::Rk4),
        "rk45" => Some(Method::Rk45),
        _ => None,
    }
}

/// Checks a file and returns it, printing diagnostics; `None` (exit code set) on errors.
pub(crate) fn check_file(path: &PathBuf, color: bool) -> Result<Checked, ExitCode> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", path.display());
            return Err(ExitCode::from(2));
        }
    };
    let stdlib = dyn_check::modules::Stdlib::locate();
    let checked = dyn_check::check_source(
        &path.display().to_string(),
        Some(path.clone()),
        text,
        &stdlib,
    );
    let errors: Vec<Diagnostic> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if !errors.is_empty() {
        eprint!("{}", dyn_diag::render_all(&checked.sources, &errors, color));
        return Err(ExitCode::from(1));
    }
    Ok(checked)
}

/// The run-time flags `dyn run` and `dyn build` share, as given on the command line.
pub(crate) struct SpecFlags<'a> {
    pub method: Option<&'a str>,
    pub until: Option<f64>,
    pub steps: Option<u64>,
    pub dt: Option<f64>,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub every: Option<f64>,
    pub seed: Option<u64>,
    pub record: &'a [String],
    pub param: &'a [String],
}

/// The run's settings: the run block (if any), then the flags over it. Errors are printed;
/// the exit code is returned.
pub(crate) fn spec_from_flags(
    checked: &Checked,
    block: Option<&RunDef>,
    f: &SpecFlags,
    color: bool,
) -> Result<RunSpec, ExitCode> {
    let mut spec = RunSpec::default();
    if let Some(b) = block
        && let Err(d) = apply_block(&mut spec, b)
    {
        eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
        return Err(ExitCode::from(1));
    }
    if let Some(m) = f.method {
        match parse_method(m) {
            Some(m) => spec.method = m,
            None => {
                eprintln!("error: unknown method `{m}`: use euler, rk4 or rk45");
                return Err(ExitCode::from(2));
            }
        }
    }
    if f.until.is_some() {
        spec.until = f.until;
        spec.steps = None;
    }
    if f.steps.is_some() {
        spec.steps = f.steps;
        spec.until = None;
    }
    spec.dt = f.dt.unwrap_or(spec.dt);
    spec.rtol = f.rtol.unwrap_or(spec.rtol);
    spec.atol = f.atol.unwrap_or(spec.atol);
    spec.every = f.every.or(spec.every);
    spec.seed = f.seed.unwrap_or(spec.seed);
    if !f.record.is_empty() {
        spec.record = f.record.to_vec();
    }
    for p in f.param {
        let Some((k, v)) = p.split_once('=') else {
            eprintln!("error: `--param {p}`: expected PATH=VALUE, e.g. `--param foxes.c=2.5`");
            return Err(ExitCode::from(2));
        };
        let Ok(v) = v.trim().parse::<f64>() else {
            eprintln!("error: `--param {p}`: `{v}` is not a number");
            return Err(ExitCode::from(2));
        };
        spec.params.push((k.trim().to_string(), v));
    }
    Ok(spec)
}

/// Chooses the system to run and the run block that goes with it.
pub(crate) fn target<'c>(
    checked: &'c Checked,
    system: Option<&str>,
) -> Result<
    (
        std::rc::Rc<dyn_check::system::SystemSig>,
        Option<&'c RunDef>,
    ),
    String,
> {
    let runs: Vec<&RunDef> = checked.modules[0]
        .ast
        .items
        .iter()
        .filter_map(|i| {
            if let ItemKind::Run(r) = &i.kind {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    let name = match system {
        Some(s) => s.to_string(),
        None => match runs.first() {
            Some(r) => r.system.name.clone(),
            None => {
                let names: Vec<&str> = checked
                    .systems
                    .iter()
                    .map(|(_, s)| s.name.as_str())
                    .collect();
                return Err(format!(
                    "no `run` block in the file: choose a system with --system ({})",
                    names.join(", ")
                ));
            }
        },
    };
    let sig = checked
        .systems
        .iter()
        .find(|(_, s)| s.name == name)
        .map(|(_, s)| s.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = checked
                .systems
                .iter()
                .map(|(_, s)| s.name.as_str())
                .collect();
            format!(
                "no system `{name}` in the file (systems: {})",
                names.join(", ")
            )
        })?;
    Ok((sig, runs.into_iter().find(|r| r.system.name == name)))
}

/// `dyn run`.
pub fn run(a: &RunArgs, color: bool) -> ExitCode {
    let checked = match check_file(&a.file, color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !matches!(a.backend.as_str(), "auto" | "jit" | "interp") {
        eprintln!(
            "error: unknown backend `{}`: use jit, interp or auto",
            a.backend
        );
        return ExitCode::from(2);
    }
    let (sig, block) = match target(&checked, a.system.as_deref()) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let mut spec = match spec_from_flags(
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
    if let Some(p) = &a.input {
        match read_stream(p).and_then(|st| training_stream(a, st)) {
            Ok(st) => {
                // A training run takes the whole stream unless told otherwise.
                let training = a.epochs.is_some() || a.test.is_some();
                if a.steps.is_none()
                    && a.until.is_none()
                    && (training || (spec.steps.is_none() && spec.until.is_none()))
                {
                    spec.until = None;
                    if training && a.every.is_none() {
                        // Record the initial and the final row: the trained model's figures.
                        spec.every = Some(st.rows.len().max(1) as f64);
                    }
                    spec.steps = Some(st.rows.len() as u64);
                }
                spec.stream = Some(st)
            }
            Err(msg) => {
                eprintln!("error[{}]: {msg}", codes::BAD_INPUT.id);
                return ExitCode::from(1);
            }
        }
    } else if a.test.is_some() || a.epochs.is_some() || a.shuffle.is_some() || !a.bind.is_empty() {
        eprintln!("error: `--epochs`, `--shuffle`, `--bind` and `--test` need `--input FILE`");
        return ExitCode::from(2);
    }
    if let Some(p) = &a.load {
        match read_stream(p).and_then(|st| saved_state(p, st)) {
            Ok(init) => spec.init = init,
            Err(msg) => {
                eprintln!("error[{}]: {msg}", codes::BAD_INPUT.id);
                return ExitCode::from(1);
            }
        }
    }
    let lower_start = std::time::Instant::now();
    let program = match dyn_ir::lower(&checked, &sig).and_then(dyn_ir::flat::flatten) {
        Ok(f) => f,
        Err(d) => {
            eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
            return ExitCode::from(1);
        }
    };
    // `--save`: the states are recorded after the asked columns, cut off before the trace.
    let mut n_user = usize::MAX;
    let mut save_cols: Vec<(String, usize)> = Vec::new();
    if a.save.is_some()
        && let Ok((user, _)) = dyn_interp::run::recorded(&program, &spec)
    {
        let mut record = user.clone();
        for (n, p) in dyn_interp::run::probes(&program) {
            let chosen = a.save_states.is_empty()
                || a.save_states.iter().any(|w| {
                    n == *w || n.starts_with(&format!("{w}[")) || n.starts_with(&format!("{w}."))
                });
            if let dyn_interp::run::Probe::State(_) = p
                && chosen
            {
                let col = match user.iter().position(|u| *u == n) {
                    Some(c) => c,
                    None => {
                        record.push(n.clone());
                        record.len() - 1
                    }
                };
                save_cols.push((n, col));
            }
        }
        n_user = user.len();
        spec.record = record;
    }
    let mut last_row: Vec<f64> = Vec::new();
    let sink: Box<dyn Write> = match &a.out {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("error: cannot write `{}`: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let sink = std::cell::RefCell::new(sink);
    let io_err: std::cell::RefCell<Option<std::io::Error>> = std::cell::RefCell::new(None);
    let write = |line: String| {
        if let Err(e) = writeln!(sink.borrow_mut(), "{line}") {
            io_err.borrow_mut().get_or_insert(e);
        }
    };
    let mut names: Vec<String> = Vec::new();
    let mut kept: Vec<(f64, Vec<f64>)> = Vec::new();
    let progress = Progress::new(spec.until.or(spec.steps.map(|s| s as f64)));
    let mut on_header = |n: &[String]| {
        let n = &n[..n_user.min(n.len())];
        names = n.to_vec();
        write(format!("t,{}", n.join(",")));
    };
    let mut on_row = |t: f64, vals: &[f64]| {
        if !save_cols.is_empty() {
            last_row = vals.to_vec();
        }
        let vals = &vals[..n_user.min(vals.len())];
        let mut line = fmt_time(t);
        for v in vals {
            line.push(',');
            line.push_str(&v.to_string());
        }
        write(line);
        if a.plot.is_some() {
            kept.push((t, vals.to_vec()));
        }
        progress.at(t);
    };
    let lowered = lower_start.elapsed();
    let started = std::time::Instant::now();
    let use_jit = a.backend != "interp" && dyn_jit::supported_run(&program, &spec).is_ok();
    if a.backend == "jit"
        && let Err(why) = dyn_jit::supported_run(&program, &spec)
    {
        eprintln!("error: the JIT does not support {why} yet; run with `--backend interp`");
        return ExitCode::from(2);
    }
    let result = if use_jit {
        match dyn_jit::run(&program, &spec, &mut on_header, &mut on_row) {
            Ok(Ok((steps, t))) => {
                if a.timings {
                    eprintln!(
                        "backend jit: lower + flatten {:.1} ms, compile {:.1} ms, run {:.1} ms",
                        lowered.as_secs_f64() * 1e3,
                        t.compile.as_secs_f64() * 1e3,
                        t.run.as_secs_f64() * 1e3
                    );
                }
                Ok(steps)
            }
            Ok(Err(why)) => Err(dyn_interp::run::RunError::Setting(format!(
                "the JIT does not support {why}"
            ))),
            Err(e) => Err(e),
        }
    } else {
        let r = dyn_interp::run::run(&program, &spec, &mut on_header, &mut on_row);
        if a.timings {
            eprintln!(
                "backend interp: run {:.1} ms",
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        r
    };
    progress.finish();
    if let Some(p) = &a.plot
        && let Err(e) = crate::plot::plot(p, &sig.name, &names, &kept)
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let _ = sink.borrow_mut().flush();
    if let Some(e) = io_err.borrow_mut().take() {
        eprintln!("error: writing the trace: {e}");
        return ExitCode::from(2);
    }
    if let (Some(p), Ok(_)) = (&a.save, &result)
        && let Err(e) = write_saved_state(p, &save_cols, &last_row)
    {
        eprintln!("error: cannot write `{}`: {e}", p.display());
        return ExitCode::from(2);
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            report_run_error(&e);
            ExitCode::from(1)
        }
    }
}

/// The stream of a training run: `--bind` renames, `--epochs` and `--shuffle` replay the
/// rows, `--test` appends the evaluation rows (see `Stream::then_test`).
fn training_stream(
    a: &RunArgs,
    mut st: dyn_interp::run::Stream,
) -> Result<dyn_interp::run::Stream, String> {
    let mut test = match &a.test {
        Some(p) => Some(read_stream(p)?),
        None => None,
    };
    for b in &a.bind {
        let Some((name, prefix)) = b.split_once('=') else {
            return Err(format!(
                "`--bind {b}`: expected NAME=PREFIX, e.g. `--bind x=p`"
            ));
        };
        let (name, prefix) = (name.trim(), prefix.trim());
        if st.bind_prefix(name, prefix) == 0 {
            return Err(format!(
                "`--bind {b}`: the input stream has no columns `{prefix}0`, `{prefix}1`, …"
            ));
        }
        if let Some(t) = test.as_mut() {
            t.bind_prefix(name, prefix);
        }
    }
    if a.epochs == Some(0) && test.is_none() {
        return Err("`--epochs 0` without `--test`: nothing to run".into());
    }
    if a.epochs.is_some() || a.shuffle.is_some() {
        st = st.epochs(a.epochs.unwrap_or(1), a.shuffle);
    }
    match &test {
        Some(t) => st.then_test(t),
        None => Ok(st),
    }
}

/// Writes the saved-state format: a header of state names, one row of values (shortest
/// round-trip decimals, so loading gives the same bits).
fn write_saved_state(
    path: &std::path::Path,
    cols: &[(String, usize)],
    row: &[f64],
) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    writeln!(f, "{}", names.join(","))?;
    let vals: Vec<String> = cols
        .iter()
        .map(|(_, c)| row.get(*c).copied().unwrap_or(f64::NAN).to_string())
        .collect();
    writeln!(f, "{}", vals.join(","))?;
    f.flush()
}

/// The state overrides of a saved-state file: its last row by column name (a column `t`, as
/// in a trace, is skipped).
fn saved_state(
    path: &std::path::Path,
    st: dyn_interp::run::Stream,
) -> Result<Vec<(String, f64)>, String> {
    let Some(row) = st.rows.last() else {
        return Err(format!("`{}` has no rows of values", path.display()));
    };
    Ok(st
        .columns
        .iter()
        .zip(row)
        .filter(|(c, _)| *c != "t")
        .map(|(c, v)| (c.clone(), *v))
        .collect())
}

/// Reads an input stream: a CSV file with a header; every cell a number.
fn read_stream(path: &std::path::Path) -> Result<dyn_interp::run::Stream, String> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let columns: Vec<String> = r
        .headers()
        .map_err(|e| format!("`{}`: {e}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("`{}` row {}: {e}", path.display(), i + 1))?;
        let mut row = Vec::with_capacity(rec.len());
        for (j, cell) in rec.iter().enumerate() {
            let v = cell.parse::<f64>().map_err(|_| {
                format!(
                    "`{}` row {}, column `{}`: `{cell}` is not a number",
                    path.display(),
                    i + 1,
                    columns.get(j).map(String::as_str).unwrap_or("?")
                )
            })?;
            row.push(v);
        }
        rows.push(row);
    }
    Ok(dyn_interp::run::Stream { columns, rows })
}

/// Time as written in traces: the exact value, without the `0.30000000000000004` noise of
/// accumulated sums (12 significant digits are kept).
fn fmt_time(t: f64) -> String {
    let r = format!("{t:.12e}").parse::<f64>().unwrap_or(t);
    r.to_string()
}

/// A progress bar on a terminal for runs that take more than a second; silent when piped.
struct Progress {
    total: Option<f64>,
    start: std::time::Instant,
    bar: std::cell::RefCell<Option<indicatif::ProgressBar>>,
}

impl Progress {
    fn new(total: Option<f64>) -> Self {
        Progress {
            total,
            start: std::time::Instant::now(),
            bar: std::cell::RefCell::new(None),
        }
    }

    fn at(&self, t: f64) {
        let Some(total) = self.total.filter(|t| *t > 0.0) else {
            return;
        };
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return;
        }
        let mut bar = self.bar.borrow_mut();
        if bar.is_none() && self.start.elapsed().as_secs_f64() > 1.0 {
            let b = indicatif::ProgressBar::new(1000);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} t = {msg} [{bar:40}] {percent}% eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            *bar = Some(b);
        }
        if let Some(b) = bar.as_ref() {
            b.set_position(((t / total).clamp(0.0, 1.0) * 1000.0) as u64);
            b.set_message(format!("{t:.4}"));
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}

fn report_run_error(e: &RunError) {
    match e {
        RunError::NotFinite { name, time, last } => eprintln!(
            "error[{}]: state `{name}` became NaN or infinite at t = {time}\n  last finite value: {last}\n  help: the trace up to this point was written; try a smaller step (--dt) or check the model's equations",
            codes::NOT_FINITE_STATE.id
        ),
        RunError::UnknownParam { path, valid } => eprintln!(
            "error[{}]: `--param {path}` names no param\n  help: valid params: {}",
            codes::BAD_PARAM.id,
            if valid.is_empty() {
                "none".to_string()
            } else {
                valid.join(", ")
            }
        ),
        RunError::UnknownRecord { name, valid } => eprintln!(
            "error[{}]: cannot record `{name}`: no such state, port or let\n  help: recordable: {}",
            codes::UNKNOWN_PORT.id,
            valid.join(", ")
        ),
        RunError::Setting(m) => eprintln!("error[{}]: {m}", codes::BAD_RUN.id),
        RunError::Eval(m) if dyn_ir::linalg::is_failure(m) => {
            eprintln!(
                "error[{}]: {m}\n  help: a least-squares or ridge system needs a regularised matrix (`+ lambda * eye(n)`, lambda > 0); see `dyn explain {}`",
                codes::LINALG_FAILED.id,
                codes::LINALG_FAILED.id
            )
        }
        RunError::Eval(m) => eprintln!("error[{}]: {m}", codes::UNSUPPORTED.id),
        RunError::Input(m) => eprintln!("error[{}]: {m}", codes::BAD_INPUT.id),
    }
}

/// `dyn ir FILE [--flat]`: prints the IR of nested systems or the flattened program.
pub fn ir(file: &PathBuf, system: Option<&str>, flat: bool, color: bool) -> ExitCode {
    let checked = match check_file(file, color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (sig, _) = match target(&checked, system) {
        Ok(t) => t,
        Err(_) if system.is_none() && !checked.systems.is_empty() => (
            checked
                .systems
                .last()
                .map(|s| s.1.clone())
                .expect("nonempty"),
            None,
        ),
        Err(m) => {
            eprintln!("error: {m}");
            return ExitCode::from(2);
        }
    };
    let program = match dyn_ir::lower(&checked, &sig) {
        Ok(p) => p,
        Err(d) => {
            eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
            return ExitCode::from(1);
        }
    };
    if flat {
        match dyn_ir::flat::flatten(program) {
            Ok(f) => print!("{}", dyn_ir::print::flat(&f)),
            Err(d) => {
                eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", dyn_ir::print::program(&program));
    }
    ExitCode::SUCCESS
}
