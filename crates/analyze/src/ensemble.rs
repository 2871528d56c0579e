//! Ensembles: a stochastic model run with many seeds in parallel (member `k` uses seed
//! `seed + k`), and the mean, standard deviation, minimum and maximum of every recorded
//! quantity at every recorded time.

use crate::model::Model;
use crate::{Error, Progress, par_map};

/// Settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Members.
    pub members: usize,
    /// The first seed.
    pub seed: u64,
    /// Param overrides.
    pub params: Vec<(String, f64)>,
    /// Recording intervals (continuous) or steps (discrete) run.
    pub records: u64,
}

/// Statistics over the members.
#[derive(Debug, Clone)]
pub struct Report {
    /// Recorded names.
    pub names: Vec<String>,
    /// Recorded times.
    pub times: Vec<f64>,
    /// Mean over the members: `mean[k][j]` at `times[k]` of `names[j]`.
    pub mean: Vec<Vec<f64>>,
    /// Standard deviation (with `n − 1`; 0 for one member).
    pub std: Vec<Vec<f64>>,
    /// Minimum.
    pub min: Vec<Vec<f64>>,
    /// Maximum.
    pub max: Vec<Vec<f64>>,
    /// The last recorded values of every member that finished.
    pub finals: Vec<Vec<f64>>,
    /// Members whose state became NaN or infinite (left out of the statistics).
    pub failed: usize,
}

/// Runs the ensemble. The recorded quantities are the model spec's `record`.
pub fn run(model: &Model, opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    if opts.members == 0 {
        return Err(Error::new("an ensemble needs at least one member"));
    }
    let spec = model.spec_with(&opts.params, None);
    let m = model.with_spec(spec);
    let (names, _) = dyn_interp::run::recorded(m.flat, &m.spec).map_err(Error::run)?;
    m.setup(&m.spec)?;
    let members: Vec<usize> = (0..opts.members).collect();
    type Trace = Option<(Vec<f64>, Vec<Vec<f64>>)>;
    let traces: Vec<Trace> = par_map(&m, &members, &|engine, &k| {
        let spec = m.spec_with(&[], Some(opts.seed.wrapping_add(k as u64)));
        let mut times = Vec::new();
        let mut rows = Vec::new();
        let ok = engine
            .start(&spec, None)
            .and_then(|mut run| {
                run.advance(opts.records, &mut |t, v| {
                    times.push(t);
                    rows.push(v.to_vec());
                })
            })
            .is_ok();
        progress.inc(1);
        Ok(ok.then_some((times, rows)))
    })?;
    let failed = traces.iter().filter(|t| t.is_none()).count();
    let good: Vec<&(Vec<f64>, Vec<Vec<f64>>)> = traces.iter().flatten().collect();
    let Some(first) = good.first() else {
        return Err(Error::new(
            "every member's state became NaN or infinite; try a smaller step",
        ));
    };
    let times = first.0.clone();
    let nt = good.iter().map(|g| g.1.len()).min().unwrap_or(0);
    let nq = names.len();
    let (mut mean, mut std, mut min, mut max) = (vec![], vec![], vec![], vec![]);
    for k in 0..nt {
        let (mut mu, mut sd, mut lo, mut hi) = (
            vec![0.0; nq],
            vec![0.0; nq],
            vec![f64::INFINITY; nq],
            vec![f64::NEG_INFINITY; nq],
        );
        for j in 0..nq {
            let n = good.len() as f64;
            let m = good.iter().map(|g| g.1[k][j]).sum::<f64>() / n;
            let v = if good.len() > 1 {
                good.iter().map(|g| (g.1[k][j] - m).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            mu[j] = m;
            sd[j] = v.sqrt();
            for g in &good {
                lo[j] = lo[j].min(g.1[k][j]);
                hi[j] = hi[j].max(g.1[k][j]);
            }
        }
        mean.push(mu);
        std.push(sd);
        min.push(lo);
        max.push(hi);
    }
    Ok(Report {
        names,
        times: times[..nt].to_vec(),
        mean,
        std,
        min,
        max,
        finals: good.iter().filter_map(|g| g.1.last().cloned()).collect(),
        failed,
    })
}
