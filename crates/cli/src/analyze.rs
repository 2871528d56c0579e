//! `dyn analyze`: the subcommands over `dyn_analyze` — fixed points, Lyapunov exponents,
//! parameter sweeps, basins of attraction, ensembles. Each writes machine-readable output
//! (CSV to stdout by default; `--out FILE.csv|FILE.json`, or `--json` for JSON on stdout)
//! and, with `--plot FILE.svg|FILE.png`, a figure. The formats are in docs/analyze.md.

use crate::plot::{COLORS, Figure, render};
use crate::run::{apply_block, check_file, parse_method, target};
use dyn_analyze::model::{Backend, Model};
use dyn_analyze::{Error, Progress, basins, ensemble, fixed, lyapunov, sweep};
use dyn_interp::run::RunSpec;
use plotters::prelude::*;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `dyn analyze SUBCOMMAND`.
#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Fixed points by Newton's method from seeds, with the Jacobian (automatic
    /// differentiation), its eigenvalues and a classification.
    FixedPoints(Box<FixedArgs>),
    /// The largest Lyapunov exponent (two trajectories, renormalised).
    Lyapunov(Box<LyapunovArgs>),
    /// A parameter sweep in parallel, with a bifurcation diagram of a recorded quantity.
    Sweep(Box<SweepArgs>),
    /// A grid of initial conditions over two states, labelled by the attractor reached.
    Basins(Box<BasinsArgs>),
    /// Many seeds of a stochastic model in parallel: mean, spread and extremes over time.
    Ensemble(Box<EnsembleArgs>),
}

/// Options every subcommand takes.
#[derive(clap::Args, Debug, Default)]
struct Common {
    /// The file.
    file: PathBuf,
    /// The system (default: the system of the file's `run` block).
    #[arg(long)]
    system: Option<String>,
    /// Override a param: `--param mu=2.0` (repeatable). `sweep` takes one `NAME=LO..HI:COUNT`.
    #[arg(long, value_name = "PATH=VALUE")]
    param: Vec<String>,
    /// Integration method: euler, rk4 or rk45 (default: the run block's, else rk4).
    #[arg(long)]
    method: Option<String>,
    /// Step size (default: the run block's, else 0.01).
    #[arg(long)]
    dt: Option<f64>,
    /// Seed of `randn()` (the first seed of an ensemble).
    #[arg(long)]
    seed: Option<u64>,
    /// Backend: `jit`, `interp`, or `auto` (the JIT when it supports the model).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Write the results to this file: CSV, or JSON for a `.json` name.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write JSON (not CSV) to stdout.
    #[arg(long)]
    json: bool,
    /// Draw the figure into this SVG or PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the time taken and the threads used to stderr.
    #[arg(long)]
    timings: bool,
}

