//! Lowering: checked AST + the checker's expression types → the IR of nested systems.
//!
//! Names are resolved with the checker's scoping rules (loop variable, param, state, let,
//! input, size parameter, then module level); Int values used where Reals are expected get
//! an explicit `ToReal`; `match` becomes a chain of `if`s.

use crate::ad;
use crate::expr::{Bin, Expr, Num, Reduce, Sel, TensorOp, Un};
use crate::system::*;
use dyn_check::Checked;
use dyn_check::checker::{Binding, ItemId};
use dyn_check::system::SystemSig;
use dyn_check::types::{Dim, Elem, Ty};
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::{self, BinOp, ExprKind, ItemKind, Pattern, SysItemKind, UnOp, UpdateKind};
use std::collections::HashMap;
use std::rc::Rc;

type R<T> = Result<T, Box<Diagnostic>>;

fn unsupported(span: Span, what: &str) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::new(codes::UNSUPPORTED, span, format!("{what} cannot run yet"))
            .label("not supported by the run-time")
            .hint("the checker accepts this, but the interpreter does not implement it yet"),
    )
}

/// The kind of scalar a type holds.
pub fn kind_of(t: &Ty) -> Kind {
    match t {
        Ty::Real | Ty::Tensor(Elem::Real, _) => Kind::Real,
        Ty::Bool | Ty::Tensor(Elem::Bool, _) => Kind::Bool,
        _ => Kind::Int,
    }
}

/// The shape of a type (scalars: empty). Symbolic sizes are an error here.
pub fn shape_of(t: &Ty, span: Span) -> R<Shape> {
    match t {
        Ty::Tensor(_, dims) => dims
            .iter()
            .map(|d| match d {
                Dim::Known(n) => Ok(*n),
                Dim::Param(p) => Err(unsupported(
                    span,
                    &format!("a tensor of symbolic size `{p}`"),
                )),
            })
            .collect(),
        Ty::Record(_) => Err(unsupported(span, "a record value")),
        _ => Ok(vec![]),
    }
}

/// Lowers the program rooted at `root`.
pub fn lower(checked: &Checked, root: &Rc<SystemSig>) -> Result<Program, Box<Diagnostic>> {
    let mut l = Lowerer {
        checked,
        systems: vec![],
        by_sig: HashMap::new(),
        fns: vec![],
        fn_ids: HashMap::new(),
        loops: vec![],
    };
    let root = l.system(root)?;
    Ok(Program {
        systems: l.systems,
        fns: l.fns,
        root,
    })
}

struct Lowerer<'a> {
    checked: &'a Checked,
    systems: Vec<System>,
    by_sig: HashMap<(ItemId, Vec<(String, u64)>), u32>,
    fns: Vec<Function>,
    /// Fns lowered so far, one per size instantiation.
    fn_ids: HashMap<(ItemId, Vec<(String, u64)>), u32>,
    /// Loops enclosing the wire being lowered.
    loops: Vec<(String, Expr, Expr)>,
}

/// Names visible in the context being lowered.
#[derive(Default)]
struct Scope {
    module: usize,
    ctx: u32,
    params: Vec<String>,
    states: Vec<String>,
    lets: Vec<String>,
    inputs: Vec<String>,
    boxes: Vec<(String, Rc<SystemSig>)>,
    loops: Vec<String>,
    sizes: HashMap<String, u64>,
    args: Vec<String>,
    modes: Vec<(String, Vec<String>)>,
    outputs: Vec<String>,
    /// Types of params, states and inputs by index (for `grad`).
    param_tys: Vec<Ty>,
    state_tys: Vec<Ty>,
    input_tys: Vec<Ty>,
    /// Lets lowered so far: type and definition (for `grad`). Parallel to `lets`: a let
    /// added by lowering (the `mode` let) needs its entry too.
    let_defs: Vec<(Ty, Expr)>,
    /// Types of a fn's arguments, size arguments included (for `grad`).
    arg_tys: Vec<Ty>,
}

/// What `grad` sees of the context it is expanded in.
struct AdCx<'a> {
    sc: &'a Scope,
    fns: &'a [Function],
}

impl ad::Context for AdCx<'_> {
    fn leaf(&self, x: &Expr) -> Option<(Shape, Kind)> {
        let of = |t: &Ty| shape_of(t, Span::default()).ok().map(|s| (s, kind_of(t)));
        let sc = self.sc;
        match x {
            Expr::Param(i) => of(sc.param_tys.get(*i as usize)?),
            Expr::State(i) => of(sc.state_tys.get(*i as usize)?),
            Expr::Input(i) => of(sc.input_tys.get(*i as usize)?),
            Expr::Let(i) => of(&sc.let_defs.get(*i as usize)?.0),
            Expr::Arg(i) => of(sc.arg_tys.get(*i as usize)?),
            Expr::BoxOut { b, port, .. } => {
                let outs = sc.boxes.get(*b as usize)?.1.iface.all_outs();
                of(&outs.get(*port as usize)?.0.ty)
            }
            Expr::Loop(_) => Some((vec![], Kind::Int)),
            Expr::Time => Some((vec![], Kind::Real)),
            _ => None,
        }
    }
    fn let_def(&self, i: u32) -> Option<&Expr> {
        self.sc.let_defs.get(i as usize).map(|d| &d.1)
    }
    fn fn_body(&self, f: u32) -> Option<&Expr> {
        self.fns.get(f as usize).map(|f| &f.body)
    }
    fn next_fn(&self) -> u32 {
        self.fns.len() as u32
    }
}

