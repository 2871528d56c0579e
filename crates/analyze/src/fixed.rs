//! Fixed points: zeros of `G(x)` — the derivatives of a continuous model, `next(x) − x` of
//! a discrete one — found by damped Newton iterations from many seeds, with the Jacobian
//! from forward-mode automatic differentiation ([`crate::dual`]), its eigenvalues
//! (nalgebra's Schur decomposition) and a classification.
//!
//! Only the Real state slots vary; Int and Bool states (counters, flags) keep their
//! initial values. `randn()` is 0 (the drift), time is 0, `when` events are ignored.

use crate::model::Model;
use crate::{Error, dual};
use nalgebra::DMatrix;

/// The kind of a fixed point, from the eigenvalues of its linearisation (of the vector
/// field for flows; of the map, the multipliers, for maps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Every eigenvalue decays without rotation (flows: all real parts < 0, all real; maps:
    /// all moduli < 1, all real).
    StableNode,
    /// Every eigenvalue decays, some with rotation (a complex pair).
    StableFocus,
    /// Some directions decay and some grow.
    Saddle,
    /// Every direction grows, without rotation.
    UnstableNode,
    /// Every direction grows, some with rotation.
    UnstableFocus,
    /// Every eigenvalue is on the stability boundary as a rotation (flows: purely imaginary
    /// pairs; maps: complex multipliers of modulus 1): linearly a center.
    Center,
    /// Some eigenvalue is on the boundary (flows: real part 0; maps: modulus 1) and the
    /// linearisation does not decide stability.
    NonHyperbolic,
}

impl Class {
    /// The name used in outputs: `stable node`, `saddle`, ….
    pub fn name(self) -> &'static str {
        match self {
            Class::StableNode => "stable node",
            Class::StableFocus => "stable focus",
            Class::Saddle => "saddle",
            Class::UnstableNode => "unstable node",
            Class::UnstableFocus => "unstable focus",
            Class::Center => "center",
            Class::NonHyperbolic => "non-hyperbolic",
        }
    }

    /// Is the point (linearly) stable?
    pub fn stable(self) -> bool {
        matches!(self, Class::StableNode | Class::StableFocus)
    }
}

/// One fixed point found.
#[derive(Debug, Clone)]
pub struct FixedPoint {
    /// The whole state at the point (every slot; the varied ones are the Real slots).
    pub state: Vec<f64>,
    /// Values of the varied slots ([`Report::names`] order).
    pub values: Vec<f64>,
    /// Largest |G_i| at the point.
    pub residual: f64,
    /// `∂G_i/∂x_j` over the varied slots (row `i`, column `j`).
    pub jacobian: Vec<Vec<f64>>,
    /// Eigenvalues `(re, im)` of the linearisation: of `∂G/∂x` for flows, of the map's
    /// Jacobian `∂next/∂x = ∂G/∂x + I` for maps; sorted by decreasing real part.
    pub eigenvalues: Vec<(f64, f64)>,
    /// The classification.
    pub class: Class,
    /// How many seeds converged to this point.
    pub hits: usize,
}

/// Settings of the search.
#[derive(Debug, Clone)]
pub struct Options {
    /// Param overrides of the analysis.
    pub params: Vec<(String, f64)>,
    /// Seeds: values of the varied slots ([`Report::names`] order); empty for
    /// [`default_seeds`].
    pub seeds: Vec<Vec<f64>>,
    /// Newton iterations per seed.
    pub max_iter: usize,
    /// Convergence: largest |G_i| below this.
    pub tol: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            params: vec![],
            seeds: vec![],
            max_iter: 100,
            tol: 1e-10,
        }
    }
}

/// What the search found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Names of the varied state slots.
    pub names: Vec<String>,
    /// The distinct fixed points, in the order they were first found.
    pub points: Vec<FixedPoint>,
    /// Seeds tried.
    pub seeds: usize,
    /// Seeds whose iteration did not converge.
    pub failed: usize,
    /// A discrete model (a map).
    pub discrete: bool,
    /// How the Jacobian was computed.
    pub jacobian_method: &'static str,
}