#[derive(clap::Args, Debug)]
struct FixedArgs {
    #[command(flatten)]
    common: Common,
    /// A seed: `--from x=0.5,y=-1` (states not named keep their initial values; repeatable).
    #[arg(long, value_name = "STATE=VALUE,…")]
    from: Vec<String>,
    /// A grid of seeds: `--grid x=-2..2:5 --grid y=-2..2:5` (the product of the axes; other
    /// states keep their initial values).
    #[arg(long, value_name = "STATE=LO..HI:COUNT")]
    grid: Vec<String>,
    /// Newton iterations per seed.
    #[arg(long, default_value_t = 100)]
    max_iter: usize,
    /// Convergence: the largest |G_i| below this.
    #[arg(long, default_value_t = 1e-10)]
    tol: f64,
    /// The two states of the phase-plane panel of the plot (default: the first two).
    #[arg(long, value_delimiter = ',', value_name = "X,Y")]
    axes: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct LyapunovArgs {
    #[command(flatten)]
    common: Common,
    /// Renormalisation interval: time (flows) or steps (maps). Default 1.
    #[arg(long)]
    interval: Option<f64>,
    /// Transient skipped before measuring. Default 100 (flows) or 1000 steps (maps).
    #[arg(long)]
    transient: Option<f64>,
    /// Time (or steps) measured. Default 1000 (flows) or 100000 steps (maps).
    #[arg(long)]
    time: Option<f64>,
    /// Initial separation of the two trajectories (default 1e-8 × max(1, |x0|)).
    #[arg(long)]
    d0: Option<f64>,
}

#[derive(clap::Args, Debug)]
struct SweepArgs {
    #[command(flatten)]
    common: Common,
    /// The recorded quantity of the bifurcation diagram (a state, out port or let).
    #[arg(long)]
    record: String,
    /// Sampling interval: time (flows; default dt) or steps (maps; default 1).
    #[arg(long)]
    every: Option<f64>,
    /// Samples skipped as transient (default 1000 for maps, 5000 for flows).
    #[arg(long)]
    transient: Option<u64>,
    /// Samples kept per run (default 200 for maps, 5000 for flows).
    #[arg(long)]
    samples: Option<u64>,
    /// Runs per param value, with seeds `seed`, `seed + 1`, … (stochastic models).
    #[arg(long, default_value_t = 1)]
    ensemble: usize,
    /// Longest period detected (maps).
    #[arg(long, default_value_t = 64)]
    max_period: usize,
    /// Relative tolerance of equal samples (period detection, distinct values).
    #[arg(long, default_value_t = 1e-6)]
    tol: f64,
}

#[derive(clap::Args, Debug)]
struct BasinsArgs {
    #[command(flatten)]
    common: Common,
    /// The horizontal axis: `--x STATE=LO..HI:COUNT`.
    #[arg(long, value_name = "STATE=LO..HI:COUNT")]
    x: String,
    /// The vertical axis: `--y STATE=LO..HI:COUNT`.
    #[arg(long, value_name = "STATE=LO..HI:COUNT")]
    y: String,
    /// Sampling interval: time (flows; default dt × 10) or steps (maps; default 1).
    #[arg(long)]
    every: Option<f64>,
    /// Samples run before the tail (default 1000).
    #[arg(long, default_value_t = 1000)]
    transient: u64,
    /// Samples the attractor's features are taken over (default 100).
    #[arg(long, default_value_t = 100)]
    tail: u64,
    /// Relative widening of the tail ranges that must overlap for one attractor.
    #[arg(long, default_value_t = 1e-2)]
    tol: f64,
}

#[derive(clap::Args, Debug)]
struct EnsembleArgs {
    #[command(flatten)]
    common: Common,
    /// Members (seeds `seed` … `seed + K − 1`).
    #[arg(long, short = 'K', default_value_t = 100)]
    ensemble: usize,
    /// What to record, comma-separated (default: the run block's, else the outputs).
    #[arg(long, value_delimiter = ',')]
    record: Vec<String>,
    /// End time (default: the run block's).
    #[arg(long)]
    until: Option<f64>,
    /// Steps (default: the run block's).
    #[arg(long)]
    steps: Option<u64>,
    /// Recording interval (default: the run block's).
    #[arg(long)]
    every: Option<f64>,
}

/// A usage error (exit 2) or a failed analysis (exit 1), with its message.
enum Fail {
    Usage(String),
    Analysis(String),
    Code(ExitCode),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Analysis(e.0)
    }
}

type R<T> = Result<T, Fail>;

/// `dyn analyze`.
pub fn analyze(a: &AnalyzeArgs, color: bool) -> ExitCode {
    let result = match &a.cmd {
        Cmd::FixedPoints(f) => fixed_points(f, color),
        Cmd::Lyapunov(l) => lyapunov_cmd(l, color),
        Cmd::Sweep(s) => sweep_cmd(s, color),
        Cmd::Basins(b) => basins_cmd(b, color),
        Cmd::Ensemble(e) => ensemble_cmd(e, color),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Fail::Analysis(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
        Err(Fail::Code(c)) => c,
    }
}

/// A `PATH=VALUE` param override.
fn param_value(p: &str) -> R<(String, f64)> {
    let Some((k, v)) = p.split_once('=') else {
        return Err(Fail::Usage(format!(
            "`--param {p}`: expected PATH=VALUE, e.g. `--param mu=2.0`"
        )));
    };
    let v: f64 = v
        .trim()
        .parse()
        .map_err(|_| Fail::Usage(format!("`--param {p}`: `{}` is not a number", v.trim())))?;
    Ok((k.trim().to_string(), v))
}

/// `NAME=LO..HI:COUNT`.
fn named_range(flag: &str, s: &str) -> R<(String, f64, f64, usize)> {
    let Some((k, r)) = s.split_once('=') else {
        return Err(Fail::Usage(format!(
            "`{flag} {s}`: expected NAME=LO..HI:COUNT, e.g. `r=2.5..4.0:300`"
        )));
    };
    let (lo, hi, n) =
        dyn_analyze::parse_range(r).map_err(|e| Fail::Usage(format!("`{flag} {s}`: {}", e.0)))?;
    Ok((k.trim().to_string(), lo, hi, n))
}

/// Checks, lowers and flattens the file, and builds the base spec from its run block and
/// the common flags (params that are ranges are left to the caller).
fn load(c: &Common, color: bool) -> R<(dyn_ir::flat::Flat, RunSpec, Backend, String)> {
    let backend = match c.backend.as_str() {
        "auto" => Backend::Auto,
        "jit" => Backend::Jit,
        "interp" => Backend::Interp,
        b => {
            return Err(Fail::Usage(format!(
                "unknown backend `{b}`: use jit, interp or auto"
            )));
        }
    };
    if c.json && c.out.is_some() {
        return Err(Fail::Usage(
            "give `--out FILE` or `--json`, not both (a `.json` file name writes JSON)".into(),
        ));
    }
    let checked = check_file(&c.file, color).map_err(Fail::Code)?;
    let (sig, block) = target(&checked, c.system.as_deref()).map_err(Fail::Usage)?;
    let mut spec = RunSpec::default();
    if let Some(b) = block
        && let Err(d) = apply_block(&mut spec, b)
    {
        eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
        return Err(Fail::Code(ExitCode::from(1)));
    }
    if let Some(m) = &c.method {
        spec.method = parse_method(m)
            .ok_or_else(|| Fail::Usage(format!("unknown method `{m}`: use euler, rk4 or rk45")))?;
    }
    if let Some(dt) = c.dt {
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(Fail::Usage(format!(
                "`--dt {dt}`: the step must be positive"
            )));
        }
        spec.dt = dt;
    }
    spec.seed = c.seed.unwrap_or(spec.seed);
    for p in &c.param {
        if !p.contains("..") {
            spec.params.push(param_value(p)?);
        }
    }
    let flat = match dyn_ir::lower(&checked, &sig).and_then(dyn_ir::flat::flatten) {
        Ok(f) => f,
        Err(d) => {
            eprint!("{}", dyn_diag::render(&checked.sources, &d, color));
            return Err(Fail::Code(ExitCode::from(1)));
        }
    };
    Ok((flat, spec, backend, sig.name.clone()))
}

