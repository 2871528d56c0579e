//! The flattened model as one system of scalar and tensor variables, and the two discrete
//! systems synthesised from it: the *step* system (one integrator step as `next` updates) and
//! the *adjoint step* system (the vector-Jacobian product of that step, by
//! `dyn_ir::ad::grad_many`).
//!
//! [`Model::from_flat`] walks the flattened schedule and writes every signal of every element
//! (lets, readouts, wire iterations) as a `let` of one system whose states are the model's
//! states, element by element, and whose params are the model's params, group by group. Both
//! are in the order of the flat buffers, so a state or param vector of the model is also one
//! of the synthesised systems, slot for slot.
//!
//! [`step_system`] unrolls one step: Euler (`x + h·f(x)`), RK4 (the four stages as lets, the
//! same operations in the same order as the interpreter's `fixed_step`) or a discrete `next`.
//! The time is an extra state `t` advanced by `h` (1 for a discrete model), and the recorded
//! quantities of the state a step starts from are extra states `ylag{c}`, so that a run
//! recording only states gives them (one row late) without evaluating the model twice a step.
//!
//! [`adjoint_system`] reads the step at the state, params and time as inputs of their own
//! (`w = (x, θ, t)`, one input per state and param) and writes
//! `G = grad(Σ λ·x⁺(w) + Σ μ_c·y_c(w), w)` by one reverse sweep over all of them: it gives
//! `(∂x⁺/∂x)ᵀλ + ∂ℓ/∂x` and `(∂x⁺/∂θ)ᵀλ + ∂ℓ/∂θ` together, and a scalar read of a state or
//! param adds a scalar to its adjoint. Its states are `λ` (updated to the first part) and the
//! accumulated parameter gradient (the second part added).

use dyn_diag::{Diagnostic, Span, codes};
use dyn_interp::run::{Method, Probe};
use dyn_ir::ad::{self, Context};
use dyn_ir::expr::{Bin, Expr, Num, Reduce, Sel, TensorOp};
use dyn_ir::flat::{Flat, OpKind, body_reads_signals, eval_index};
use dyn_ir::system::{
    Assign, Function, Kind, Program, Readout, Shape, Slot, System, TimeKind, slots,
};
use std::collections::HashMap;

/// A refusal: the model has something the gradient cannot go through.
fn unsupported(span: Span, msg: impl Into<String>, hint: &str) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::new(codes::UNSUPPORTED, span, msg)
            .label("here")
            .hint(hint.to_string()),
    )
}

/// The whole flattened model as one system: states, params and signals (as lets) in the
/// order of the flat buffers, and the right-hand side (`der` or `next`) of every state.
#[derive(Debug, Clone)]
pub struct Model {
    /// States (one per element and state variable) and their first flat state slot.
    pub states: Vec<(Slot, usize)>,
    /// Params (one per group and param) and their first flat param slot.
    pub params: Vec<(Slot, usize)>,
    /// Every signal of every element, in schedule order, over `State`, `Param`, `Let`,
    /// `Time` and calls of the program's fns.
    pub lets: Vec<(Slot, Expr)>,
    /// The first flat signal slot of each let.
    pub let_slot: Vec<usize>,
    /// `der` (continuous) or `next` (discrete) of each state.
    pub rhs: Vec<Expr>,
    /// Continuous or discrete.
    pub time: TimeKind,
    /// The program's fns (calls keep their indices).
    pub fns: Vec<Function>,
    /// Flat state slots.
    pub n_state: usize,
    /// Flat param slots.
    pub n_param: usize,
}

/// A rewrite of leaves: `Some(replacement)`, `None` to keep (and recurse), or a refusal.
pub type Rewrite<'a> = dyn FnMut(&Expr) -> Result<Option<Expr>, Box<Diagnostic>> + 'a;

