//! Systems: leaf systems (state, readout, update) and composites (boxes, wires), one
//! checker for both since a composite is a system.
//!
//! Checked here: names and types of every definition, the update rules (one `next` or
//! `der` per state, one time domain), mode scoping of inputs, out ports defined once,
//! inner inputs wired exactly once (box arrays enumerated at compile time), and
//! causality (no cycle of feed-through dependencies; see `causality.rs`).

use crate::causality::{self, Graph, Node};
use crate::checker::{Binding, Checker, ItemId, Sizes, suggest};
use crate::expr::{Env, Res};
use crate::iface::Iface;
use crate::types::{ModesTy, Ty};
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::{
    Assign, Expr, ExprKind, Ident, ItemKind, SysItem, SysItemKind, SystemDef, UpdateKind,
};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// The time domain of a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// No state of its own or in its boxes.
    Stateless,
    /// Advanced by `next`.
    Discrete,
    /// Advanced by `der` (and `when` events).
    Continuous,
}

impl Domain {
    fn word(self) -> &'static str {
        match self {
            Domain::Stateless => "stateless",
            Domain::Discrete => "discrete (`next`)",
            Domain::Continuous => "continuous (`der`)",
        }
    }
}

/// A parameter of a system.
#[derive(Debug, Clone)]
pub struct ParamSig {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: Ty,
    /// Has a default value.
    pub has_default: bool,
    /// Declaration.
    pub span: Span,
}

/// An inner box of a composite.
#[derive(Debug, Clone)]
pub struct BoxSig {
    /// Name.
    pub name: String,
    /// Array length for `box b[N]`.
    pub count: Option<u64>,
    /// Its system.
    pub sys: Rc<SystemSig>,
    /// Declaration.
    pub span: Span,
    /// The box's system did not resolve; uses of it are not reported again.
    pub poisoned: bool,
}

/// What the rest of the program needs to know about a checked system.
#[derive(Debug, Clone)]
pub struct SystemSig {
    /// Name.
    pub name: String,
    /// The item.
    pub item: ItemId,
    /// Its interface.
    pub iface: Rc<Iface>,
    /// Parameters.
    pub params: Vec<ParamSig>,
    /// State variables (name, type).
    pub states: Vec<(String, Ty)>,
    /// Inner boxes.
    pub boxes: Vec<BoxSig>,
    /// Time domain, with the place that decided it.
    pub domain: Domain,
    /// Where the domain was decided (an update keyword or a box).
    pub domain_span: Option<Span>,
    /// Pairs (out port, in port) where the out reads the in without delay.
    pub feedthrough: Vec<(String, String)>,
    /// Some expression of the body reads the system's own mode (`match mode { … }` in a
    /// wire, let or update); lowering then computes the mode index as a let named `mode`.
    pub reads_mode: bool,
    /// The system's name in its definition.
    pub span: Span,
    /// The typing context of its body (expression types in [`crate::typeck::Typeck`]).
    pub ctx: u32,
    /// Size parameters bound in this instantiation.
    pub sizes: HashMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Param defaults, state initial values, box arguments: params and consts only.
    Init,
    /// The readout of a mode-dependent interface: no inputs.
    Readout,
    /// Anywhere else, with the mode if it is known.
    Body(Option<usize>),
}

/// Something an expression read that matters for causality.
#[derive(Debug, Clone)]
pub enum Read {
    /// An input of the system.
    Input(String),
    /// A `let`.
    Let(usize),
    /// An output of an inner box (with its array index expression).
    BoxOut(usize, Option<Expr>, String),
    /// The system's own mode (`match mode` in an expression): what its readout reads.
    Mode,
}

struct SysEnv {
    iface: Rc<Iface>,
    modes_ty: Option<Rc<ModesTy>>,
    params: Vec<(String, Ty, Span)>,
    param_used: Vec<bool>,
    states: Vec<(String, Ty, Span)>,
    lets: Vec<(String, Ty, Span)>,
    lets_visible: usize,
    boxes: Vec<BoxSig>,
    box_index: HashMap<String, usize>,
    loop_vars: Vec<String>,
    phase: Phase,
    reads: Vec<Read>,
    outs_read: HashSet<(usize, String)>,
    /// Names defined twice (reported once; later uses stay quiet).
    dups: HashSet<String>,
    /// The interface failed to resolve: unknown names are not reported again.
    lenient: bool,
    /// Size parameters of this instantiation (compile-time bounds of slices, `one_hot`).
    sizes: Sizes,
    /// An expression read the system's own mode (`match mode`).
    mode_read: bool,
}

impl SysEnv {
    fn push_box(&mut self, b: BoxSig) {
        self.box_index.insert(b.name.clone(), self.boxes.len());
        self.boxes.push(b);
    }

    fn input(&self, name: &str) -> Option<(Ty, Vec<usize>, Span)> {
        let all = self.iface.all_ins();
        let (p, ms) = all.into_iter().find(|(p, _)| p.name == name)?;
        Some((p.ty.clone(), ms, p.span))
    }

