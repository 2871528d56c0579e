//! A model to analyse, and the runs every analysis is made of: a flattened program with a
//! base run specification, started again and again with other params, initial states and
//! seeds. Runs use the Cranelift JIT when it supports the program (compiled once per
//! thread, then rerun: params and initial states are run-time data), else the reference
//! interpreter, stepping exactly as `dyn run` does, so both give the same numbers.

use crate::Error;
use dyn_interp::run::{Method, Probe, RunError, RunSpec, Sim};
use dyn_ir::flat::Flat;
use dyn_ir::system::{Kind, TimeKind, slots};

/// Which backend runs the trajectories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The JIT when it supports the program, else the interpreter.
    Auto,
    /// The Cranelift JIT (an error if it does not support the program).
    Jit,
    /// The reference interpreter.
    Interp,
}

/// A model with the settings of its runs.
pub struct Model<'f> {
    /// The flattened program.
    pub flat: &'f Flat,
    /// The base specification: method, step, recording, params, seed. Each run may add
    /// param overrides and change the seed; analyses set `record` and `every` themselves.
    pub spec: RunSpec,
    jit: bool,
}

/// Param values, root input slots with their values, and the initial state of a run.
pub type Setup = (Vec<f64>, Vec<(usize, f64)>, Vec<f64>);

/// One running trajectory.
pub trait Run {
    /// Advances by `k` recording intervals (continuous) or `k` steps (discrete), calling
    /// `row(t, values)` for every recorded row (the initial row first, on the first call).
    fn advance(&mut self, k: u64, row: &mut dyn FnMut(f64, &[f64])) -> Result<(), RunError>;
    /// The current state (every state slot).
    fn state(&self) -> &[f64];
    /// The current state, to change between calls of [`Run::advance`].
    fn state_mut(&mut self) -> &mut [f64];
}

/// What runs trajectories on one thread: the compiled program (JIT), or the interpreter.
pub struct Engine<'m, 'f> {
    model: &'m Model<'f>,
    spec: RunSpec,
    compiled: Option<dyn_jit::Compiled>,
}

impl<'f> Model<'f> {
    /// A model run as `spec` says with `backend`. `record` lists what analyses read (empty:
    /// nothing but the state). Fails when `backend` is the JIT and it does not support the
    /// program.
    pub fn new(flat: &'f Flat, spec: RunSpec, backend: Backend) -> Result<Self, Error> {
        let jit = match backend {
            Backend::Interp => false,
            Backend::Auto => dyn_jit::supported_run(flat, &spec).is_ok(),
            Backend::Jit => match dyn_jit::supported_run(flat, &spec) {
                Ok(()) => true,
                Err(why) => {
                    return Err(Error::new(format!(
                        "the JIT does not support {why} yet; use `--backend interp`"
                    )));
                }
            },
        };
        Ok(Model { flat, spec, jit })
    }

