//! Running a model: initial values, discrete stepping and the integrators (Euler, RK4,
//! adaptive Dormand–Prince 5(4) with event location by bisection), recording, and the
//! run-time diagnostics (non-finite state, unknown params).

use crate::machine::{EvalError, Machine};
use dyn_ir::flat::Flat;
use dyn_ir::system::{TimeKind, slots};

/// Integration method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Explicit Euler (Euler–Maruyama with `randn()`).
    Euler,
    /// Classic fourth-order Runge–Kutta.
    Rk4,
    /// Dormand–Prince 5(4) with adaptive steps.
    Rk45,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// End time (continuous) — or number of steps for discrete systems if `steps` is unset.
    pub until: Option<f64>,
    /// Number of steps (discrete; continuous: `steps × dt`).
    pub steps: Option<u64>,
    /// Integrator.
    pub method: Method,
    /// Fixed step (Euler, RK4) or first step (RK45).
    pub dt: f64,
    /// Relative tolerance (RK45).
    pub rtol: f64,
    /// Absolute tolerance (RK45).
    pub atol: f64,
    /// Names to record (empty: every out port of the root).
    pub record: Vec<String>,
    /// Recording interval (default: every step; for RK45 every `dt`).
    pub every: Option<f64>,
    /// Seed of `randn()`.
    pub seed: u64,
    /// Param overrides: dotted path, value.
    pub params: Vec<(String, f64)>,
    /// Values of the root's inputs, one row a tick (a step of `dt`, or of a discrete system).
    pub stream: Option<Stream>,
    /// Initial-state overrides: a state's recordable name (`W1[3]`, `layer[2].b[0]`) and its
    /// value, applied after the initial values are computed (loading trained weights).
    pub init: Vec<(String, f64)>,
}

/// A table of input values: column names and rows.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Column names (a tensor input `u` of length 3 uses `u[0]`, `u[1]`, `u[2]`).
    pub columns: Vec<String>,
    /// Rows of values.
    pub rows: Vec<Vec<f64>>,
}

