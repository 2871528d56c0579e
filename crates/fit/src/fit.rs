//! Fitting: the variables by name, and the two optimizers (Adam, and L-BFGS with a
//! Moré–Thuente line search from the `argmin` crate) minimising a [`Problem`]'s loss.

use crate::{FitError, Problem};
use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{CostFunction, Error, Executor, Gradient, KV, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use dyn_interp::run::{Probe, param_paths, probes};
use dyn_ir::flat::Flat;
use dyn_ir::system::slots;
use std::sync::{Arc, Mutex};

/// One fitted scalar: a param slot or an initial-state slot, with its name.
#[derive(Debug, Clone, PartialEq)]
pub enum Var {
    /// A flat param slot (`a`, `foxes.c`, `W[3]`).
    Param {
        /// Name.
        name: String,
        /// Flat param slot.
        slot: usize,
    },
    /// A flat state slot whose initial value is fitted (`x`, `rabbits.r`).
    Init {
        /// Name.
        name: String,
        /// Flat state slot.
        slot: usize,
    },
}

impl Var {
    /// The name.
    pub fn name(&self) -> &str {
        match self {
            Var::Param { name, .. } | Var::Init { name, .. } => name,
        }
    }
}

/// The fitted scalars named by `names`: each name is a param path (`a`, `foxes.c`; a tensor
/// param gives all its elements, `W[0]`, `W[1]`, …), else a state's recordable name (its
/// initial value is fitted; a tensor state gives all its elements). Only Real params.
pub fn resolve_vars(flat: &Flat, names: &[String]) -> Result<Vec<Var>, FitError> {
    let mut out = Vec::new();
    let paths = param_paths(flat);
    // Shape and kind of each param, by its first slot.
    let mut shape_of = std::collections::HashMap::new();
    for g in &flat.groups {
        let sys = &flat.program.systems[g.system as usize];
        for (i, (sl, _)) in sys.params.iter().enumerate() {
            shape_of.insert(g.param_base + g.param_off[i], sl.clone());
        }
    }
    let states: Vec<(String, usize)> = probes(flat)
        .into_iter()
        .filter_map(|(n, p)| match p {
            Probe::State(s) => Some((n, s)),
            Probe::Signal(_) => None,
        })
        .collect();
    for name in names {
        let name = name.trim();
        if let Some((_, slot)) = paths.iter().find(|(p, _)| p == name) {
            let sl = &shape_of[slot];
            if sl.kind != dyn_ir::system::Kind::Real {
                return Err(FitError::Setting(format!(
                    "the param `{name}` is not Real: only Real params can be fitted"
                )));
            }
            if sl.shape.is_empty() {
                out.push(Var::Param {
                    name: name.to_string(),
                    slot: *slot,
                });
            } else {
                for j in 0..slots(&sl.shape) {
                    out.push(Var::Param {
                        name: format!("{name}[{j}]"),
                        slot: slot + j,
                    });
                }
            }
            continue;
        }
        let hits: Vec<&(String, usize)> = states
            .iter()
            .filter(|(n, _)| n == name || n.starts_with(&format!("{name}[")))
            .collect();
        if hits.is_empty() {
            let mut valid: Vec<String> = paths.iter().map(|(p, _)| p.clone()).collect();
            valid.extend(states.iter().map(|(n, _)| n.clone()).take(20));
            return Err(FitError::Setting(format!(
                "`{name}` is neither a param nor a state of the model (params and states: {})",
                valid.join(", ")
            )));
        }
        for (n, s) in hits {
            out.push(Var::Init {
                name: n.clone(),
                slot: *s,
            });
        }
    }
    if out.is_empty() {
        return Err(FitError::Setting("no variable to fit".into()));
    }
    for (i, v) in out.iter().enumerate() {
        if out[..i].contains(v) {
            return Err(FitError::Setting(format!("`{}` is named twice", v.name())));
        }
    }
    Ok(out)
}

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Adam with this learning rate (β₁ = 0.9, β₂ = 0.999, ε = 1e-8).
    Adam {
        /// Learning rate.
        lr: f64,
    },
    /// L-BFGS (memory 7) with a Moré–Thuente line search.
    Lbfgs,
}

