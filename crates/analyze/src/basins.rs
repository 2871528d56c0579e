//! Basins of attraction: a grid of initial conditions over two states (the others keep
//! their initial values), each run for a while and labelled by the attractor it reaches.
//!
//! An attractor is recognised by the range of every Real state over the end of the run:
//! its minimum and maximum over the last `tail` samples. A range does not depend on the
//! phase, so every start that ends on the same fixed point, limit cycle or chaotic
//! attractor (sampled long enough) covers the same range; two runs share a label when their
//! ranges overlap for every state, each widened by `tol` (relative: `tol × (1 + |bound|)`),
//! which also groups starts that are still settling onto a fixed point. Labels are numbered
//! in order of first appearance along the grid; a run whose state became NaN or infinite
//! is labelled −1. Attractors closer than their own tail ranges are not told apart.

use crate::model::Model;
use crate::{Error, Progress, par_map};

/// One axis of the grid: a state and its values.
#[derive(Debug, Clone)]
pub struct Axis {
    /// The state's name (as [`Model::state_names`] spells it).
    pub state: String,
    /// Lowest value.
    pub lo: f64,
    /// Highest value.
    pub hi: f64,
    /// Number of values.
    pub count: usize,
}

/// Settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Param overrides.
    pub params: Vec<(String, f64)>,
    /// Sampling interval: time (continuous) or steps (discrete).
    pub every: f64,
    /// Samples run before the tail.
    pub transient: u64,
    /// Samples the features are taken over.
    pub tail: u64,
    /// Relative tolerance of equal features.
    pub tol: f64,
    /// The seed of every run.
    pub seed: u64,
}

/// An attractor found.
#[derive(Debug, Clone)]
pub struct Attractor {
    /// Its label.
    pub label: usize,
    /// Starts that reached it.
    pub count: usize,
    /// Mean of each Real state over the tail, of the first start that reached it.
    pub mean: Vec<f64>,
    /// Minimum of each Real state over the tails of every start that reached it.
    pub min: Vec<f64>,
    /// Maximum of each Real state over those tails.
    pub max: Vec<f64>,
}

/// The labelled grid.
#[derive(Debug, Clone)]
pub struct Report {
    /// The values of the horizontal axis.
    pub xs: Vec<f64>,
    /// The values of the vertical axis.
    pub ys: Vec<f64>,
    /// Labels, row by row: `labels[j * xs.len() + i]` is the start `(xs[i], ys[j])`.
    pub labels: Vec<i64>,
    /// The attractors, by label.
    pub attractors: Vec<Attractor>,
    /// Names of the Real states (the order of the features).
    pub names: Vec<String>,
}

/// The work of a grid: one unit per start.
pub fn runs(opts: &Options) -> u64 {
    (opts.x.count * opts.y.count) as u64
}

type Features = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Labels the grid of `opts`.
pub fn run(model: &Model, opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    if opts.tail == 0 {
        return Err(Error::new("basins need a tail of at least one sample"));
    }
    if !(opts.every > 0.0 && opts.every.is_finite()) {
        return Err(Error::new("the sampling interval must be positive"));
    }
    let continuous = model.continuous();
    let mut spec = model.spec_with(&opts.params, Some(opts.seed));
    spec.record = vec![];
    spec.every = Some(if continuous {
        opts.every
    } else {
        opts.every.round().max(1.0)
    });
    let m = model.with_spec(spec.clone());
    let (sx, sy) = (m.state_slot(&opts.x.state)?, m.state_slot(&opts.y.state)?);
    if sx == sy {
        return Err(Error::new("the two axes must be different states"));
    }
    let (_, _, x0) = m.setup(&spec)?;
    let vars = m.real_slots();
    let all = m.state_names();
    let names: Vec<String> = vars.iter().map(|s| all[*s].clone()).collect();
    let xs = crate::linspace(opts.x.lo, opts.x.hi, opts.x.count);
    let ys = crate::linspace(opts.y.lo, opts.y.hi, opts.y.count);
    let starts: Vec<(f64, f64)> = ys
        .iter()
        .flat_map(|y| xs.iter().map(move |x| (*x, *y)))
        .collect();
    let per = if continuous {
        1
    } else {
        m.spec.every.unwrap_or(1.0) as u64
    };
    let feats: Vec<Option<Features>> = par_map(&m, &starts, &|engine, &(x, y)| {
        let mut init = x0.clone();
        init[sx] = x;
        init[sy] = y;
        let out = (|| {
            let mut run = engine.start(&spec, Some(&init))?;
            run.advance(opts.transient * per, &mut |_, _| {})?;
            let n = vars.len();
            let (mut lo, mut hi, mut sum) = (
                vec![f64::INFINITY; n],
                vec![f64::NEG_INFINITY; n],
                vec![0.0; n],
            );
            for _ in 0..opts.tail {
                run.advance(per, &mut |_, _| {})?;
                let st = run.state();
                for (k, s) in vars.iter().enumerate() {
                    lo[k] = lo[k].min(st[*s]);
                    hi[k] = hi[k].max(st[*s]);
                    sum[k] += st[*s];
                }
            }
            let mean: Vec<f64> = sum.iter().map(|v| v / opts.tail as f64).collect();
            Ok::<_, dyn_interp::run::RunError>((mean, lo, hi))
        })();
        progress.inc(1);
        Ok(out.ok().filter(|f| f.0.iter().all(|v: &f64| v.is_finite())))
    })?;
    // Two runs reached the same attractor when, state by state, their ranges over the tail
    // overlap (widened by `tol`): robust to starts that are still settling. An attractor's
    // range grows with the runs that join it.
    let overlaps = |a: &Attractor, lo: &[f64], hi: &[f64]| {
        (0..lo.len()).all(|k| {
            let w = opts.tol * (1.0 + a.max[k].abs().max(a.min[k].abs()).max(hi[k].abs()));
            lo[k] <= a.max[k] + w && hi[k] >= a.min[k] - w
        })
    };
    let mut attractors: Vec<Attractor> = Vec::new();
    let mut labels = Vec::with_capacity(feats.len());
    for f in feats {
        let Some((mean, lo, hi)) = f else {
            labels.push(-1);
            continue;
        };
        match attractors.iter_mut().find(|a| overlaps(a, &lo, &hi)) {
            Some(a) => {
                a.count += 1;
                for k in 0..lo.len() {
                    a.min[k] = a.min[k].min(lo[k]);
                    a.max[k] = a.max[k].max(hi[k]);
                }
                labels.push(a.label as i64);
            }
            None => {
                let label = attractors.len();
                attractors.push(Attractor {
                    label,
                    count: 1,
                    mean,
                    min: lo,
                    max: hi,
                });
                labels.push(label as i64);
            }
        }
    }
    Ok(Report {
        xs,
        ys,
        labels,
        attractors,
        names,
    })
}