impl Stream {
    /// Renames the columns `{prefix}0`, `{prefix}1`, … to `{name}[0]`, `{name}[1]`, …, so a
    /// tensor input `name` reads them (`--bind x=p`). Returns how many columns were renamed.
    pub fn bind_prefix(&mut self, name: &str, prefix: &str) -> usize {
        let mut n = 0;
        for c in &mut self.columns {
            if let Some(k) = c.strip_prefix(prefix)
                && !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_digit())
                && let Ok(k) = k.parse::<usize>()
            {
                *c = format!("{name}[{k}]");
                n += 1;
            }
        }
        n
    }

    /// The rows repeated `epochs` times. With `shuffle = Some(seed)` each epoch's rows are a
    /// fresh permutation: a Fisher–Yates shuffle (for `i` from the last row down to 1, swap row
    /// `i` with row `j = ⌊u · (i + 1)⌋`, `u` a uniform draw) by one [`Noise`] generator started
    /// at `seed` and carried across epochs, so the order depends only on the seed and the
    /// number of rows. The generator is not `randn()`'s: shuffling does not change the noise.
    pub fn epochs(&self, epochs: u64, shuffle: Option<u64>) -> Stream {
        let n = self.rows.len();
        let mut rng = shuffle.map(dyn_ir::numeric::Noise::new);
        let mut rows = Vec::with_capacity(n.saturating_mul(epochs as usize));
        let mut order: Vec<usize> = (0..n).collect();
        for _ in 0..epochs {
            if let Some(rng) = rng.as_mut() {
                for i in (1..n).rev() {
                    let j = ((rng.uniform() * (i + 1) as f64) as usize).min(i);
                    order.swap(i, j);
                }
            }
            rows.extend(order.iter().map(|&i| self.rows[i].clone()));
        }
        Stream {
            columns: self.columns.clone(),
            rows,
        }
    }

    /// Training rows followed by evaluation rows: `self`'s rows, then `test`'s rows (matched
    /// by column name; a column `test` lacks is an error), with a column `train` added that is
    /// 1 on `self`'s rows and 0 on `test`'s. A model gates its updates on `train`, so the
    /// evaluation rows run the trained system with its updates off.
    pub fn then_test(&self, test: &Stream) -> Result<Stream, String> {
        let mut map = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            match test.columns.iter().position(|t| t == c) {
                Some(i) => map.push(i),
                None => return Err(format!("the test stream has no column `{c}`")),
            }
        }
        if self.columns.iter().any(|c| c == "train") {
            return Err("the stream already has a column `train`".into());
        }
        let mut columns = self.columns.clone();
        columns.push("train".into());
        let mut rows = Vec::with_capacity(self.rows.len() + test.rows.len());
        for r in &self.rows {
            let mut r = r.clone();
            r.push(1.0);
            rows.push(r);
        }
        for r in &test.rows {
            let mut row: Vec<f64> = map
                .iter()
                .map(|&i| r.get(i).copied().unwrap_or(f64::NAN))
                .collect();
            row.push(0.0);
            rows.push(row);
        }
        Ok(Stream { columns, rows })
    }
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            until: None,
            steps: None,
            method: Method::Rk4,
            dt: 0.01,
            rtol: 1e-6,
            atol: 1e-9,
            record: vec![],
            every: None,
            seed: 0,
            params: vec![],
            stream: None,
            init: vec![],
        }
    }
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq)]
pub enum RunError {
    /// A state became NaN or infinite.
    NotFinite {
        /// Hierarchical name of the state.
        name: String,
        /// Time when it was found.
        time: f64,
        /// The last finite value before.
        last: f64,
    },
    /// `--param` names no param.
    UnknownParam {
        /// What was asked.
        path: String,
        /// The params that exist.
        valid: Vec<String>,
    },
    /// `record` names nothing recordable.
    UnknownRecord {
        /// What was asked.
        name: String,
        /// What can be recorded.
        valid: Vec<String>,
    },
    /// A bad setting (step size, horizon).
    Setting(String),
    /// Evaluation failed (index out of range, Int overflow).
    Eval(String),
    /// The input stream does not fit the model.
    Input(String),
}

impl From<EvalError> for RunError {
    fn from(e: EvalError) -> Self {
        RunError::Eval(e.0)
    }
}

/// A recordable quantity: a state or signal slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Probe {
    /// State slot.
    State(usize),
    /// Signal slot.
    Signal(usize),
}

/// Every recordable name (states, ports, lets of every element) with its slot, expanding
/// tensors into `name[i]`.
pub fn probes(flat: &Flat) -> Vec<(String, Probe)> {
    let mut out = Vec::new();
    for g in &flat.groups {
        let sys = &flat.program.systems[g.system as usize];
        for e in 0..g.count {
            let prefix = g.element_name(e);
            let name = |n: &str| {
                if prefix.is_empty() {
                    n.to_string()
                } else {
                    format!("{prefix}.{n}")
                }
            };
            let mut push = |n: String, shape: &Vec<u64>, p: fn(usize) -> Probe, at: usize| {
                let k = slots(shape);
                if shape.is_empty() {
                    out.push((n, p(at)));
                } else {
                    for i in 0..k {
                        out.push((format!("{n}[{i}]"), p(at + i)));
                    }
                }
            };
            for (i, (s, _)) in sys.states.iter().enumerate() {
                push(name(&s.name), &s.shape, Probe::State, g.state(e, i));
            }
            for (i, s) in sys.outputs.iter().enumerate() {
                push(
                    name(&s.name),
                    &s.shape,
                    Probe::Signal,
                    g.sig(e, g.out_off[i]),
                );
            }
            for (i, s) in sys.inputs.iter().enumerate() {
                push(
                    name(&s.name),
                    &s.shape,
                    Probe::Signal,
                    g.sig(e, g.in_off[i]),
                );
            }
            for (i, (s, _)) in sys.lets.iter().enumerate() {
                push(
                    name(&s.name),
                    &s.shape,
                    Probe::Signal,
                    g.sig(e, g.let_off[i]),
                );
            }
        }
    }
    out
}

