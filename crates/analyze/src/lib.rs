//! Dynamics analysis of dyn models — the questions asked of a network as a dynamical system:
//!
//! - [`fixed`]: fixed points by Newton's method from many seeds, the Jacobian of the
//!   right-hand side by forward-mode automatic differentiation ([`dual`]), eigenvalues and
//!   a classification (stable node/focus, saddle, unstable node/focus, non-hyperbolic);
//! - [`lyapunov`]: the largest Lyapunov exponent by the two-trajectory method with
//!   renormalisation (Benettin et al.);
//! - [`sweep`]: parameter sweeps in parallel (rayon) with a bifurcation diagram of a recorded
//!   quantity (its values after a transient for maps, its local maxima for flows);
//! - [`basins`]: a grid of initial conditions over two states, each labelled by the attractor
//!   it reaches;
//! - [`ensemble`]: many seeds of a stochastic model in parallel, with mean and spread.
//!
//! The library computes and returns data; it prints nothing (the `dyn analyze` subcommands
//! in `crates/cli` write the CSV/JSON and the figures). Trajectories run on the JIT when it
//! supports the program, compiled once per worker thread and rerun with other params and
//! initial states, else on the interpreter ([`model`]).

#![warn(missing_docs)]

pub mod basins;
pub mod dual;
pub mod ensemble;
pub mod fixed;
pub mod lyapunov;
pub mod model;
pub mod sweep;

pub use model::{Backend, Model};

/// Why an analysis could not be done: a message for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Error(pub String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// A run-time error of a trajectory, in the words `dyn run` uses.
    pub fn run(e: dyn_interp::run::RunError) -> Self {
        use dyn_interp::run::RunError as R;
        Error(match e {
            R::NotFinite { name, time, last } => format!(
                "state `{name}` became NaN or infinite at t = {time} (last finite value: {last})"
            ),
            R::UnknownParam { path, valid } => format!(
                "`{path}` names no param (valid params: {})",
                if valid.is_empty() {
                    "none".to_string()
                } else {
                    valid.join(", ")
                }
            ),
            R::UnknownRecord { name, valid } => format!(
                "cannot record `{name}`: no such state, port or let (recordable: {})",
                valid.join(", ")
            ),
            R::Setting(m) | R::Eval(m) | R::Input(m) => m,
        })
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Progress of a long analysis: `inc(n)` when `n` more units of work are done. Called from
/// worker threads.
pub trait Progress: Sync {
    /// `n` more units are done.
    fn inc(&self, n: u64);
}

/// No progress report.
pub struct Silent;

impl Progress for Silent {
    fn inc(&self, _n: u64) {}
}

/// `count` evenly spaced values from `lo` to `hi` inclusive (`lo` alone when `count` is 1).
pub fn linspace(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    match count {
        0 => vec![],
        1 => vec![lo],
        n => (0..n)
            .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// Parses `LO..HI:COUNT` (e.g. `2.5..4:300`) into its three parts, with a clear error.
pub fn parse_range(s: &str) -> Result<(f64, f64, usize), Error> {
    let bad = || Error::new(format!("`{s}`: expected LO..HI:COUNT, e.g. `2.5..4.0:300`"));
    let (range, count) = s.rsplit_once(':').ok_or_else(bad)?;
    let (lo, hi) = range.split_once("..").ok_or_else(bad)?;
    let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
    let count: usize = count.trim().parse().map_err(|_| bad())?;
    if !lo.is_finite() || !hi.is_finite() || count == 0 {
        return Err(Error::new(format!(
            "`{s}`: the bounds must be finite numbers and COUNT at least 1"
        )));
    }
    if count > 10_000_000 {
        return Err(Error::new(format!("`{s}`: COUNT is limited to 10,000,000")));
    }
    Ok((lo, hi, count))
}

/// Runs `f` on chunks of `items` in parallel, with one [`model::Engine`] (one compilation)
/// per chunk, keeping the order of the items.
pub(crate) fn par_map<T: Sync, R: Send>(
    model: &Model,
    items: &[T],
    f: &(dyn Fn(&model::Engine, &T) -> Result<R, Error> + Sync),
) -> Result<Vec<R>, Error> {
    use rayon::prelude::*;
    if items.is_empty() {
        return Ok(vec![]);
    }
    let threads = rayon::current_num_threads().max(1);
    // A few chunks per thread balance the load; each compiles the program once.
    let chunk = items.len().div_ceil(threads * 4).max(1);
    let parts: Vec<Result<Vec<R>, Error>> = items
        .par_chunks(chunk)
        .map(|part| {
            let engine = model.engine()?;
            part.iter().map(|it| f(&engine, it)).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(items.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}