    fn mode_names(&self, ms: &[usize]) -> String {
        ms.iter()
            .map(|m| format!("`{}`", self.iface.modes[*m].name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn read_input(&mut self, cx: &mut Checker, name: &str, span: Span) -> Option<Res> {
        let (ty, ms, decl) = self.input(name)?;
        if self.phase == Phase::Init {
            cx.report(
                Diagnostic::new(codes::NOT_CONST, span, format!("input `{name}` is read where only params and consts are known"))
                    .label("an input")
                    .hint("initial values, param defaults and box arguments are fixed before the run starts"),
            );
            return Some(Res::Forbidden);
        }
        if self.iface.moded {
            let problem = match self.phase {
                Phase::Readout => Some(format!(
                    "input `{name}` is read in the readout, where the mode is not yet chosen"
                )),
                Phase::Body(Some(m)) if !ms.contains(&m) => Some(format!(
                    "input `{name}` exists only in mode {}, but here the mode is `{}`",
                    self.mode_names(&ms),
                    self.iface.modes[m].name
                )),
                Phase::Body(None) if ms.len() < self.iface.modes.len() => Some(format!(
                    "input `{name}` exists only in mode {}, and here the mode is not known",
                    self.mode_names(&ms)
                )),
                _ => None,
            };
            if let Some(msg) = problem {
                cx.report(
                    Diagnostic::new(codes::MODE_SCOPE, span, msg)
                        .label("input read out of its mode")
                        .with(decl, "declared in this mode")
                        .hint(format!(
                            "what a box can be told depends on its mode: read `{name}` inside `next match mode {{ {} => {{ … }} }}`",
                            ms.first().map(|m| self.iface.modes[*m].name.as_str()).unwrap_or("MODE")
                        )),
                );
                return Some(Res::Forbidden);
            }
        }
        self.reads.push(Read::Input(name.to_string()));
        Some(Res::Val(ty))
    }
}

impl Env for SysEnv {
    fn sizes(&self) -> Sizes {
        self.sizes.clone()
    }
    fn lookup(&mut self, cx: &mut Checker, name: &Ident) -> Option<Res> {
        let n = name.name.as_str();
        if self.loop_vars.iter().any(|v| v == n) {
            return Some(Res::Val(Ty::Int));
        }
        if let Some(i) = self.params.iter().position(|p| p.0 == n) {
            self.param_used[i] = true;
            return Some(Res::Val(self.params[i].1.clone()));
        }
        let init = self.phase == Phase::Init;
        let not_yet = |cx: &mut Checker, what: &str| {
            cx.report(
                Diagnostic::new(codes::NOT_CONST, name.span, format!("{what} `{n}` is read where only params and consts are known"))
                    .label(format!("a {what}"))
                    .hint("initial values, param defaults and box arguments are fixed before the run starts"),
            );
            Some(Res::Forbidden)
        };
        if let Some(s) = self.states.iter().find(|s| s.0 == n) {
            return if init {
                not_yet(cx, "state")
            } else {
                Some(Res::Val(s.1.clone()))
            };
        }
        if let Some(i) = self.lets.iter().position(|l| l.0 == n) {
            if init {
                return not_yet(cx, "let");
            }
            if i >= self.lets_visible {
                cx.report(
                    Diagnostic::new(
                        codes::UNKNOWN_NAME,
                        name.span,
                        format!("`let {n}` is used before its definition"),
                    )
                    .label("used here")
                    .with(self.lets[i].2, "defined later here")
                    .hint("a `let` may read only the lets above it; move the definitions"),
                );
                return Some(Res::Forbidden);
            }
            self.reads.push(Read::Let(i));
            return Some(Res::Val(self.lets[i].1.clone()));
        }
        if let Some(&i) = self.box_index.get(n) {
            return if init {
                not_yet(cx, "box")
            } else {
                Some(Res::Box(i))
            };
        }
        if let Some(r) = self.read_input(cx, n, name.span) {
            return Some(r);
        }
        let prefix = format!("{n}.");
        if self.iface.modes.iter().any(|m| {
            m.ins
                .iter()
                .chain(&m.outs)
                .any(|p| p.name.starts_with(&prefix))
        }) {
            return Some(Res::Group(n.to_string()));
        }
        // A size parameter is an Int value (`real(n + m)`).
        if self.sizes.bound.contains_key(n) || self.sizes.symbolic.contains(n) {
            return Some(Res::Val(Ty::Int));
        }
        if self.lenient || self.dups.contains(n) {
            return Some(Res::Forbidden);
        }
        if self.iface.all_outs().iter().any(|(p, _)| p.name == n) {
            cx.report(
                Diagnostic::new(codes::WRONG_KIND, name.span, format!("`{n}` is an out port of this system; out ports are defined, not read"))
                    .label("an out port")
                    .hint(format!("compute the value in a `let` and use it in both places: `let {n}_v = …  out {n} = {n}_v`")),
            );
            return Some(Res::Forbidden);
        }
        None
    }

    fn group_field(&mut self, cx: &mut Checker, group: &str, field: &Ident) -> Option<Ty> {
        let full = format!("{group}.{}", field.name);
        match self.read_input(cx, &full, field.span)? {
            Res::Val(t) => Some(t),
            _ => Some(Ty::Error),
        }
    }

    fn box_port(
        &mut self,
        cx: &mut Checker,
        b: usize,
        index: Option<&Expr>,
        port: &Ident,
        span: Span,
    ) -> Ty {
        let bx = self.boxes[b].clone();
        if bx.poisoned {
            return Ty::Error;
        }
        match (bx.count, index) {
            (Some(_), None) => {
                cx.report(
                    Diagnostic::new(
                        codes::INDEX_RANGE,
                        span,
                        format!("`{}` is a box array: say which box", bx.name),
                    )
                    .label("no index")
                    .with(bx.span, "declared as an array here")
                    .hint(format!("write `{}[i].{}`", bx.name, port.name)),
                );
                return Ty::Error;
            }
            (None, Some(i)) => {
                cx.report(
                    Diagnostic::new(
                        codes::INDEX_RANGE,
                        i.span,
                        format!("`{}` is a single box, not an array", bx.name),
                    )
                    .label("index on a single box")
                    .with(bx.span, "declared here"),
                );
                return Ty::Error;
            }
            _ => {}
        }
        let iface = &bx.sys.iface;
        if let Some(p) = iface.common_out(&port.name) {
            self.reads
                .push(Read::BoxOut(b, index.cloned(), port.name.clone()));
            self.outs_read.insert((b, port.name.clone()));
            return p.ty.clone();
        }
        let outs = iface.all_outs();
        if let Some((_, ms)) = outs.iter().find(|(p, _)| p.name == port.name) {
            let names: Vec<&str> = ms.iter().map(|m| iface.modes[*m].name.as_str()).collect();
            cx.report(
                Diagnostic::new(
                    codes::MODE_SCOPE,
                    port.span,
                    format!(
                        "out port `{}` of box `{}` exists only in mode {}",
                        port.name,
                        bx.name,
                        names.join(", ")
                    ),
                )
                .label("not shown in every mode")
                .with(bx.span, format!("`{}` is a {}", bx.name, bx.sys.name)),
            );
            return Ty::Error;
        }
        let is_in = iface.all_ins().iter().any(|(p, _)| p.name == port.name);
        let names: Vec<String> = outs.iter().map(|(p, _)| p.name.clone()).collect();
        let mut d = if is_in {
            Diagnostic::new(
                codes::UNKNOWN_PORT,
                port.span,
                format!(
                    "`{}` is an input of box `{}`; only its outputs can be read",
                    port.name, bx.name
                ),
            )
            .label("an in port")
        } else {
            Diagnostic::new(
                codes::UNKNOWN_PORT,
                port.span,
                format!("box `{}` has no out port `{}`", bx.name, port.name),
            )
            .label("unknown port")
        };
        d = d.with(bx.span, format!("`{}` is a {}", bx.name, bx.sys.name));
        d = match suggest(&port.name, names.iter().map(String::as_str)) {
            Some(s) if !is_in => d.hint(format!("did you mean `{s}`?")),
            _ => d.hint(format!(
                "the out ports of {}: {}",
                bx.sys.name,
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )),
        };
        cx.report(d);
        Ty::Error
    }

    fn modes(&self) -> Option<Rc<ModesTy>> {
        self.modes_ty.clone()
    }

    fn read_mode(&mut self) -> Result<Rc<ModesTy>, String> {
        let Some(m) = self.modes_ty.clone().filter(|_| self.iface.moded) else {
            return Err("this system's interface has no modes".into());
        };
        match self.phase {
            Phase::Init => Err("initial values, param defaults and box arguments are fixed before the mode is chosen".into()),
            Phase::Readout => Err("the readout chooses the mode, so it cannot read it".into()),
            Phase::Body(_) => {
                self.reads.push(Read::Mode);
                self.mode_read = true;
                Ok(m)
            }
        }
    }

    fn arm_mode(&mut self, m: Option<usize>) -> Option<usize> {
        match self.phase {
            Phase::Body(prev) => {
                self.phase = Phase::Body(m);
                prev
            }
            _ => None,
        }
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.params.iter().map(|p| p.0.clone()).collect();
        v.extend(self.states.iter().map(|p| p.0.clone()));
        v.extend(self.lets.iter().map(|p| p.0.clone()));
        v.extend(self.boxes.iter().map(|p| p.name.clone()));
        v.extend(self.iface.all_ins().iter().map(|(p, _)| p.name.clone()));
        v.extend(self.loop_vars.iter().cloned());
        v
    }
}

/// A wire as written, with its enclosing loops, for enumeration.
struct WireRec<'a> {
    /// Array-ness of target and box disagree (reported); only marks the port as unsure.
    broken: bool,
    b: usize,
    index: Option<&'a Expr>,
    port: String,
    reads: Vec<Read>,
    span: Span,
    loops: Vec<(&'a Ident, &'a Expr, &'a Expr)>,
}

impl BoxSig {
    /// A box whose system or size failed (reported): uses of it are not reported again.
    fn poisoned(name: &Ident, item: ItemId) -> Self {
        BoxSig {
            name: name.name.clone(),
            count: None,
            sys: Rc::new(SystemSig::placeholder(item)),
            span: name.span,
            poisoned: true,
        }
    }
}

impl SystemSig {
    /// A stand-in for a system that failed to resolve.
    pub fn placeholder(item: ItemId) -> Self {
        SystemSig {
            name: "?".into(),
            item,
            iface: Rc::new(Iface {
                name: "?".into(),
                modes: vec![],
                moded: false,
                span: Span::default(),
            }),
            params: vec![],
            states: vec![],
            boxes: vec![],
            domain: Domain::Stateless,
            domain_span: None,
            feedthrough: vec![],
            reads_mode: false,
            span: Span::default(),
            ctx: 0,
            sizes: HashMap::new(),
        }
    }
}

impl<'m> Checker<'m> {
    /// The signature of a system instantiated with sizes; checks it on first use.
    pub fn system_sig(
        &mut self,
        id: ItemId,
        sizes: Vec<u64>,
        used_at: Span,
    ) -> Option<Rc<SystemSig>> {
        let key = (id, sizes.clone());
        match self.systems.get(&key) {
            Some(crate::checker::Slot::Done(s)) => return s.clone(),
            Some(crate::checker::Slot::InProgress) => {
                let name = Checker::item_name(self.item(id)).expect("system has a name");
                self.report(
                    Diagnostic::new(codes::RECURSIVE_SYSTEM, used_at, format!("system `{}` contains itself", name.name))
                        .label("this box would nest the system inside itself")
                        .with(name.span, "the system being defined")
                        .hint("a wiring diagram is finite: a system cannot be a box of itself, directly or through other systems"),
                );
                return None;
            }
            None => {}
        }
        let ItemKind::System(def) = &self.item(id).kind else {
            let name = Checker::item_name(self.item(id))
                .map(|n| n.name.clone())
                .unwrap_or_default();
            self.report(
                Diagnostic::new(
                    codes::WRONG_KIND,
                    used_at,
                    format!("`{name}` is not a system"),
                )
                .label("a system is expected here"),
            );
            return None;
        };
        if def.sizes.len() != sizes.len() {
            self.report(
                Diagnostic::new(
                    codes::BAD_SIZE,
                    used_at,
                    format!(
                        "system `{}` takes {} size argument(s), {} given",
                        def.name.name,
                        def.sizes.len(),
                        sizes.len()
                    ),
                )
                .label("size arguments")
                .with(def.name.span, "declared here"),
            );
            return None;
        }
        self.systems
            .insert(key.clone(), crate::checker::Slot::InProgress);
        let saved = self.cur;
        self.cur = id.module;
        let szs = Sizes {
            bound: def
                .sizes
                .iter()
                .map(|s| s.name.clone())
                .zip(sizes)
                .collect(),
            symbolic: Default::default(),
        };
        let (saved_ctx, ctx) = self.enter_ctx();
        let sig = self.check_system(id, def, &szs).map(|mut s| {
            s.ctx = ctx;
            s.sizes = szs.bound.clone();
            Rc::new(s)
        });
        self.ctx = saved_ctx;
        self.cur = saved;
        self.systems
            .insert(key, crate::checker::Slot::Done(sig.clone()));
        sig
    }

    /// Checks a generic system once with symbolic sizes (so it is checked even if unused).
    pub fn check_generic_system(&mut self, id: ItemId) {
        let ItemKind::System(def) = &self.item(id).kind else {
            return;
        };
        let saved = self.cur;
        self.cur = id.module;
        let szs = Sizes {
            bound: HashMap::new(),
            symbolic: def.sizes.iter().map(|s| s.name.clone()).collect(),
        };
        let (saved_ctx, _) = self.enter_ctx();
        self.check_system(id, def, &szs);
        self.ctx = saved_ctx;
        self.cur = saved;
    }

    fn check_system(&mut self, id: ItemId, def: &'m SystemDef, sizes: &Sizes) -> Option<SystemSig> {
        let (iface, iface_ok) = match self.header_iface(&def.iface, sizes) {
            Some(i) => (i, true),
            None => (
                Rc::new(Iface {
                    name: def.name.name.clone(),
                    modes: vec![],
                    moded: false,
                    span: def.name.span,
                }),
                false,
            ),
        };
        let mut env = SysEnv {
            modes_ty: iface.moded.then(|| iface.modes_ty()),
            iface: iface.clone(),
            params: vec![],
            param_used: vec![],
            states: vec![],
            lets: vec![],
            lets_visible: 0,
            boxes: vec![],
            box_index: HashMap::new(),
            loop_vars: vec![],
            phase: Phase::Init,
            reads: vec![],
            outs_read: HashSet::new(),
            dups: HashSet::new(),
            lenient: !iface_ok,
            sizes: sizes.clone(),
            mode_read: false,
        };
        // Names of inputs first, so that clashes point at the body's definition.
        let mut names: HashMap<String, Span> = HashMap::new();
        for (p, _) in iface.all_ins() {
            names.insert(p.name.clone(), p.span);
        }
        let mut dups: HashSet<String> = HashSet::new();
        let mut declare = |cx: &mut Self, n: &Ident| {
            if let Some(prev) = names.get(&n.name) {
                dups.insert(n.name.clone());
                cx.report(
                    Diagnostic::new(codes::DUPLICATE, n.span, format!("`{}` is already defined in this system", n.name))
                        .label("second definition")
                        .with(*prev, "first defined here")
                        .hint("params, states, lets, boxes and input ports of a system share one namespace"),
                );
                false
            } else {
                names.insert(n.name.clone(), n.span);
                if let Some(b) = cx.lookup(&n.name) {
                    let kind = match b {
                        Binding::Item(i) => match cx.item(i).kind {
                            ItemKind::Const(_) => Some("const"),
                            ItemKind::Fn(_) => Some("fn"),
                            _ => None,
                        },
                        _ => None,
                    };
                    if let Some(kind) = kind {
                        cx.report(
                            Diagnostic::new(codes::SHADOWING, n.span, format!("`{}` shadows the {kind} `{}`", n.name, n.name))
                                .label("shadows a module-level name")
                                .hint("inside this system the name means this definition; rename one to avoid confusion"),
                        );
                    }
                }
                true
            }
        };

        // 1. Params, states and boxes (in Init phase).
        for it in &def.body {
            match &it.kind {
                SysItemKind::Param { name, ty, default } => {
                    let t = self.resolve_type(ty, sizes);
                    if let Some(d) = default {
                        let dt = self.check_expr(&mut env, d, Some(&t));
                        self.expect_fits(&dt, &t, d.span, Some(ty.span));
                    }
                    if declare(self, name) {
                        env.params.push((name.name.clone(), t, name.span));
                        env.param_used.push(false);
                    }
                }
                SysItemKind::State { name, ty, init } => {
                    let t = self.resolve_type(ty, sizes);
                    let it_ty = self.check_expr(&mut env, init, Some(&t));
                    self.expect_fits(&it_ty, &t, init.span, Some(ty.span));
                    if declare(self, name) {
                        env.states.push((name.name.clone(), t, name.span));
                    }
                }
                SysItemKind::Box {
                    name,
                    count,
                    system,
                    sizes: sargs,
                    args,
                } => {
                    let n = match count {
                        Some(c) => match self.const_nat(c, sizes, "a box-array length") {
                            Some(n) if n > crate::checker::MAX_BOXES => {
                                self.report(
                                    Diagnostic::new(codes::BAD_SIZE, c.span, format!("a box array of {n} boxes is more than the limit of {}", crate::checker::MAX_BOXES))
                                        .label("too many boxes")
                                        .hint("box arrays are wired and checked element by element at compile time; use a tensor state for larger populations"),
                                );
                                if declare(self, name) {
                                    env.push_box(BoxSig::poisoned(name, id));
                                }
                                continue;
                            }
                            Some(n) => Some(n),
                            None => {
                                // Reported; the box stays declared so its uses are quiet.
                                if declare(self, name) {
                                    env.push_box(BoxSig::poisoned(name, id));
                                }
                                continue;
                            }
                        },
                        None => None,
                    };
                    let poisoned = |name: &Ident, n: Option<u64>, sig: Rc<SystemSig>| BoxSig {
                        name: name.name.clone(),
                        count: n,
                        sys: sig,
                        span: name.span,
                        poisoned: true,
                    };
                    let Some(sys_id) = self.resolve_path(system, "system") else {
                        for a in args {
                            self.check_expr(&mut env, &a.value, None);
                        }
                        if declare(self, name) {
                            env.push_box(poisoned(name, n, Rc::new(SystemSig::placeholder(id))));
                        }
                        continue;
                    };
                    let mut svals = Vec::new();
                    let mut ok = true;
                    for s in sargs {
                        match self.const_nat(s, sizes, "a size argument") {
                            Some(v) => svals.push(v),
                            None => ok = false,
                        }
                    }
                    let sys_span = system[0].span.to(system[system.len() - 1].span);
                    let Some(sig) = ok
                        .then(|| self.system_sig(sys_id, svals, sys_span))
                        .flatten()
                    else {
                        if declare(self, name) {
                            env.push_box(poisoned(name, n, Rc::new(SystemSig::placeholder(id))));
                        }
                        continue;
                    };
                    self.check_box_args(&mut env, &sig, name, args, sys_span);
                    if declare(self, name) {
                        env.push_box(BoxSig {
                            name: name.name.clone(),
                            count: n,
                            sys: sig,
                            span: name.span.to(sys_span),
                            poisoned: false,
                        });
                    }
                }
                SysItemKind::Let { name, .. } if declare(self, name) => {
                    env.lets.push((name.name.clone(), Ty::Error, name.span));
                }
                _ => {}
            }
        }

        env.dups = dups;
        // 2. Lets in order; each may read the lets above it.
        env.phase = Phase::Body(None);
        let mut let_reads: Vec<Vec<Read>> = vec![Vec::new(); env.lets.len()];
        let mut li = 0;
        for it in &def.body {
            if let SysItemKind::Let { name, ty, value } = &it.kind {
                let Some(idx) = env
                    .lets
                    .iter()
                    .position(|l| l.0 == name.name && l.2 == name.span)
                else {
                    continue;
                };
                env.lets_visible = idx;
                env.reads.clear();
                let declared = ty.as_ref().map(|t| self.resolve_type(t, sizes));
                let vt = self.check_expr(&mut env, value, declared.as_ref());
                let t = match declared {
                    Some(d) => {
                        self.expect_fits(&vt, &d, value.span, ty.as_ref().map(|t| t.span));
                        d
                    }
                    None => vt,
                };
                env.lets[idx].1 = t;
                let_reads[idx] = std::mem::take(&mut env.reads);
                li += 1;
            }
        }
        let _ = li;
        env.lets_visible = env.lets.len();

        // 3. Outs, updates, events and wires.
        let mut out_defs: HashMap<String, Span> = HashMap::new();
        let mut out_reads: HashMap<String, Vec<Read>> = HashMap::new();
        let mut moded_out: Option<Span> = None;
        let mut updates: HashMap<String, (UpdateKind, Span)> = HashMap::new();
        let mut when_assigned: HashSet<String> = HashSet::new();
        let mut first_next: Option<Span> = None;
        let mut first_der: Option<Span> = None;
        let mut first_der_is_when = false;
        let mut wires: Vec<WireRec> = Vec::new();
        let mut loops: Vec<(&Ident, &Expr, &Expr)> = Vec::new();
        self.body_items(
            &def.body,
            &mut env,
            iface_ok,
            &mut BodyState {
                out_defs: &mut out_defs,
                out_reads: &mut out_reads,
                moded_out: &mut moded_out,
                updates: &mut updates,
                when_assigned: &mut when_assigned,
                first_next: &mut first_next,
                first_der: &mut first_der,
                first_der_is_when: &mut first_der_is_when,
                wires: &mut wires,
            },
            &mut loops,
        );

        // 4. Out ports defined.
        if iface_ok {
            if iface.moded {
                if moded_out.is_none() {
                    let modes: Vec<&str> = iface.modes.iter().map(|m| m.name.as_str()).collect();
                    self.report(
                        Diagnostic::new(
                            codes::OUT_UNDEFINED,
                            def.name.span,
                            format!("system `{}` never chooses its mode", def.name.name),
                        )
                        .label("no readout")
                        .with(iface.span, "this interface has modes")
                        .hint(format!(
                            "add a readout that builds a mode value: `out = {} {{ … }}`",
                            modes.first().copied().unwrap_or("MODE")
                        )),
                    );
                }
            } else if let Some(m) = iface.modes.first() {
                for p in &m.outs {
                    if !out_defs.contains_key(&p.name) {
                        self.report(
                            Diagnostic::new(
                                codes::OUT_UNDEFINED,
                                def.name.span,
                                format!(
                                    "out port `{}` of `{}` is never defined",
                                    p.name, def.name.name
                                ),
                            )
                            .label(format!(
                                "`{}` is missing `out {} = …`",
                                def.name.name, p.name
                            ))
                            .with(p.span, "declared here")
                            .hint(format!(
                                "every out port of the interface needs a readout: add `out {} = …`",
                                p.name
                            )),
                        );
                    }
                }
            }
        }

        // 5. State updates and the time domain.
        for (name, _, span) in &env.states {
            let updated = updates.contains_key(name) || when_assigned.contains(name);
            if !updated {
                let hint = if first_der.is_some() {
                    format!("add `der {name} = …` (or change it only in a `when` event)")
                } else {
                    format!("add `next {name} = …` (discrete) or `der {name} = …` (continuous)")
                };
                self.report(
                    Diagnostic::new(
                        codes::STATE_UPDATE,
                        *span,
                        format!("state `{name}` is never updated"),
                    )
                    .label("no `next` or `der` for this state")
                    .hint(hint),
                );
            } else if let Some((UpdateKind::Next, _)) = updates.get(name)
                && when_assigned.contains(name)
            {
                // `when` in a discrete system is reported as mixing below.
            }
        }
        let mut domain = Domain::Stateless;
        let mut domain_span = None;
        match (first_next, first_der) {
            (Some(n), Some(d)) => {
                let cont = if first_der_is_when { "when" } else { "der" };
                let (second, first, skind, fkind) = if n.lo > d.lo {
                    (n, d, "next", cont)
                } else {
                    (d, n, cont, "next")
                };
                self.report(
                    Diagnostic::new(codes::MIXED_TIME, second, format!("system `{}` mixes discrete and continuous time", def.name.name))
                        .label(format!("`{skind}` here"))
                        .with(first, format!("`{fkind}` here"))
                        .hint("a system is discrete (`next`; use `if` inside `next` for jumps) or continuous (`der`, `when`), not both: write every state of it in one style"),
                );
            }
            (Some(n), None) => {
                domain = Domain::Discrete;
                domain_span = Some(n);
            }
            (None, Some(d)) => {
                domain = Domain::Continuous;
                domain_span = Some(d);
            }
            (None, None) => {}
        }
        for b in &env.boxes {
            let bd = b.sys.domain;
            if bd == Domain::Stateless {
                continue;
            }
            if domain == Domain::Stateless {
                domain = bd;
                domain_span = Some(b.span);
            } else if domain != bd {
                let first = domain_span.unwrap_or(def.name.span);
                let mut d = Diagnostic::new(
                    codes::MIXED_TIME,
                    b.span,
                    format!(
                        "box `{}` is {} but `{}` is already {}",
                        b.name,
                        bd.word(),
                        def.name.name,
                        domain.word()
                    ),
                )
                .label(format!("a {} box", bd.word()))
                .with(first, format!("{} here", domain.word()));
                if let Some(s) = b.sys.domain_span {
                    d = d.with(s, format!("this makes {} {}", b.sys.name, bd.word()));
                }
                self.report(d.hint("time domains must agree inside one composite: make every stateful box (and the composite's own state) discrete, or every one continuous"));
            }
        }

        // 6. Wiring coverage and causality.
        let mut graph = Graph::default();
        self.enumerate_wires(&env, &wires, sizes, &mut graph, def);
        for (i, reads) in let_reads.iter().enumerate() {
            let n = graph.node(Node::Let(i));
            self.add_reads(&env, &mut graph, n, reads, &HashMap::new(), sizes);
        }
        for (p, reads) in &out_reads {
            let n = graph.node(Node::Out(p.clone()));
            self.add_reads(&env, &mut graph, n, reads, &HashMap::new(), sizes);
        }
        for (bi, b) in env.boxes.iter().enumerate() {
            for k in 0..b.count.unwrap_or(1) {
                let k = b.count.map(|_| k);
                for (o, i) in &b.sys.feedthrough {
                    let from = graph.node(Node::BoxOut(bi, k, o.clone()));
                    let to = graph.node(Node::BoxIn(bi, k, i.clone()));
                    graph.edge(from, to, None);
                }
            }
        }
        let box_names: Vec<(String, Option<u64>, Span, String)> = env
            .boxes
            .iter()
            .map(|b| (b.name.clone(), b.count, b.span, b.sys.name.clone()))
            .collect();
        let let_names: Vec<String> = env.lets.iter().map(|l| format!("let {}", l.0)).collect();
        if let Some(d) = causality::find_loop(&graph, &box_names, &let_names) {
            self.report(d);
        }
        let mut feedthrough: Vec<(String, String)> = Vec::new();
        if iface_ok {
            for (p, _) in iface.all_outs() {
                let key = if iface.moded {
                    "*".to_string()
                } else {
                    p.name.clone()
                };
                if let Some(&n) = graph.index.get(&Node::Out(key)) {
                    for input in graph.reachable_inputs(n) {
                        feedthrough.push((p.name.clone(), input));
                    }
                }
            }
        }

        // 7. Warnings. A param named in a size or box count was used (wrongly, and reported).
        let mut in_sizes = Vec::new();
        for it in &def.body {
            match &it.kind {
                SysItemKind::Box { count: Some(c), .. } => names_in(c, &mut in_sizes),
                SysItemKind::Param { ty, .. } | SysItemKind::State { ty, .. } => {
                    if let dyn_syntax::ast::TypeKind::Tensor(_, dims) = &ty.kind {
                        dims.iter().for_each(|d| names_in(d, &mut in_sizes));
                    }
                }
                _ => {}
            }
        }
        for (i, (n, _, _)) in env.params.iter().enumerate() {
            if in_sizes.contains(n) {
                env.param_used[i] = true;
            }
        }
        for (i, used) in env.param_used.iter().enumerate() {
            if !used {
                let (n, _, s) = &env.params[i];
                self.report(
                    Diagnostic::new(
                        codes::UNUSED_PARAM,
                        *s,
                        format!("param `{n}` is never used"),
                    )
                    .label("never read")
                    .hint("remove it, or use it in an expression"),
                );
            }
        }
        for (bi, b) in env.boxes.iter().enumerate() {
            let learner = matches!(&self.item(b.sys.item).kind,
                ItemKind::System(d) if d.learner.is_some());
            for (p, _) in b.sys.iface.all_outs() {
                // A learner's backward output `dx` is often unread (the first layer's).
                let backward = learner
                    && b.sys
                        .iface
                        .all_ins()
                        .iter()
                        .any(|(q, _)| crate::learner::backward(&q.name) == p.name);
                if !backward && !env.outs_read.contains(&(bi, p.name.clone())) {
                    self.report(
                        Diagnostic::new(codes::UNREAD_OUTPUT, b.span, format!("output `{}` of box `{}` is never read", p.name, b.name))
                            .label("this box's output goes nowhere")
                            .with(p.span, "declared here")
                            .hint(format!("read it in a wire or an out port (`{}.{}`), or ignore this warning if it is only recorded", b.name, p.name)),
                    );
                }
            }
        }

        Some(SystemSig {
            name: def.name.name.clone(),
            item: id,
            iface,
            params: env
                .params
                .iter()
                .map(|(n, t, s)| ParamSig {
                    name: n.clone(),
                    ty: t.clone(),
                    has_default: def.body.iter().any(|it| matches!(&it.kind, SysItemKind::Param { name, default: Some(_), .. } if name.name == *n)),
                    span: *s,
                })
                .collect(),
            states: env.states.iter().map(|(n, t, _)| (n.clone(), t.clone())).collect(),
            boxes: env.boxes.clone(),
            domain,
            domain_span,
            feedthrough,
            reads_mode: env.mode_read,
            span: def.name.span,
            ctx: 0,
            sizes: HashMap::new(),
        })
    }

    fn check_box_args(
        &mut self,
        env: &mut SysEnv,
        sig: &SystemSig,
        name: &Ident,
        args: &[dyn_syntax::ast::Arg],
        sys_span: Span,
    ) {
        let mut given: HashMap<String, Span> = HashMap::new();
        for a in args {
            let Some(pn) = &a.name else {
                self.check_expr(env, &a.value, None);
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_PARAM,
                        a.value.span,
                        "box arguments must name the param they set",
                    )
                    .label("positional argument")
                    .hint(format!("write `{}(NAME = value)`", sig.name)),
                );
                continue;
            };
            if let Some(prev) = given.insert(pn.name.clone(), pn.span) {
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE,
                        pn.span,
                        format!("param `{}` is set twice", pn.name),
                    )
                    .with(prev, "first set here"),
                );
            }
            match sig.params.iter().find(|p| p.name == pn.name) {
                Some(p) => {
                    let t = self.check_expr(env, &a.value, Some(&p.ty));
                    self.expect_fits(&t, &p.ty, a.value.span, Some(p.span));
                }
                None => {
                    self.check_expr(env, &a.value, None);
                    let names: Vec<&str> = sig.params.iter().map(|p| p.name.as_str()).collect();
                    let mut d = Diagnostic::new(
                        codes::UNKNOWN_PARAM,
                        pn.span,
                        format!("system `{}` has no param `{}`", sig.name, pn.name),
                    )
                    .label("unknown param")
                    .with(sig.span, format!("`{}` is defined here", sig.name));
                    d = match suggest(&pn.name, names.iter().copied()) {
                        Some(s) => d.hint(format!(
                            "did you mean `{s}`? its params: {}",
                            names.join(", ")
                        )),
                        None if names.is_empty() => d.hint(format!("`{}` has no params", sig.name)),
                        None => d.hint(format!("its params: {}", names.join(", "))),
                    };
                    self.report(d);
                }
            }
        }
        for p in &sig.params {
            if !p.has_default && !given.contains_key(&p.name) {
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_PARAM,
                        name.span.to(sys_span),
                        format!(
                            "box `{}` does not set param `{}`, which has no default",
                            name.name, p.name
                        ),
                    )
                    .label("missing argument")
                    .with(p.span, "declared without a default here")
                    .hint(format!(
                        "write `box {}: {}({} = …)`",
                        name.name, sig.name, p.name
                    )),
                );
            }
        }
    }
}