/// Where the output goes and in which format.
fn output(c: &Common, csv: &str, json: &Value) -> R<()> {
    let (text, path) = match &c.out {
        Some(p)
            if p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json")) =>
        {
            (pretty(json), Some(p))
        }
        Some(p) => (csv.to_string(), Some(p)),
        None if c.json => (pretty(json), None),
        None => (csv.to_string(), None),
    };
    match path {
        Some(p) => std::fs::write(p, text)
            .map_err(|e| Fail::Usage(format!("cannot write `{}`: {e}", p.display()))),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| Fail::Usage(format!("writing the output: {e}")))
        }
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// A number for JSON: `null` when it is not finite.
fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

fn figure(c: &Common, fig: &impl Figure, size: (u32, u32)) -> R<()> {
    match &c.plot {
        Some(p) => render(p, size, fig).map_err(Fail::Usage),
        None => Ok(()),
    }
}

/// An indicatif bar on a terminal (hidden otherwise) counting units of work.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(total: u64, what: &str) -> Bar {
        let b = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::hidden()
        };
        b.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} eta {{eta}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bar(b)
    }
}

impl Progress for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn timings(c: &Common, what: &str, start: std::time::Instant, model: &Model) {
    if c.timings {
        eprintln!(
            "{what}: {:.3} s on {} thread{} (backend {})",
            start.elapsed().as_secs_f64(),
            rayon::current_num_threads(),
            if rayon::current_num_threads() == 1 {
                ""
            } else {
                "s"
            },
            model.backend_name()
        );
    }
}

// ---------------------------------------------------------------- fixed-points