/// Every leaf replaced by `f`'s answer where it has one; the rest rebuilt as it is.
pub fn map_expr(e: &Expr, f: &mut Rewrite) -> Result<Expr, Box<Diagnostic>> {
    if let Some(r) = f(e)? {
        return Ok(r);
    }
    let mut b = |x: &Expr| -> Result<Box<Expr>, Box<Diagnostic>> { Ok(Box::new(map_expr(x, f)?)) };
    Ok(match e {
        Expr::BoxOut { b: bx, index, port } => Expr::BoxOut {
            b: *bx,
            index: match index {
                Some(i) => Some(b(i)?),
                None => None,
            },
            port: *port,
        },
        Expr::Un(o, a) => Expr::Un(*o, b(a)?),
        Expr::Bin(o, n, x, y) => Expr::Bin(*o, *n, b(x)?, b(y)?),
        Expr::Reduce(o, a) => Expr::Reduce(*o, b(a)?),
        Expr::Dot(x, y) => Expr::Dot(b(x)?, b(y)?),
        Expr::If(c, x, y) => Expr::If(b(c)?, b(x)?, b(y)?),
        Expr::Index(a, xs) => {
            let a = b(a)?;
            Expr::Index(a, map_all(xs, f)?)
        }
        Expr::Call(g, xs) => Expr::Call(*g, map_all(xs, f)?),
        Expr::Array(xs) => Expr::Array(map_all(xs, f)?),
        Expr::Mode(m, xs) => Expr::Mode(*m, map_all(xs, f)?),
        Expr::Tensor(op, xs) => Expr::Tensor(op.clone(), map_all(xs, f)?),
        leaf => leaf.clone(),
    })
}

fn map_all(xs: &[Expr], f: &mut Rewrite) -> Result<Vec<Expr>, Box<Diagnostic>> {
    xs.iter().map(|x| map_expr(x, f)).collect()
}

fn real_slot(name: String, shape: Shape) -> Slot {
    Slot {
        name,
        shape,
        kind: Kind::Real,
        span: Span::default(),
    }
}

fn zeros(shape: &Shape) -> Expr {
    if shape.is_empty() {
        Expr::Const(0.0)
    } else {
        Expr::Tensor(TensorOp::Fill(shape.clone()), vec![Expr::Const(0.0)])
    }
}

fn add(a: Expr, b: Expr) -> Expr {
    Expr::Bin(Bin::Add, Num::Real, Box::new(a), Box::new(b))
}

fn mul(a: Expr, b: Expr) -> Expr {
    Expr::Bin(Bin::Mul, Num::Real, Box::new(a), Box::new(b))
}

/// The value of shape `shape` stored from element `off` of the vector `base`: an element, a
/// slice, or (a matrix) the array of its row slices.
pub fn view(base: &Expr, off: usize, shape: &Shape) -> Option<Expr> {
    let slice = |lo: usize, n: usize| {
        Expr::Tensor(
            TensorOp::Slice(vec![Sel::Range(lo as u64, (lo + n) as u64)]),
            vec![base.clone()],
        )
    };
    match shape.as_slice() {
        [] => Some(Expr::Index(
            Box::new(base.clone()),
            vec![Expr::Const(off as f64)],
        )),
        [n] => Some(slice(off, *n as usize)),
        [m, n] => Some(Expr::Array(
            (0..*m as usize)
                .map(|r| slice(off + r * *n as usize, *n as usize))
                .collect(),
        )),
        _ => None,
    }
}

/// Element `j` (row-major) of a value of shape `shape`.
fn element(x: Expr, shape: &Shape, j: usize) -> Expr {
    match shape.as_slice() {
        [] => x,
        [_] => Expr::Index(Box::new(x), vec![Expr::Const(j as f64)]),
        dims => {
            let mut idx = Vec::with_capacity(dims.len());
            let mut rest = j;
            for d in dims.iter().rev() {
                idx.push(Expr::Const((rest % *d as usize) as f64));
                rest /= *d as usize;
            }
            idx.reverse();
            Expr::Index(Box::new(x), idx)
        }
    }
}

/// The elementwise sum of all elements of `x` (itself for a scalar).
fn sum_all(x: Expr, shape: &Shape) -> Expr {
    if shape.is_empty() {
        x
    } else {
        Expr::Reduce(Reduce::Sum, Box::new(x))
    }
}