struct BodyState<'s, 'a> {
    out_defs: &'s mut HashMap<String, Span>,
    out_reads: &'s mut HashMap<String, Vec<Read>>,
    moded_out: &'s mut Option<Span>,
    updates: &'s mut HashMap<String, (UpdateKind, Span)>,
    when_assigned: &'s mut HashSet<String>,
    first_next: &'s mut Option<Span>,
    first_der: &'s mut Option<Span>,
    first_der_is_when: &'s mut bool,
    wires: &'s mut Vec<WireRec<'a>>,
}

impl<'m> Checker<'m> {
    #[allow(clippy::too_many_arguments)]
    fn body_items(
        &mut self,
        items: &'m [SysItem],
        env: &mut SysEnv,

        iface_ok: bool,
        st: &mut BodyState<'_, 'm>,
        loops: &mut Vec<(&'m Ident, &'m Expr, &'m Expr)>,
    ) {
        let iface = env.iface.clone();
        for it in items {
            let in_loop = !loops.is_empty();
            match &it.kind {
                SysItemKind::Param { .. }
                | SysItemKind::State { .. }
                | SysItemKind::Box { .. }
                | SysItemKind::Let { .. }
                    if in_loop =>
                {
                    self.report(
                        Diagnostic::new(codes::WRONG_KIND, it.span, "only wires may appear inside a `for` loop")
                            .label("not a wire")
                            .hint("declare params, states, lets and boxes at the top of the system; use `box b[N]: S` for many boxes"),
                    );
                }
                SysItemKind::Param { .. }
                | SysItemKind::State { .. }
                | SysItemKind::Box { .. }
                | SysItemKind::Let { .. }
                | SysItemKind::Optimizer { .. }
                | SysItemKind::Error => {}
                SysItemKind::Out { name, value } => {
                    if in_loop {
                        self.report(
                            Diagnostic::new(
                                codes::WRONG_KIND,
                                it.span,
                                "only wires may appear inside a `for` loop",
                            )
                            .label("not a wire"),
                        );
                        continue;
                    }
                    env.reads.clear();
                    match name {
                        None => {
                            if iface_ok && !iface.moded {
                                self.check_expr(env, value, None);
                                for p in iface.modes.iter().flat_map(|m| &m.outs) {
                                    st.out_defs.entry(p.name.clone()).or_insert(it.span);
                                }
                                self.report(
                                    Diagnostic::new(codes::MODE_MATCH, it.span, "`out = …` chooses a mode, but this system's interface has no modes")
                                        .label("mode readout")
                                        .with(iface.span, "the interface")
                                        .hint("define each out port: `out NAME = …`"),
                                );
                                continue;
                            }
                            env.phase = Phase::Readout;
                            let expected = env.modes_ty.clone().map(Ty::Modes);
                            let t = self.check_expr(env, value, expected.as_ref());
                            env.phase = Phase::Body(None);
                            if let Some(e) = &expected {
                                self.expect_fits(&t, e, value.span, Some(iface.span));
                            }
                            if let Some(prev) = st.moded_out.replace(it.span) {
                                self.report(
                                    Diagnostic::new(codes::OUT_TWICE, it.span, "the readout is defined twice")
                                        .label("second readout")
                                        .with(prev, "first readout here")
                                        .hint("a system has one readout: combine them with `if` or `match`"),
                                );
                            }
                            st.out_reads
                                .insert("*".into(), std::mem::take(&mut env.reads));
                        }
                        Some(n) => {
                            if iface_ok && iface.moded {
                                self.check_expr(env, value, None);
                                st.moded_out.get_or_insert(it.span);
                                self.report(
                                    Diagnostic::new(codes::MODE_MATCH, n.span, format!("`out {}` in a system whose interface has modes", n.name))
                                        .label("per-port readout")
                                        .with(iface.span, "the interface has modes")
                                        .hint(format!("choose the mode and its outs together: `out = {} {{ {} = … }}`", iface.modes[0].name, n.name)),
                                );
                                continue;
                            }
                            let port = iface
                                .modes
                                .first()
                                .and_then(|m| m.outs.iter().find(|p| p.name == n.name))
                                .cloned();
                            let t = self.check_expr(env, value, port.as_ref().map(|p| &p.ty));
                            if let Some(p) = &port {
                                self.expect_fits(&t, &p.ty, value.span, Some(p.span));
                            } else if iface_ok {
                                let is_in = iface.all_ins().iter().any(|(p, _)| p.name == n.name);
                                let outs: Vec<String> = iface
                                    .all_outs()
                                    .iter()
                                    .map(|(p, _)| p.name.clone())
                                    .collect();
                                let mut d = if is_in {
                                    Diagnostic::new(
                                        codes::UNKNOWN_PORT,
                                        n.span,
                                        format!(
                                            "`{}` is an in port; `out` defines out ports",
                                            n.name
                                        ),
                                    )
                                    .label("an in port")
                                } else {
                                    Diagnostic::new(
                                        codes::UNKNOWN_PORT,
                                        n.span,
                                        format!("the interface has no out port `{}`", n.name),
                                    )
                                    .label("unknown out port")
                                };
                                d = d.with(iface.span, "the interface");
                                d = match suggest(&n.name, outs.iter().map(String::as_str)) {
                                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                                    None => d.hint(format!(
                                        "its out ports: {}",
                                        if outs.is_empty() {
                                            "none".to_string()
                                        } else {
                                            outs.join(", ")
                                        }
                                    )),
                                };
                                self.report(d);
                            }
                            if let Some(prev) = st.out_defs.insert(n.name.clone(), n.span) {
                                self.report(
                                    Diagnostic::new(
                                        codes::OUT_TWICE,
                                        n.span,
                                        format!("out port `{}` is defined twice", n.name),
                                    )
                                    .label("second definition")
                                    .with(prev, "first definition")
                                    .hint("each out port has exactly one readout"),
                                );
                            }
                            st.out_reads
                                .insert(n.name.clone(), std::mem::take(&mut env.reads));
                        }
                    }
                }
                SysItemKind::Update {
                    kind,
                    kw,
                    target,
                    value,
                } => {
                    if in_loop {
                        self.report(
                            Diagnostic::new(
                                codes::WRONG_KIND,
                                it.span,
                                "only wires may appear inside a `for` loop",
                            )
                            .label("not a wire"),
                        );
                        continue;
                    }
                    self.note_kind(*kind, *kw, st);
                    let sty = self.state_ty(env, &target.name);
                    let t = self.check_expr(env, value, sty.as_ref());
                    self.update_target(env, target, *kind, *kw, &t, value.span, st, false);
                }
                SysItemKind::UpdateMatch { kind, kw, arms } => {
                    self.note_kind(*kind, *kw, st);
                    if iface_ok && !iface.moded {
                        self.report(
                            Diagnostic::new(
                                codes::MODE_MATCH,
                                *kw,
                                "`match mode` in a system whose interface has no modes",
                            )
                            .label("no modes to match")
                            .with(iface.span, "the interface")
                            .hint("write plain updates: `next x = …`"),
                        );
                    }
                    let mut seen: HashMap<&str, Span> = HashMap::new();
                    let mut assigned_here: HashMap<String, Span> = HashMap::new();
                    for arm in arms {
                        let mi = iface.modes.iter().position(|m| m.name == arm.mode.name);
                        if iface.moded && mi.is_none() {
                            let names: Vec<&str> =
                                iface.modes.iter().map(|m| m.name.as_str()).collect();
                            self.report(
                                Diagnostic::new(
                                    codes::MODE_MATCH,
                                    arm.mode.span,
                                    format!("`{}` is not a mode of {}", arm.mode.name, iface.name),
                                )
                                .label("unknown mode")
                                .hint(format!("its modes: {}", names.join(", "))),
                            );
                        }
                        if let Some(prev) = seen.insert(&arm.mode.name, arm.mode.span) {
                            self.report(
                                Diagnostic::new(
                                    codes::MODE_MATCH,
                                    arm.mode.span,
                                    format!("mode `{}` is matched twice", arm.mode.name),
                                )
                                .with(prev, "first arm"),
                            );
                        }
                        env.phase = Phase::Body(mi);
                        let mut in_arm: HashMap<&str, Span> = HashMap::new();
                        for a in &arm.body {
                            let sty = self.state_ty(env, &a.target.name);
                            let t = self.check_expr(env, &a.value, sty.as_ref());
                            if let Some(prev) = in_arm.insert(&a.target.name, a.target.span) {
                                self.report(
                                    Diagnostic::new(
                                        codes::STATE_UPDATE,
                                        a.target.span,
                                        format!(
                                            "state `{}` is assigned twice in one arm",
                                            a.target.name
                                        ),
                                    )
                                    .with(prev, "first here"),
                                );
                            }
                            assigned_here
                                .entry(a.target.name.clone())
                                .or_insert(a.target.span);
                            self.assign_check(env, a, &t, *kind == UpdateKind::Next);
                        }
                        env.phase = Phase::Body(None);
                    }
                    if iface.moded {
                        let missing: Vec<&str> = iface
                            .modes
                            .iter()
                            .map(|m| m.name.as_str())
                            .filter(|m| !seen.contains_key(m))
                            .collect();
                        if !missing.is_empty() {
                            self.report(
                                Diagnostic::new(codes::MODE_MATCH, *kw, format!("`match mode` does not cover {}", missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")))
                                    .label("not exhaustive")
                                    .hint(format!("add an arm for each mode; `{} => {{ }}` keeps the state unchanged", missing[0])),
                            );
                        }
                    }
                    for (name, span) in assigned_here {
                        if let Some((_, prev)) = st.updates.insert(name.clone(), (*kind, span)) {
                            self.report(
                                Diagnostic::new(codes::STATE_UPDATE, span, format!("state `{name}` has two updates"))
                                    .label("second update")
                                    .with(prev, "first update")
                                    .hint("each state has exactly one `next` or `der` (a `match mode` counts as one)"),
                            );
                        }
                    }
                }
                SysItemKind::When { cond, body } => {
                    if st.first_der.is_none() {
                        *st.first_der = Some(it.span);
                        *st.first_der_is_when = true;
                    }
                    let ct = self.check_expr(env, cond, Some(&Ty::Bool));
                    if !matches!(ct, Ty::Bool | Ty::Error) {
                        self.report(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                cond.span,
                                format!("a `when` condition must be a Bool, found {ct}"),
                            )
                            .label(format!("this is {ct}"))
                            .hint("compare: `when v >= v_th { … }`"),
                        );
                    }
                    for a in body {
                        let sty = self.state_ty(env, &a.target.name);
                        let t = self.check_expr(env, &a.value, sty.as_ref());
                        if self.assign_check(env, a, &t, true) {
                            st.when_assigned.insert(a.target.name.clone());
                        }
                    }
                }
                SysItemKind::Wire { target, value } => {
                    env.reads.clear();
                    let b = env.box_index.get(&target.boxname.name).copied();
                    let Some(b) = b else {
                        self.check_expr(env, value, None);
                        let names: Vec<String> = env.boxes.iter().map(|b| b.name.clone()).collect();
                        let mut d = Diagnostic::new(
                            codes::UNKNOWN_NAME,
                            target.boxname.span,
                            format!("no box `{}` in this system", target.boxname.name),
                        )
                        .label("unknown box");
                        d = match suggest(&target.boxname.name, names.iter().map(String::as_str)) {
                            Some(s) => d.hint(format!("did you mean `{s}`?")),
                            None => d.hint("declare it with `box NAME: SYSTEM`; `<-` wires an inner box's input"),
                        };
                        self.report(d);
                        continue;
                    };
                    let bx = env.boxes[b].clone();
                    if bx.poisoned {
                        self.check_expr(env, value, None);
                        continue;
                    }
                    if let Some(i) = &target.index {
                        let t = self.check_expr(env, i, Some(&Ty::Int));
                        if !t.is_int() {
                            self.report(
                                Diagnostic::new(
                                    codes::TYPE_MISMATCH,
                                    i.span,
                                    format!("a box-array index must be an Int, found {t}"),
                                )
                                .label(format!("this is {t}")),
                            );
                        }
                        env.reads.clear();
                    }
                    match (bx.count, &target.index) {
                        (Some(_), None) => self.report(
                            Diagnostic::new(
                                codes::INDEX_RANGE,
                                target.span,
                                format!("`{}` is a box array: say which box", bx.name),
                            )
                            .label("no index")
                            .with(bx.span, "declared as an array here")
                            .hint(format!(
                                "wire each element in a loop: `for i in 0..N {{ {}[i].{} <- … }}`",
                                bx.name, target.port.name
                            )),
                        ),
                        (None, Some(i)) => self.report(
                            Diagnostic::new(
                                codes::INDEX_RANGE,
                                i.span,
                                format!("`{}` is a single box, not an array", bx.name),
                            )
                            .label("index on a single box")
                            .with(bx.span, "declared here"),
                        ),
                        _ => {}
                    }
                    let ins = bx.sys.iface.all_ins();
                    let port = ins
                        .iter()
                        .find(|(p, _)| p.name == target.port.name)
                        .map(|(p, _)| (*p).clone());
                    let t = self.check_expr(env, value, port.as_ref().map(|p| &p.ty));
                    match &port {
                        Some(p) => {
                            if !t.fits(&p.ty) {
                                let shape = matches!((&t, &p.ty), (Ty::Tensor(..), Ty::Tensor(..)));
                                self.report(
                                    Diagnostic::new(
                                        if shape { codes::SHAPE_MISMATCH } else { codes::TYPE_MISMATCH },
                                        value.span,
                                        format!("wire into `{}.{}` carries {t}, but the port takes {}", bx.name, p.name, p.ty),
                                    )
                                    .label(format!("this is {t}"))
                                    .with(target.span, format!("`{}.{}` takes {}", bx.name, p.name, p.ty))
                                    .with(p.span, "port declared here")
                                    .hint("both ends of a wire must have the same type (Int may feed a Real port)"),
                                );
                            }
                        }
                        None => {
                            let is_out = bx
                                .sys
                                .iface
                                .all_outs()
                                .iter()
                                .any(|(p, _)| p.name == target.port.name);
                            let names: Vec<String> =
                                ins.iter().map(|(p, _)| p.name.clone()).collect();
                            let mut d = if is_out {
                                Diagnostic::new(
                                    codes::NOT_AN_INPUT,
                                    target.port.span,
                                    format!(
                                        "`{}.{}` is an out port; wires feed in ports",
                                        bx.name, target.port.name
                                    ),
                                )
                                .label("an out port cannot be wired")
                            } else {
                                Diagnostic::new(
                                    codes::UNKNOWN_PORT,
                                    target.port.span,
                                    format!(
                                        "box `{}` has no in port `{}`",
                                        bx.name, target.port.name
                                    ),
                                )
                                .label("unknown port")
                            };
                            d = d.with(bx.span, format!("`{}` is a {}", bx.name, bx.sys.name));
                            d = match suggest(&target.port.name, names.iter().map(String::as_str)) {
                                Some(s) if !is_out => d.hint(format!("did you mean `{s}`?")),
                                _ => d.hint(format!(
                                    "the in ports of {}: {}",
                                    bx.sys.name,
                                    if names.is_empty() {
                                        "none".into()
                                    } else {
                                        names.join(", ")
                                    }
                                )),
                            };
                            self.report(d);
                        }
                    }
                    if port.is_some() {
                        st.wires.push(WireRec {
                            broken: bx.count.is_some() != target.index.is_some(),
                            b,
                            index: target.index.as_ref(),
                            port: target.port.name.clone(),
                            reads: std::mem::take(&mut env.reads),
                            span: it.span,
                            loops: loops.clone(),
                        });
                    }
                }
                SysItemKind::For { var, lo, hi, body } => {
                    for bound in [lo, hi] {
                        let t = self.check_expr(env, bound, Some(&Ty::Int));
                        if !t.is_int() {
                            self.report(
                                Diagnostic::new(
                                    codes::TYPE_MISMATCH,
                                    bound.span,
                                    format!("loop bounds must be Int, found {t}"),
                                )
                                .label(format!("this is {t}")),
                            );
                        }
                    }
                    if env.names().contains(&var.name) || self.shadows_global(&var.name).is_some() {
                        self.report(
                            Diagnostic::new(
                                codes::SHADOWING,
                                var.span,
                                format!("loop variable `{}` shadows another name", var.name),
                            )
                            .label("shadows")
                            .hint("inside the loop the name means the loop index; rename it"),
                        );
                    }
                    env.loop_vars.push(var.name.clone());
                    loops.push((var, lo, hi));
                    self.body_items(body, env, iface_ok, st, loops);
                    loops.pop();
                    env.loop_vars.pop();
                }
            }
        }
    }

    fn note_kind(&mut self, kind: UpdateKind, kw: Span, st: &mut BodyState) {
        let slot = match kind {
            UpdateKind::Next => &mut *st.first_next,
            UpdateKind::Der => &mut *st.first_der,
        };
        if slot.is_none() {
            *slot = Some(kw);
        }
    }

    fn state_ty(&self, env: &SysEnv, name: &str) -> Option<Ty> {
        env.states.iter().find(|s| s.0 == name).map(|s| s.1.clone())
    }

    /// Checks that `target` is a state and the value fits; reports otherwise.
    fn assign_check(&mut self, env: &SysEnv, a: &Assign, t: &Ty, exact: bool) -> bool {
        let _ = exact;
        match env.states.iter().find(|s| s.0 == a.target.name) {
            Some((_, st, decl)) => {
                self.expect_fits(t, st, a.value.span, Some(*decl));
                true
            }
            None => {
                self.not_state(env, &a.target);
                false
            }
        }
    }

    fn not_state(&mut self, env: &SysEnv, target: &Ident) {
        let n = &target.name;
        if env.dups.contains(n) || env.lenient {
            return;
        }
        let (msg, hint) = if env.params.iter().any(|p| p.0 == *n) {
            (
                format!("`{n}` is a param, not a state"),
                "params are constants of a run; declare `state` for a value that changes"
                    .to_string(),
            )
        } else if env.input(n).is_some() {
            (
                format!("`{n}` is an input, not a state"),
                "inputs are set from outside, by the wiring".to_string(),
            )
        } else if env.lets.iter().any(|l| l.0 == *n) {
            (
                format!("`{n}` is a let, not a state"),
                "lets are computed each step; declare `state` for a value that persists"
                    .to_string(),
            )
        } else {
            let names: Vec<&str> = env.states.iter().map(|s| s.0.as_str()).collect();
            (
                format!("`{n}` is not a state of this system"),
                match suggest(n, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("declare it: `state {n}: Real = 0.0`"),
                },
            )
        };
        self.report(
            Diagnostic::new(codes::BAD_ASSIGN, target.span, msg)
                .label("assigned here")
                .hint(hint),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn update_target(
        &mut self,
        env: &SysEnv,
        target: &Ident,
        kind: UpdateKind,
        kw: Span,
        t: &Ty,
        vspan: Span,
        st: &mut BodyState,
        _m: bool,
    ) {
        match env.states.iter().find(|s| s.0 == target.name) {
            Some((_, sty, decl)) => {
                self.expect_fits(t, sty, vspan, Some(*decl));
                if let Some((_, prev)) = st.updates.insert(target.name.clone(), (kind, target.span))
                {
                    self.report(
                        Diagnostic::new(
                            codes::STATE_UPDATE,
                            target.span,
                            format!("state `{}` has two updates", target.name),
                        )
                        .label("second update")
                        .with(prev, "first update")
                        .hint("each state has exactly one `next` or `der`"),
                    );
                }
            }
            None => {
                let _ = kw;
                self.not_state(env, target);
            }
        }
    }

    /// Enumerates wires over their loops: counts each inner input, checks indices, and adds
    /// the wire's dependencies to the graph.
    fn enumerate_wires(
        &mut self,
        env: &SysEnv,
        wires: &[WireRec],
        sizes: &Sizes,
        graph: &mut Graph,
        def: &SystemDef,
    ) {
        // (box, element, port) -> first wire span
        let mut wired: HashMap<(usize, Option<u64>, String), Span> = HashMap::new();
        let mut twice_reported: HashSet<(usize, String)> = HashSet::new();
        let mut budget: u64 = 20_000_000;
        let mut unsure: HashSet<(usize, String)> = HashSet::new();
        for w in wires {
            if w.broken {
                unsure.insert((w.b, w.port.clone()));
                continue;
            }
            let errors_before = self.diags.len();
            let mut bindings: HashMap<String, i64> = HashMap::new();
            let mut bad_index = false;
            self.iterate(&w.loops, 0, &mut bindings, sizes, &mut budget, &mut |cx, bind| {
                let bx = &env.boxes[w.b];
                let k = match (w.index, bx.count) {
                    (Some(i), Some(n)) => match cx.const_int(i, sizes, bind, "a box-array index") {
                        Some(k) if k >= 0 && (k as u64) < n => Some(k as u64),
                        Some(k) => {
                            if !bad_index {
                                bad_index = true;
                                cx.report(
                                    Diagnostic::new(codes::INDEX_RANGE, i.span, format!("index {k} is out of range for `{}`, which has {n} boxes", bx.name))
                                        .label(format!("{}{}", if bind.is_empty() { String::new() } else { format!("with {}: ", fmt_bind(bind)) }, k))
                                        .with(bx.span, format!("declared with {n} boxes"))
                                        .hint(format!("valid indices are 0 to {}; wrap around with `% {n}`", n - 1)),
                                );
                            }
                            return;
                        }
                        None => {
                            bad_index = true;
                            return;
                        }
                    },
                    _ => None,
                };
                let key = (w.b, k, w.port.clone());
                if let Some(prev) = wired.get(&key) {
                    if twice_reported.insert((w.b, w.port.clone())) {
                        let elem = match k {
                            Some(k) => format!("{}[{k}].{}", bx.name, w.port),
                            None => format!("{}.{}", bx.name, w.port),
                        };
                        let mut d = Diagnostic::new(codes::WIRED_TWICE, w.span, format!("input `{elem}` is wired twice"))
                            .label(format!("second wire into {elem}"));
                        if *prev != w.span {
                            d = d.with(*prev, "first wire here");
                        } else if !bind.is_empty() {
                            d = d.label(format!("wires {elem} again when {}", fmt_bind(bind)));
                        }
                        cx.report(d.hint("a wiring diagram gives each inner input exactly one value: remove one wire, or add the two values in one wire"));
                    }
                    return;
                }
                wired.insert(key, w.span);
                let n = graph.node(Node::BoxIn(w.b, k, w.port.clone()));
                graph.set_span(n, w.span);
                cx.add_reads(env, graph, n, &w.reads, bind, sizes);
            });
            if bad_index || self.diags.len() > errors_before {
                // Loop bounds or indices failed: which elements it wires is unknown.
                unsure.insert((w.b, w.port.clone()));
            }
        }
        if budget == 0 {
            self.report(
                Diagnostic::new(
                    codes::BAD_SIZE,
                    def.name.span,
                    "the wiring of this system has too many loop iterations to check",
                )
                .hint("at most 20 million wires per system are enumerated"),
            );
        }
        // Every inner input wired.
        for (bi, b) in env.boxes.iter().enumerate() {
            for (p, _) in b.sys.iface.all_ins() {
                if unsure.contains(&(bi, p.name.clone())) {
                    continue;
                }
                match b.count {
                    None => {
                        if !wired.contains_key(&(bi, None, p.name.clone())) {
                            self.report(
                                Diagnostic::new(
                                    codes::NOT_WIRED,
                                    b.span,
                                    format!("input `{}.{}` is never wired", b.name, p.name),
                                )
                                .label(format!("`{}` needs a value for `{}`", b.name, p.name))
                                .with(p.span, format!("`{}: {}` declared here", p.name, p.ty))
                                .hint(format!("wire it: `{}.{} <- …`", b.name, p.name)),
                            );
                        }
                    }
                    Some(n) => {
                        let missing: Vec<u64> = (0..n)
                            .filter(|k| !wired.contains_key(&(bi, Some(*k), p.name.clone())))
                            .collect();
                        if !missing.is_empty() {
                            let shown: Vec<String> = missing
                                .iter()
                                .take(4)
                                .map(|k| format!("{}[{k}].{}", b.name, p.name))
                                .collect();
                            let more = if missing.len() > 4 {
                                format!(" and {} more", missing.len() - 4)
                            } else {
                                String::new()
                            };
                            self.report(
                                Diagnostic::new(
                                    codes::NOT_WIRED,
                                    b.span,
                                    format!(
                                        "input `{}` is not wired for {} of {n} boxes: {}{more}",
                                        p.name,
                                        missing.len(),
                                        shown.join(", ")
                                    ),
                                )
                                .label(format!(
                                    "`{}[i].{}` needs a value for every i",
                                    b.name, p.name
                                ))
                                .with(p.span, format!("`{}: {}` declared here", p.name, p.ty))
                                .hint(format!(
                                    "wire every element: `for i in 0..{n} {{ {}[i].{} <- … }}`",
                                    b.name, p.name
                                )),
                            );
                        }
                    }
                }
            }
        }
    }

    fn iterate(
        &mut self,
        loops: &[(&Ident, &Expr, &Expr)],
        depth: usize,
        bind: &mut HashMap<String, i64>,
        sizes: &Sizes,
        budget: &mut u64,
        f: &mut dyn FnMut(&mut Self, &HashMap<String, i64>),
    ) {
        if *budget == 0 {
            return;
        }
        let Some((var, lo, hi)) = loops.get(depth) else {
            *budget -= 1;
            f(self, bind);
            return;
        };
        let (Some(a), Some(b)) = (
            self.const_int(lo, sizes, bind, "a loop bound"),
            self.const_int(hi, sizes, bind, "a loop bound"),
        ) else {
            return;
        };
        for i in a..b {
            if *budget == 0 {
                return;
            }
            bind.insert(var.name.clone(), i);
            self.iterate(loops, depth + 1, bind, sizes, budget, f);
        }
        bind.remove(&var.name);
    }

    fn add_reads(
        &mut self,
        env: &SysEnv,
        graph: &mut Graph,
        from: usize,
        reads: &[Read],
        bind: &HashMap<String, i64>,
        sizes: &Sizes,
    ) {
        for r in reads {
            let to = match r {
                Read::Input(n) => graph.node(Node::Input(n.clone())),
                Read::Let(i) => graph.node(Node::Let(*i)),
                Read::BoxOut(b, idx, port) => {
                    let bx = &env.boxes[*b];
                    let k = match (idx, bx.count) {
                        (Some(i), Some(n)) => {
                            let saved = self.diags.len();
                            match self.const_int(i, sizes, bind, "a box-array index") {
                                Some(k) if k >= 0 && (k as u64) < n => Some(k as u64),
                                Some(k) => {
                                    self.report(
                                        Diagnostic::new(codes::INDEX_RANGE, i.span, format!("index {k} is out of range for `{}`, which has {n} boxes", bx.name))
                                            .label(if bind.is_empty() { format!("{k}") } else { format!("{k} when {}", fmt_bind(bind)) })
                                            .with(bx.span, format!("declared with {n} boxes"))
                                            .hint(format!("valid indices are 0 to {}; wrap around with `% {n}`", n - 1)),
                                    );
                                    continue;
                                }
                                None => {
                                    let _ = saved;
                                    continue;
                                }
                            }
                        }
                        _ => None,
                    };
                    graph.node(Node::BoxOut(*b, k, port.clone()))
                }
                Read::Mode => graph.node(Node::Out("*".into())),
            };
            graph.edge(from, to, None);
        }
    }
}

/// The plain names an expression mentions.
fn names_in(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Var(i) => out.push(i.name.clone()),
        ExprKind::Unary(_, a) | ExprKind::Field(a, _) => names_in(a, out),
        ExprKind::Binary(_, a, b) => {
            names_in(a, out);
            names_in(b, out);
        }
        ExprKind::If(a, b, c) => {
            names_in(a, out);
            names_in(b, out);
            names_in(c, out);
        }
        ExprKind::Call(f, args) => {
            names_in(f, out);
            args.iter().for_each(|a| names_in(&a.value, out));
        }
        ExprKind::Index(a, xs) => {
            names_in(a, out);
            xs.iter().for_each(|x| names_in(x, out));
        }
        _ => {}
    }
}

fn fmt_bind(bind: &HashMap<String, i64>) -> String {
    let mut v: Vec<String> = bind.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    v.sort();
    v.join(", ")
}

/// Is this expression a plain reference to a box-array element's port?
pub fn is_box_index(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Field(b, _) if matches!(b.kind, ExprKind::Index(..)))
}