fn fixed_points(a: &FixedArgs, color: bool) -> R<()> {
    let c = &a.common;
    if c.param.iter().any(|p| p.contains("..")) {
        return Err(Fail::Usage(
            "`fixed-points` takes `--param PATH=VALUE`; sweep a param with `dyn analyze sweep`"
                .into(),
        ));
    }
    let (flat, spec, backend, name) = load(c, color)?;
    let model = Model::new(&flat, spec.clone(), backend)?;
    let vars = model.real_slots();
    let all = model.state_names();
    let names: Vec<String> = vars.iter().map(|s| all[*s].clone()).collect();
    let (_, _, x0) = model.setup(&spec)?;
    let base: Vec<f64> = vars.iter().map(|s| x0[*s]).collect();
    let col = |state: &str, flag: &str| -> R<usize> {
        names.iter().position(|n| n == state).ok_or_else(|| {
            Fail::Usage(format!(
                "`{flag}`: `{state}` is not a Real state of the model (states: {})",
                names.join(", ")
            ))
        })
    };
    let mut seeds: Vec<Vec<f64>> = Vec::new();
    for f in &a.from {
        let mut p = base.clone();
        for part in f.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                Fail::Usage(format!(
                    "`--from {f}`: expected STATE=VALUE,…, e.g. `--from x=0.5,y=-1`"
                ))
            })?;
            let v: f64 = v.trim().parse().map_err(|_| {
                Fail::Usage(format!("`--from {f}`: `{}` is not a number", v.trim()))
            })?;
            p[col(k.trim(), "--from")?] = v;
        }
        seeds.push(p);
    }
    if !a.grid.is_empty() {
        let mut axes = Vec::new();
        for g in &a.grid {
            let (k, lo, hi, n) = named_range("--grid", g)?;
            axes.push((col(&k, "--grid")?, dyn_analyze::linspace(lo, hi, n)));
        }
        let total: usize = axes.iter().map(|a| a.1.len()).product();
        if total > 1_000_000 {
            return Err(Fail::Usage(format!(
                "`--grid` makes {total} seeds; at most 1,000,000"
            )));
        }
        for k in 0..total {
            let mut p = base.clone();
            let mut q = k;
            for (i, vals) in &axes {
                p[*i] = vals[q % vals.len()];
                q /= vals.len();
            }
            seeds.push(p);
        }
    }
    let opts = fixed::Options {
        params: vec![],
        seeds,
        max_iter: a.max_iter,
        tol: a.tol,
    };
    let start = std::time::Instant::now();
    let report = fixed::find(&model, &opts)?;
    timings(c, "fixed-points", start, &model);
    let n = report.names.len();
    let mut csv = format!("point,class,{}", report.names.join(","));
    csv.push_str(",residual,hits");
    for k in 1..=n {
        csv.push_str(&format!(",eig{k}_re,eig{k}_im"));
    }
    csv.push('\n');
    for (i, p) in report.points.iter().enumerate() {
        csv.push_str(&format!("{i},{}", p.class.name()));
        for v in &p.values {
            csv.push_str(&format!(",{v}"));
        }
        csv.push_str(&format!(",{:e},{}", p.residual, p.hits));
        for (re, im) in &p.eigenvalues {
            csv.push_str(&format!(",{re},{im}"));
        }
        csv.push('\n');
    }
    let json = json!({
        "analysis": "fixed-points",
        "system": name,
        "discrete": report.discrete,
        "jacobian": report.jacobian_method,
        "eigenvalues_of": if report.discrete { "the map's Jacobian (multipliers)" } else { "the Jacobian of the vector field" },
        "states": report.names,
        "params": spec.params.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "seeds": report.seeds,
        "failed": report.failed,
        "points": report.points.iter().map(|p| json!({
            "state": report.names.iter().zip(&p.values).map(|(k, v)| (k.clone(), num(*v))).collect::<serde_json::Map<_, _>>(),
            "class": p.class.name(),
            "stable": p.class.stable(),
            "eigenvalues": p.eigenvalues.iter().map(|(re, im)| json!([num(*re), num(*im)])).collect::<Vec<_>>(),
            "jacobian": p.jacobian.iter().map(|r| r.iter().map(|v| num(*v)).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "residual": num(p.residual),
            "hits": p.hits,
        })).collect::<Vec<_>>(),
    });
    output(c, &csv, &json)?;
    for p in &report.points {
        let at: Vec<String> = report
            .names
            .iter()
            .zip(&p.values)
            .map(|(k, v)| format!("{k} = {v:.6}"))
            .collect();
        eprintln!("{}: {}", p.class.name(), at.join(", "));
    }
    if report.points.is_empty() {
        eprintln!(
            "no fixed point found from {} seeds; give seeds with --from or --grid",
            report.seeds
        );
    }
    let (ax, ay) = match a.axes.as_slice() {
        [] => (0, 1.min(n.saturating_sub(1))),
        [x, y] => (col(x, "--axes")?, col(y, "--axes")?),
        _ => return Err(Fail::Usage("`--axes X,Y` takes two states".into())),
    };
    figure(
        c,
        &FixedFigure {
            report: &report,
            ax,
            ay,
            title: name,
        },
        (1100, 500),
    )
}

struct FixedFigure<'a> {
    report: &'a fixed::Report,
    ax: usize,
    ay: usize,
    title: String,
}

fn class_color(c: fixed::Class) -> RGBColor {
    match c {
        fixed::Class::StableNode => COLORS[2],
        fixed::Class::StableFocus => COLORS[0],
        fixed::Class::Saddle => COLORS[1],
        fixed::Class::UnstableNode => COLORS[3],
        fixed::Class::UnstableFocus => COLORS[4],
        fixed::Class::Center => COLORS[6],
        fixed::Class::NonHyperbolic => COLORS[7],
    }
}

/// `lo..hi` around finite values, padded, never empty.
fn span(vals: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = vals
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let (lo, hi) = if lo.is_finite() {
        (lo, hi)
    } else {
        (-1.0, 1.0)
    };
    let pad = if hi - lo < 1e-9 * (1.0 + lo.abs().max(hi.abs())) {
        0.5 * (1.0 + lo.abs().max(hi.abs()))
    } else {
        (hi - lo) * 0.08
    };
    (lo - pad)..(hi + pad)
}

fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}

