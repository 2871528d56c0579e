//! The largest Lyapunov exponent by the two-trajectory method (Benettin, Galgani, Giorgilli
//! and Strelcyn, 1980): a reference trajectory and a copy perturbed by `d0` run side by side;
//! after every renormalisation interval τ their distance `d` is measured, `ln(d / d0)` is
//! added up, and the copy is pulled back along the separation to distance `d0`. The exponent
//! is the sum over the time measured. Only Real state slots are perturbed and measured.
//!
//! Both trajectories start together (the copy from the perturbed initial state) and share
//! the seed, so a model with `randn()` sees the same noise in both; the transient is run
//! with renormalisation but not counted.

use crate::model::Model;
use crate::{Error, Progress};

/// Settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Param overrides.
    pub params: Vec<(String, f64)>,
    /// The initial state (every slot; default: the model's).
    pub x0: Option<Vec<f64>>,
    /// Renormalisation interval τ: time (continuous) or steps (discrete, rounded, ≥ 1).
    pub interval: f64,
    /// Transient before measuring, in the same unit.
    pub transient: f64,
    /// Time measured, in the same unit.
    pub time: f64,
    /// Initial separation (default when 0: 1e-8 × max(1, |x0|)).
    pub d0: f64,
}

/// The result.
#[derive(Debug, Clone)]
pub struct Report {
    /// The largest Lyapunov exponent (per unit time; per step for maps).
    pub exponent: f64,
    /// The method, for outputs.
    pub method: &'static str,
    /// The integrator (`euler`, `rk4`, `rk45`, or `map`).
    pub integrator: &'static str,
    /// Its step (continuous), or 1.
    pub dt: f64,
    /// τ.
    pub interval: f64,
    /// The transient skipped.
    pub transient: f64,
    /// The time measured.
    pub time: f64,
    /// The separation kept.
    pub d0: f64,
    /// Renormalisations counted.
    pub renormalisations: u64,
    /// `(t, running estimate)` after every counted renormalisation.
    pub series: Vec<(f64, f64)>,
    /// `jit` or `interp`.
    pub backend: &'static str,
}

/// Estimates the largest Lyapunov exponent of `model`.
pub fn largest(model: &Model, opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let continuous = model.continuous();
    let positive = |v: f64| v > 0.0 && v.is_finite();
    let ok = positive(opts.interval)
        && positive(opts.time)
        && opts.transient >= 0.0
        && opts.transient.is_finite();
    if !ok {
        return Err(Error::new(
            "the interval and the time must be positive, the transient not negative",
        ));
    }
    let interval = if continuous {
        opts.interval
    } else {
        opts.interval.round().max(1.0)
    };
    let mut spec = model.spec_with(&opts.params, None);
    spec.record = vec![];
    spec.every = Some(interval);
    let m = model.with_spec(spec.clone());
    let (_, _, x_init) = m.setup(&spec)?;
    let x0 = opts.x0.clone().unwrap_or(x_init);
    let vars = m.real_slots();
    if vars.is_empty() {
        return Err(Error::new("the model has no Real state to perturb"));
    }
    let norm0 = vars.iter().map(|s| x0[*s] * x0[*s]).sum::<f64>().sqrt();
    let d0 = if opts.d0 > 0.0 {
        opts.d0
    } else {
        1e-8 * norm0.max(1.0)
    };
    let mut x1 = x0.clone();
    let u = 1.0 / (vars.len() as f64).sqrt();
    for s in &vars {
        x1[*s] += d0 * u;
    }
    let engine = m.engine()?;
    let mut a = engine.start(&spec, Some(&x0)).map_err(Error::run)?;
    let mut b = engine.start(&spec, Some(&x1)).map_err(Error::run)?;
    let k = if continuous { 1 } else { interval as u64 };
    let skip = (opts.transient / interval).round() as u64;
    let count = ((opts.time / interval).round() as u64).max(1);
    let mut sum = 0.0;
    let mut series = Vec::with_capacity(count as usize);
    let mut ignore = |_: f64, _: &[f64]| {};
    for i in 0..skip + count {
        a.advance(k, &mut ignore).map_err(Error::run)?;
        b.advance(k, &mut ignore).map_err(Error::run)?;
        let (xa, xb) = (a.state().to_vec(), b.state_mut());
        let d = vars
            .iter()
            .map(|s| (xb[*s] - xa[*s]).powi(2))
            .sum::<f64>()
            .sqrt();
        if !(d.is_finite() && d > 0.0) {
            return Err(Error::new(format!(
                "the two trajectories {} after {} renormalisations; try a larger d0 or a smaller interval",
                if d == 0.0 {
                    "met"
                } else {
                    "separated without bound"
                },
                i
            )));
        }
        for s in &vars {
            xb[*s] = xa[*s] + (xb[*s] - xa[*s]) * d0 / d;
        }
        if i >= skip {
            sum += (d / d0).ln();
            let done = i - skip + 1;
            let t = done as f64 * interval;
            series.push((t + skip as f64 * interval, sum / t));
        }
        progress.inc(1);
    }
    let time = count as f64 * interval;
    Ok(Report {
        exponent: sum / time,
        method: "two-trajectory (Benettin) with renormalisation",
        integrator: if continuous {
            match m.spec.method {
                dyn_interp::run::Method::Euler => "euler",
                dyn_interp::run::Method::Rk4 => "rk4",
                dyn_interp::run::Method::Rk45 => "rk45",
            }
        } else {
            "map"
        },
        dt: if continuous { m.spec.dt } else { 1.0 },
        interval,
        transient: skip as f64 * interval,
        time,
        d0,
        renormalisations: count,
        series,
        backend: m.backend_name(),
    })
}