/// `t` with the size parameters bound in `sizes` replaced by their values.
fn subst_sizes(t: Ty, sizes: &HashMap<String, u64>) -> Ty {
    match t {
        Ty::Tensor(el, dims) => Ty::Tensor(
            el,
            dims.into_iter()
                .map(|d| match d {
                    Dim::Param(p) => match sizes.get(&p) {
                        Some(n) => Dim::Known(*n),
                        None => Dim::Param(p),
                    },
                    k => k,
                })
                .collect(),
        ),
        t => t,
    }
}

/// The Real version of a numeric type (Int arguments of Real parameters are converted).
fn as_real(t: Ty) -> Ty {
    match t {
        Ty::Int | Ty::Fin(_) => Ty::Real,
        Ty::Tensor(Elem::Int, d) => Ty::Tensor(Elem::Real, d),
        t => t,
    }
}

fn pos(v: &[String], n: &str) -> Option<u32> {
    v.iter().position(|x| x == n).map(|i| i as u32)
}

impl<'a> Lowerer<'a> {
    fn item(&self, id: ItemId) -> &'a ast::Item {
        &self.checked.modules[id.module].ast.items[id.index]
    }

    fn system(&mut self, sig: &Rc<SystemSig>) -> R<u32> {
        let mut sizes: Vec<(String, u64)> =
            sig.sizes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        sizes.sort();
        let key = (sig.item, sizes);
        if let Some(&i) = self.by_sig.get(&key) {
            return Ok(i);
        }
        let ItemKind::System(def) = &self.item(sig.item).kind else {
            return Err(unsupported(sig.span, "this system"));
        };
        let iface = &sig.iface;
        let ins: Vec<_> = iface.all_ins();
        let outs: Vec<_> = iface.all_outs();
        let mut sc = Scope {
            module: sig.item.module,
            ctx: sig.ctx,
            params: sig.params.iter().map(|p| p.name.clone()).collect(),
            states: sig.states.iter().map(|s| s.0.clone()).collect(),
            inputs: ins.iter().map(|(p, _)| p.name.clone()).collect(),
            outputs: outs.iter().map(|(p, _)| p.name.clone()).collect(),
            boxes: sig
                .boxes
                .iter()
                .map(|b| (b.name.clone(), b.sys.clone()))
                .collect(),
            sizes: sig.sizes.clone(),
            param_tys: sig.params.iter().map(|p| p.ty.clone()).collect(),
            state_tys: sig.states.iter().map(|s| s.1.clone()).collect(),
            input_tys: ins.iter().map(|(p, _)| p.ty.clone()).collect(),
            modes: if iface.moded {
                iface
                    .modes
                    .iter()
                    .map(|m| {
                        (
                            m.name.clone(),
                            m.outs.iter().map(|p| p.name.clone()).collect(),
                        )
                    })
                    .collect()
            } else {
                vec![]
            },
            ..Scope::default()
        };
        let slot = |name: &str, t: &Ty, span: Span| -> R<Slot> {
            Ok(Slot {
                name: name.to_string(),
                shape: shape_of(t, span)?,
                kind: kind_of(t),
                span,
            })
        };
        let inputs = ins
            .iter()
            .map(|(p, _)| slot(&p.name, &p.ty, p.span))
            .collect::<R<Vec<_>>>()?;
        let outputs = outs
            .iter()
            .map(|(p, _)| slot(&p.name, &p.ty, p.span))
            .collect::<R<Vec<_>>>()?;
        let mut boxes = Vec::new();
        for b in &sig.boxes {
            let child = self.system(&b.sys)?;
            boxes.push(BoxInst {
                name: b.name.clone(),
                count: b.count,
                system: child,
                args: vec![None; b.sys.params.len()],
                span: b.span,
            });
        }
        let mut sys = System {
            name: sig.name.clone(),
            span: sig.span,
            params: vec![],
            inputs,
            outputs,
            states: vec![],
            lets: vec![],
            readout: Readout::Ports(vec![Expr::Const(0.0); outs.len()]),
            time: match sig.domain {
                dyn_check::system::Domain::Stateless => TimeKind::Stateless,
                dyn_check::system::Domain::Discrete => TimeKind::Discrete,
                dyn_check::system::Domain::Continuous => TimeKind::Continuous,
            },
            updates: vec![],
            mode_updates: vec![],
            events: vec![],
            boxes,
            wires: vec![],
        };
        // `match mode` in an expression reads the mode index, computed as a let named `mode`
        // (a keyword, so no user let has that name) from the readout.
        if sig.reads_mode {
            sys.lets.push((
                Slot {
                    name: "mode".into(),
                    shape: vec![],
                    kind: Kind::Int,
                    span: sig.span,
                },
                Expr::Const(0.0),
            ));
            sc.lets.push("mode".into());
            // Int: a constant for `grad` (the slot's value is read, never differentiated).
            sc.let_defs.push((Ty::Int, Expr::Const(0.0)));
        }
        let mut own_time = TimeKind::Stateless;
        // Declarations first (params, states, boxes, lets in order), so that every let is
        // lowered before anything that may differentiate through it with `grad`.
        let decl = |it: &ast::SysItem| {
            matches!(
                it.kind,
                SysItemKind::Param { .. }
                    | SysItemKind::State { .. }
                    | SysItemKind::Let { .. }
                    | SysItemKind::Box { .. }
            )
        };
        for it in def.body.iter().filter(|it| decl(it)) {
            self.body_item(&mut sc, &mut sys, sig, it, &mut own_time)?;
        }
        for it in def.body.iter().filter(|it| !decl(it)) {
            self.body_item(&mut sc, &mut sys, sig, it, &mut own_time)?;
        }
        if sig.reads_mode {
            let Readout::Mode(v, ..) = &sys.readout else {
                return Err(unsupported(sig.span, "`match mode` without a mode readout"));
            };
            sys.lets[0].1 = mode_index(v, sig.span)?;
        }
        sys.time = own_time;
        let id = self.systems.len() as u32;
        self.systems.push(sys);
        self.by_sig.insert(key, id);
        Ok(id)
    }

    fn body_item(
        &mut self,
        sc: &mut Scope,
        sys: &mut System,
        sig: &SystemSig,
        it: &ast::SysItem,
        time: &mut TimeKind,
    ) -> R<()> {
        match &it.kind {
            SysItemKind::Param { name, default, .. } => {
                let p = sig
                    .params
                    .iter()
                    .find(|p| p.name == name.name)
                    .expect("checked param");
                let d = match default {
                    Some(d) => Some(self.expr(sc, d, Some(&p.ty))?),
                    None => None,
                };
                sys.params.push((
                    Slot {
                        name: p.name.clone(),
                        shape: shape_of(&p.ty, p.span)?,
                        kind: kind_of(&p.ty),
                        span: p.span,
                    },
                    d,
                ));
            }
            SysItemKind::State { name, init, .. } => {
                let t = sig
                    .states
                    .iter()
                    .find(|s| s.0 == name.name)
                    .map(|s| s.1.clone())
                    .unwrap_or(Ty::Error);
                let v = self.expr(sc, init, Some(&t))?;
                sys.states.push((
                    Slot {
                        name: name.name.clone(),
                        shape: shape_of(&t, name.span)?,
                        kind: kind_of(&t),
                        span: name.span,
                    },
                    v,
                ));
            }
            SysItemKind::Let { name, value, .. } => {
                let t = self.ty(sc, value);
                let v = self.expr(sc, value, None)?;
                sc.let_defs.push((t.clone(), v.clone()));
                sys.lets.push((
                    Slot {
                        name: name.name.clone(),
                        shape: shape_of(&t, name.span)?,
                        kind: kind_of(&t),
                        span: name.span,
                    },
                    v,
                ));
                sc.lets.push(name.name.clone());
            }
            SysItemKind::Out {
                name: Some(n),
                value,
            } => {
                let i = pos(&sc.outputs, &n.name).expect("checked out port");
                let t = sig.iface.all_outs()[i as usize].0.ty.clone();
                let v = self.expr(sc, value, Some(&t))?;
                if let Readout::Ports(v_all) = &mut sys.readout {
                    v_all[i as usize] = v;
                }
            }
            SysItemKind::Out { name: None, value } => {
                let v = self.expr(sc, value, None)?;
                let names: Vec<String> = sc.modes.iter().map(|m| m.0.clone()).collect();
                let ports: Vec<Vec<u32>> = sc
                    .modes
                    .iter()
                    .map(|m| {
                        m.1.iter()
                            .map(|p| pos(&sc.outputs, p).expect("mode port"))
                            .collect()
                    })
                    .collect();
                sys.readout = Readout::Mode(v, names, ports);
            }
            SysItemKind::Update {
                kind,
                target,
                value,
                ..
            } => {
                *time = if *kind == UpdateKind::Next {
                    TimeKind::Discrete
                } else {
                    TimeKind::Continuous
                };
                let s = pos(&sc.states, &target.name).expect("checked state");
                let t = sig.states[s as usize].1.clone();
                let v = self.expr(sc, value, Some(&t))?;
                sys.updates.push(Assign { state: s, value: v });
            }
            SysItemKind::UpdateMatch { kind, arms, .. } => {
                *time = if *kind == UpdateKind::Next {
                    TimeKind::Discrete
                } else {
                    TimeKind::Continuous
                };
                for arm in arms {
                    let m = sc
                        .modes
                        .iter()
                        .position(|x| x.0 == arm.mode.name)
                        .expect("checked mode") as u32;
                    let mut assigns = Vec::new();
                    for a in &arm.body {
                        let s = pos(&sc.states, &a.target.name).expect("checked state");
                        let t = sig.states[s as usize].1.clone();
                        assigns.push(Assign {
                            state: s,
                            value: self.expr(sc, &a.value, Some(&t))?,
                        });
                    }
                    sys.mode_updates.push((m, assigns));
                }
            }
            SysItemKind::When { cond, body } => {
                *time = TimeKind::Continuous;
                let c = self.expr(sc, cond, None)?;
                let mut assigns = Vec::new();
                for a in body {
                    let s = pos(&sc.states, &a.target.name).expect("checked state");
                    let t = sig.states[s as usize].1.clone();
                    assigns.push(Assign {
                        state: s,
                        value: self.expr(sc, &a.value, Some(&t))?,
                    });
                }
                sys.events.push(Event {
                    cond: c,
                    assigns,
                    span: it.span,
                });
            }
            SysItemKind::Box { name, args, .. } => {
                let bi = sc
                    .boxes
                    .iter()
                    .position(|b| b.0 == name.name)
                    .expect("checked box");
                let child = sc.boxes[bi].1.clone();
                for a in args {
                    let Some(pn) = &a.name else { continue };
                    let pi = child
                        .params
                        .iter()
                        .position(|p| p.name == pn.name)
                        .expect("checked param");
                    let v = self.expr(sc, &a.value, Some(&child.params[pi].ty))?;
                    sys.boxes[bi].args[pi] = Some(v);
                }
            }
            SysItemKind::Wire { target, value } => {
                let bi = sc
                    .boxes
                    .iter()
                    .position(|b| b.0 == target.boxname.name)
                    .expect("checked box");
                let child = sc.boxes[bi].1.clone();
                let ins = child.iface.all_ins();
                let pi = ins
                    .iter()
                    .position(|(p, _)| p.name == target.port.name)
                    .expect("checked port");
                let pt = ins[pi].0.ty.clone();
                let index = match &target.index {
                    Some(i) => Some(self.expr(sc, i, None)?),
                    None => None,
                };
                let v = self.expr(sc, value, Some(&pt))?;
                sys.wires.push(Wire {
                    loops: self.loops.clone(),
                    b: bi as u32,
                    index,
                    port: pi as u32,
                    value: v,
                    span: it.span,
                });
            }
            SysItemKind::For { var, lo, hi, body } => {
                let l = self.expr(sc, lo, None)?;
                let h = self.expr(sc, hi, None)?;
                self.loops.push((var.name.clone(), l, h));
                sc.loops.push(var.name.clone());
                for b in body {
                    self.body_item(sc, sys, sig, b, time)?;
                }
                sc.loops.pop();
                self.loops.pop();
            }
            SysItemKind::Optimizer { .. } | SysItemKind::Error => {}
        }
        Ok(())
    }
}