    /// The same model and backend with another base spec (same method: the backend
    /// chosen for the method stays valid).
    pub fn with_spec(&self, mut spec: RunSpec) -> Model<'f> {
        spec.method = self.spec.method;
        Model {
            flat: self.flat,
            spec,
            jit: self.jit,
        }
    }

    /// Does this model run on the JIT?
    pub fn uses_jit(&self) -> bool {
        self.jit
    }

    /// The name of the backend that runs it (`jit` or `interp`).
    pub fn backend_name(&self) -> &'static str {
        if self.jit { "jit" } else { "interp" }
    }

    /// Is the model continuous (else discrete: a map)?
    pub fn continuous(&self) -> bool {
        self.flat.time == TimeKind::Continuous
    }

    /// The hierarchical name of every state slot (`cell[3].v`, `w[2]` for tensors).
    pub fn state_names(&self) -> Vec<String> {
        let mut names = vec![String::new(); self.flat.n_state];
        for (n, p) in dyn_interp::run::probes(self.flat) {
            if let Probe::State(i) = p
                && names[i].is_empty()
            {
                names[i] = n;
            }
        }
        names
    }

    /// The state slots holding Real values (the ones fixed-point and Jacobian analyses
    /// vary; Int and Bool states are counters and flags, held fixed).
    pub fn real_slots(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for g in &self.flat.groups {
            let sys = &self.flat.program.systems[g.system as usize];
            for e in 0..g.count {
                for (i, (s, _)) in sys.states.iter().enumerate() {
                    if s.kind == Kind::Real {
                        let o = g.state(e, i);
                        out.extend(o..o + slots(&s.shape).max(1));
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The slot of the state named `name` (as [`Model::state_names`] spells it).
    pub fn state_slot(&self, name: &str) -> Result<usize, Error> {
        let names = self.state_names();
        names.iter().position(|n| n == name).ok_or_else(|| {
            Error::new(format!(
                "`{name}` is not a state of the model (states: {})",
                names.join(", ")
            ))
        })
    }

    /// The spec of one run: the base spec with `params` added (later overrides win).
    pub fn spec_with(&self, params: &[(String, f64)], seed: Option<u64>) -> RunSpec {
        let mut s = self.spec.clone();
        s.params.extend(params.iter().cloned());
        if let Some(seed) = seed {
            s.seed = seed;
        }
        s
    }

    /// Params (as `Sim::new` sets them from `spec`), the root inputs and the initial state.
    pub fn setup(&self, spec: &RunSpec) -> Result<Setup, Error> {
        let sim = Sim::new(self.flat, spec).map_err(Error::run)?;
        Ok((sim.m.params.clone(), sim.inputs.clone(), sim.x.clone()))
    }

    /// An engine for this thread: compiles the program when it runs on the JIT.
    pub fn engine(&self) -> Result<Engine<'_, 'f>, Error> {
        let compiled = if self.jit {
            match dyn_jit::compile(self.flat, &self.spec).map_err(Error::run)? {
                Ok(c) => Some(c),
                Err(why) => return Err(Error::new(format!("the JIT does not support {why}"))),
            }
        } else {
            if self.spec.method == Method::Rk45 && dyn_jit::n_events(self.flat) > 0 {
                return Err(Error::new(
                    "analyses do not locate `when` events under rk45 on the interpreter; use --method rk4 or euler",
                ));
            }
            None
        };
        Ok(Engine {
            model: self,
            spec: self.spec.clone(),
            compiled,
        })
    }
}

impl<'m, 'f> Engine<'m, 'f> {
    /// Starts a run with `spec` (the model's spec with other params or seed; same method
    /// and recording) from `x0` (default: the model's initial state).
    pub fn start<'e>(
        &'e self,
        spec: &RunSpec,
        x0: Option<&[f64]>,
    ) -> Result<Box<dyn Run + 'e>, RunError> {
        let mut spec = spec.clone();
        spec.method = self.spec.method;
        spec.record = self.spec.record.clone();
        spec.every = self.spec.every;
        match &self.compiled {
            Some(c) => Ok(Box::new(JitRun(dyn_jit::Runner::new(
                c,
                self.model.flat,
                &spec,
                x0,
            )?))),
            None => Ok(Box::new(InterpRun::new(self.model.flat, &spec, x0)?)),
        }
    }
}

struct JitRun<'c, 'f>(dyn_jit::Runner<'c, 'f>);

impl Run for JitRun<'_, '_> {
    fn advance(&mut self, k: u64, row: &mut dyn FnMut(f64, &[f64])) -> Result<(), RunError> {
        self.0.advance(k, row)
    }
    fn state(&self) -> &[f64] {
        &self.0.sim.x
    }
    fn state_mut(&mut self) -> &mut [f64] {
        &mut self.0.sim.x
    }
}

/// The interpreter, stepped as `dyn_interp::run::run` steps (the same arithmetic in the
/// same order), but resumable and from any initial state.
struct InterpRun<'f> {
    sim: Sim<'f>,
    spec: RunSpec,
    probes: Vec<Probe>,
    flags: Vec<bool>,
    continuous: bool,
    every: f64,
    /// Records (continuous) or steps (discrete) done.
    done: u64,
    t: f64,
    h: f64,
}

impl<'f> InterpRun<'f> {
    fn new(flat: &'f Flat, spec: &RunSpec, x0: Option<&[f64]>) -> Result<Self, RunError> {
        let (_, probes) = dyn_interp::run::recorded(flat, spec)?;
        let mut sim = Sim::new(flat, spec)?;
        if let Some(x0) = x0 {
            if x0.len() != sim.x.len() {
                return Err(RunError::Setting(format!(
                    "an initial state of {} values for a model of {} state slots",
                    x0.len(),
                    sim.x.len()
                )));
            }
            sim.x.copy_from_slice(x0);
        }
        let inputs = sim.inputs.clone();
        sim.m.signals(&sim.x, &inputs)?;
        let flags = sim.m.event_conditions(&sim.x)?;
        let continuous = flat.time == TimeKind::Continuous;
        let every = if continuous {
            if !(spec.dt > 0.0 && spec.dt.is_finite()) {
                return Err(RunError::Setting(format!(
                    "the step dt must be positive, not {}",
                    spec.dt
                )));
            }
            let e = spec.every.unwrap_or(spec.dt);
            if e.is_nan() || e <= 0.0 {
                return Err(RunError::Setting(
                    "the recording interval must be positive".into(),
                ));
            }
            e
        } else {
            spec.every.map(|e| (e.round() as u64).max(1)).unwrap_or(1) as f64
        };
        let noisy = flat
            .program
            .systems
            .iter()
            .any(|s| s.updates.iter().any(|a| a.value.has_randn()));
        if continuous && noisy {
            if spec.method != Method::Euler {
                return Err(RunError::Setting(
                    "a system with `randn()` in `der` runs with `--method euler` (Euler–Maruyama)"
                        .into(),
                ));
            }
            sim.m.noise_scale = 1.0 / spec.dt.sqrt();
        }
        if spec.stream.is_some() {
            return Err(RunError::Setting(
                "analyses do not read input streams; the root's inputs are 0".into(),
            ));
        }
        Ok(InterpRun {
            sim,
            spec: spec.clone(),
            probes,
            flags,
            continuous,
            every,
            done: 0,
            t: 0.0,
            h: spec.dt,
        })
    }

    fn emit(&mut self, t: f64, row: &mut dyn FnMut(f64, &[f64])) -> Result<(), RunError> {
        self.sim.m.time = t;
        let inputs = self.sim.inputs.clone();
        self.sim.m.signals(&self.sim.x, &inputs)?;
        let vals: Vec<f64> = self
            .probes
            .iter()
            .map(|p| match p {
                Probe::State(i) => self.sim.x[*i],
                Probe::Signal(i) => self.sim.m.sig[*i],
            })
            .collect();
        row(t, &vals);
        Ok(())
    }

    fn check_finite(&self, t: f64, prev: &[f64]) -> Result<(), RunError> {
        if let Some(i) = self.sim.x.iter().position(|v| !v.is_finite()) {
            return Err(RunError::NotFinite {
                name: dyn_interp::run::state_name(self.sim.m.flat, i),
                time: t,
                last: prev[i],
            });
        }
        Ok(())
    }

    /// Fires the events whose condition became true (as the interpreter does after a step).
    fn events(&mut self) -> Result<(), RunError> {
        if self.flags.is_empty() {
            return Ok(());
        }
        let inputs = self.sim.inputs.clone();
        self.sim.m.signals(&self.sim.x, &inputs)?;
        let now = self.sim.m.event_conditions(&self.sim.x)?;
        let fire: Vec<bool> = now
            .iter()
            .zip(&self.flags)
            .map(|(n, p)| *n && !*p)
            .collect();
        self.flags = now;
        if fire.iter().any(|f| *f) {
            let mut x = self.sim.x.clone();
            self.sim.m.apply_events(&mut x, &fire)?;
            self.sim.x = x;
        }
        Ok(())
    }
}

impl Run for InterpRun<'_> {
    fn advance(&mut self, k: u64, row: &mut dyn FnMut(f64, &[f64])) -> Result<(), RunError> {
        if k == 0 {
            return Ok(());
        }
        if self.done == 0 {
            self.emit(0.0, row)?;
        }
        if !self.continuous {
            let every = self.every as u64;
            let mut next = self.sim.x.clone();
            for _ in 0..k {
                let s = self.done + 1;
                self.sim.m.time = (s - 1) as f64;
                let inputs = self.sim.inputs.clone();
                self.sim.m.signals(&self.sim.x, &inputs)?;
                next.copy_from_slice(&self.sim.x);
                self.sim.m.next_state(&self.sim.x, &mut next)?;
                let prev = std::mem::replace(&mut self.sim.x, next.clone());
                self.check_finite(s as f64, &prev)?;
                self.done = s;
                if s.is_multiple_of(every) {
                    self.emit(s as f64, row)?;
                }
            }
            return Ok(());
        }
        let method = self.spec.method;
        let dt = self.spec.dt;
        let mut out = vec![0.0; self.sim.x.len()];
        for _ in 0..k {
            let r = self.done + 1;
            let target = r as f64 * self.every;
            let mut t = self.t;
            while t < target - 1e-12 * target.abs().max(1.0) {
                match method {
                    Method::Euler | Method::Rk4 => {
                        let step = dt.min(target - t);
                        let xs = self.sim.x.clone();
                        self.sim.fixed_step(method, t, &xs, step, &mut out)?;
                        let prev = std::mem::replace(&mut self.sim.x, out.clone());
                        t += step;
                        self.check_finite(t, &prev)?;
                        self.events()?;
                    }
                    Method::Rk45 => {
                        let step = self.h.min(target - t);
                        let xs = self.sim.x.clone();
                        let errn = self.sim.dp_step(
                            t,
                            &xs,
                            step,
                            &mut out,
                            self.spec.rtol,
                            self.spec.atol,
                        )?;
                        if errn <= 1.0 || step < 1e-14 * t.abs().max(1.0) {
                            let prev = std::mem::replace(&mut self.sim.x, out.clone());
                            t += step;
                            self.check_finite(t, &prev)?;
                            let fac = if errn == 0.0 {
                                5.0
                            } else {
                                (0.9 * errn.powf(-0.2)).clamp(0.2, 5.0)
                            };
                            self.h = (step * fac).max(1e-14);
                        } else {
                            let f = 0.9 * errn.powf(-0.2);
                            self.h = step * if f.is_nan() { 0.1 } else { f.clamp(0.1, 0.9) };
                        }
                    }
                }
            }
            self.t = target;
            self.done = r;
            self.emit(target, row)?;
        }
        Ok(())
    }
    fn state(&self) -> &[f64] {
        &self.sim.x
    }
    fn state_mut(&mut self) -> &mut [f64] {
        &mut self.sim.x
    }
}