impl Figure for FixedFigure<'_> {
    fn draw<B: DrawingBackend>(
        &self,
        area: &DrawingArea<B, plotters::coord::Shift>,
    ) -> Result<(), String>
    where
        B::ErrorType: 'static,
    {
        let (left, right) = area.split_horizontally(560);
        let r = self.report;
        let one = r.names.len() == 1;
        // Phase plane (or the line, for one state).
        let xs = span(r.points.iter().map(|p| p.values[self.ax]));
        let ys = if one {
            -1.0..1.0
        } else {
            span(r.points.iter().map(|p| p.values[self.ay]))
        };
        let mut chart = ChartBuilder::on(&left)
            .caption(format!("{}: fixed points", self.title), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xs, ys)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(r.names[self.ax].as_str())
            .y_desc(if one { "" } else { r.names[self.ay].as_str() })
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(e)?;
        let mut seen: Vec<fixed::Class> = Vec::new();
        for p in &r.points {
            let col = class_color(p.class);
            let y = if one { 0.0 } else { p.values[self.ay] };
            let s = chart
                .draw_series(std::iter::once(Circle::new(
                    (p.values[self.ax], y),
                    7,
                    if p.class.stable() {
                        col.filled()
                    } else {
                        col.stroke_width(3)
                    },
                )))
                .map_err(e)?;
            if !seen.contains(&p.class) {
                seen.push(p.class);
                s.label(p.class.name())
                    .legend(move |(x, y)| Circle::new((x + 8, y), 5, col.filled()));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(e)?;
        // Eigenvalues in the complex plane, with the stability boundary.
        let eig: Vec<(f64, f64, fixed::Class)> = r
            .points
            .iter()
            .flat_map(|p| p.eigenvalues.iter().map(move |(a, b)| (*a, *b, p.class)))
            .collect();
        let mut re = span(
            eig.iter()
                .map(|v| v.0)
                .chain([0.0, if r.discrete { 1.0 } else { 0.0 }]),
        );
        let mut im = span(eig.iter().map(|v| v.1).chain([0.0]));
        if r.discrete {
            re = re.start.min(-1.1)..re.end.max(1.1);
            im = im.start.min(-1.1)..im.end.max(1.1);
        }
        let mut chart = ChartBuilder::on(&right)
            .caption(
                if r.discrete {
                    "multipliers (unit circle: boundary)"
                } else {
                    "eigenvalues (imaginary axis: boundary)"
                },
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(re.clone(), im.clone())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("Re")
            .y_desc("Im")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(e)?;
        let grey = RGBColor(150, 150, 150);
        if r.discrete {
            chart
                .draw_series(LineSeries::new(
                    (0..=200).map(|k| {
                        let a = k as f64 / 200.0 * std::f64::consts::TAU;
                        (a.cos(), a.sin())
                    }),
                    grey.stroke_width(1),
                ))
                .map_err(e)?;
        } else {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, im.start), (0.0, im.end)],
                    grey.stroke_width(1),
                ))
                .map_err(e)?;
        }
        chart
            .draw_series(
                eig.iter()
                    .map(|(a, b, c)| Cross::new((*a, *b), 6, class_color(*c).stroke_width(2))),
            )
            .map_err(e)?;
        Ok(())
    }
}

// ---------------------------------------------------------------- lyapunov