/// The index of the mode a readout's mode value chooses (`Open { … }` is its mode's index;
/// `if` and `match` choose between such values).
fn mode_index(e: &Expr, span: Span) -> R<Expr> {
    Ok(match e {
        Expr::Mode(k, _) => Expr::Const(*k as f64),
        Expr::If(c, a, b) => Expr::If(
            c.clone(),
            Box::new(mode_index(a, span)?),
            Box::new(mode_index(b, span)?),
        ),
        _ => {
            return Err(unsupported(
                span,
                "`match mode` with a readout that is not built from mode values, `if` and `match`",
            ));
        }
    })
}

fn to_real(e: Expr) -> Expr {
    match e {
        Expr::Const(x) => Expr::Const(x),
        e => Expr::Un(Un::ToReal, Box::new(e)),
    }
}

fn num_of(k: Kind) -> Num {
    match k {
        Kind::Real => Num::Real,
        Kind::Int => Num::Int,
        Kind::Bool => Num::Bool,
    }
}

impl<'a> Lowerer<'a> {
    /// The checker's type of `e` in the scope's context.
    fn ty(&self, sc: &Scope, e: &ast::Expr) -> Ty {
        let t = self
            .checked
            .typeck
            .get(sc.ctx, e)
            .cloned()
            .unwrap_or(Ty::Error);
        if sc.sizes.is_empty() {
            t
        } else {
            subst_sizes(t, &sc.sizes)
        }
    }

