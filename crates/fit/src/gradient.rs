//! The loss on a recorded trajectory and its gradient through time, by reverse mode through
//! the integrator's steps with checkpointing.
//!
//! The forward sweep runs the step system from `x_0` for `N` steps (`N` the step of the last
//! observation), keeps the state at every `S`-th step (the checkpoints, `S ≈ √(N+1)`) and the
//! loss seeds `μ_k = ∂ℓ/∂y(x_k)` at the observed steps. The backward sweep takes the segments
//! last to first: it recomputes the segment's states from its checkpoint (at most `S` states
//! held), then runs the adjoint step over the segment's rows in reverse, carrying `λ` and the
//! accumulated parameter gradient from segment to segment. After row 0, `λ = ∂L/∂x_0`.
//!
//! Memory: `O((N/S + S)·n)` instead of `O(N·n)`; time: two forward runs and one adjoint run.

use crate::exec::{Backend, Exec, Session};
use crate::synth::{self, Integrator, Model};
use crate::{Data, FitError};
use dyn_interp::run::{Probe, RunSpec, Sim, probes};
use dyn_ir::flat::{Flat, flatten};
use std::collections::HashMap;

/// A loss on a trajectory, ready to evaluate and differentiate at any params and initial
/// state.
pub struct Problem {
    model: Model,
    integ: Integrator,
    phi: Exec,
    /// The step system recording states and time only: the backward sweep's recomputation
    /// (a record of states alone computes no signals, so a step evaluates the model once).
    phi_x: Exec,
    /// The step system's out ports `y{c}`: the recorded quantities at the last row, which no
    /// step's lagged states hold.
    y_probes: Vec<Probe>,
    adj: Exec,
    n_cols: usize,
    /// Step of the last observation: the horizon.
    steps: u64,
    /// Observations by step: (step, [(column, value)]).
    targets: HashMap<u64, Vec<(usize, f64)>>,
    /// Number of observed values (the loss is their mean squared error).
    count: f64,
    /// The model's params (flat param buffer) as the run spec sets them.
    pub params: Vec<f64>,
    /// The model's initial state (flat state buffer) as the run spec sets it.
    pub x0: Vec<f64>,
    /// Steps per checkpointed segment.
    pub segment: u64,
}

/// A loss and its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    /// The loss.
    pub loss: f64,
    /// ∂loss/∂params, one per flat param slot.
    pub params: Vec<f64>,
    /// ∂loss/∂x_0, one per flat state slot.
    pub x0: Vec<f64>,
}