fn lyapunov_cmd(a: &LyapunovArgs, color: bool) -> R<()> {
    let c = &a.common;
    if c.param.iter().any(|p| p.contains("..")) {
        return Err(Fail::Usage(
            "`lyapunov` takes `--param PATH=VALUE`; sweep a param with `dyn analyze sweep`".into(),
        ));
    }
    let (flat, spec, backend, name) = load(c, color)?;
    let model = Model::new(&flat, spec, backend)?;
    let cont = model.continuous();
    let opts = lyapunov::Options {
        params: vec![],
        x0: None,
        interval: a.interval.unwrap_or(1.0),
        transient: a.transient.unwrap_or(if cont { 100.0 } else { 1000.0 }),
        time: a.time.unwrap_or(if cont { 1000.0 } else { 100_000.0 }),
        d0: a.d0.unwrap_or(0.0),
    };
    if a.d0.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        return Err(Fail::Usage("`--d0` must be a positive number".into()));
    }
    let total = if opts.interval > 0.0 && opts.interval.is_finite() {
        ((opts.transient + opts.time) / opts.interval.max(1e-300)).min(1e15) as u64
    } else {
        0
    };
    let bar = Bar::new(total, "lyapunov");
    let start = std::time::Instant::now();
    let r = lyapunov::largest(&model, &opts, &bar)?;
    drop(bar);
    timings(c, "lyapunov", start, &model);
    let mut csv = String::from("t,estimate\n");
    for (t, v) in &r.series {
        csv.push_str(&format!("{t},{v}\n"));
    }
    let json = json!({
        "analysis": "lyapunov",
        "system": name,
        "exponent": num(r.exponent),
        "method": r.method,
        "integrator": r.integrator,
        "dt": r.dt,
        "interval": r.interval,
        "transient": r.transient,
        "time": r.time,
        "d0": r.d0,
        "renormalisations": r.renormalisations,
        "backend": r.backend,
        "params": model.spec.params.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
    });
    output(c, &csv, &json)?;
    eprintln!(
        "largest Lyapunov exponent: {:.6} per {} ({}, {} dt = {}, τ = {}, measured over {} after {})",
        r.exponent,
        if cont { "unit time" } else { "step" },
        r.method,
        r.integrator,
        r.dt,
        r.interval,
        r.time,
        r.transient
    );
    let names = vec![format!("running estimate (final {:.4})", r.exponent)];
    let rows: Vec<(f64, Vec<f64>)> = r.series.iter().map(|(t, v)| (*t, vec![*v])).collect();
    if let Some(p) = &c.plot {
        crate::plot::plot(
            p,
            &format!("{name}: largest Lyapunov exponent"),
            &names,
            &rows,
        )
        .map_err(Fail::Usage)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- sweep

fn sweep_cmd(a: &SweepArgs, color: bool) -> R<()> {
    let c = &a.common;
    let ranges: Vec<&String> = c.param.iter().filter(|p| p.contains("..")).collect();
    let [range] = ranges.as_slice() else {
        return Err(Fail::Usage(
            "`sweep` needs exactly one `--param NAME=LO..HI:COUNT`, e.g. `--param r=2.5..4.0:600`"
                .into(),
        ));
    };
    let (param, lo, hi, count) = named_range("--param", range)?;
    if a.ensemble == 0 {
        return Err(Fail::Usage("`--ensemble` must be at least 1".into()));
    }
    let (flat, spec, backend, name) = load(c, color)?;
    let seed = spec.seed;
    let model = Model::new(&flat, spec.clone(), backend)?;
    let cont = model.continuous();
    let opts = sweep::Options {
        param: param.clone(),
        values: dyn_analyze::linspace(lo, hi, count),
        params: vec![],
        quantity: a.record.clone(),
        every: a.every.unwrap_or(if cont { spec.dt } else { 1.0 }),
        transient: a.transient.unwrap_or(if cont { 5000 } else { 1000 }),
        samples: a.samples.unwrap_or(if cont { 5000 } else { 200 }),
        ensemble: a.ensemble,
        seed,
        max_period: a.max_period,
        tol: a.tol,
    };
    let bar = Bar::new(sweep::runs(&opts), "sweep");
    let start = std::time::Instant::now();
    let pts = sweep::run(&model, &opts, &bar)?;
    drop(bar);
    let secs = start.elapsed().as_secs_f64();
    timings(c, "sweep", start, &model);
    let mut csv = format!("{param},member,period,{}\n", a.record);
    for p in &pts {
        let period = p.period.map(|k| k.to_string()).unwrap_or_default();
        for v in &p.values {
            csv.push_str(&format!("{},{},{period},{v}\n", p.param, p.member));
        }
    }
    let failed = pts.iter().filter(|p| p.error.is_some()).count();
    let json = json!({
        "analysis": "sweep",
        "system": name,
        "param": param,
        "quantity": a.record,
        "diagram": if cont { "local maxima after the transient" } else { "distinct values after the transient" },
        "every": opts.every,
        "transient": opts.transient,
        "samples": opts.samples,
        "ensemble": opts.ensemble,
        "seed": seed,
        "backend": model.backend_name(),
        "threads": rayon::current_num_threads(),
        "seconds": secs,
        "failed": failed,
        "points": pts.iter().map(|p| json!({
            "value": p.param,
            "member": p.member,
            "period": p.period,
            "values": p.values.iter().map(|v| num(*v)).collect::<Vec<_>>(),
            "error": p.error,
        })).collect::<Vec<_>>(),
    });
    output(c, &csv, &json)?;
    if failed > 0 {
        eprintln!(
            "warning: {failed} run{} stopped on a non-finite state (see `error` in the JSON output)",
            if failed == 1 { "" } else { "s" }
        );
    }
    figure(
        c,
        &SweepFigure {
            pts: &pts,
            param: &param,
            quantity: &a.record,
            title: &name,
        },
        (1000, 600),
    )
}

struct SweepFigure<'a> {
    pts: &'a [sweep::Point],
    param: &'a str,
    quantity: &'a str,
    title: &'a str,
}

impl Figure for SweepFigure<'_> {
    fn draw<B: DrawingBackend>(
        &self,
        area: &DrawingArea<B, plotters::coord::Shift>,
    ) -> Result<(), String>
    where
        B::ErrorType: 'static,
    {
        let xs = span(self.pts.iter().map(|p| p.param));
        let ys = span(self.pts.iter().flat_map(|p| p.values.iter().copied()));
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{}: bifurcation diagram of {}", self.title, self.quantity),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xs, ys)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(self.param)
            .y_desc(self.quantity)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        let dot = RGBColor(20, 20, 20).mix(0.6);
        chart
            .draw_series(self.pts.iter().flat_map(|p| {
                p.values
                    .iter()
                    .filter(|v| v.is_finite())
                    .map(move |v| Circle::new((p.param, *v), 1, dot.filled()))
            }))
            .map_err(e)?;
        Ok(())
    }
}

