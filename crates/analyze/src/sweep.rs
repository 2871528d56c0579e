//! Parameter sweeps: the model run for many values of one param (and, for stochastic
//! models, many seeds per value), in parallel with rayon, and a bifurcation diagram of one
//! recorded quantity: after a transient, every sampled value for a map (a period-p orbit
//! shows p points) and the local maxima for a flow (a limit cycle shows its peak, a
//! period-2 cycle two peaks). For maps the period of the sampled values is detected too.

use crate::model::Model;
use crate::{Error, Progress, par_map};

/// Settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The param swept (a dotted path, as `--param` takes).
    pub param: String,
    /// Its values.
    pub values: Vec<f64>,
    /// Other param overrides, the same for every run.
    pub params: Vec<(String, f64)>,
    /// The recorded quantity of the diagram (a state, port or let name).
    pub quantity: String,
    /// Sampling interval: time (continuous) or steps (discrete).
    pub every: f64,
    /// Samples skipped as transient.
    pub transient: u64,
    /// Samples kept after it.
    pub samples: u64,
    /// Runs per value (seeds `seed`, `seed + 1`, …): 1 for a deterministic model.
    pub ensemble: usize,
    /// The first seed.
    pub seed: u64,
    /// Longest period looked for (maps).
    pub max_period: usize,
    /// Two samples are equal within `tol × (1 + max |value|)`.
    pub tol: f64,
}

/// One run of the sweep.
#[derive(Debug, Clone)]
pub struct Point {
    /// The param value.
    pub param: f64,
    /// The ensemble member (its seed is `seed + member`).
    pub member: usize,
    /// The diagram's values: distinct samples (maps) or local maxima (flows; the last
    /// sample when there is no maximum, e.g. at a fixed point).
    pub values: Vec<f64>,
    /// The period of the samples (maps): the least `p ≤ max_period` with
    /// `y[k + p] = y[k]` within the tolerance over the kept samples; `None` if there is
    /// none (chaos, quasi-periodicity, or a longer period).
    pub period: Option<usize>,
    /// Why the run failed (a non-finite state), if it did.
    pub error: Option<String>,
}

/// The work of a sweep: one unit per run.
pub fn runs(opts: &Options) -> u64 {
    (opts.values.len() * opts.ensemble.max(1)) as u64
}

/// Runs the sweep; points are in the order of the values, then members.
pub fn run(model: &Model, opts: &Options, progress: &dyn Progress) -> Result<Vec<Point>, Error> {
    if opts.samples == 0 {
        return Err(Error::new("a sweep needs at least one sample per run"));
    }
    if !(opts.every > 0.0 && opts.every.is_finite()) {
        return Err(Error::new("the sampling interval must be positive"));
    }
    let continuous = model.continuous();
    let mut spec = model.spec_with(&opts.params, None);
    spec.record = vec![opts.quantity.clone()];
    spec.every = Some(if continuous {
        opts.every
    } else {
        opts.every.round().max(1.0)
    });
    let m = model.with_spec(spec);
    // The quantity must name one column, and the param must exist: ask once, up front.
    let (names, _) = dyn_interp::run::recorded(m.flat, &m.spec).map_err(Error::run)?;
    if names.len() != 1 {
        return Err(Error::new(format!(
            "`{}` is {} values ({}); sweep one scalar quantity, e.g. `{}`",
            opts.quantity,
            names.len(),
            names.join(", "),
            names.first().map(String::as_str).unwrap_or("x")
        )));
    }
    let probe = m.spec_with(
        &[(
            opts.param.clone(),
            opts.values.first().copied().unwrap_or(0.0),
        )],
        None,
    );
    m.setup(&probe)?;
    let jobs: Vec<(f64, usize)> = opts
        .values
        .iter()
        .flat_map(|v| (0..opts.ensemble.max(1)).map(move |k| (*v, k)))
        .collect();
    let per = if continuous {
        1
    } else {
        m.spec.every.unwrap_or(1.0) as u64
    };
    par_map(&m, &jobs, &|engine, &(value, member)| {
        let spec = m.spec_with(
            &[(opts.param.clone(), value)],
            Some(opts.seed.wrapping_add(member as u64)),
        );
        let mut ys: Vec<f64> = Vec::with_capacity(opts.samples as usize);
        let result = (|| {
            let mut run = engine.start(&spec, None)?;
            run.advance(opts.transient * per, &mut |_, _| {})?;
            run.advance(opts.samples * per, &mut |t, v| {
                if t > 0.0 || opts.transient == 0 {
                    ys.push(v[0]);
                }
            })
        })();
        progress.inc(1);
        // The initial row comes with the first call: keep the last `samples` values.
        if ys.len() > opts.samples as usize {
            ys.drain(..ys.len() - opts.samples as usize);
        }
        let error = result.err().map(|e| Error::run(e).0);
        let (values, period) = if error.is_some() {
            (vec![], None)
        } else if continuous {
            (local_maxima(&ys), None)
        } else {
            (
                distinct(&ys, opts.tol),
                period(&ys, opts.max_period, opts.tol),
            )
        };
        Ok(Point {
            param: value,
            member,
            values,
            period,
            error,
        })
    })
}

fn scale(ys: &[f64]) -> f64 {
    1.0 + ys.iter().fold(0.0f64, |m, y| m.max(y.abs()))
}

/// The least period `p ≤ max_period` of `ys`: `|y[k + p] − y[k]| ≤ tol × (1 + max |y|)` for
/// every `k` (at least `2p` samples are needed).
pub fn period(ys: &[f64], max_period: usize, tol: f64) -> Option<usize> {
    if ys.iter().any(|y| !y.is_finite()) {
        return None;
    }
    let eps = tol * scale(ys);
    (1..=max_period)
        .filter(|p| ys.len() >= 2 * p)
        .find(|&p| (0..ys.len() - p).all(|k| (ys[k + p] - ys[k]).abs() <= eps))
}

/// The distinct values of `ys` (equal within `tol × (1 + max |y|)`), sorted.
pub fn distinct(ys: &[f64], tol: f64) -> Vec<f64> {
    let eps = tol * scale(ys);
    let mut v: Vec<f64> = ys.iter().copied().filter(|y| y.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let mut out: Vec<f64> = Vec::new();
    for y in v {
        if out.last().is_none_or(|l| (y - l).abs() > eps) {
            out.push(y);
        }
    }
    out
}

/// The local maxima of `ys` (`y[k-1] < y[k] ≥ y[k+1]`), or its last value if it has none.
pub fn local_maxima(ys: &[f64]) -> Vec<f64> {
    let mut out: Vec<f64> = ys
        .windows(3)
        .filter(|w| w[0] < w[1] && w[1] >= w[2])
        .map(|w| w[1])
        .collect();
    if out.is_empty()
        && let Some(l) = ys.last()
    {
        out.push(*l);
    }
    out
}