    /// A compile-time natural (a slice bound): lowered and evaluated.
    fn const_nat(&mut self, sc: &Scope, e: &ast::Expr) -> R<u64> {
        let x = self.expr(sc, e, None)?;
        match crate::flat::eval_index(&x, &[]) {
            Some(v) if v >= 0 => Ok(v as u64),
            _ => Err(unsupported(
                e.span,
                "a slice bound not known at compile time",
            )),
        }
    }

    /// Lowers `e`, converting to Real when `want` holds Reals and `e` holds integers.
    fn expr(&mut self, sc: &Scope, e: &ast::Expr, want: Option<&Ty>) -> R<Expr> {
        let t = self.ty(sc, e);
        let v = self.expr_raw(sc, e, &t)?;
        Ok(match want {
            Some(w)
                if kind_of(w) == Kind::Real
                    && kind_of(&t) != Kind::Real
                    && !matches!(w, Ty::Modes(_)) =>
            {
                to_real(v)
            }
            _ => v,
        })
    }

    fn global(&mut self, module: usize, name: &ast::Ident) -> R<Expr> {
        match self.checked.scopes[module].get(&name.name) {
            Some(Binding::Item(id)) => match &self.item(*id).kind {
                ItemKind::Const(c) => {
                    let sc = Scope {
                        module: id.module,
                        ctx: 0,
                        ..Scope::default()
                    };
                    let want = self.checked.typeck.get(0, &c.value).cloned();
                    let declared = c.ty.is_some();
                    let v = self.expr(&sc, &c.value, None)?;
                    // A const declared Real with an Int initialiser is Real.
                    Ok(
                        if declared && want.as_ref().is_some_and(|w| kind_of(w) != Kind::Real) {
                            let decl_real = matches!(c.ty.as_ref().map(|t| &t.kind), Some(ast::TypeKind::Named(p)) if p.len() == 1 && p[0].name == "Real");
                            if decl_real { to_real(v) } else { v }
                        } else {
                            v
                        },
                    )
                }
                _ => Err(unsupported(
                    name.span,
                    &format!("`{}` as a value", name.name),
                )),
            },
            Some(Binding::Variant(_, i)) => Ok(Expr::Const(*i as f64)),
            _ => Err(unsupported(name.span, &format!("the name `{}`", name.name))),
        }
    }

    fn var(&mut self, sc: &Scope, name: &ast::Ident) -> R<Expr> {
        let n = name.name.as_str();
        if let Some(d) = sc.loops.iter().rposition(|v| v == n) {
            return Ok(Expr::Loop(d as u32));
        }
        if let Some(i) = pos(&sc.args, n) {
            return Ok(Expr::Arg(i));
        }
        if let Some(i) = pos(&sc.params, n) {
            return Ok(Expr::Param(i));
        }
        if let Some(i) = pos(&sc.states, n) {
            return Ok(Expr::State(i));
        }
        if let Some(i) = pos(&sc.lets, n) {
            return Ok(Expr::Let(i));
        }
        if let Some(i) = pos(&sc.inputs, n) {
            return Ok(Expr::Input(i));
        }
        if let Some(v) = sc.sizes.get(n) {
            return Ok(Expr::Const(*v as f64));
        }
        self.global(sc.module, name)
    }

    fn box_out(
        &mut self,
        sc: &Scope,
        b: usize,
        index: Option<&ast::Expr>,
        port: &str,
        span: Span,
    ) -> R<Expr> {
        let outs = sc.boxes[b].1.iface.all_outs();
        let p = outs
            .iter()
            .position(|(q, _)| q.name == port)
            .ok_or_else(|| unsupported(span, "this port"))?;
        let index = match index {
            Some(i) => Some(Box::new(self.expr(sc, i, None)?)),
            None => None,
        };
        Ok(Expr::BoxOut {
            b: b as u32,
            index,
            port: p as u32,
        })
    }