// ---------------------------------------------------------------- basins

fn basins_cmd(a: &BasinsArgs, color: bool) -> R<()> {
    let c = &a.common;
    if c.param.iter().any(|p| p.contains("..")) {
        return Err(Fail::Usage(
            "`basins` takes `--param PATH=VALUE`; sweep a param with `dyn analyze sweep`".into(),
        ));
    }
    let (xs, xlo, xhi, xn) = named_range("--x", &a.x)?;
    let (ys, ylo, yhi, yn) = named_range("--y", &a.y)?;
    if xn.saturating_mul(yn) > 4_000_000 {
        return Err(Fail::Usage(format!(
            "the grid has {} starts; at most 4,000,000",
            xn.saturating_mul(yn)
        )));
    }
    let (flat, spec, backend, name) = load(c, color)?;
    let seed = spec.seed;
    let model = Model::new(&flat, spec.clone(), backend)?;
    let cont = model.continuous();
    let opts = basins::Options {
        x: basins::Axis {
            state: xs.clone(),
            lo: xlo,
            hi: xhi,
            count: xn,
        },
        y: basins::Axis {
            state: ys.clone(),
            lo: ylo,
            hi: yhi,
            count: yn,
        },
        params: vec![],
        every: a.every.unwrap_or(if cont { spec.dt * 10.0 } else { 1.0 }),
        transient: a.transient,
        tail: a.tail,
        tol: a.tol,
        seed,
    };
    let bar = Bar::new(basins::runs(&opts), "basins");
    let start = std::time::Instant::now();
    let r = basins::run(&model, &opts, &bar)?;
    drop(bar);
    timings(c, "basins", start, &model);
    let mut csv = format!("{xs},{ys},label\n");
    for (j, y) in r.ys.iter().enumerate() {
        for (i, x) in r.xs.iter().enumerate() {
            csv.push_str(&format!("{x},{y},{}\n", r.labels[j * r.xs.len() + i]));
        }
    }
    let feats = |v: &[f64]| {
        r.names
            .iter()
            .zip(v)
            .map(|(k, v)| (k.clone(), num(*v)))
            .collect::<serde_json::Map<_, _>>()
    };
    let json = json!({
        "analysis": "basins",
        "system": name,
        "x": {"state": xs, "values": r.xs},
        "y": {"state": ys, "values": r.ys},
        "labels": r.ys.iter().enumerate().map(|(j, _)| r.labels[j * r.xs.len()..(j + 1) * r.xs.len()].to_vec()).collect::<Vec<_>>(),
        "diverged": r.labels.iter().filter(|l| **l < 0).count(),
        "attractors": r.attractors.iter().map(|at| json!({
            "label": at.label,
            "starts": at.count,
            "mean": feats(&at.mean),
            "min": feats(&at.min),
            "max": feats(&at.max),
        })).collect::<Vec<_>>(),
        "every": opts.every,
        "transient": opts.transient,
        "tail": opts.tail,
        "tol": opts.tol,
        "backend": model.backend_name(),
    });
    output(c, &csv, &json)?;
    eprintln!(
        "{} attractor{} over {} starts",
        r.attractors.len(),
        if r.attractors.len() == 1 { "" } else { "s" },
        r.labels.len()
    );
    figure(
        c,
        &BasinsFigure {
            r: &r,
            x: &xs,
            y: &ys,
            title: &name,
        },
        (820, 760),
    )
}

struct BasinsFigure<'a> {
    r: &'a basins::Report,
    x: &'a str,
    y: &'a str,
    title: &'a str,
}

/// A colour per label: the series colours, then a golden-angle hue walk.
fn label_color(l: i64) -> RGBColor {
    if l < 0 {
        return RGBColor(0, 0, 0);
    }
    let l = l as usize;
    if l < COLORS.len() {
        return COLORS[l];
    }
    let h = (l as f64 * 0.618_033_988_75).fract();
    let hsl = HSLColor(h, 0.65, 0.55);
    let (r, g, b) = hsl.rgb();
    RGBColor(r, g, b)
}