impl Model {
    /// The model of a flattened program, or why it cannot be differentiated through: root
    /// inputs (unwired), mode-dependent systems, `when` events, `randn()`, `grad` inside the
    /// model, Int or Bool states, and box indices computed at run time are refused.
    pub fn from_flat(flat: &Flat) -> Result<Model, Box<Diagnostic>> {
        let prog = &flat.program;
        let root_span = prog.systems[prog.root as usize].span;
        if flat.time == TimeKind::Stateless || flat.n_state == 0 {
            return Err(unsupported(
                root_span,
                "this model has no state to integrate",
                "fit a system with `der` or `next` updates",
            ));
        }
        let reads = body_reads_signals(prog);
        let mut m = Model {
            states: vec![],
            params: vec![],
            lets: vec![],
            let_slot: vec![],
            rhs: vec![],
            time: flat.time,
            fns: prog.fns.clone(),
            n_state: flat.n_state,
            n_param: flat.n_param,
        };
        // Params and states in buffer order.
        let mut param_ix: Vec<Vec<u32>> = vec![];
        let mut state_ix: HashMap<(u32, u64, usize), u32> = HashMap::new();
        for (gi, g) in flat.groups.iter().enumerate() {
            let sys = &prog.systems[g.system as usize];
            let mut ps = vec![];
            for (i, (sl, _)) in sys.params.iter().enumerate() {
                ps.push(m.params.len() as u32);
                m.params.push((sl.clone(), g.param_base + g.param_off[i]));
            }
            param_ix.push(ps);
            if !sys.events.is_empty() {
                return Err(unsupported(
                    sys.events[0].span,
                    "a `when` event: the gradient through time does not cross jumps",
                    "fit a model without events (a smooth approximation of the jump)",
                ));
            }
            if !sys.mode_updates.is_empty() || matches!(sys.readout, Readout::Mode(..)) {
                return Err(unsupported(
                    sys.span,
                    "a mode-dependent system: the gradient through time is not supported for it",
                    "fit a model whose systems have plain out ports",
                ));
            }
            for e in 0..g.count {
                for (s, (sl, _)) in sys.states.iter().enumerate() {
                    if sl.kind != Kind::Real {
                        return Err(unsupported(
                            sl.span,
                            "an Int or Bool state: the gradient through time needs Real states",
                            "make the state Real",
                        ));
                    }
                    state_ix.insert((gi as u32, e, s), m.states.len() as u32);
                    let mut sl = sl.clone();
                    let prefix = g.element_name(e);
                    if !prefix.is_empty() {
                        sl.name = format!("{prefix}.{}", sl.name);
                    }
                    m.states.push((sl, g.state(e, s)));
                }
            }
        }
        // Signals in schedule order.
        let mut sig_let: HashMap<usize, u32> = HashMap::new();
        for op in &flat.schedule {
            for it in &op.items {
                let (g, slot, expr, sig) = match op.kind {
                    OpKind::Let(g, l) => {
                        let grp = &flat.groups[g as usize];
                        let sys = &prog.systems[grp.system as usize];
                        let (sl, x) = &sys.lets[l as usize];
                        (g, sl.clone(), x, grp.sig(it.elem, grp.let_off[l as usize]))
                    }
                    OpKind::Out(g, p) => {
                        let grp = &flat.groups[g as usize];
                        let sys = &prog.systems[grp.system as usize];
                        let Readout::Ports(xs) = &sys.readout else {
                            return Err(unsupported(sys.span, "a mode readout", "use out ports"));
                        };
                        (
                            g,
                            sys.outputs[p as usize].clone(),
                            &xs[p as usize],
                            grp.sig(it.elem, grp.out_off[p as usize]),
                        )
                    }
                    OpKind::Wire(g, w) => {
                        let grp = &flat.groups[g as usize];
                        let sys = &prog.systems[grp.system as usize];
                        let wire = &sys.wires[w as usize];
                        let child = &flat.groups[grp.children[wire.b as usize] as usize];
                        let csys = &prog.systems[child.system as usize];
                        (
                            g,
                            csys.inputs[wire.port as usize].clone(),
                            &wire.value,
                            child.sig(it.target, child.in_off[wire.port as usize]),
                        )
                    }
                    OpKind::Mode(g) => {
                        let grp = &flat.groups[g as usize];
                        let sys = &prog.systems[grp.system as usize];
                        return Err(unsupported(sys.span, "a mode readout", "use out ports"));
                    }
                };
                let x = m.translate(
                    flat, &reads, &param_ix, &state_ix, &sig_let, g, it.elem, &it.loops, expr,
                )?;
                sig_let.insert(sig, m.lets.len() as u32);
                let mut slot = slot;
                slot.name = format!("s{}", m.lets.len());
                m.lets.push((slot, x));
                m.let_slot.push(sig);
            }
        }
        // Right-hand sides.
        m.rhs = m
            .states
            .iter()
            .enumerate()
            .map(|(i, (sl, _))| {
                if flat.time == TimeKind::Discrete {
                    Expr::State(i as u32)
                } else {
                    zeros(&sl.shape)
                }
            })
            .collect();
        for (gi, g) in flat.groups.iter().enumerate() {
            let sys = &prog.systems[g.system as usize];
            for e in 0..g.count {
                for a in &sys.updates {
                    if a.value.has_randn() {
                        return Err(unsupported(
                            sys.span,
                            "`randn()` in an update: the gradient of a noisy run is not defined here",
                            "fit the deterministic model (drop the noise term)",
                        ));
                    }
                    let x = m.translate(
                        flat,
                        &reads,
                        &param_ix,
                        &state_ix,
                        &sig_let,
                        gi as u32,
                        e,
                        &[],
                        &a.value,
                    )?;
                    let i = state_ix[&(gi as u32, e, a.state as usize)];
                    m.rhs[i as usize] = x;
                }
            }
        }
        for (sl, _) in &m.states {
            if sl.shape.len() > 2 {
                return Err(unsupported(
                    sl.span,
                    "a state of rank 3 or more",
                    "use vectors or matrices",
                ));
            }
        }
        for (sl, _) in &m.params {
            if sl.shape.len() > 2 {
                return Err(unsupported(
                    sl.span,
                    "a param of rank 3 or more",
                    "use vectors or matrices",
                ));
            }
        }
        Ok(m)
    }