/// The hierarchical name of a state slot.
pub fn state_name(flat: &Flat, slot: usize) -> String {
    for (n, p) in probes(flat) {
        if p == Probe::State(slot) {
            return n;
        }
    }
    format!("state #{slot}")
}

/// Every param path (`foxes.c`) with the slot it sets.
pub fn param_paths(flat: &Flat) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for g in &flat.groups {
        let sys = &flat.program.systems[g.system as usize];
        let prefix: Vec<String> = g.path.iter().map(|(n, _)| n.clone()).collect();
        for (i, (p, _)) in sys.params.iter().enumerate() {
            let mut path = prefix.clone();
            path.push(p.name.clone());
            out.push((path.join("."), g.param_base + g.param_off[i]));
        }
    }
    out
}

/// Dormand–Prince 5(4): stage times.
pub const DP_C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
/// Dormand–Prince 5(4): stage coefficients.
pub const DP_A: [[f64; 6]; 7] = [
    [0.0; 6],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
        0.0,
    ],
    [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// Dormand–Prince 5(4): weights of the 5th-order solution.
pub const DP_B5: [f64; 7] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
    0.0,
];
/// Dormand–Prince 5(4): weights of the embedded 4th-order solution.
pub const DP_B4: [f64; 7] = [
    5179.0 / 57600.0,
    0.0,
    7571.0 / 16695.0,
    393.0 / 640.0,
    -92097.0 / 339200.0,
    187.0 / 2100.0,
    1.0 / 40.0,
];

/// A running model: machine and state.
pub struct Sim<'f> {
    /// Buffers.
    pub m: Machine<'f>,
    /// State vector.
    pub x: Vec<f64>,
    /// Root input slots (unwired inputs, zero unless streamed).
    pub inputs: Vec<(usize, f64)>,
    flags: Vec<bool>,
    /// For each root input slot, its column in the stream.
    stream_cols: Vec<usize>,
    stream: Option<Stream>,
}