impl Problem {
    /// The mean squared error between the model's recorded quantities and `data`, for the
    /// model `flat` run as `spec` says (method, step, params, initial-state overrides).
    /// Observation times must be multiples of the step (of 1 for a discrete model).
    pub fn new(
        flat: &Flat,
        spec: &RunSpec,
        data: &Data,
        backend: Backend,
    ) -> Result<Problem, FitError> {
        let model = Model::from_flat(flat).map_err(FitError::Model)?;
        let integ = Integrator::of(flat.time, spec.method, spec.dt).map_err(FitError::Setting)?;
        let all = probes(flat);
        let mut cols: Vec<Probe> = Vec::new();
        for c in &data.columns {
            match all.iter().find(|(n, _)| n == c) {
                Some((_, p)) => cols.push(*p),
                None => {
                    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).take(30).collect();
                    return Err(FitError::Data(format!(
                        "the data column `{c}` is not a recordable name of the model (names: {})",
                        names.join(", ")
                    )));
                }
            }
        }
        let h = integ.h();
        let mut targets: HashMap<u64, Vec<(usize, f64)>> = HashMap::new();
        let mut steps = 0u64;
        let mut count = 0usize;
        for (t, vals) in &data.rows {
            let k = (t / h).round();
            if (k * h - t).abs() > 1e-6 * h.max(t.abs() * 1e-3) || k > 1e9 {
                return Err(FitError::Data(format!(
                    "the time {t} is not a whole number of steps of {h}"
                )));
            }
            let k = k as u64;
            let obs = targets.entry(k).or_default();
            for (c, v) in vals.iter().enumerate() {
                if !v.is_nan() {
                    obs.push((c, *v));
                    count += 1;
                }
            }
            steps = steps.max(k);
        }
        if count == 0 {
            return Err(FitError::Data("the data has no values".into()));
        }
        let sim = Sim::new(flat, spec).map_err(FitError::Run)?;
        let params = sim.m.params.clone();
        let x0 = sim.x.clone();
        let synth_err = |d| FitError::Model(d);
        let phi_prog = synth::step_system(&model, integ, &cols).map_err(synth_err)?;
        let phi_flat = flatten(phi_prog).map_err(synth_err)?;
        let phi_x = Exec::new(
            phi_flat.clone(),
            synth::step_record(&model, 0, true),
            None,
            backend,
        )
        .map_err(FitError::Setting)?;
        let phi = Exec::new(
            phi_flat,
            synth::step_record(&model, cols.len(), true),
            None,
            backend,
        )
        .map_err(FitError::Setting)?;
        let y_probes = phi
            .probes_of(&synth::step_record(&model, cols.len(), false)[model.states.len() + 1..])
            .map_err(FitError::Setting)?;
        let adj_prog = synth::adjoint_system(&model, integ, &cols).map_err(synth_err)?;
        let adj_flat = flatten(adj_prog).map_err(synth_err)?;
        let adj = Exec::new(
            adj_flat,
            vec![],
            Some(synth::adjoint_columns(&model, cols.len())),
            backend,
        )
        .map_err(FitError::Setting)?;
        let segment = ((steps + 1) as f64).sqrt().ceil().max(1.0) as u64;
        Ok(Problem {
            model,
            integ,
            phi,
            phi_x,
            y_probes,
            adj,
            n_cols: cols.len(),
            steps,
            targets,
            count: count as f64,
            params,
            x0,
            segment,
        })
    }

    /// Number of integrator steps of one forward run.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The integrator.
    pub fn integrator(&self) -> Integrator {
        self.integ
    }

    /// Do both synthesised systems run on the JIT?
    pub fn uses_jit(&self) -> bool {
        self.phi.uses_jit() && self.adj.uses_jit()
    }

    /// The segments `[a, b)` of rows (row `k` is the state after `k` steps, `k = 0..=N`).
    fn segments(&self) -> Vec<(u64, u64)> {
        let s = self.segment.max(1);
        let mut v = Vec::new();
        let mut a = 0;
        while a <= self.steps {
            v.push((a, (a + s).min(self.steps + 1)));
            a += s;
        }
        v
    }

    fn start(&self, x0: &[f64]) -> Vec<f64> {
        let mut x = x0.to_vec();
        x.push(0.0);
        x.extend(std::iter::repeat_n(0.0, self.n_cols));
        x
    }

    /// The forward sweep over rows `[a, b)` from `x` (the step system's state): calls
    /// `row(k, values)` for each row with the state, the time and the recorded quantities
    /// `y(x_k)` — from the lagged states of row `k + 1`, or, at the last row `N`, from the
    /// step system's out ports at `x_N` (by the interpreter, once a sweep). Returns the
    /// step system's state at row `b` (or at `N` for the last segment).
    fn forward_segment(
        &self,
        phi: &mut Session,
        params: &[f64],
        x: &[f64],
        (a, b): (u64, u64),
        row: &mut dyn FnMut(u64, &[f64]),
    ) -> Result<Vec<f64>, FitError> {
        let steps = b.min(self.steps) - a;
        let nt = self.model.n_state + 1;
        let mut prev: Vec<f64> = Vec::new();
        let end = phi
            .run(params, x, None, steps, &mut |k, vals| {
                if k > 0 {
                    prev[nt..].copy_from_slice(&vals[nt..]);
                    row(a + k - 1, &prev);
                }
                prev.clear();
                prev.extend_from_slice(vals);
            })
            .map_err(FitError::Run)?;
        if b > self.steps {
            let y = self
                .phi
                .values_at(params, &end, &self.y_probes)
                .map_err(FitError::Run)?;
            let mut last = end[..nt].to_vec();
            last.extend(y);
            row(self.steps, &last);
        }
        Ok(end)
    }

    /// Runs a segment from `x` (state and time) over rows `[a, b)`, calling `row(k, values)`
    /// for each; returns the state at row `b` (or at the last row for the last segment).
    fn segment_run(
        &self,
        phi: &mut Session,
        params: &[f64],
        x: &[f64],
        (a, b): (u64, u64),
        row: &mut dyn FnMut(u64, &[f64]),
    ) -> Result<Vec<f64>, FitError> {
        let steps = b.min(self.steps) - a;
        phi.run(params, x, None, steps, &mut |k, vals| {
            if a + k < b {
                row(a + k, vals);
            }
        })
        .map_err(FitError::Run)
    }

    /// The loss's contribution of row `k` with recorded values `vals`, and its seeds `μ`.
    fn observe(&self, k: u64, vals: &[f64], mu: Option<&mut Vec<f64>>) -> f64 {
        let Some(obs) = self.targets.get(&k) else {
            return 0.0;
        };
        let y = &vals[vals.len() - self.n_cols..];
        let mut l = 0.0;
        let mut seeds = vec![0.0; self.n_cols];
        for &(c, d) in obs {
            let r = y[c] - d;
            l += r * r;
            seeds[c] += 2.0 * r / self.count;
        }
        if let Some(mu) = mu {
            *mu = seeds;
        }
        l
    }

    /// The loss at `params` (flat param buffer) and `x0` (flat state buffer).
    pub fn loss(&self, params: &[f64], x0: &[f64]) -> Result<f64, FitError> {
        let mut x = self.start(x0);
        let mut loss = 0.0;
        let mut phi = self.phi.session();
        for seg in self.segments() {
            x = self.forward_segment(&mut phi, params, &x, seg, &mut |k, vals| {
                loss += self.observe(k, vals, None);
            })?;
        }
        Ok(loss / self.count)
    }

    /// The loss and its gradient with respect to every param and initial state slot.
    pub fn gradient(&self, params: &[f64], x0: &[f64]) -> Result<Gradient, FitError> {
        let nx = self.model.n_state;
        let np = self.model.n_param;
        let segs = self.segments();
        // Forward: loss, seeds and checkpoints.
        let mut checkpoints = Vec::with_capacity(segs.len());
        let mut mus: HashMap<u64, Vec<f64>> = HashMap::new();
        let mut x = self.start(x0);
        let mut loss = 0.0;
        let mut phi = self.phi.session();
        let mut adj_run = self.adj.session();
        let mut phi_x = self.phi_x.session();
        for &seg in &segs {
            checkpoints.push(x.clone());
            x = self.forward_segment(&mut phi, params, &x, seg, &mut |k, vals| {
                let mut mu = vec![];
                let l = self.observe(k, vals, Some(&mut mu));
                if !mu.is_empty() {
                    loss += l;
                    mus.insert(k, mu);
                }
            })?;
        }
        // Backward, segment by segment.
        let mut adj = vec![0.0; nx + np + 1];
        let zero_mu = vec![0.0; self.n_cols.max(1)];
        // The segment's states (state and time, `nx + 1` a row) and the adjoint's input rows,
        // reused from segment to segment.
        let mut xs: Vec<f64> = Vec::new();
        let mut rows: Vec<Vec<f64>> = Vec::new();
        for (j, &(a, b)) in segs.iter().enumerate().rev() {
            xs.clear();
            self.segment_run(
                &mut phi_x,
                params,
                &checkpoints[j],
                (a, b),
                &mut |_, vals| xs.extend_from_slice(&vals[..nx + 1]),
            )?;
            let len = (b - a) as usize;
            rows.resize_with(len, Vec::new);
            for (w, k) in rows.iter_mut().zip((a..b).rev()) {
                let xk = &xs[(k - a) as usize * (nx + 1)..][..nx + 1];
                w.clear();
                w.extend_from_slice(&xk[..nx]);
                w.extend_from_slice(params);
                w.push(xk[nx]);
                w.extend_from_slice(mus.get(&k).unwrap_or(&zero_mu));
            }
            adj = adj_run
                .run(&[], &adj, Some(&rows[..len]), b - a, &mut |_, _| {})
                .map_err(FitError::Run)?;
        }
        Ok(Gradient {
            loss: loss / self.count,
            params: adj[nx..nx + np].to_vec(),
            x0: adj[..nx].to_vec(),
        })
    }
}