    /// An expression of element `e` of group `g` (with wire loop values `loops`) in terms of
    /// the model's states, params and lets.
    #[allow(clippy::too_many_arguments)]
    fn translate(
        &self,
        flat: &Flat,
        reads: &[bool],
        param_ix: &[Vec<u32>],
        state_ix: &HashMap<(u32, u64, usize), u32>,
        sig_let: &HashMap<usize, u32>,
        g: u32,
        e: u64,
        loops: &[i64],
        x: &Expr,
    ) -> Result<Expr, Box<Diagnostic>> {
        let grp = &flat.groups[g as usize];
        let sys = &flat.program.systems[grp.system as usize];
        let span = sys.span;
        let signal = |slot: usize| -> Result<Option<Expr>, Box<Diagnostic>> {
            match sig_let.get(&slot) {
                Some(l) => Ok(Some(Expr::Let(*l))),
                None => Err(unsupported(
                    span,
                    "an input that no wire sets (a root input): fitting runs closed models",
                    "wire the input inside the model, or make it a param",
                )),
            }
        };
        map_expr(x, &mut |x| match x {
            Expr::Param(p) => Ok(Some(Expr::Param(param_ix[g as usize][*p as usize]))),
            Expr::State(s) => Ok(Some(Expr::State(state_ix[&(g, e, *s as usize)]))),
            Expr::Input(i) => signal(grp.sig(e, grp.in_off[*i as usize])),
            Expr::Let(l) => signal(grp.sig(e, grp.let_off[*l as usize])),
            Expr::Loop(d) => Ok(Some(Expr::Const(
                *loops.get(*d as usize).unwrap_or(&0) as f64
            ))),
            Expr::BoxOut { b, index, port } => {
                let child = &flat.groups[grp.children[*b as usize] as usize];
                let bx = &sys.boxes[*b as usize];
                let k = match index {
                    Some(i) => eval_index(i, loops).ok_or_else(|| {
                        unsupported(
                            bx.span,
                            "a box index computed at run time",
                            "index boxes with loop variables and constants",
                        )
                    })?,
                    None => 0,
                };
                let n = bx.count.unwrap_or(1) as i64;
                if k < 0 || k >= n {
                    return Err(unsupported(bx.span, "a box index out of range", "check it"));
                }
                signal(child.sig(e * n as u64 + k as u64, child.out_off[*port as usize]))
            }
            Expr::Call(f, _) if reads.get(*f as usize).copied().unwrap_or(false) => {
                Err(unsupported(
                    span,
                    "`grad` inside a model being fitted",
                    "fit a model without `grad` expressions",
                ))
            }
            Expr::Mode(..) => Err(unsupported(span, "a mode value", "use out ports")),
            Expr::Randn => Err(unsupported(
                span,
                "`randn()`: the gradient of a noisy run is not defined here",
                "fit the deterministic model",
            )),
            _ => Ok(None),
        })
    }