impl Figure for BasinsFigure<'_> {
    fn draw<B: DrawingBackend>(
        &self,
        area: &DrawingArea<B, plotters::coord::Shift>,
    ) -> Result<(), String>
    where
        B::ErrorType: 'static,
    {
        let r = self.r;
        let half = |v: &[f64]| {
            if v.len() > 1 {
                (v[1] - v[0]) / 2.0
            } else {
                0.5
            }
        };
        let (hx, hy) = (half(&r.xs), half(&r.ys));
        let x0 = r.xs.first().copied().unwrap_or(0.0) - hx;
        let x1 = r.xs.last().copied().unwrap_or(1.0) + hx;
        let y0 = r.ys.first().copied().unwrap_or(0.0) - hy;
        let y1 = r.ys.last().copied().unwrap_or(1.0) + hy;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{}: basins of attraction", self.title),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                x0.min(x1)..x1.max(x0 + 1e-12),
                y0.min(y1)..y1.max(y0 + 1e-12),
            )
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(self.x)
            .y_desc(self.y)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        let nx = r.xs.len();
        chart
            .draw_series(r.labels.iter().enumerate().map(|(k, l)| {
                let (i, j) = (k % nx, k / nx);
                let (x, y) = (r.xs[i], r.ys[j]);
                Rectangle::new(
                    [(x - hx, y - hy), (x + hx, y + hy)],
                    label_color(*l).filled(),
                )
            }))
            .map_err(e)?;
        for at in &r.attractors {
            let col = label_color(at.label as i64);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x0, y0)],
                    col.filled(),
                )))
                .map_err(e)?
                .label(format!("attractor {} ({} starts)", at.label, at.count))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(e)?;
        Ok(())
    }
}

// ---------------------------------------------------------------- ensemble

fn ensemble_cmd(a: &EnsembleArgs, color: bool) -> R<()> {
    let c = &a.common;
    if c.param.iter().any(|p| p.contains("..")) {
        return Err(Fail::Usage(
            "`ensemble` takes `--param PATH=VALUE`; sweep a param with `dyn analyze sweep`".into(),
        ));
    }
    if a.ensemble == 0 {
        return Err(Fail::Usage("`--ensemble` must be at least 1".into()));
    }
    let (flat, mut spec, backend, name) = load(c, color)?;
    if !a.record.is_empty() {
        spec.record = a.record.clone();
    }
    if a.until.is_some() {
        spec.until = a.until;
        spec.steps = None;
    }
    if a.steps.is_some() {
        spec.steps = a.steps;
        spec.until = None;
    }
    spec.every = a.every.or(spec.every);
    let seed = spec.seed;
    let model = Model::new(&flat, spec.clone(), backend)?;
    let cont = model.continuous();
    let records = if cont {
        let until = spec
            .until
            .or(spec.steps.map(|s| s as f64 * spec.dt))
            .ok_or_else(|| Fail::Usage("give `--until T` (or a run block with `until`)".into()))?;
        let every = spec.every.unwrap_or(spec.dt);
        if !(every > 0.0 && every.is_finite() && until >= 0.0 && until.is_finite()) {
            return Err(Fail::Usage(
                "the end time and the recording interval must be positive numbers".into(),
            ));
        }
        (until / every + 1e-9).floor() as u64
    } else {
        spec.steps
            .or(spec.until.map(|u| u.round() as u64))
            .ok_or_else(|| Fail::Usage("give `--steps N` (or a run block with `steps`)".into()))?
    };
    let opts = ensemble::Options {
        members: a.ensemble,
        seed,
        params: vec![],
        records,
    };
    let bar = Bar::new(a.ensemble as u64, "ensemble");
    let start = std::time::Instant::now();
    let r = ensemble::run(&model, &opts, &bar)?;
    drop(bar);
    timings(c, "ensemble", start, &model);
    let mut csv = String::from("t");
    for n in &r.names {
        csv.push_str(&format!(",{n}_mean,{n}_std,{n}_min,{n}_max"));
    }
    csv.push('\n');
    for (k, t) in r.times.iter().enumerate() {
        csv.push_str(&t.to_string());
        for j in 0..r.names.len() {
            csv.push_str(&format!(
                ",{},{},{},{}",
                r.mean[k][j], r.std[k][j], r.min[k][j], r.max[k][j]
            ));
        }
        csv.push('\n');
    }
    let json = json!({
        "analysis": "ensemble",
        "system": name,
        "members": a.ensemble,
        "seeds": [seed, seed.wrapping_add(a.ensemble as u64 - 1)],
        "failed": r.failed,
        "names": r.names,
        "times": r.times,
        "mean": r.mean,
        "std": r.std,
        "min": r.min,
        "max": r.max,
        "finals": r.finals,
        "backend": model.backend_name(),
    });
    output(c, &csv, &json)?;
    if let Some(p) = &c.plot {
        let mut names = Vec::new();
        for n in &r.names {
            names.push(format!("{n} mean"));
            names.push(format!("{n} mean + std"));
            names.push(format!("{n} mean − std"));
        }
        let rows: Vec<(f64, Vec<f64>)> = r
            .times
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let mut v = Vec::new();
                for j in 0..r.names.len() {
                    v.extend([
                        r.mean[k][j],
                        r.mean[k][j] + r.std[k][j],
                        r.mean[k][j] - r.std[k][j],
                    ]);
                }
                (*t, v)
            })
            .collect();
        crate::plot::plot(
            p,
            &format!("{name}: ensemble of {}", a.ensemble),
            &names,
            &rows,
        )
        .map_err(Fail::Usage)?;
    }
    Ok(())
}