    fn expr_raw(&mut self, sc: &Scope, e: &ast::Expr, t: &Ty) -> R<Expr> {
        let boxidx = |sc: &Scope, n: &str| sc.boxes.iter().position(|b| b.0 == n);
        Ok(match &e.kind {
            ExprKind::Error => return Err(unsupported(e.span, "an expression that did not parse")),
            ExprKind::Int(s) => Expr::Const(s.replace('_', "").parse::<i64>().unwrap_or(0) as f64),
            ExprKind::Real(s) => Expr::Const(s.replace('_', "").parse::<f64>().unwrap_or(f64::NAN)),
            ExprKind::Bool(b) => Expr::Const(if *b { 1.0 } else { 0.0 }),
            ExprKind::Unit => Expr::Const(0.0),
            ExprKind::Var(n) => self.var(sc, n)?,
            ExprKind::Field(base, f) => match &base.kind {
                ExprKind::Var(b) if boxidx(sc, &b.name).is_some() => {
                    self.box_out(sc, boxidx(sc, &b.name).unwrap(), None, &f.name, e.span)?
                }
                ExprKind::Index(bb, idx) if matches!(&bb.kind, ExprKind::Var(b) if boxidx(sc, &b.name).is_some()) =>
                {
                    let ExprKind::Var(b) = &bb.kind else {
                        unreachable!()
                    };
                    self.box_out(
                        sc,
                        boxidx(sc, &b.name).unwrap(),
                        Some(&idx[0]),
                        &f.name,
                        e.span,
                    )?
                }
                ExprKind::Field(inner, g) => {
                    let full = format!("{}.{}", g.name, f.name);
                    match &inner.kind {
                        ExprKind::Var(b) if boxidx(sc, &b.name).is_some() => {
                            self.box_out(sc, boxidx(sc, &b.name).unwrap(), None, &full, e.span)?
                        }
                        ExprKind::Index(bb, idx) if matches!(&bb.kind, ExprKind::Var(b) if boxidx(sc, &b.name).is_some()) =>
                        {
                            let ExprKind::Var(b) = &bb.kind else {
                                unreachable!()
                            };
                            self.box_out(
                                sc,
                                boxidx(sc, &b.name).unwrap(),
                                Some(&idx[0]),
                                &full,
                                e.span,
                            )?
                        }
                        _ => return Err(unsupported(e.span, "field access on a record")),
                    }
                }
                ExprKind::Var(g) => {
                    let full = format!("{}.{}", g.name, f.name);
                    if let Some(i) = pos(&sc.inputs, &full) {
                        Expr::Input(i)
                    } else {
                        match self.checked.scopes[sc.module].get(&g.name) {
                            Some(Binding::Module(m)) => self.global(*m, f)?,
                            Some(Binding::Item(id))
                                if matches!(self.item(*id).kind, ItemKind::Enum(_)) =>
                            {
                                let ItemKind::Enum(en) = &self.item(*id).kind else {
                                    unreachable!()
                                };
                                Expr::Const(
                                    en.variants
                                        .iter()
                                        .position(|v| v.name == f.name)
                                        .unwrap_or(0) as f64,
                                )
                            }
                            _ => return Err(unsupported(e.span, "field access on a record")),
                        }
                    }
                }
                _ => return Err(unsupported(e.span, "field access on a record")),
            },
            ExprKind::Index(base, idx)
                if idx.iter().any(|i| matches!(i.kind, ExprKind::Range(..))) =>
            {
                let shape = shape_of(&self.ty(sc, base), base.span)?;
                let mut args = vec![self.expr(sc, base, None)?];
                let mut sels = Vec::new();
                for (k, i) in idx.iter().enumerate() {
                    match &i.kind {
                        ExprKind::Range(lo, hi) => {
                            let lo = match lo {
                                Some(b) => self.const_nat(sc, b)?,
                                None => 0,
                            };
                            let hi = match hi {
                                Some(b) => self.const_nat(sc, b)?,
                                None => shape.get(k).copied().unwrap_or(0),
                            };
                            sels.push(Sel::Range(lo, hi));
                        }
                        _ => {
                            sels.push(Sel::At);
                            args.push(self.expr(sc, i, None)?);
                        }
                    }
                }
                Expr::Tensor(TensorOp::Slice(sels), args)
            }
            ExprKind::Range(..) => return Err(unsupported(e.span, "a range outside a slice")),
            ExprKind::Index(base, idx) => {
                let b = self.expr(sc, base, None)?;
                let is = idx
                    .iter()
                    .map(|i| self.expr(sc, i, None))
                    .collect::<R<Vec<_>>>()?;
                Expr::Index(Box::new(b), is)
            }
            ExprKind::Call(f, args) => self.call(sc, f, args, t, e.span)?,
            ExprKind::Unary(op, a) => {
                let v = self.expr(sc, a, Some(t))?;
                Expr::Un(
                    if *op == UnOp::Neg { Un::Neg } else { Un::Not },
                    Box::new(v),
                )
            }
            ExprKind::Binary(op, a, b) => self.binary(sc, *op, a, b, t)?,
            ExprKind::If(c, a, b) => {
                let c = self.expr(sc, c, None)?;
                Expr::If(
                    Box::new(c),
                    Box::new(self.expr(sc, a, Some(t))?),
                    Box::new(self.expr(sc, b, Some(t))?),
                )
            }
            ExprKind::Match(scrut, arms) => {
                let st = self.ty(sc, scrut);
                let s = self.expr(sc, scrut, None)?;
                let mut out: Option<Expr> = None;
                for arm in arms.iter().rev() {
                    let v = self.expr(sc, &arm.value, Some(t))?;
                    let test = match &arm.pat {
                        Pattern::Wild(_) => None,
                        Pattern::Int(n, _) => Some(n.parse::<i64>().unwrap_or(0) as f64),
                        Pattern::Bool(b, _) => Some(if *b { 1.0 } else { 0.0 }),
                        Pattern::Name(n) => match &st {
                            Ty::Enum(en) => {
                                Some(en.variants.iter().position(|v| *v == n.name).unwrap_or(0)
                                    as f64)
                            }
                            Ty::Modes(m) => {
                                Some(m.modes.iter().position(|v| v.0 == n.name).unwrap_or(0) as f64)
                            }
                            _ => None,
                        },
                    };
                    out = Some(match (test, out) {
                        (None, _) | (_, None) => v,
                        (Some(k), Some(rest)) => Expr::If(
                            Box::new(Expr::Bin(
                                Bin::Eq,
                                Num::Int,
                                Box::new(s.clone()),
                                Box::new(Expr::Const(k)),
                            )),
                            Box::new(v),
                            Box::new(rest),
                        ),
                    });
                }
                out.unwrap_or(Expr::Const(f64::NAN))
            }
            ExprKind::Array(items) => {
                let inner = match t {
                    Ty::Tensor(el, d) if d.len() > 1 => Ty::Tensor(*el, d[1..].to_vec()),
                    Ty::Tensor(el, _) => el.scalar(),
                    other => other.clone(),
                };
                Expr::Array(
                    items
                        .iter()
                        .map(|i| self.expr(sc, i, Some(&inner)))
                        .collect::<R<Vec<_>>>()?,
                )
            }
            ExprKind::Record(Some(name), fields) => match t {
                Ty::Modes(m) => {
                    let mi = m
                        .modes
                        .iter()
                        .position(|(n, _)| *n == name.name)
                        .ok_or_else(|| unsupported(e.span, "this mode"))?;
                    let (_, outs) = &m.modes[mi];
                    let mut vals = Vec::new();
                    for (pn, pt) in outs {
                        let (_, fe) =
                            fields.iter().find(|(f, _)| f.name == *pn).ok_or_else(|| {
                                unsupported(e.span, "a mode value with a missing port")
                            })?;
                        vals.push(self.expr(sc, fe, Some(pt))?);
                    }
                    Expr::Mode(mi as u32, vals)
                }
                _ => return Err(unsupported(e.span, "a record value")),
            },
            ExprKind::Record(None, _) => return Err(unsupported(e.span, "a record value")),
        })
    }