/// Options of a fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Iterations at most.
    pub iters: u64,
}

/// The result of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitResult {
    /// Fitted values, one per variable.
    pub values: Vec<f64>,
    /// The loss at the fitted values.
    pub loss: f64,
    /// The loss at the start.
    pub initial_loss: f64,
    /// Iterations done.
    pub iters: u64,
    /// Why the optimizer stopped.
    pub stopped: String,
}

/// A problem seen as a function of the fitted variables only.
struct Objective<'p> {
    problem: &'p Problem,
    vars: &'p [Var],
}

impl Objective<'_> {
    fn point(&self, u: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut p = self.problem.params.clone();
        let mut x = self.problem.x0.clone();
        for (v, val) in self.vars.iter().zip(u) {
            match v {
                Var::Param { slot, .. } => p[*slot] = *val,
                Var::Init { slot, .. } => x[*slot] = *val,
            }
        }
        (p, x)
    }

    fn start(&self) -> Vec<f64> {
        self.vars
            .iter()
            .map(|v| match v {
                Var::Param { slot, .. } => self.problem.params[*slot],
                Var::Init { slot, .. } => self.problem.x0[*slot],
            })
            .collect()
    }

    fn loss(&self, u: &[f64]) -> Result<f64, FitError> {
        let (p, x) = self.point(u);
        self.problem.loss(&p, &x)
    }

    fn grad(&self, u: &[f64]) -> Result<(f64, Vec<f64>), FitError> {
        let (p, x) = self.point(u);
        let g = self.problem.gradient(&p, &x)?;
        let gu = self
            .vars
            .iter()
            .map(|v| match v {
                Var::Param { slot, .. } => g.params[*slot],
                Var::Init { slot, .. } => g.x0[*slot],
            })
            .collect();
        Ok((g.loss, gu))
    }
}

/// Minimises the problem's loss over `vars`, starting from the problem's params and initial
/// state; `progress(iteration, loss)` is called after every iteration.
pub fn fit(
    problem: &Problem,
    vars: &[Var],
    opts: FitOptions,
    progress: &mut (dyn FnMut(u64, f64) + Send),
) -> Result<FitResult, FitError> {
    let obj = Objective { problem, vars };
    let u0 = obj.start();
    let initial_loss = obj.loss(&u0)?;
    match opts.optimizer {
        Optimizer::Adam { lr } => adam(&obj, u0, initial_loss, lr, opts.iters, progress),
        Optimizer::Lbfgs => lbfgs(&obj, u0, initial_loss, opts.iters, progress),
    }
}

fn adam(
    obj: &Objective,
    mut u: Vec<f64>,
    initial_loss: f64,
    lr: f64,
    iters: u64,
    progress: &mut (dyn FnMut(u64, f64) + Send),
) -> Result<FitResult, FitError> {
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(FitError::Setting(format!(
            "the learning rate must be positive, not {lr}"
        )));
    }
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let n = u.len();
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let mut best = (initial_loss, u.clone());
    let mut stopped = "the iterations ran out".to_string();
    let mut done = 0;
    for it in 1..=iters {
        // A step that makes the run diverge ends the fit at the best point so far.
        let (loss, g) = match obj.grad(&u) {
            Ok(r) => r,
            Err(e) => {
                stopped = format!("stopped at iteration {it}: {e}");
                break;
            }
        };
        done = it;
        if loss < best.0 {
            best = (loss, u.clone());
        }
        let (c1, c2) = (1.0 - b1.powi(it as i32), 1.0 - b2.powi(it as i32));
        for i in 0..n {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            u[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        }
        progress(it, loss);
    }
    if let Ok(last) = obj.loss(&u)
        && last <= best.0
    {
        best = (last, u);
    }
    Ok(FitResult {
        values: best.1,
        loss: best.0,
        initial_loss,
        iters: done,
        stopped,
    })
}