impl<'f> Sim<'f> {
    /// Sets params (defaults, box arguments, then overrides) and initial states.
    pub fn new(flat: &'f Flat, spec: &RunSpec) -> Result<Sim<'f>, RunError> {
        let mut m = Machine::new(flat, spec.seed);
        let paths = param_paths(flat);
        for (p, _) in &spec.params {
            if !paths.iter().any(|(q, _)| q == p) {
                return Err(RunError::UnknownParam {
                    path: p.clone(),
                    valid: paths.iter().map(|(q, _)| q.clone()).collect(),
                });
            }
        }
        let x = vec![0.0; flat.n_state];
        for (gi, g) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[g.system as usize];
            for (i, (slot, default)) in sys.params.iter().enumerate() {
                let at = g.param_base + g.param_off[i];
                let n = slots(&slot.shape).max(1);
                let arg = g.parent.and_then(|(pg, b)| {
                    let parent = &flat.groups[pg as usize];
                    flat.program.systems[parent.system as usize].boxes[b as usize].args[i]
                        .clone()
                        .map(|a| (pg, a))
                });
                let v = match (arg, default) {
                    (Some((pg, a)), _) => m.eval_init(pg, 0, &a, &x)?,
                    (None, Some(d)) => m.eval_init(gi as u32, 0, d, &x)?,
                    (None, None) => crate::value::Val::S(0.0),
                };
                v.to_slots(&mut m.params[at..at + n]);
                let path = paths
                    .iter()
                    .find(|(_, s)| *s == at)
                    .map(|(p, _)| p.clone())
                    .unwrap_or_default();
                if let Some((_, val)) = spec.params.iter().rev().find(|(p, _)| *p == path) {
                    m.params[at..at + n].iter_mut().for_each(|s| *s = *val);
                }
            }
        }
        let mut x = x;
        for (gi, g) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[g.system as usize];
            for e in 0..g.count {
                for (i, (slot, init)) in sys.states.iter().enumerate() {
                    let v = m.eval_init(gi as u32, e, init, &x)?;
                    let o = g.state(e, i);
                    v.to_slots(&mut x[o..o + slots(&slot.shape).max(1)]);
                }
            }
        }
        if !spec.init.is_empty() {
            let states: Vec<(String, usize)> = probes(flat)
                .into_iter()
                .filter_map(|(n, p)| match p {
                    Probe::State(i) => Some((n, i)),
                    Probe::Signal(_) => None,
                })
                .collect();
            for (name, v) in &spec.init {
                match states.iter().find(|(n, _)| n == name) {
                    Some((_, i)) => x[*i] = *v,
                    None => {
                        return Err(RunError::Input(format!(
                            "the saved state `{name}` is not a state of this model"
                        )));
                    }
                }
            }
        }
        let root = &flat.groups[0];
        let rsys = &flat.program.systems[root.system as usize];
        let mut inputs = Vec::new();
        let mut names = Vec::new();
        for (i, port) in rsys.inputs.iter().enumerate() {
            let base = root.sig(0, root.in_off[i]);
            if port.shape.is_empty() {
                inputs.push((base, 0.0));
                names.push(port.name.clone());
            } else {
                for j in 0..slots(&port.shape) {
                    inputs.push((base + j, 0.0));
                    names.push(format!("{}[{j}]", port.name));
                }
            }
        }
        let mut stream_cols = Vec::new();
        if let Some(st) = &spec.stream {
            for n in &names {
                match st.columns.iter().position(|c| c == n) {
                    Some(c) => stream_cols.push(c),
                    None => {
                        return Err(RunError::Input(format!(
                            "the input stream has no column `{n}` (its columns: {})",
                            st.columns.join(", ")
                        )));
                    }
                }
            }
        }
        let mut sim = Sim {
            m,
            x,
            inputs,
            flags: vec![],
            stream_cols,
            stream: spec.stream.clone(),
        };
        sim.set_tick(0)?;
        sim.m.signals(&sim.x, &sim.inputs)?;
        sim.flags = sim.m.event_conditions(&sim.x)?;
        Ok(sim)
    }

    /// For each root input slot, its column in the input stream.
    pub fn stream_columns(&self) -> &[usize] {
        &self.stream_cols
    }

    /// The last value of every event condition, one per (group, element, event) in order.
    pub fn event_flags(&self) -> &[bool] {
        &self.flags
    }

    /// Sets the root's inputs from row `k` of the stream (no-op without a stream).
    pub fn set_tick(&mut self, k: u64) -> Result<(), RunError> {
        let Some(st) = &self.stream else {
            return Ok(());
        };
        let Some(row) = st.rows.get(k as usize) else {
            return Err(RunError::Input(format!(
                "the input stream ended: the run needs row {} but the file has {} rows",
                k + 1,
                st.rows.len()
            )));
        };
        for ((_, v), c) in self.inputs.iter_mut().zip(&self.stream_cols) {
            *v = row[*c];
        }
        Ok(())
    }

    fn rhs(&mut self, t: f64, x: &[f64], dx: &mut [f64]) -> Result<(), RunError> {
        self.m.time = t;
        self.m.signals(x, &self.inputs)?;
        self.m.derivatives(x, dx)?;
        Ok(())
    }

    /// One fixed step of `h` from `(t, x)` into `out` (Euler or RK4; RK45 uses its own).
    pub fn fixed_step(
        &mut self,
        method: Method,
        t: f64,
        x: &[f64],
        h: f64,
        out: &mut [f64],
    ) -> Result<(), RunError> {
        let n = x.len();
        let mut k1 = vec![0.0; n];
        self.rhs(t, x, &mut k1)?;
        if method == Method::Euler {
            for i in 0..n {
                out[i] = x[i] + h * k1[i];
            }
            return Ok(());
        }
        let mut tmp = vec![0.0; n];
        let (mut k2, mut k3, mut k4) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            tmp[i] = x[i] + 0.5 * h * k1[i];
        }
        self.rhs(t + 0.5 * h, &tmp, &mut k2)?;
        for i in 0..n {
            tmp[i] = x[i] + 0.5 * h * k2[i];
        }
        self.rhs(t + 0.5 * h, &tmp, &mut k3)?;
        for i in 0..n {
            tmp[i] = x[i] + h * k3[i];
        }
        self.rhs(t + h, &tmp, &mut k4)?;
        for i in 0..n {
            out[i] = x[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        Ok(())
    }

    /// One Dormand–Prince step: the 5th-order solution into `out`, returns the error norm.
    pub fn dp_step(
        &mut self,
        t: f64,
        x: &[f64],
        h: f64,
        out: &mut [f64],
        rtol: f64,
        atol: f64,
    ) -> Result<f64, RunError> {
        let n = x.len();
        let mut k = vec![vec![0.0; n]; 7];
        let mut tmp = vec![0.0; n];
        for s in 0..7 {
            for i in 0..n {
                let mut acc = x[i];
                for (j, kj) in k.iter().enumerate().take(s) {
                    acc += h * DP_A[s][j] * kj[i];
                }
                tmp[i] = acc;
            }
            let mut ks = vec![0.0; n];
            self.rhs(t + DP_C[s] * h, &tmp, &mut ks)?;
            k[s] = ks;
        }
        let mut err = 0.0;
        for i in 0..n {
            let y5: f64 = x[i] + h * (0..7).map(|s| DP_B5[s] * k[s][i]).sum::<f64>();
            let y4: f64 = x[i] + h * (0..7).map(|s| DP_B4[s] * k[s][i]).sum::<f64>();
            out[i] = y5;
            let sc = atol + rtol * x[i].abs().max(y5.abs());
            err += ((y5 - y4) / sc).powi(2);
        }
        Ok(if n == 0 { 0.0 } else { (err / n as f64).sqrt() })
    }

    fn check_finite(&self, t: f64, prev: &[f64]) -> Result<(), RunError> {
        if let Some(i) = self.x.iter().position(|v| !v.is_finite()) {
            return Err(RunError::NotFinite {
                name: state_name(self.m.flat, i),
                time: t,
                last: prev[i],
            });
        }
        Ok(())
    }

    /// Fires the events whose condition became true; returns how many fired.
    fn events(&mut self) -> Result<usize, RunError> {
        if self.flags.is_empty() {
            return Ok(0);
        }
        self.m.signals(&self.x, &self.inputs)?;
        let now = self.m.event_conditions(&self.x)?;
        let fire: Vec<bool> = now
            .iter()
            .zip(&self.flags)
            .map(|(n, p)| *n && !*p)
            .collect();
        self.flags = now;
        if fire.iter().any(|f| *f) {
            let mut x = self.x.clone();
            let k = self.m.apply_events(&mut x, &fire)?;
            self.x = x;
            return Ok(k);
        }
        Ok(0)
    }

    fn any_rising(&mut self, x: &[f64]) -> Result<bool, RunError> {
        if self.flags.is_empty() {
            return Ok(false);
        }
        self.m.signals(x, &self.inputs)?;
        let now = self.m.event_conditions(x)?;
        Ok(now.iter().zip(&self.flags).any(|(n, p)| *n && !*p))
    }
}