    /// The expression of a recordable quantity of the flat model (a state or signal slot)
    /// at the current state, given how states are read.
    fn probe(&self, p: Probe, state: &dyn Fn(usize) -> Expr, let_base: u32) -> Expr {
        match p {
            Probe::State(s) => {
                for (i, (sl, off)) in self.states.iter().enumerate() {
                    let n = slots(&sl.shape).max(1);
                    if s >= *off && s < off + n {
                        return element(state(i), &sl.shape, s - off);
                    }
                }
                Expr::Const(f64::NAN)
            }
            Probe::Signal(s) => {
                for (l, (sl, _)) in self.lets.iter().enumerate() {
                    let base = self.let_slot[l];
                    let n = slots(&sl.shape).max(1);
                    if s >= base && s < base + n {
                        return element(Expr::Let(let_base + l as u32), &sl.shape, s - base);
                    }
                }
                Expr::Const(f64::NAN)
            }
        }
    }
}

/// How a step reads the model's states, params and the time.
struct Leaves<'a> {
    state: &'a dyn Fn(usize) -> Expr,
    param: &'a dyn Fn(usize) -> Expr,
    time: Expr,
}

/// One integrator step as lets, the next state of every model state, and the recorded
/// quantities at the current state.
struct Step {
    lets: Vec<(Slot, Expr)>,
    next: Vec<Expr>,
    cols: Vec<Expr>,
}

/// The integrator of a fit: a fixed-step method of a continuous model, or the discrete
/// model's own `next`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Integrator {
    /// Explicit Euler with step `h`.
    Euler(f64),
    /// Classic RK4 with step `h`.
    Rk4(f64),
    /// A discrete model's `next`.
    Discrete,
}

impl Integrator {
    /// The integrator of `method` with step `dt` for a model of time domain `time`.
    pub fn of(time: TimeKind, method: Method, dt: f64) -> Result<Integrator, String> {
        if time == TimeKind::Discrete {
            return Ok(Integrator::Discrete);
        }
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(format!("the step dt must be positive, not {dt}"));
        }
        match method {
            Method::Euler => Ok(Integrator::Euler(dt)),
            Method::Rk4 => Ok(Integrator::Rk4(dt)),
            Method::Rk45 => Err(
                "gradients through time use a fixed step: choose `--method rk4` or `euler`".into(),
            ),
        }
    }

    /// The time advanced by one step.
    pub fn h(self) -> f64 {
        match self {
            Integrator::Euler(h) | Integrator::Rk4(h) => h,
            Integrator::Discrete => 1.0,
        }
    }
}

impl Model {
    /// One stage: the model's lets and right-hand sides at the state `point`, param and time
    /// readers; returns the lets holding the right-hand sides.
    fn stage(
        &self,
        lets: &mut Vec<(Slot, Expr)>,
        point: &dyn Fn(usize) -> Expr,
        param: &dyn Fn(usize) -> Expr,
        time: &Expr,
    ) -> Result<Vec<Expr>, Box<Diagnostic>> {
        let off = lets.len() as u32;
        let sub = |x: &Expr| -> Result<Expr, Box<Diagnostic>> {
            map_expr(x, &mut |x| {
                Ok(match x {
                    Expr::State(i) => Some(point(*i as usize)),
                    Expr::Param(p) => Some(param(*p as usize)),
                    Expr::Let(l) => Some(Expr::Let(off + l)),
                    Expr::Time => Some(time.clone()),
                    _ => None,
                })
            })
        };
        for (sl, x) in &self.lets {
            let x = sub(x)?;
            lets.push((sl.clone(), x));
        }
        let mut ks = vec![];
        for (i, r) in self.rhs.iter().enumerate() {
            let x = sub(r)?;
            ks.push(Expr::Let(lets.len() as u32));
            lets.push((
                real_slot(format!("k{i}"), self.states[i].0.shape.clone()),
                x,
            ));
        }
        Ok(ks)
    }