/// A point, the loss there and its gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// The objective as argmin sees it; the last gradient is cached with its point, since the
/// line search asks for the cost and the gradient at the same points.
struct Argmin<'o, 'p, 'f> {
    obj: &'o Objective<'p>,
    cache: Mutex<Option<Evaluated>>,
    /// Iterations the observer has seen end, forwarded to `progress` at the next evaluation.
    log: Arc<Mutex<Vec<(u64, f64)>>>,
    progress: Mutex<&'f mut (dyn FnMut(u64, f64) + Send)>,
    /// The loss is multiplied by this (see [`lbfgs`]).
    scale: f64,
}

impl Argmin<'_, '_, '_> {
    fn report(&self) {
        let done: Vec<(u64, f64)> = std::mem::take(&mut *self.log.lock().expect("log"));
        let mut p = self.progress.lock().expect("progress");
        for (it, c) in done {
            (*p)(it, c / self.scale);
        }
    }

    fn both(&self, u: &[f64]) -> Result<(f64, Vec<f64>), Error> {
        self.report();
        if let Some((p, l, g)) = &*self.cache.lock().expect("cache")
            && p == u
        {
            return Ok((*l, g.clone()));
        }
        let (l, g) = self.obj.grad(u).map_err(|e| Error::msg(e.to_string()))?;
        let (l, g) = (
            l * self.scale,
            g.iter().map(|v| v * self.scale).collect::<Vec<_>>(),
        );
        *self.cache.lock().expect("cache") = Some((u.to_vec(), l, g.clone()));
        Ok((l, g))
    }
}

impl CostFunction for Argmin<'_, '_, '_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, u: &Vec<f64>) -> Result<f64, Error> {
        // A run that diverges is an infinite cost: the line search steps back.
        match self.both(u) {
            Ok((l, _)) => Ok(l),
            Err(_) => Ok(f64::INFINITY),
        }
    }
}

impl Gradient for Argmin<'_, '_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, u: &Vec<f64>) -> Result<Vec<f64>, Error> {
        Ok(self.both(u)?.1)
    }
}

/// Reports each iteration's best cost to the progress callback.
struct Report(Arc<Mutex<Vec<(u64, f64)>>>);

impl<I: State> Observe<I> for Report
where
    I::Float: Into<f64>,
{
    fn observe_iter(&mut self, state: &I, _kv: &KV) -> Result<(), Error> {
        let c: f64 = state.get_best_cost().into();
        self.0.lock().expect("report").push((state.get_iter(), c));
        Ok(())
    }
}

fn lbfgs(
    obj: &Objective,
    u0: Vec<f64>,
    initial_loss: f64,
    iters: u64,
    progress: &mut (dyn FnMut(u64, f64) + Send),
) -> Result<FitResult, FitError> {
    // L-BFGS's first step is the gradient itself (later steps are scaled by the curvature
    // seen): the loss is scaled so that this first step changes the variables by 1 % of
    // their norm, instead of a step as long as the raw gradient, which can throw an
    // oscillator's params far enough to blow up the run.
    let (_, g0) = obj.grad(&u0)?;
    let gn = g0.iter().map(|v| v * v).sum::<f64>().sqrt();
    let un = u0.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-3);
    let scale = if gn > 0.0 && gn.is_finite() {
        0.01 * un / gn
    } else {
        1.0
    };
    let ls = MoreThuenteLineSearch::new();
    let solver = LBFGS::new(ls, 7)
        .with_tolerance_grad(0.0)
        .and_then(|s| s.with_tolerance_cost(0.0))
        .map_err(|e| FitError::Setting(e.to_string()))?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let problem = Argmin {
        obj,
        cache: Mutex::new(None),
        log: seen.clone(),
        progress: Mutex::new(progress),
        scale,
    };
    let res = Executor::new(problem, solver)
        .configure(|s| s.param(u0.clone()).max_iters(iters))
        .add_observer(Report(seen.clone()), ObserverMode::Always)
        .run()
        .map_err(|e| FitError::Setting(format!("L-BFGS stopped: {e}")))?;
    res.problem.problem.as_ref().map(Argmin::report);
    let st = res.state();
    let values = st.get_best_param().cloned().unwrap_or(u0);
    let loss = obj.loss(&values)?;
    let done = st.get_iter();
    let stopped = st.get_termination_status().to_string();
    Ok(FitResult {
        values,
        loss,
        initial_loss,
        iters: done,
        stopped,
    })
}