    fn binary(&mut self, sc: &Scope, op: BinOp, a: &ast::Expr, b: &ast::Expr, t: &Ty) -> R<Expr> {
        let (ta, tb) = (self.ty(sc, a), self.ty(sc, b));
        let real = kind_of(&ta) == Kind::Real || kind_of(&tb) == Kind::Real;
        let (bin, operand_kind) = match op {
            BinOp::Add => (Bin::Add, kind_of(t)),
            BinOp::Sub => (Bin::Sub, kind_of(t)),
            BinOp::Mul => (Bin::Mul, kind_of(t)),
            BinOp::Div => (Bin::Div, kind_of(t)),
            BinOp::Rem => (Bin::Rem, kind_of(t)),
            BinOp::Pow => (Bin::Pow, kind_of(t)),
            BinOp::MatMul => (Bin::MatMul, kind_of(t)),
            BinOp::And => (Bin::And, Kind::Bool),
            BinOp::Or => (Bin::Or, Kind::Bool),
            cmp => {
                let k = if real {
                    Kind::Real
                } else if kind_of(&ta) == Kind::Bool {
                    Kind::Bool
                } else {
                    Kind::Int
                };
                let b2 = match cmp {
                    BinOp::Eq => Bin::Eq,
                    BinOp::Ne => Bin::Ne,
                    BinOp::Lt => Bin::Lt,
                    BinOp::Le => Bin::Le,
                    BinOp::Gt => Bin::Gt,
                    _ => Bin::Ge,
                };
                (b2, k)
            }
        };
        let mut x = self.expr(sc, a, None)?;
        let mut y = self.expr(sc, b, None)?;
        if operand_kind == Kind::Real {
            if kind_of(&ta) != Kind::Real {
                x = to_real(x);
            }
            if kind_of(&tb) != Kind::Real {
                y = to_real(y);
            }
        }
        Ok(Expr::Bin(
            bin,
            num_of(operand_kind),
            Box::new(x),
            Box::new(y),
        ))
    }