/// The names `spec` records (every out port of the root when it names none) and their
/// probes; tensors expand to `name[i]`.
pub fn recorded(flat: &Flat, spec: &RunSpec) -> Result<(Vec<String>, Vec<Probe>), RunError> {
    let all = probes(flat);
    if spec.record.is_empty() {
        // The root's out ports, by their slots: a state of the same name is not an output.
        let g = &flat.groups[0];
        let root = &flat.program.systems[g.system as usize];
        let mut names = Vec::new();
        let mut chosen = Vec::new();
        for (i, o) in root.outputs.iter().enumerate() {
            let at = g.sig(0, g.out_off[i]);
            if o.shape.is_empty() {
                names.push(o.name.clone());
                chosen.push(Probe::Signal(at));
            } else {
                for j in 0..slots(&o.shape) {
                    names.push(format!("{}[{j}]", o.name));
                    chosen.push(Probe::Signal(at + j));
                }
            }
        }
        return Ok((names, chosen));
    }
    let names: Vec<String> = {
        let mut v = Vec::new();
        for r in &spec.record {
            let exact: Vec<String> = all
                .iter()
                .filter(|(n, _)| n == r || n.starts_with(&format!("{r}[")))
                .map(|(n, _)| n.clone())
                .collect();
            if exact.is_empty() {
                return Err(RunError::UnknownRecord {
                    name: r.clone(),
                    valid: all.iter().map(|(n, _)| n.clone()).take(40).collect(),
                });
            }
            // A state and a port of the same name are one column (the first: the state).
            for n in exact {
                if !v.contains(&n) {
                    v.push(n);
                }
            }
        }
        v
    };
    let chosen: Vec<Probe> = names
        .iter()
        .map(|n| {
            all.iter()
                .find(|(m, _)| m == n)
                .map(|(_, p)| *p)
                .expect("probe exists")
        })
        .collect();
    Ok((names, chosen))
}

