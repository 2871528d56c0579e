//! One compiled program, run many times: with other params (through `RunSpec::params`), other
//! initial states and other seeds, without compiling again — what parameter sweeps, basins of
//! attraction and ensembles need. A [`Runner`] also advances a run piece by piece, and the
//! caller may read and change the state between pieces (the two-trajectory Lyapunov method
//! renormalises the perturbed copy this way).
//!
//! The code is the one [`crate::run`] calls, on the same buffers and with the same io words,
//! so a piece-by-piece run gives the trace `dyn run` gives, to the bit.

use crate::{Compiled, WORK_BUFFERS, driver, n_events, noisy};
use dyn_interp::run::{Probe, RunError, RunSpec, Sim, state_name};
use dyn_ir::flat::Flat;
use dyn_ir::system::TimeKind;

impl Compiled {
    /// The recorded names (tensors expanded to `name[i]`), in column order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The recorded quantities, in column order.
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }
}

/// A run of a [`Compiled`] program that advances on request.
pub struct Runner<'c, 'f> {
    compiled: &'c Compiled,
    flat: &'f Flat,
    /// The interpreter's buffers the generated code runs on. Between calls of
    /// [`Runner::advance`] `sim.x` is the current state: it may be read and changed.
    pub sim: Sim<'f>,
    io: [f64; driver::io::WORDS],
    work: Vec<f64>,
    scratch: Vec<f64>,
    table: Vec<f64>,
    rec: Vec<f64>,
    continuous: bool,
    every: f64,
    dt: f64,
    /// Records (continuous) or steps (discrete) done.
    done: u64,
    /// Rows handed to callers so far (the initial row is row 0).
    rows: u64,
    /// Rows of the input stream, if there is one.
    stream_rows: Option<u64>,
}

fn word(at: i32) -> usize {
    at as usize / 8
}

impl<'c, 'f> Runner<'c, 'f> {
    /// Starts a run of `compiled`, which must have been compiled from `flat` for `spec` (the
    /// same method, recording and input stream). Params are set as `Sim::new` sets them from
    /// `spec` (defaults, box arguments, `spec.params`), the noise generator from `spec.seed`;
    /// `x0`, when given, replaces the initial state (its signals and event conditions are
    /// computed from it). The recording interval is `spec.every` (default: `dt`, or one step).
    pub fn new(
        compiled: &'c Compiled,
        flat: &'f Flat,
        spec: &RunSpec,
        x0: Option<&[f64]>,
    ) -> Result<Self, RunError> {
        let mut sim = Sim::new(flat, spec)?;
        let n = flat.n_state;
        let mut work = vec![0.0; WORK_BUFFERS * n.max(1) + n_events(flat)];
        let flags: Vec<bool> = match x0 {
            Some(x0) => {
                if x0.len() != n {
                    return Err(RunError::Setting(format!(
                        "an initial state of {} values for a model of {n} state slots",
                        x0.len()
                    )));
                }
                sim.x.copy_from_slice(x0);
                let inputs = sim.inputs.clone();
                sim.m.signals(&sim.x, &inputs)?;
                sim.m.event_conditions(&sim.x)?
            }
            None => sim.event_flags().to_vec(),
        };
        for (k, f) in flags.iter().enumerate() {
            work[WORK_BUFFERS * n.max(1) + k] = if *f { 1.0 } else { 0.0 };
        }
        let continuous = flat.time == TimeKind::Continuous;
        let (every, dt) = if continuous {
            if !(spec.dt > 0.0 && spec.dt.is_finite()) {
                return Err(RunError::Setting(format!(
                    "the step dt must be positive, not {}",
                    spec.dt
                )));
            }
            let every = spec.every.unwrap_or(spec.dt);
            if every.is_nan() || every <= 0.0 {
                return Err(RunError::Setting(
                    "the recording interval must be positive".into(),
                ));
            }
            (every, spec.dt)
        } else {
            (
                spec.every.map(|e| (e.round() as u64).max(1)).unwrap_or(1) as f64,
                0.0,
            )
        };
        let scale = if noisy(flat) && continuous {
            1.0 / spec.dt.sqrt()
        } else {
            1.0
        };
        let table: Vec<f64> = match &spec.stream {
            Some(st) => {
                let cols: Vec<usize> = sim.stream_columns().to_vec();
                st.rows
                    .iter()
                    .flat_map(|row| cols.iter().map(move |c| row[*c]))
                    .collect()
            }
            None => vec![],
        };
        let scratch = vec![0.0f64; compiled.scratch.max(1)];
        let mut io = [0.0f64; driver::io::WORDS];
        io[word(driver::io::SCALE)] = scale;
        io[word(driver::io::H)] = spec.dt;
        io[word(driver::io::RTOL)] = spec.rtol;
        io[word(driver::io::ATOL)] = spec.atol;
        io[word(driver::io::EVERY)] = every;
        io[word(driver::io::DT)] = dt;
        Ok(Runner {
            compiled,
            flat,
            sim,
            io,
            work,
            scratch,
            table,
            rec: vec![],
            continuous,
            every,
            dt,
            done: 0,
            rows: 0,
            stream_rows: spec.stream.as_ref().map(|st| st.rows.len() as u64),
        })
    }