    fn call(
        &mut self,
        sc: &Scope,
        f: &ast::Expr,
        args: &[ast::Arg],
        t: &Ty,
        span: Span,
    ) -> R<Expr> {
        let (module, name) = match &f.kind {
            ExprKind::Var(n) => (sc.module, n),
            ExprKind::Field(m, n) => match &m.kind {
                ExprKind::Var(mn) => match self.checked.scopes[sc.module].get(&mn.name) {
                    Some(Binding::Module(m)) => (*m, n),
                    _ => return Err(unsupported(span, "this call")),
                },
                _ => return Err(unsupported(span, "this call")),
            },
            _ => return Err(unsupported(span, "this call")),
        };
        if let Some(Binding::Item(id)) = self.checked.scopes[module].get(&name.name).copied()
            && let ItemKind::Fn(def) = &self.item(id).kind
        {
            let mut vals = Vec::new();
            let mut arg_tys = Vec::new();
            let mut sizes: HashMap<String, u64> = HashMap::new();
            for ((_, pt), a) in def.params.iter().zip(args) {
                let at = self.ty(sc, &a.value);
                let real = matches!(&pt.kind, ast::TypeKind::Named(p) if p[0].name == "Real")
                    || matches!(&pt.kind, ast::TypeKind::Tensor(p, _) if p[0].name == "Real");
                let v = self.expr(sc, &a.value, None)?;
                let convert = real && kind_of(&at) != Kind::Real;
                vals.push(if convert { to_real(v) } else { v });
                if let (ast::TypeKind::Tensor(_, dims), Ty::Tensor(_, ad)) = (&pt.kind, &at) {
                    for (d, a) in dims.iter().zip(ad) {
                        if let (ExprKind::Var(n), Dim::Known(k)) = (&d.kind, a) {
                            sizes.insert(n.name.clone(), *k);
                        }
                    }
                }
                arg_tys.push(if convert { as_real(at) } else { at });
            }
            for s in &def.sizes {
                vals.push(Expr::Const(sizes.get(&s.name).copied().unwrap_or(0) as f64));
                arg_tys.push(Ty::Int);
            }
            let fid = self.function(id, &sizes, arg_tys)?;
            return Ok(Expr::Call(fid, vals));
        }
        let arg = |l: &mut Self, i: usize, want: Option<&Ty>| l.expr(sc, &args[i].value, want);
        let real = Ty::Real;
        let un = |u: Un| -> Option<Un> { Some(u) };
        let unary = match name.name.as_str() {
            "exp" => un(Un::Exp),
            "log" => un(Un::Log),
            "sqrt" => un(Un::Sqrt),
            "abs" => un(Un::Abs),
            "sin" => un(Un::Sin),
            "cos" => un(Un::Cos),
            "tan" => un(Un::Tan),
            "tanh" => un(Un::Tanh),
            "sinh" => un(Un::Sinh),
            "cosh" => un(Un::Cosh),
            "atan" => un(Un::Atan),
            "floor" => un(Un::Floor),
            "ceil" => un(Un::Ceil),
            "round" => un(Un::Round),
            "sigmoid" => un(Un::Sigmoid),
            "relu" => un(Un::Relu),
            _ => None,
        };
        if let Some(u) = unary {
            let want = if u == Un::Abs && kind_of(t) == Kind::Int {
                None
            } else {
                Some(&real)
            };
            return Ok(Expr::Un(u, Box::new(arg(self, 0, want)?)));
        }
        Ok(match name.name.as_str() {
            "grad" => return self.grad(sc, args, span),
            "min" | "max" if args.len() == 1 => {
                let op = if name.name == "max" {
                    TensorOp::MaxAll
                } else {
                    TensorOp::MinAll
                };
                Expr::Tensor(op, vec![arg(self, 0, None)?])
            }
            "transpose" => Expr::Tensor(TensorOp::Transpose, vec![arg(self, 0, None)?]),
            "mean" => Expr::Tensor(TensorOp::Mean, vec![arg(self, 0, Some(&real))?]),
            "softmax" => Expr::Tensor(TensorOp::Softmax, vec![arg(self, 0, Some(&real))?]),
            "logsumexp" => Expr::Tensor(TensorOp::LogSumExp, vec![arg(self, 0, Some(&real))?]),
            "solve" => Expr::Tensor(
                TensorOp::Solve,
                vec![arg(self, 0, Some(&real))?, arg(self, 1, Some(&real))?],
            ),
            "spectral_radius" => {
                Expr::Tensor(TensorOp::SpectralRadius, vec![arg(self, 0, Some(&real))?])
            }
            "eye" => match shape_of(t, span)?.as_slice() {
                [n, _] => Expr::Tensor(TensorOp::Eye(*n), vec![]),
                _ => return Err(unsupported(span, "this `eye`")),
            },
            "argmax" => Expr::Tensor(TensorOp::Argmax, vec![arg(self, 0, None)?]),
            "argmin" => Expr::Tensor(TensorOp::Argmin, vec![arg(self, 0, None)?]),
            "outer" => {
                let want = if kind_of(t) == Kind::Real {
                    Some(&real)
                } else {
                    None
                };
                Expr::Tensor(
                    TensorOp::Outer,
                    vec![arg(self, 0, want)?, arg(self, 1, want)?],
                )
            }
            "one_hot" => {
                let n = match shape_of(t, span)?.as_slice() {
                    [n] => *n,
                    _ => return Err(unsupported(span, "this `one_hot`")),
                };
                Expr::Tensor(TensorOp::OneHot(n), vec![arg(self, 0, None)?])
            }
            "min" | "max" | "pow" | "atan2" => {
                let k = kind_of(t);
                let want = if k == Kind::Real { Some(&real) } else { None };
                let (x, y) = (arg(self, 0, want)?, arg(self, 1, want)?);
                let b = match name.name.as_str() {
                    "min" => Bin::Min,
                    "max" => Bin::Max,
                    "pow" => Bin::Pow,
                    _ => Bin::Atan2,
                };
                Expr::Bin(b, num_of(k), Box::new(x), Box::new(y))
            }
            "sum" => Expr::Reduce(Reduce::Sum, Box::new(arg(self, 0, None)?)),
            "norm" => Expr::Reduce(Reduce::Norm, Box::new(arg(self, 0, None)?)),
            "len" => Expr::Reduce(Reduce::Len, Box::new(arg(self, 0, None)?)),
            "dot" => Expr::Dot(Box::new(arg(self, 0, None)?), Box::new(arg(self, 1, None)?)),
            "real" => to_real(arg(self, 0, None)?),
            "int" => Expr::Un(Un::ToInt, Box::new(arg(self, 0, None)?)),
            "randn" => Expr::Randn,
            "zeros" | "ones" => {
                let v = if name.name == "ones" { 1.0 } else { 0.0 };
                fn fill(shape: &[u64], v: f64) -> Expr {
                    match shape.split_first() {
                        None => Expr::Const(v),
                        Some((&n, rest)) => Expr::Array((0..n).map(|_| fill(rest, v)).collect()),
                    }
                }
                fill(&shape_of(t, span)?, v)
            }
            "uniform" => {
                // lo + (hi - lo) (atan2(z1, z2) / 2π + 1/2): the polar angle of two standard
                // normal draws is uniform, so this reuses `randn()`'s generator in every
                // backend. Elements in row-major order, each drawing z1 then z2.
                let lo = arg(self, 0, Some(&real))?;
                let hi = arg(self, 1, Some(&real))?;
                let shape = shape_of(t, span)?;
                let mut draw = || {
                    let angle = Expr::Bin(
                        Bin::Atan2,
                        Num::Real,
                        Box::new(Expr::Randn),
                        Box::new(Expr::Randn),
                    );
                    let u = Expr::Bin(
                        Bin::Add,
                        Num::Real,
                        Box::new(Expr::Bin(
                            Bin::Div,
                            Num::Real,
                            Box::new(angle),
                            Box::new(Expr::Const(std::f64::consts::TAU)),
                        )),
                        Box::new(Expr::Const(0.5)),
                    );
                    let width = Expr::Bin(
                        Bin::Sub,
                        Num::Real,
                        Box::new(hi.clone()),
                        Box::new(lo.clone()),
                    );
                    Expr::Bin(
                        Bin::Add,
                        Num::Real,
                        Box::new(lo.clone()),
                        Box::new(Expr::Bin(Bin::Mul, Num::Real, Box::new(width), Box::new(u))),
                    )
                };
                fn nest(shape: &[u64], draw: &mut dyn FnMut() -> Expr) -> Expr {
                    match shape.split_first() {
                        None => draw(),
                        Some((&n, rest)) => Expr::Array((0..n).map(|_| nest(rest, draw)).collect()),
                    }
                }
                nest(&shape, &mut draw)
            }
            "normal" => {
                // mean + std z, one `randn()` draw z per element, in row-major order.
                let mean = arg(self, 0, Some(&real))?;
                let std = arg(self, 1, Some(&real))?;
                let shape = shape_of(t, span)?;
                let mut draw = || {
                    Expr::Bin(
                        Bin::Add,
                        Num::Real,
                        Box::new(mean.clone()),
                        Box::new(Expr::Bin(
                            Bin::Mul,
                            Num::Real,
                            Box::new(std.clone()),
                            Box::new(Expr::Randn),
                        )),
                    )
                };
                fn nest(shape: &[u64], draw: &mut dyn FnMut() -> Expr) -> Expr {
                    match shape.split_first() {
                        None => draw(),
                        Some((&n, rest)) => Expr::Array((0..n).map(|_| nest(rest, draw)).collect()),
                    }
                }
                nest(&shape, &mut draw)
            }
            _ => return Err(unsupported(span, &format!("`{}`", name.name))),
        })
    }