    fn step(
        &self,
        integ: Integrator,
        lv: &Leaves,
        cols: &[Probe],
    ) -> Result<Step, Box<Diagnostic>> {
        let mut lets = vec![];
        let x = |i: usize| (lv.state)(i);
        let k1 = self.stage(&mut lets, &x, lv.param, &lv.time)?;
        let cols = cols.iter().map(|p| self.probe(*p, &x, 0)).collect();
        let n = self.states.len();
        let next = match integ {
            Integrator::Discrete => k1,
            Integrator::Euler(h) => (0..n)
                .map(|i| add(x(i), mul(Expr::Const(h), k1[i].clone())))
                .collect(),
            Integrator::Rk4(h) => {
                let point = |lets: &mut Vec<(Slot, Expr)>, c: f64, k: &[Expr], name: &str| {
                    let base = lets.len() as u32;
                    for (i, ki) in k.iter().enumerate() {
                        lets.push((
                            real_slot(format!("{name}{i}"), self.states[i].0.shape.clone()),
                            add(x(i), mul(Expr::Const(c), ki.clone())),
                        ));
                    }
                    base
                };
                let half = add(lv.time.clone(), Expr::Const(0.5 * h));
                let b2 = point(&mut lets, 0.5 * h, &k1, "p2_");
                let k2 = self.stage(&mut lets, &|i| Expr::Let(b2 + i as u32), lv.param, &half)?;
                let b3 = point(&mut lets, 0.5 * h, &k2, "p3_");
                let k3 = self.stage(&mut lets, &|i| Expr::Let(b3 + i as u32), lv.param, &half)?;
                let b4 = point(&mut lets, h, &k3, "p4_");
                let full = add(lv.time.clone(), Expr::Const(h));
                let k4 = self.stage(&mut lets, &|i| Expr::Let(b4 + i as u32), lv.param, &full)?;
                let two = |k: &Expr| mul(Expr::Const(2.0), k.clone());
                (0..n)
                    .map(|i| {
                        let s = add(
                            add(add(k1[i].clone(), two(&k2[i])), two(&k3[i])),
                            k4[i].clone(),
                        );
                        add(x(i), mul(Expr::Const(h / 6.0), s))
                    })
                    .collect()
            }
        };
        Ok(Step { lets, next, cols })
    }
}

/// Names of the step system's recorded columns, in order: every state slot (`x{i}`), the
/// time `t`, then, with `lagged`, the states `ylag{c}` (the recorded quantities of the
/// previous row), else the out ports `y{c}` (the recorded quantities of this row). Lagged
/// columns are states, so a record computes no signals (`dyn_jit::compile_lean`): a step
/// evaluates the model once.
pub fn step_record(model: &Model, n_cols: usize, lagged: bool) -> Vec<String> {
    let mut v: Vec<String> = (0..model.states.len()).map(|i| format!("x{i}")).collect();
    v.push("t".into());
    let y = if lagged { "ylag" } else { "y" };
    v.extend((0..n_cols).map(|c| format!("{y}{c}")));
    v
}

/// The step system: states `x{i}` (the model's, in buffer order), `t`, and `ylag{c}` (set
/// by each step to the quantity `cols[c]` at the state the step starts from), params the
/// model's (buffer order), out ports `y{c}` the quantities `cols` at the current state,
/// `next` one step of `integ`.
pub fn step_system(
    model: &Model,
    integ: Integrator,
    cols: &[Probe],
) -> Result<Program, Box<Diagnostic>> {
    let nx = model.states.len();
    let st = |i: usize| Expr::State(i as u32);
    let pa = |p: usize| Expr::Param(p as u32);
    let lv = Leaves {
        state: &st,
        param: &pa,
        time: Expr::State(nx as u32),
    };
    let step = model.step(integ, &lv, cols)?;
    let mut states: Vec<(Slot, Expr)> = model
        .states
        .iter()
        .enumerate()
        .map(|(i, (sl, _))| {
            (
                real_slot(format!("x{i}"), sl.shape.clone()),
                zeros(&sl.shape),
            )
        })
        .collect();
    states.push((real_slot("t".into(), vec![]), Expr::Const(0.0)));
    let mut updates: Vec<Assign> = step
        .next
        .into_iter()
        .enumerate()
        .map(|(i, value)| Assign {
            state: i as u32,
            value,
        })
        .collect();
    updates.push(Assign {
        state: nx as u32,
        value: add(Expr::State(nx as u32), Expr::Const(integ.h())),
    });
    for (c, y) in step.cols.iter().enumerate() {
        states.push((real_slot(format!("ylag{c}"), vec![]), Expr::Const(0.0)));
        updates.push(Assign {
            state: (nx + 1 + c) as u32,
            value: y.clone(),
        });
    }
    let sys = System {
        name: "Step".into(),
        span: Span::default(),
        params: model
            .params
            .iter()
            .enumerate()
            .map(|(i, (sl, _))| {
                let mut sl = sl.clone();
                sl.name = format!("p{i}");
                (sl, None)
            })
            .collect(),
        inputs: vec![],
        outputs: (0..step.cols.len())
            .map(|c| real_slot(format!("y{c}"), vec![]))
            .collect(),
        states,
        lets: step.lets,
        readout: Readout::Ports(step.cols),
        time: TimeKind::Discrete,
        updates,
        mode_updates: vec![],
        events: vec![],
        boxes: vec![],
        wires: vec![],
    };
    Ok(Program {
        systems: vec![sys],
        fns: model.fns.clone(),
        root: 0,
    })
}