    /// Starts the run again from state `x0` at time 0, keeping the params (`sim.m.params`,
    /// which the caller may change), the compiled code and the buffers: what [`Runner::new`]
    /// does without building a new `Sim` (no interpreter evaluation unless the program has
    /// events, whose conditions are then computed at `x0`). `rows`, when given, replaces the
    /// input stream's rows (one a step, in the stream's columns). The noise generator goes
    /// on where it was.
    pub fn restart(&mut self, x0: &[f64], rows: Option<&[Vec<f64>]>) -> Result<(), RunError> {
        let n = self.flat.n_state;
        if x0.len() != n {
            return Err(RunError::Setting(format!(
                "an initial state of {} values for a model of {n} state slots",
                x0.len()
            )));
        }
        self.sim.x.copy_from_slice(x0);
        if n_events(self.flat) > 0 {
            let inputs = self.sim.inputs.clone();
            self.sim.m.signals(&self.sim.x, &inputs)?;
            let flags = self.sim.m.event_conditions(&self.sim.x)?;
            for (k, f) in flags.iter().enumerate() {
                self.work[WORK_BUFFERS * n.max(1) + k] = if *f { 1.0 } else { 0.0 };
            }
        }
        if let Some(rows) = rows {
            if self.stream_rows.is_none() {
                return Err(RunError::Setting(
                    "input rows for a program that reads no input stream".into(),
                ));
            }
            let cols = self.sim.stream_columns();
            self.table.clear();
            for row in rows {
                for c in cols {
                    match row.get(*c) {
                        Some(v) => self.table.push(*v),
                        None => {
                            return Err(RunError::Input(format!(
                                "an input row of {} values for a stream of more columns",
                                row.len()
                            )));
                        }
                    }
                }
            }
            self.stream_rows = Some(rows.len() as u64);
        }
        self.done = 0;
        self.rows = 0;
        Ok(())
    }

    /// The time reached: records done × the recording interval (continuous), or steps done
    /// (discrete).
    pub fn time(&self) -> f64 {
        if self.continuous {
            self.done as f64 * self.every
        } else {
            self.done as f64
        }
    }

    /// Advances by `k` recording intervals (continuous) or `k` steps (discrete), calling
    /// `row(t, values)` for each row recorded (the initial row first, on the first call).
    /// A state that becomes NaN or infinite stops the run with the interpreter's error.
    pub fn advance(&mut self, k: u64, row: &mut dyn FnMut(f64, &[f64])) -> Result<(), RunError> {
        // Calls of at most 2^16 records or steps keep the record buffer small.
        let mut left = k;
        while left > 0 {
            let step = left.min(1 << 16);
            self.call(step, row)?;
            left -= step;
        }
        Ok(())
    }

    /// One call of the driver for `k` more records or steps.
    fn call(&mut self, k: u64, row: &mut dyn FnMut(f64, &[f64])) -> Result<(), RunError> {
        let r0 = self.done + 1;
        let r1 = self.done + k;
        if let Some(have) = self.stream_rows
            && have < self.rows_needed(r1)
        {
            return Err(RunError::Input(format!(
                "the input stream has {have} rows but the run needs {} (one row a step)",
                self.rows_needed(r1)
            )));
        }
        let np = self.compiled.probes.len();
        let per = if self.continuous {
            1
        } else {
            self.every as u64
        };
        // Rows this call may write: (r0 - 1) / per (the initial row on the first call) to r1 / per.
        let (base, last) = ((r0 - 1) / per, r1 / per);
        let len = (last - base + 1) as usize * np.max(1);
        self.rec.clear();
        self.rec.resize(len, 0.0);
        self.io[word(driver::io::COUNT)] = f64::from_bits(r1);
        self.io[word(driver::io::START)] = f64::from_bits(r0);
        self.io[word(driver::io::T0)] = if self.continuous {
            (r0 - 1) as f64 * self.every
        } else {
            0.0
        };
        // Addresses are set at every call: the runner (and its `sim`) may have moved.
        self.io[word(driver::io::RNG)] = f64::from_bits(self.sim.m.rng_ptr() as u64);
        self.io[word(driver::io::STREAM)] = f64::from_bits(self.table.as_ptr() as u64);
        self.io[word(driver::io::SCRATCH)] = f64::from_bits(self.scratch.as_mut_ptr() as u64);
        // Row `r` is written at `rec + r × np`: shifted so that row `base` is the first of
        // the buffer (a wrapping offset; the code writes only rows `base..=last`).
        let rec = self.rec.as_mut_ptr().wrapping_sub(base as usize * np);
        // SAFETY: as in `crate::run`: x has n_state slots, p n_param, s n_signal, work 10 × n
        // plus the event flags, io its words; rows `base..=last` of `rec` are inside
        // `self.rec`, the noise cell points at `sim`'s generator, and the stream table has
        // the rows this call reads (checked above).
        unsafe {
            (self.compiled.driver)(
                self.sim.x.as_mut_ptr(),
                self.sim.m.params.as_ptr(),
                self.sim.m.sig.as_mut_ptr(),
                self.work.as_mut_ptr(),
                rec,
                self.io.as_mut_ptr(),
            );
        }
        let written = self.io[word(driver::io::ROWS)].to_bits().min(last + 1);
        for r in self.rows.max(base)..written {
            let at = (r - base) as usize * np;
            row(r as f64 * self.every, &self.rec[at..at + np]);
        }
        self.rows = self.rows.max(written);
        let bad = self.io[word(driver::io::BAD_SLOT)].to_bits() as i64;
        if bad >= 0 {
            let slot = bad as usize;
            return Err(RunError::NotFinite {
                name: state_name(self.flat, slot),
                time: self.io[word(driver::io::BAD_T)],
                last: self.sim.x[slot],
            });
        }
        self.done = r1;
        Ok(())
    }

    fn rows_needed(&self, r1: u64) -> u64 {
        if self.continuous {
            (r1 as f64 * self.every / self.dt - 1e-9).ceil() as u64
        } else {
            r1
        }
    }
}