    /// The fn `id` instantiated with `sizes` (lowered on first use); `arg_tys` are the types
    /// of its arguments in that instantiation.
    /// `grad(expr, wrt)`, expanded by reverse-mode differentiation (see [`crate::ad`]).
    fn grad(&mut self, sc: &Scope, args: &[ast::Arg], span: Span) -> R<Expr> {
        let (Some(e), Some(w)) = (args.first(), args.get(1)) else {
            return Err(unsupported(span, "this `grad`"));
        };
        let ExprKind::Var(wn) = &w.value.kind else {
            return Err(unsupported(span, "this `grad`"));
        };
        let x = self.expr(sc, &e.value, Some(&Ty::Real))?;
        let wrt = self.var(sc, wn)?;
        let cx = AdCx { sc, fns: &self.fns };
        let exp = ad::grad(&x, &wrt, &cx).map_err(|er| {
            Box::new(
                Diagnostic::new(
                    codes::BAD_GRAD,
                    span,
                    format!(
                        "cannot differentiate with respect to `{}`: {}",
                        wn.name, er.0
                    ),
                )
                .label("this `grad`")
                .hint(er.1.unwrap_or_else(|| "see `dyn explain E0027`".into())),
            )
        })?;
        self.fns.extend(exp.fns);
        Ok(exp.expr)
    }

    fn function(&mut self, id: ItemId, sizes: &HashMap<String, u64>, arg_tys: Vec<Ty>) -> R<u32> {
        let mut key: Vec<(String, u64)> = sizes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        key.sort();
        let key = (id, key);
        if let Some(&f) = self.fn_ids.get(&key) {
            return Ok(f);
        }
        let ItemKind::Fn(def) = &self.item(id).kind else {
            return Err(unsupported(Span::default(), "this fn"));
        };
        let ctx = self.checked.fn_ctx.get(&id).copied().unwrap_or(0);
        let mut args: Vec<String> = def.params.iter().map(|(n, _)| n.name.clone()).collect();
        args.extend(def.sizes.iter().map(|s| s.name.clone()));
        let sc = Scope {
            module: id.module,
            ctx,
            args: args.clone(),
            sizes: sizes.clone(),
            arg_tys,
            ..Scope::default()
        };
        let ret_real = matches!(&def.ret.kind, ast::TypeKind::Named(p) if p[0].name == "Real")
            || matches!(&def.ret.kind, ast::TypeKind::Tensor(p, _) if p[0].name == "Real");
        let body = self.expr(
            &sc,
            &def.body,
            if ret_real { Some(&Ty::Real) } else { None },
        )?;
        let f = self.fns.len() as u32;
        self.fns.push(Function {
            name: def.name.name.clone(),
            arity: args.len() as u32,
            body,
        });
        self.fn_ids.insert(key, f);
        Ok(f)
    }
}