/// Seeds when none are given: with up to three varied slots, a grid of 7 values per slot
/// over `[-R, R]`; with more, 200 points drawn uniformly from that box (seeded, so
/// reproducible); the model's initial state first in both. `R = max(10, 2 max|x0_i|)`.
pub fn default_seeds(x0: &[f64]) -> Vec<Vec<f64>> {
    let r = x0.iter().fold(10.0f64, |m, v| m.max(2.0 * v.abs()));
    let r = if r.is_finite() { r } else { 10.0 };
    let n = x0.len();
    let mut out = vec![x0.to_vec()];
    if n == 0 {
        return out;
    }
    if n <= 3 {
        let axis = crate::linspace(-r, r, 7);
        let total = 7usize.pow(n as u32);
        for k in 0..total {
            let mut p = Vec::with_capacity(n);
            let mut q = k;
            for _ in 0..n {
                p.push(axis[q % 7]);
                q /= 7;
            }
            out.push(p);
        }
    } else {
        let mut rng = dyn_ir::numeric::Noise::new(0x5eed);
        for _ in 0..200 {
            out.push((0..n).map(|_| (2.0 * rng.uniform() - 1.0) * r).collect());
        }
    }
    out
}

fn inf_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| {
        if x.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(x.abs())
        }
    })
}

/// Finds the fixed points of `model` from the seeds of `opts`.
pub fn find(model: &Model, opts: &Options) -> Result<Report, Error> {
    let spec = model.spec_with(&opts.params, None);
    let (params, inputs, x0) = model.setup(&spec)?;
    let vars = model.real_slots();
    if vars.is_empty() {
        return Err(Error::new(
            "the model has no Real state: there is nothing to solve for",
        ));
    }
    let names: Vec<String> = {
        let all = model.state_names();
        vars.iter().map(|s| all[*s].clone()).collect()
    };
    let base: Vec<f64> = vars.iter().map(|s| x0[*s]).collect();
    let seeds = if opts.seeds.is_empty() {
        default_seeds(&base)
    } else {
        opts.seeds.clone()
    };
    let flat = model.flat;
    let full = |vals: &[f64]| {
        let mut x = x0.clone();
        for (s, v) in vars.iter().zip(vals) {
            x[*s] = *v;
        }
        x
    };
    let residual = |vals: &[f64]| residual_rows(flat, &params, &inputs, &full(vals), &vars);
    let mut points: Vec<FixedPoint> = Vec::new();
    let mut failed = 0;
    for seed in &seeds {
        if seed.len() != vars.len() {
            return Err(Error::new(format!(
                "a seed of {} values for {} states ({})",
                seed.len(),
                vars.len(),
                names.join(", ")
            )));
        }
        match newton(seed, opts, &residual, &|v: &[f64]| {
            dual::residual_jacobian(flat, &params, &inputs, &full(v), &vars).map_err(Error::new)
        })? {
            Some(p) => {
                let scale = 1e-6 * (1.0 + inf_norm(&p));
                if let Some(q) = points
                    .iter_mut()
                    .find(|q| q.values.iter().zip(&p).all(|(a, b)| (a - b).abs() <= scale))
                {
                    q.hits += 1;
                    continue;
                }
                let x = full(&p);
                let (g, jac) = dual::residual_jacobian(flat, &params, &inputs, &x, &vars)
                    .map_err(Error::new)?;
                let discrete = !model.continuous();
                let eig = eigenvalues(&jac, discrete);
                points.push(FixedPoint {
                    state: x,
                    values: p,
                    residual: inf_norm(&g),
                    class: classify(&eig, discrete),
                    eigenvalues: eig,
                    jacobian: jac,
                    hits: 1,
                });
            }
            None => failed += 1,
        }
    }
    Ok(Report {
        names,
        points,
        seeds: seeds.len(),
        failed,
        discrete: !model.continuous(),
        jacobian_method: "forward-mode automatic differentiation (dual numbers)",
    })
}

/// `G` alone: the value parts of one dual evaluation, rows in `vars` order.
fn residual_rows(
    flat: &dyn_ir::flat::Flat,
    params: &[f64],
    inputs: &[(usize, f64)],
    x: &[f64],
    vars: &[usize],
) -> Result<Vec<f64>, Error> {
    let mut dm = dual::DualMachine::new(flat, params);
    let state: Vec<dual::D> = x.iter().map(|v| dual::D::c(*v)).collect();
    dm.signals(&state, inputs).map_err(Error::new)?;
    let discrete = flat.time != dyn_ir::system::TimeKind::Continuous;
    let mut out: Vec<dual::D> = if discrete {
        state.clone()
    } else {
        vec![dual::D::c(0.0); x.len()]
    };
    let time = if discrete {
        dyn_ir::system::TimeKind::Discrete
    } else {
        dyn_ir::system::TimeKind::Continuous
    };
    dm.updates(time, &state, &mut out).map_err(Error::new)?;
    Ok(vars
        .iter()
        .map(|s| {
            if discrete {
                out[*s].v - x[*s]
            } else {
                out[*s].v
            }
        })
        .collect())
}