/// The adjoint step's context for `grad`: its leaves' shapes and kinds, lets and fns.
struct AdjCx<'a> {
    inputs: Vec<(Shape, Kind)>,
    states: [Shape; 2],
    lets: &'a [(Slot, Expr)],
    fns: &'a [Function],
}

impl Context for AdjCx<'_> {
    fn leaf(&self, x: &Expr) -> Option<(Shape, Kind)> {
        match x {
            Expr::Input(i) => self.inputs.get(*i as usize).cloned(),
            Expr::State(i) => Some((self.states.get(*i as usize)?.clone(), Kind::Real)),
            Expr::Let(l) => {
                let (sl, _) = self.lets.get(*l as usize)?;
                Some((sl.shape.clone(), sl.kind))
            }
            Expr::Time => Some((vec![], Kind::Real)),
            _ => None,
        }
    }
    fn let_def(&self, i: u32) -> Option<&Expr> {
        self.lets.get(i as usize).map(|(_, x)| x)
    }
    fn fn_body(&self, f: u32) -> Option<&Expr> {
        self.fns.get(f as usize).map(|f| &f.body)
    }
    fn next_fn(&self) -> u32 {
        self.fns.len() as u32
    }
}

/// The adjoint step's inputs, one per model state (`x{i}`), one per model param (`p{i}`),
/// the time `t` and the seeds `mu: Real[n_cols]`, and where each starts in an input row:
/// a row is `w = (x_k, θ, t_k)` in flat buffer order, then `μ_k`. `None` if the model's
/// states or params do not tile their flat buffers in order (the synthesis relies on it).
fn adjoint_inputs(model: &Model, n_cols: usize) -> Option<Vec<(Slot, usize)>> {
    let mut v = Vec::new();
    let mut at = 0;
    for (i, (sl, off)) in model.states.iter().enumerate() {
        if *off != at {
            return None;
        }
        v.push((real_slot(format!("x{i}"), sl.shape.clone()), at));
        at += slots(&sl.shape).max(1);
    }
    if at != model.n_state {
        return None;
    }
    for (i, (sl, off)) in model.params.iter().enumerate() {
        if *off + model.n_state != at {
            return None;
        }
        let mut p = real_slot(format!("p{i}"), sl.shape.clone());
        p.kind = sl.kind;
        v.push((p, at));
        at += slots(&sl.shape).max(1);
    }
    if at != model.n_state + model.n_param {
        return None;
    }
    v.push((real_slot("t".into(), vec![]), at));
    v.push((real_slot("mu".into(), vec![n_cols.max(1) as u64]), at + 1));
    Some(v)
}

/// The input columns of the adjoint step, in the order of an input row: the names of the
/// adjoint step's inputs (`x0`, `x1[0]`, …, `p0`, …, `t`, `mu[0]`, …), one per slot of
/// `w = (x, θ, t)` (flat buffer order) then of `μ`.
pub fn adjoint_columns(model: &Model, n_cols: usize) -> Vec<String> {
    let mut v = Vec::new();
    for (sl, _) in adjoint_inputs(model, n_cols).unwrap_or_default() {
        if sl.shape.is_empty() {
            v.push(sl.name.clone());
        } else {
            v.extend((0..slots(&sl.shape)).map(|j| format!("{}[{j}]", sl.name)));
        }
    }
    v
}

