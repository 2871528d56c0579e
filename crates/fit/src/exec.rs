//! Running a synthesised discrete system from a given state with given params, and optionally
//! an input table, on the JIT (compiled once) or on the interpreter.

use dyn_interp::run::{Probe, RunError, RunSpec, Sim, Stream, recorded};
use dyn_ir::flat::Flat;

/// Which backend runs the synthesised systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The Cranelift JIT when it supports the program, else the interpreter.
    Auto,
    /// The Cranelift JIT; an error when it does not support the program.
    Jit,
    /// The reference interpreter.
    Interp,
}

/// A flattened discrete program ready to run many times.
pub(crate) struct Exec {
    pub flat: Flat,
    spec: RunSpec,
    jit: Option<dyn_jit::Compiled>,
    probes: Vec<Probe>,
}

impl Exec {
    /// Compiles (or prepares for the interpreter) `flat`, recording `record`; `columns` are
    /// the input stream's columns if the program reads one.
    pub fn new(
        flat: Flat,
        record: Vec<String>,
        columns: Option<Vec<String>>,
        backend: Backend,
    ) -> Result<Exec, String> {
        let spec = RunSpec {
            record,
            stream: columns.map(|c| Stream {
                rows: vec![vec![0.0; c.len()]],
                columns: c,
            }),
            steps: Some(1),
            ..RunSpec::default()
        };
        let (_, probes) = recorded(&flat, &spec).map_err(|e| format!("{e:?}"))?;
        let jit = match backend {
            Backend::Interp => None,
            Backend::Auto | Backend::Jit => {
                match dyn_jit::compile_lean(&flat, &spec).map_err(|e| format!("{e:?}"))? {
                    Ok(c) => Some(c),
                    Err(why) if backend == Backend::Jit => {
                        return Err(format!("the JIT does not support this model: {why}"));
                    }
                    Err(_) => None,
                }
            }
        };
        Ok(Exec {
            flat,
            spec,
            jit,
            probes,
        })
    }

    /// Does the JIT run it?
    pub fn uses_jit(&self) -> bool {
        self.jit.is_some()
    }

    /// A session of runs of this program: on the JIT, one [`dyn_jit::Runner`] made on the
    /// first run and restarted for the next ones (no new buffers, no interpreter evaluation
    /// of the initial signals per run).
    pub fn session(&self) -> Session<'_> {
        Session {
            exec: self,
            runner: None,
        }
    }

    /// The probes of the recordable quantities `names` of this program.
    pub fn probes_of(&self, names: &[String]) -> Result<Vec<Probe>, String> {
        let spec = RunSpec {
            record: names.to_vec(),
            ..self.spec.clone()
        };
        let (_, probes) = recorded(&self.flat, &spec).map_err(|e| format!("{e:?}"))?;
        Ok(probes)
    }

    /// The values of `probes` at state `x` and params `params`, by the interpreter (which
    /// the JIT equals to the bit).
    pub fn values_at(
        &self,
        params: &[f64],
        x: &[f64],
        probes: &[Probe],
    ) -> Result<Vec<f64>, RunError> {
        let mut sim = Sim::new(&self.flat, &self.spec)?;
        sim.x.copy_from_slice(x);
        sim.m.params.copy_from_slice(params);
        sim.set_tick(0)?;
        sim.m.signals(&sim.x, &sim.inputs)?;
        Ok(probes
            .iter()
            .map(|p| match p {
                Probe::State(i) => sim.x[*i],
                Probe::Signal(i) => sim.m.sig[*i],
            })
            .collect())
    }

    /// A run on the interpreter (see [`Session::run`]).
    fn interp_run(
        &self,
        params: &[f64],
        x0: &[f64],
        rows: Option<&[Vec<f64>]>,
        steps: u64,
        row: &mut dyn FnMut(u64, &[f64]),
    ) -> Result<Vec<f64>, RunError> {
        let mut spec = self.spec.clone();
        if let (Some(st), Some(rows)) = (spec.stream.as_mut(), rows) {
            st.rows = rows.to_vec();
        }
        spec.steps = Some(steps);
        let record = !self.probes.is_empty();
        let mut sim = Sim::new(&self.flat, &spec)?;
        sim.x.copy_from_slice(x0);
        sim.m.params.copy_from_slice(params);
        let mut vals = vec![0.0; self.probes.len()];
        let probes = &self.probes;
        let mut emit = |sim: &mut Sim, k: u64| -> Result<(), RunError> {
            if !record {
                return Ok(());
            }
            sim.m.time = k as f64;
            sim.m.signals(&sim.x, &sim.inputs)?;
            for (v, p) in vals.iter_mut().zip(probes) {
                *v = match p {
                    Probe::State(i) => sim.x[*i],
                    Probe::Signal(i) => sim.m.sig[*i],
                };
            }
            row(k, &vals);
            Ok(())
        };
        emit(&mut sim, 0)?;
        let mut next = sim.x.clone();
        for k in 1..=steps {
            sim.m.time = (k - 1) as f64;
            sim.set_tick(k - 1)?;
            sim.m.signals(&sim.x, &sim.inputs)?;
            next.copy_from_slice(&sim.x);
            sim.m.next_state(&sim.x, &mut next)?;
            if let Some(i) = next.iter().position(|v| !v.is_finite()) {
                return Err(RunError::NotFinite {
                    name: dyn_interp::run::state_name(&self.flat, i),
                    time: k as f64,
                    last: sim.x[i],
                });
            }
            std::mem::swap(&mut sim.x, &mut next);
            if k < steps {
                sim.set_tick(k)?;
            }
            emit(&mut sim, k)?;
        }
        Ok(sim.x)
    }
}

/// Runs of one [`Exec`] that reuse one JIT runner (see [`Exec::session`]).
pub(crate) struct Session<'a> {
    exec: &'a Exec,
    runner: Option<dyn_jit::Runner<'a, 'a>>,
}

impl Session<'_> {
    /// Runs `steps` steps from state `x0` with params `params` (and the input rows `rows`,
    /// one a step), calling `row(k, values)` for the recorded values after `k` steps,
    /// `k = 0..=steps` (only when something is recorded). Returns the final state.
    pub fn run(
        &mut self,
        params: &[f64],
        x0: &[f64],
        rows: Option<&[Vec<f64>]>,
        steps: u64,
        row: &mut dyn FnMut(u64, &[f64]),
    ) -> Result<Vec<f64>, RunError> {
        let ex = self.exec;
        // A run of no steps records only the initial row, which the driver writes on its
        // first call: the interpreter gives it.
        let Some(c) = ex.jit.as_ref().filter(|_| steps > 0) else {
            return ex.interp_run(params, x0, rows, steps, row);
        };
        let r = match &mut self.runner {
            Some(r) => {
                r.restart(x0, rows)?;
                r
            }
            None => {
                let mut spec = ex.spec.clone();
                if let (Some(st), Some(rows)) = (spec.stream.as_mut(), rows) {
                    st.rows = rows.to_vec();
                }
                spec.steps = Some(steps);
                self.runner
                    .insert(dyn_jit::Runner::new(c, &ex.flat, &spec, Some(x0))?)
            }
        };
        r.sim.m.params.copy_from_slice(params);
        let record = !ex.probes.is_empty();
        let mut k = 0u64;
        r.advance(steps, &mut |_, vals| {
            if record {
                row(k, vals);
            }
            k += 1;
        })?;
        Ok(r.sim.x.clone())
    }
}