/// Damped Newton from `seed`: the solution, or `None` when it does not converge.
type Residual<'a> = dyn Fn(&[f64]) -> Result<Vec<f64>, Error> + 'a;
type WithJacobian<'a> = dyn Fn(&[f64]) -> Result<(Vec<f64>, Vec<Vec<f64>>), Error> + 'a;

fn newton(
    seed: &[f64],
    opts: &Options,
    residual: &Residual,
    jacobian: &WithJacobian,
) -> Result<Option<Vec<f64>>, Error> {
    let n = seed.len();
    let mut x = seed.to_vec();
    for _ in 0..opts.max_iter {
        let (g, jac) = match jacobian(&x) {
            Ok(r) => r,
            // An evaluation error (an index out of range, an Int overflow) at this seed.
            Err(_) => return Ok(None),
        };
        let gn = inf_norm(&g);
        if !gn.is_finite() {
            return Ok(None);
        }
        if gn <= opts.tol {
            return Ok(Some(x));
        }
        let a = DMatrix::from_fn(n, n, |i, j| jac[i][j]);
        let b = nalgebra::DVector::from_iterator(n, g.iter().map(|v| -v));
        let dx = match a.clone().lu().solve(&b) {
            Some(d) if d.iter().all(|v| v.is_finite()) => d,
            // Singular: the least-squares step of the pseudo-inverse.
            _ => match a.svd(true, true).solve(&b, 1e-12) {
                Ok(d) if d.iter().all(|v| v.is_finite()) => d,
                _ => return Ok(None),
            },
        };
        // Backtracking on |G|: halve the step until the residual decreases.
        let mut alpha = 1.0;
        loop {
            let trial: Vec<f64> = x
                .iter()
                .zip(dx.iter())
                .map(|(a, d)| a + alpha * d)
                .collect();
            let tn = match residual(&trial) {
                Ok(r) => inf_norm(&r),
                Err(_) => f64::NAN,
            };
            if tn.is_finite() && tn < gn || alpha < 1e-4 {
                x = trial;
                break;
            }
            alpha *= 0.5;
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Ok(None);
        }
    }
    let g = residual(&x).map(|r| inf_norm(&r)).unwrap_or(f64::NAN);
    Ok((g <= opts.tol * 1e3).then_some(x))
}

/// Eigenvalues of the linearisation of `G`'s Jacobian `jac`: of `jac` itself (flows) or of
/// `jac + I` (maps), sorted by decreasing real part, then imaginary part.
pub fn eigenvalues(jac: &[Vec<f64>], discrete: bool) -> Vec<(f64, f64)> {
    let n = jac.len();
    if n == 0 {
        return vec![];
    }
    let m = DMatrix::from_fn(n, n, |i, j| {
        jac[i][j] + if discrete && i == j { 1.0 } else { 0.0 }
    });
    let mut ev: Vec<(f64, f64)> = m
        .complex_eigenvalues()
        .iter()
        .map(|c| (c.re, c.im))
        .collect();
    ev.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
    ev
}

/// Classifies a fixed point from the eigenvalues of its linearisation (see [`Class`]).
/// An eigenvalue counts as on the boundary within `1e-9 × max(1, max |λ|)`.
pub fn classify(eig: &[(f64, f64)], discrete: bool) -> Class {
    let scale = eig.iter().fold(1.0f64, |m, (re, im)| m.max(re.hypot(*im)));
    let tol = 1e-9 * scale;
    // Signed distance from the boundary: < 0 decaying, > 0 growing.
    let side = |(re, im): &(f64, f64)| {
        if discrete { re.hypot(*im) - 1.0 } else { *re }
    };
    let complex = eig.iter().any(|(_, im)| im.abs() > tol);
    let on = eig.iter().filter(|e| side(e).abs() <= tol).count();
    if on > 0 {
        let all_rotations = on == eig.len()
            && eig.iter().all(|(re, im)| {
                if discrete {
                    im.abs() > tol
                } else {
                    re.abs() <= tol && im.abs() > tol
                }
            });
        return if all_rotations {
            Class::Center
        } else {
            Class::NonHyperbolic
        };
    }
    let decaying = eig.iter().filter(|e| side(e) < 0.0).count();
    match (decaying == eig.len(), decaying == 0, complex) {
        (true, _, false) => Class::StableNode,
        (true, _, true) => Class::StableFocus,
        (_, true, false) => Class::UnstableNode,
        (_, true, true) => Class::UnstableFocus,
        _ => Class::Saddle,
    }
}