/// The adjoint step system (see the module doc). Inputs: the model's states and params as
/// variables of their own (see [`adjoint_columns`]), the time, and `mu: Real[n_cols]`;
/// states `lam: Real[n_state]` and `gth: Real[n_param + 1]`. One step at row `k` (inputs
/// `x_k`, `θ`, `t_k`, `μ_k`) maps `λ_{k+1}` to `λ_k` and adds row `k`'s parameter terms to
/// `gth`. The vector-Jacobian product is one reverse sweep of `ad::grad_many` with respect
/// to every input but `mu`: a scalar read of a state or param adds a scalar to its adjoint.
pub fn adjoint_system(
    model: &Model,
    integ: Integrator,
    cols: &[Probe],
) -> Result<Program, Box<Diagnostic>> {
    let nx = model.n_state;
    let np = model.n_param;
    let nw = nx + np + 1;
    let ns = model.states.len();
    let npv = model.params.len();
    let bad_shape = || {
        unsupported(
            Span::default(),
            "a value of rank 3 or more",
            "use vectors or matrices",
        )
    };
    let Some(inputs) = adjoint_inputs(model, cols.len()) else {
        return Err(unsupported(
            Span::default(),
            "internal: the model's states or params do not tile their flat buffers in order",
            "report this model",
        ));
    };
    let mut err = None;
    let st = |i: usize| Expr::Input(i as u32);
    let pa = |p: usize| Expr::Input((ns + p) as u32);
    let lv = Leaves {
        state: &st,
        param: &pa,
        time: Expr::Input((ns + npv) as u32),
    };
    let mu = Expr::Input((ns + npv + 1) as u32);
    let step = model.step(integ, &lv, cols)?;
    let lam = Expr::State(0);
    let mut e: Option<Expr> = None;
    let mut push = |t: Expr| {
        e = Some(match e.take() {
            Some(a) => add(a, t),
            None => t,
        })
    };
    for (i, nxt) in step.next.iter().enumerate() {
        let (sl, off) = &model.states[i];
        match view(&lam, *off, &sl.shape) {
            Some(l) => push(sum_all(mul(l, nxt.clone()), &sl.shape)),
            None => err = Some(bad_shape()),
        }
    }
    for (c, y) in step.cols.iter().enumerate() {
        push(mul(
            Expr::Index(Box::new(mu.clone()), vec![Expr::Const(c as f64)]),
            y.clone(),
        ));
    }
    if let Some(d) = err {
        return Err(d);
    }
    let e = e.unwrap_or(Expr::Const(0.0));
    let mut lets = step.lets;
    let cx = AdjCx {
        inputs: inputs
            .iter()
            .map(|(sl, _)| (sl.shape.clone(), sl.kind))
            .collect(),
        states: [vec![nx as u64], vec![(np + 1) as u64]],
        lets: &lets,
        fns: &model.fns,
    };
    let wrts: Vec<Expr> = (0..=ns + npv).map(|i| Expr::Input(i as u32)).collect();
    let g = ad::grad_many(&e, &wrts, &cx).map_err(|ad::AdError(msg, hint)| {
        let d = Diagnostic::new(
            codes::UNSUPPORTED,
            Span::default(),
            format!("the adjoint step could not be derived: {msg}"),
        )
        .label("here");
        Box::new(match hint {
            Some(h) => d.hint(h),
            None => d,
        })
    })?;
    let mut fns = model.fns.clone();
    fns.extend(g.fns);
    let gl = Expr::Let(lets.len() as u32);
    lets.push((real_slot("G".into(), vec![nw as u64]), g.expr));
    let slice = |lo: usize, hi: usize| {
        Expr::Tensor(
            TensorOp::Slice(vec![Sel::Range(lo as u64, hi as u64)]),
            vec![gl.clone()],
        )
    };
    let sys = System {
        name: "Adjoint".into(),
        span: Span::default(),
        params: vec![],
        inputs: inputs.into_iter().map(|(sl, _)| sl).collect(),
        outputs: vec![],
        states: vec![
            (
                real_slot("lam".into(), vec![nx as u64]),
                zeros(&vec![nx as u64]),
            ),
            (
                real_slot("gth".into(), vec![(np + 1) as u64]),
                zeros(&vec![(np + 1) as u64]),
            ),
        ],
        lets,
        readout: Readout::Ports(vec![]),
        time: TimeKind::Discrete,
        updates: vec![
            Assign {
                state: 0,
                value: slice(0, nx),
            },
            Assign {
                state: 1,
                value: add(Expr::State(1), slice(nx, nw)),
            },
        ],
        mode_updates: vec![],
        events: vec![],
        boxes: vec![],
        wires: vec![],
    };
    Ok(Program {
        systems: vec![sys],
        fns,
        root: 0,
    })
}