/// Runs `flat` as `spec` says, calling `row(t, values)` for each recorded time with the
/// recorded names' values. Returns the recorded names.
pub fn run(
    flat: &Flat,
    spec: &RunSpec,
    header: &mut dyn FnMut(&[String]),
    row: &mut dyn FnMut(f64, &[f64]),
) -> Result<u64, RunError> {
    let (names, chosen) = recorded(flat, spec)?;
    header(&names);
    let mut sim = Sim::new(flat, spec)?;
    let mut vals = vec![0.0; chosen.len()];
    let mut emit = |sim: &mut Sim, t: f64| -> Result<(), RunError> {
        sim.m.time = t;
        sim.m.signals(&sim.x, &sim.inputs)?;
        for (v, p) in vals.iter_mut().zip(&chosen) {
            *v = match p {
                Probe::State(i) => sim.x[*i],
                Probe::Signal(i) => sim.m.sig[*i],
            };
        }
        row(t, &vals);
        Ok(())
    };
    emit(&mut sim, 0.0)?;
    let mut steps_done = 0u64;
    match flat.time {
        TimeKind::Discrete | TimeKind::Stateless => {
            let steps = spec
                .steps
                .or(spec.until.map(|u| u.round() as u64))
                .ok_or_else(|| {
                    RunError::Setting("give `steps N` (or `until T`) for a discrete system".into())
                })?;
            let every = spec.every.map(|e| (e.round() as u64).max(1)).unwrap_or(1);
            let mut next = sim.x.clone();
            if let Some(st) = &spec.stream
                && (st.rows.len() as u64) < steps
            {
                return Err(RunError::Input(format!(
                    "the input stream has {} rows but the run takes {steps} steps (one row a step)",
                    st.rows.len()
                )));
            }
            for k in 1..=steps {
                sim.m.time = (k - 1) as f64;
                sim.set_tick(k - 1)?;
                sim.m.signals(&sim.x, &sim.inputs)?;
                next.copy_from_slice(&sim.x);
                sim.m.next_state(&sim.x, &mut next)?;
                let prev = std::mem::replace(&mut sim.x, next.clone());
                sim.check_finite(k as f64, &prev)?;
                steps_done = k;
                if k % every == 0 {
                    if k < steps {
                        sim.set_tick(k)?;
                    }
                    emit(&mut sim, k as f64)?;
                }
            }
        }
        TimeKind::Continuous => {
            if !(spec.dt > 0.0 && spec.dt.is_finite()) {
                return Err(RunError::Setting(format!(
                    "the step dt must be positive, not {}",
                    spec.dt
                )));
            }
            let until = match (spec.until, spec.steps) {
                (Some(u), _) => u,
                (None, Some(s)) => s as f64 * spec.dt,
                (None, None) => {
                    return Err(RunError::Setting("give `until T` (or `steps N`)".into()));
                }
            };
            let every = spec.every.unwrap_or(spec.dt);
            if every.is_nan() || every <= 0.0 {
                return Err(RunError::Setting(
                    "the recording interval must be positive".into(),
                ));
            }
            let n_rec = (until / every + 1e-9).floor() as u64;
            let mut t = 0.0;
            let mut out = vec![0.0; sim.x.len()];
            let noisy = flat
                .program
                .systems
                .iter()
                .any(|s| s.updates.iter().any(|a| a.value.has_randn()));
            if noisy && spec.method != Method::Euler {
                return Err(RunError::Setting(
                    "a system with `randn()` in `der` runs with `--method euler` (Euler–Maruyama)"
                        .into(),
                ));
            }
            if noisy {
                sim.m.noise_scale = 1.0 / spec.dt.sqrt();
            }
            let mut h = spec.dt;
            if let Some(st) = &spec.stream {
                let need = (until / spec.dt - 1e-9).ceil() as u64;
                if (st.rows.len() as u64) < need {
                    return Err(RunError::Input(format!(
                        "the input stream has {} rows but the run takes {need} steps of dt = {} (one row a step)",
                        st.rows.len(),
                        spec.dt
                    )));
                }
            }
            let tick = |t: f64| ((t / spec.dt) + 1e-9).floor().max(0.0) as u64;
            for r in 1..=n_rec {
                let target = r as f64 * every;
                while t < target - 1e-12 * target.abs().max(1.0) {
                    if spec.stream.is_some() {
                        sim.set_tick(tick(t))?;
                    }
                    match spec.method {
                        Method::Euler | Method::Rk4 => {
                            let step = spec.dt.min(target - t);
                            let xs = sim.x.clone();
                            sim.fixed_step(spec.method, t, &xs, step, &mut out)?;
                            let prev = std::mem::replace(&mut sim.x, out.clone());
                            t += step;
                            sim.check_finite(t, &prev)?;
                            sim.events()?;
                            steps_done += 1;
                        }
                        Method::Rk45 => {
                            let step = h.min(target - t);
                            let xs = sim.x.clone();
                            let errn = sim.dp_step(t, &xs, step, &mut out, spec.rtol, spec.atol)?;
                            if errn <= 1.0 || step < 1e-14 * t.abs().max(1.0) {
                                if sim.any_rising(&out.clone())? {
                                    // Locate the crossing by bisection on the step length.
                                    let (mut lo, mut hi) = (0.0, step);
                                    let mut at_hi = out.clone();
                                    let mut probe = vec![0.0; xs.len()];
                                    for _ in 0..60 {
                                        let mid = 0.5 * (lo + hi);
                                        sim.dp_step(t, &xs, mid, &mut probe, spec.rtol, spec.atol)?;
                                        if sim.any_rising(&probe.clone())? {
                                            hi = mid;
                                            at_hi.copy_from_slice(&probe);
                                        } else {
                                            lo = mid;
                                        }
                                        if hi - lo <= 1e-13 * (t + hi).abs().max(1.0) {
                                            break;
                                        }
                                    }
                                    let prev = std::mem::replace(&mut sim.x, at_hi);
                                    t += hi;
                                    sim.check_finite(t, &prev)?;
                                    sim.events()?;
                                } else {
                                    let prev = std::mem::replace(&mut sim.x, out.clone());
                                    t += step;
                                    sim.check_finite(t, &prev)?;
                                    sim.events()?;
                                }
                                steps_done += 1;
                                let fac = if errn == 0.0 {
                                    5.0
                                } else {
                                    (0.9 * errn.powf(-0.2)).clamp(0.2, 5.0)
                                };
                                h = (step * fac).max(1e-14);
                            } else {
                                // A non-finite error estimate (a stage met NaN or an infinity) shrinks the
                                // step tenfold, until it is accepted as tiny and the non-finite
                                // state is reported.
                                let f = 0.9 * errn.powf(-0.2);
                                h = step * if f.is_nan() { 0.1 } else { f.clamp(0.1, 0.9) };
                            }
                        }
                    }
                }
                t = target;
                emit(&mut sim, t)?;
            }
        }
    }
    Ok(steps_done)
}
