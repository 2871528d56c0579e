//! Learners (LANGUAGE.md §7): a `learner` declares trainable parameters and a forward map;
//! this pass derives the system it stands for before anything else is checked.
//!
//! ```text
//! learner Dense<n, m> : { in x: Real[n]  out y: Real[m] } {
//!   param W: Real[m, n] = uniform(-0.1, 0.1, m, n)
//!   param b: Real[m] = zeros(m)
//!   optimizer SGD(lr = 0.05)
//!   out y = tanh(W @ x + b)
//! }
//! ```
//! becomes a discrete system with the ports of the interface plus one *backward* port per
//! Real port: `in dy` (the gradient of the loss with respect to `y`, told by whatever reads
//! `y`) and `out dx` (the gradient with respect to `x`, shown to whatever feeds `x`). With
//! `v = Σ sum(dy ⊙ y)` over the Real outputs (a vector-Jacobian product seed),
//! `dx = grad(v, x)` and each parameter's gradient is `grad(v, W)`; the parameters are states
//! updated by the optimizer's rule, written out with the optimizer's state
//! (Fong–Spivak–Tuyéras, *Backprop as Functor*: the request map is `dx`, the update map is
//! the optimizer step). The hyperparameters (`lr`, …) become params of the system, so a box
//! may override them: `box l1: Dense<64, 32>(lr = 0.1)`.
//!
//! The second half of the pass wires backward ports in composites: a wire `B.x <- A.y` from
//! a learner's output to a learner's input also wires `A.dy <- B.dx` (summed when `A.y` feeds
//! several learners outside `for` loops), unless the composite wires `A.dy` itself.
//!
//! The rewrite is pure syntax: every later stage (checker, lowering, interpreter, JIT, LSP)
//! sees an ordinary system, and diagnostics about the derived code point at the learner's
//! own lines.

use crate::build::{binary, call, ident, item, real, var};
use crate::modules::Module;
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::*;
use std::collections::HashMap;

/// The optimizers a learner can name: hyperparameters with their defaults, as in
/// `stdlib/learn.dyn` (the update rules are the same expressions, so the bits agree). Adam's
/// decay rates are `beta1`, `beta2` here (std.learn's `b1`, `b2` would clash with the usual
/// names of bias parameters).
const OPTIMIZERS: &[(&str, &[(&str, &str)])] = &[
    ("SGD", &[("lr", "0.01")]),
    ("Momentum", &[("lr", "0.01"), ("beta", "0.9")]),
    (
        "Adam",
        &[
            ("lr", "0.001"),
            ("beta1", "0.9"),
            ("beta2", "0.999"),
            ("eps", "1e-8"),
        ],
    ),
];

/// The backward ports of a learner: its differentiable (Real) inputs and outputs.
#[derive(Debug, Clone, Default)]
pub struct LearnerPorts {
    /// Real inputs `x` (each has an `out dx`).
    pub ins: Vec<String>,
    /// Real outputs `y` (each has an `in dy`).
    pub outs: Vec<String>,
}

/// The name of the backward port of `port`.
pub fn backward(port: &str) -> String {
    format!("d{port}")
}

/// Rewrites every learner of every module into its system, then wires backward ports in
/// every composite. Problems are reported as E0095 diagnostics.
pub fn derive(modules: &mut [Module], diags: &mut Vec<Diagnostic>) {
    let mut learners: Vec<HashMap<String, LearnerPorts>> = vec![HashMap::new(); modules.len()];
    for (m, module) in modules.iter_mut().enumerate() {
        for item in &mut module.ast.items {
            if let ItemKind::System(def) = &mut item.kind
                && def.learner.is_some()
            {
                match derive_one(def) {
                    Ok(ports) => {
                        learners[m].insert(def.name.name.clone(), ports);
                    }
                    Err(ds) => {
                        diags.extend(ds);
                        // Keep the learner as the plain system of its forward map, so its name
                        // stays known and its expressions are still checked.
                        def.body.retain(|it| {
                            matches!(
                                it.kind,
                                SysItemKind::Param { .. }
                                    | SysItemKind::Let { .. }
                                    | SysItemKind::Out { .. }
                            )
                        });
                    }
                }
            }
        }
    }
    for m in 0..modules.len() {
        let resolved = Resolver {
            modules,
            learners: &learners,
            m,
        };
        let mut edits = Vec::new();
        for (i, item) in modules[m].ast.items.iter().enumerate() {
            if let ItemKind::System(def) = &item.kind
                && def
                    .body
                    .iter()
                    .any(|it| matches!(it.kind, SysItemKind::Box { .. } | SysItemKind::For { .. }))
            {
                let boxes = box_learners(&def.body, &resolved);
                if boxes.is_empty() {
                    continue;
                }
                let mut body = def.body.clone();
                wire_backward(&mut body, &boxes);
                edits.push((i, body));
            }
        }
        for (i, body) in edits {
            if let ItemKind::System(def) = &mut modules[m].ast.items[i].kind {
                def.body = body;
            }
        }
    }
}

/// Finds the learner a box's system path names, as the checker's scopes would.
struct Resolver<'a> {
    modules: &'a [Module],
    learners: &'a [HashMap<String, LearnerPorts>],
    m: usize,
}

impl Resolver<'_> {
    fn resolve(&self, path: &[Ident]) -> Option<LearnerPorts> {
        let module = &self.modules[self.m];
        let defined_here = |name: &str| {
            module.ast.items.iter().any(|it| {
                matches!(&it.kind, ItemKind::System(d) if d.name.name == name)
                    || matches!(&it.kind, ItemKind::Interface(d) if d.name.name == name)
            })
        };
        let uses = module.ast.items.iter().enumerate().filter_map(|(i, it)| {
            match (&it.kind, module.imports.get(&i)) {
                (ItemKind::Use(u), Some(&mm)) => Some((u, mm)),
                _ => None,
            }
        });
        match path {
            [name] => {
                if defined_here(&name.name) {
                    return self.learners[self.m].get(&name.name).cloned();
                }
                for (u, mm) in uses {
                    let whole = u.path.iter().map(|i| i.name.as_str()).collect::<Vec<_>>();
                    let names_item = !u.glob
                        && self.modules[mm].name != whole.join(".")
                        && whole.last() == Some(&name.name.as_str());
                    if (u.glob || names_item)
                        && let Some(p) = self.learners[mm].get(&name.name)
                    {
                        return Some(p.clone());
                    }
                }
                None
            }
            [alias, name] => uses
                .filter(|(u, mm)| {
                    let whole = u.path.iter().map(|i| i.name.as_str()).collect::<Vec<_>>();
                    !u.glob
                        && self.modules[*mm].name == whole.join(".")
                        && whole.last() == Some(&alias.name.as_str())
                })
                .find_map(|(_, mm)| self.learners[mm].get(&name.name).cloned()),
            _ => None,
        }
    }
}

/// The boxes of a body (also inside `for`) whose system is a learner.
fn box_learners(body: &[SysItem], r: &Resolver) -> HashMap<String, LearnerPorts> {
    let mut out = HashMap::new();
    for it in body {
        match &it.kind {
            SysItemKind::Box { name, system, .. } => {
                if let Some(p) = r.resolve(system) {
                    out.insert(name.name.clone(), p);
                }
            }
            SysItemKind::For { body, .. } => out.extend(box_learners(body, r)),
            _ => {}
        }
    }
    out
}

/// The learner output a wire reads, when its value is exactly `A.y` or `A[j].y`.
fn learner_source<'e>(
    e: &'e Expr,
    boxes: &HashMap<String, LearnerPorts>,
) -> Option<(&'e Ident, Option<&'e Expr>, &'e Ident)> {
    let ExprKind::Field(base, port) = &e.kind else {
        return None;
    };
    let (name, index) = match &base.kind {
        ExprKind::Var(n) => (n, None),
        ExprKind::Index(b, ix) if ix.len() == 1 => match &b.kind {
            ExprKind::Var(n) => (n, Some(&ix[0])),
            _ => return None,
        },
        _ => return None,
    };
    boxes
        .get(&name.name)?
        .outs
        .contains(&port.name)
        .then_some((name, index, port))
}

/// Adds `A.dy <- B.dx` for each wire `B.x <- A.y` between learners (in the same item list, so
/// loop variables stay in scope), unless a wire of the body already targets `A.dy` (with the
/// same index expression, for box arrays).
fn wire_backward(body: &mut Vec<SysItem>, boxes: &HashMap<String, LearnerPorts>) {
    let mut told: Vec<(String, Option<Expr>, String)> = Vec::new();
    collect_targets(body, &mut told);
    add_backward(body, boxes, &told);
}

fn collect_targets(body: &[SysItem], out: &mut Vec<(String, Option<Expr>, String)>) {
    for it in body {
        match &it.kind {
            SysItemKind::Wire { target, .. } => out.push((
                target.boxname.name.clone(),
                target.index.clone(),
                target.port.name.clone(),
            )),
            SysItemKind::For { body, .. } => collect_targets(body, out),
            _ => {}
        }
    }
}

fn add_backward(
    body: &mut Vec<SysItem>,
    boxes: &HashMap<String, LearnerPorts>,
    told: &[(String, Option<Expr>, String)],
) {
    // Plain (unindexed) sources are grouped so fan-out sums the gradients; indexed ones are
    // wired one to one, in place.
    let mut grouped: Vec<(WireTarget, Vec<Expr>, Span)> = Vec::new();
    let mut extra: Vec<SysItem> = Vec::new();
    for it in body.iter_mut() {
        match &mut it.kind {
            SysItemKind::For { body, .. } => add_backward(body, boxes, told),
            SysItemKind::Wire { target, value } => {
                let Some(b) = boxes.get(&target.boxname.name) else {
                    continue;
                };
                if !b.ins.contains(&target.port.name) {
                    continue;
                }
                let Some((src, index, port)) = learner_source(value, boxes) else {
                    continue;
                };
                let dport = backward(&port.name);
                let same_index = |i: &Option<Expr>| match (i, index) {
                    (None, None) => true,
                    (Some(a), Some(b)) => same_expr(a, b),
                    _ => false,
                };
                if told
                    .iter()
                    .any(|(bx, i, p)| *bx == src.name && *p == dport && same_index(i))
                {
                    continue;
                }
                let span = it.span;
                let back_target = WireTarget {
                    boxname: src.clone(),
                    index: index.cloned(),
                    port: Ident {
                        name: dport,
                        span: port.span,
                    },
                    span: value.span,
                };
                let reads = read_port(
                    &target.boxname,
                    target.index.as_ref(),
                    &backward(&target.port.name),
                    target.span,
                );
                if index.is_none() {
                    match grouped.iter_mut().find(|(t, _, _)| {
                        t.boxname.name == src.name && t.port.name == back_target.port.name
                    }) {
                        Some((_, vals, _)) => vals.push(reads),
                        None => grouped.push((back_target, vec![reads], span)),
                    }
                } else {
                    extra.push(SysItem {
                        doc: None,
                        kind: SysItemKind::Wire {
                            target: back_target,
                            value: reads,
                        },
                        span,
                    });
                }
            }
            _ => {}
        }
    }
    for (target, vals, span) in grouped {
        let value = vals
            .into_iter()
            .reduce(|a, b| {
                let s = a.span.to(b.span);
                binary(BinOp::Add, a, b, s)
            })
            .expect("a group has at least one value");
        extra.push(SysItem {
            doc: None,
            kind: SysItemKind::Wire { target, value },
            span,
        });
    }
    body.extend(extra);
}

/// The same expression up to spans (for index expressions: literals, names, arithmetic).
fn same_expr(a: &Expr, b: &Expr) -> bool {
    match (&a.kind, &b.kind) {
        (ExprKind::Int(x), ExprKind::Int(y)) => x == y,
        (ExprKind::Var(x), ExprKind::Var(y)) => x.name == y.name,
        (ExprKind::Unary(o, x), ExprKind::Unary(p, y)) => o == p && same_expr(x, y),
        (ExprKind::Binary(o, x1, x2), ExprKind::Binary(p, y1, y2)) => {
            o == p && same_expr(x1, y1) && same_expr(x2, y2)
        }
        _ => false,
    }
}

/// `B.port` or `B[i].port` as an expression.
fn read_port(boxname: &Ident, index: Option<&Expr>, port: &str, span: Span) -> Expr {
    let base = var(&boxname.name, boxname.span);
    let base = match index {
        Some(i) => Expr {
            kind: ExprKind::Index(Box::new(base), vec![i.clone()]),
            span,
        },
        None => base,
    };
    Expr {
        kind: ExprKind::Field(
            Box::new(base),
            Ident {
                name: port.to_string(),
                span,
            },
        ),
        span,
    }
}

/// True for `Real` and `Real[…]`: the types a gradient flows through.
fn is_real(t: &TypeExpr) -> bool {
    match &t.kind {
        TypeKind::Named(p) | TypeKind::Tensor(p, _) => p.len() == 1 && p[0].name == "Real",
        _ => false,
    }
}

fn learner_error(span: Span, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new(codes::LEARNER, span, msg.into())
}

/// Rewrites one learner into its system; returns its backward ports.
fn derive_one(def: &mut SystemDef) -> Result<LearnerPorts, Vec<Diagnostic>> {
    let kw = def.learner.expect("derive_one is called on learners");
    let mut errs = Vec::new();
    let PolyKind::Body(iface) = &mut def.iface.poly.kind else {
        return Err(vec![
            learner_error(
                def.iface.poly.span,
                "a learner's interface must be written out",
            )
            .label("a named interface")
            .hint(
                "write the ports inline: `learner Dense : { in x: Real[4]  out y: Real[2] } { … }`",
            ),
        ]);
    };
    // The forward ports.
    let mut ins: Vec<PortDecl> = Vec::new();
    let mut outs: Vec<PortDecl> = Vec::new();
    for e in &iface.entries {
        match e {
            IfaceEntry::Port(p) if p.dir == Dir::In => ins.push(p.clone()),
            IfaceEntry::Port(p) => outs.push(p.clone()),
            IfaceEntry::Mode { name, .. } => errs.push(
                learner_error(name.span, "a learner's interface has no modes")
                    .label("a mode")
                    .hint(
                        "a learner is one forward map; write a system for mode-dependent behaviour",
                    ),
            ),
            IfaceEntry::Error => {}
        }
    }
    // The body: params, lets, outs, one optimizer.
    let mut params: Vec<(Ident, TypeExpr, Expr, Span, Option<String>)> = Vec::new();
    let mut lets: Vec<SysItem> = Vec::new();
    let mut fwd: Vec<(Ident, Expr, Span)> = Vec::new();
    let mut optimizer: Option<(Ident, Vec<Arg>)> = None;
    for it in &def.body {
        match &it.kind {
            SysItemKind::Param { name, ty, default } => {
                if !is_real(ty) {
                    errs.push(
                        learner_error(ty.span, format!("learner parameter `{}` is not Real", name.name))
                            .label("trainable parameters are Real or Real tensors")
                            .hint("a constant of the model belongs in a `const` or a `let`"),
                    );
                }
                match default {
                    Some(d) => params.push((name.clone(), ty.clone(), d.clone(), it.span, it.doc.clone())),
                    None => errs.push(
                        learner_error(name.span, format!("learner parameter `{}` has no initial value", name.name))
                            .label("needs `= initial value`")
                            .hint("e.g. Glorot-uniform `uniform(-a, a, m, n)` with a = sqrt(6 / (m + n)), or `zeros(m)`"),
                    ),
                }
            }
            SysItemKind::Let { .. } => lets.push(it.clone()),
            SysItemKind::Out { name: Some(n), value } => fwd.push((n.clone(), value.clone(), it.span)),
            SysItemKind::Optimizer { kw: w, name, args } => {
                if w.name != "optimizer" {
                    errs.push(
                        learner_error(w.span, format!("unexpected `{}` in a learner", w.name))
                            .label("expected `optimizer`, `param`, `let` or `out`")
                            .hint("choose the training rule with `optimizer SGD(lr = 0.05)`"),
                    );
                } else if let Some((first, _)) = &optimizer {
                    errs.push(
                        learner_error(name.span, "a learner has one optimizer")
                            .label("second optimizer")
                            .with(first.span, "first one"),
                    );
                } else {
                    optimizer = Some((name.clone(), args.clone()));
                }
            }
            SysItemKind::Error => {}
            _ => errs.push(
                learner_error(it.span, "a learner holds only `param`, `let`, `out` and `optimizer`")
                    .label("not allowed in a learner")
                    .with(kw, "this is a learner")
                    .hint("state, updates, boxes and wires belong in a `system`; a composite can hold learner boxes"),
            ),
        }
    }
    // The optimizer and its hyperparameters.
    let (opt_name, opt_span, opt_args) = match &optimizer {
        Some((n, a)) => (n.name.as_str(), n.span, a.clone()),
        None => ("SGD", kw, Vec::new()),
    };
    let Some((_, hyper)) = OPTIMIZERS.iter().find(|(n, _)| *n == opt_name) else {
        errs.push(
            learner_error(opt_span, format!("unknown optimizer `{opt_name}`"))
                .label("not an optimizer")
                .hint("the optimizers are `SGD(lr)`, `Momentum(lr, beta)` and `Adam(lr, beta1, beta2, eps)`"),
        );
        return Err(errs);
    };
    let mut hyper_vals: Vec<(String, Expr)> = hyper
        .iter()
        .map(|(n, d)| (n.to_string(), real(d, opt_span)))
        .collect();
    for a in &opt_args {
        let Some(n) = &a.name else {
            errs.push(
                learner_error(a.value.span, "optimizer arguments are named")
                    .label("no name")
                    .hint(format!("write `{}(lr = 0.05)`", opt_name)),
            );
            continue;
        };
        match hyper_vals.iter_mut().find(|(h, _)| *h == n.name) {
            Some((_, v)) => *v = a.value.clone(),
            None => errs.push(
                learner_error(
                    n.span,
                    format!("`{opt_name}` has no hyperparameter `{}`", n.name),
                )
                .label("unknown")
                .hint(format!(
                    "`{opt_name}` takes {}",
                    hyper
                        .iter()
                        .map(|(h, _)| format!("`{h}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
        }
    }
    // Backward ports and synthesised names must not clash with what the user wrote.
    let real_ins: Vec<&PortDecl> = ins.iter().filter(|p| is_real(&p.ty)).collect();
    let real_outs: Vec<&PortDecl> = outs.iter().filter(|p| is_real(&p.ty)).collect();
    let mut taken: HashMap<String, Span> = HashMap::new();
    for p in ins.iter().chain(&outs) {
        taken.insert(p.name.name.clone(), p.name.span);
    }
    for (n, _, _, _, _) in &params {
        taken.insert(n.name.clone(), n.span);
    }
    for l in &lets {
        if let SysItemKind::Let { name, .. } = &l.kind {
            taken.insert(name.name.clone(), name.span);
        }
    }
    let mut claim = |name: String, why: &str, at: Span, errs: &mut Vec<Diagnostic>| {
        if let Some(s) = taken.get(&name) {
            errs.push(
                learner_error(*s, format!("`{name}` clashes with the learner's {why}"))
                    .label("this name")
                    .with(at, format!("derives `{name}`"))
                    .hint("rename it: the derived names are `d<port>` for backward ports, `<param>_v`, `<param>_m`, `<param>_s`, `adam_k` for optimizer state and the hyperparameter names"),
            );
        } else {
            taken.insert(name, at);
        }
    };
    for p in real_ins.iter().chain(&real_outs) {
        claim(backward(&p.name.name), "backward port", p.span, &mut errs);
    }
    for (h, _) in &hyper_vals {
        claim(h.clone(), "optimizer hyperparameter", opt_span, &mut errs);
    }
    for (n, _, _, span, _) in &params {
        match opt_name {
            "Momentum" => claim(format!("{}_v", n.name), "optimizer state", *span, &mut errs),
            "Adam" => {
                claim(format!("{}_m", n.name), "optimizer state", *span, &mut errs);
                claim(format!("{}_s", n.name), "optimizer state", *span, &mut errs);
            }
            _ => {}
        }
    }
    if opt_name == "Adam" {
        claim("adam_k".into(), "optimizer state", opt_span, &mut errs);
    }
    if !errs.is_empty() {
        return Err(errs);
    }

    // The derived interface: forward ports, then `in dy` per Real output, `out dx` per Real input.
    for p in &real_outs {
        iface.entries.push(IfaceEntry::Port(PortDecl {
            doc: Some(format!(
                "The gradient of the loss with respect to `{}` (derived backward port).",
                p.name.name
            )),
            dir: Dir::In,
            name: ident(&backward(&p.name.name), p.name.span),
            ty: p.ty.clone(),
            span: p.span,
        }));
    }
    for p in &real_ins {
        iface.entries.push(IfaceEntry::Port(PortDecl {
            doc: Some(format!(
                "The gradient of the loss with respect to `{}` (derived backward port).",
                p.name.name
            )),
            dir: Dir::Out,
            name: ident(&backward(&p.name.name), p.name.span),
            ty: p.ty.clone(),
            span: p.span,
        }));
    }

    // The derived body.
    let mut body: Vec<SysItem> = Vec::new();
    for (h, v) in &hyper_vals {
        let span = v.span;
        body.push(SysItem {
            doc: Some(format!(
                "Hyperparameter `{h}` of the learner's {opt_name} optimizer."
            )),
            kind: SysItemKind::Param {
                name: ident(h, opt_span),
                ty: TypeExpr {
                    kind: TypeKind::Named(vec![ident("Real", span)]),
                    span,
                },
                default: Some(v.clone()),
            },
            span: opt_span,
        });
    }
    let zeros_like = |ty: &TypeExpr, span: Span| -> Expr {
        match &ty.kind {
            TypeKind::Tensor(_, dims) => Expr {
                kind: ExprKind::Call(
                    Box::new(var("zeros", span)),
                    dims.iter()
                        .map(|d| Arg {
                            name: None,
                            value: d.clone(),
                        })
                        .collect(),
                ),
                span,
            },
            _ => real("0.0", span),
        }
    };
    for (n, ty, init, span, doc) in &params {
        body.push(SysItem {
            doc: doc.clone(),
            kind: SysItemKind::State {
                name: n.clone(),
                ty: ty.clone(),
                init: init.clone(),
            },
            span: *span,
        });
        let opt_states: &[&str] = match opt_name {
            "Momentum" => &["v"],
            "Adam" => &["m", "s"],
            _ => &[],
        };
        for suffix in opt_states {
            body.push(item(
                SysItemKind::State {
                    name: ident(&format!("{}_{suffix}", n.name), n.span),
                    ty: ty.clone(),
                    init: zeros_like(ty, n.span),
                },
                *span,
            ));
        }
    }
    if opt_name == "Adam" {
        body.push(item(
            SysItemKind::State {
                name: ident("adam_k", opt_span),
                ty: TypeExpr {
                    kind: TypeKind::Named(vec![ident("Real", opt_span)]),
                    span: opt_span,
                },
                init: real("0.0", opt_span),
            },
            opt_span,
        ));
    }
    body.extend(lets);
    // Forward values as lets, so the outputs and the pullback share them.
    let fwd_let = |n: &str| format!("__fwd_{n}");
    for (n, value, span) in &fwd {
        body.push(item(
            SysItemKind::Let {
                name: ident(&fwd_let(&n.name), n.span),
                ty: None,
                value: value.clone(),
            },
            *span,
        ));
        body.push(item(
            SysItemKind::Out {
                name: Some(n.clone()),
                value: var(&fwd_let(&n.name), value.span),
            },
            *span,
        ));
    }
    // The pullback seed v = Σ sum(dy ⊙ y) (dy * y for a scalar).
    let seed = real_outs
        .iter()
        .filter(|p| fwd.iter().any(|(n, _, _)| n.name == p.name.name))
        .map(|p| {
            let s = p.span;
            let prod = binary(
                BinOp::Mul,
                var(&backward(&p.name.name), s),
                var(&fwd_let(&p.name.name), s),
                s,
            );
            match &p.ty.kind {
                TypeKind::Tensor(..) => call("sum", vec![prod], s),
                _ => prod,
            }
        })
        .reduce(|a, b| {
            let s = a.span.to(b.span);
            binary(BinOp::Add, a, b, s)
        })
        .unwrap_or_else(|| real("0.0", kw));
    let seed_span = seed.span;
    body.push(item(
        SysItemKind::Let {
            name: ident("__vjp", seed_span),
            ty: None,
            value: seed,
        },
        seed_span,
    ));
    for p in &real_ins {
        let s = p.span;
        body.push(item(
            SysItemKind::Out {
                name: Some(ident(&backward(&p.name.name), p.name.span)),
                value: call("grad", vec![var("__vjp", s), var(&p.name.name, s)], s),
            },
            s,
        ));
    }
    // Parameter gradients and the optimizer step (the rules of stdlib/learn.dyn).
    let h = |name: &str, s: Span| var(name, s);
    for (n, _, _, span, _) in &params {
        let s = *span;
        let p = n.name.as_str();
        let g = format!("__g_{p}");
        let let_ = |name: String, value: Expr| {
            item(
                SysItemKind::Let {
                    name: ident(&name, s),
                    ty: None,
                    value,
                },
                s,
            )
        };
        let next = |target: String, value: Expr| {
            item(
                SysItemKind::Update {
                    kind: UpdateKind::Next,
                    kw: s,
                    target: ident(&target, s),
                    value,
                },
                s,
            )
        };
        body.push(let_(
            g.clone(),
            call("grad", vec![var("__vjp", s), var(p, s)], s),
        ));
        let one_minus = |x: &str| binary(BinOp::Sub, real("1.0", s), h(x, s), s);
        match opt_name {
            "SGD" => body.push(next(
                p.to_string(),
                binary(
                    BinOp::Sub,
                    var(p, s),
                    binary(BinOp::Mul, h("lr", s), var(&g, s), s),
                    s,
                ),
            )),
            "Momentum" => {
                // nv = beta v + g;  v ← nv;  p ← p - lr nv
                let nv = format!("__nv_{p}");
                let v = format!("{p}_v");
                body.push(let_(
                    nv.clone(),
                    binary(
                        BinOp::Add,
                        binary(BinOp::Mul, h("beta", s), var(&v, s), s),
                        var(&g, s),
                        s,
                    ),
                ));
                body.push(next(v, var(&nv, s)));
                body.push(next(
                    p.to_string(),
                    binary(
                        BinOp::Sub,
                        var(p, s),
                        binary(BinOp::Mul, h("lr", s), var(&nv, s), s),
                        s,
                    ),
                ));
            }
            _ => {
                // Adam: nm = b1 m + (1 - b1) g;  ns = b2 s + (1 - b2) g g;
                // p ← p - lr mhat / (sqrt(shat) + eps), mhat = nm / (1 - b1^(k+1)), …
                let (m, sv) = (format!("{p}_m"), format!("{p}_s"));
                let (nm, ns) = (format!("__nm_{p}"), format!("__ns_{p}"));
                let (mh, sh) = (format!("__mhat_{p}"), format!("__shat_{p}"));
                let k1 = || binary(BinOp::Add, var("adam_k", s), real("1.0", s), s);
                body.push(let_(
                    nm.clone(),
                    binary(
                        BinOp::Add,
                        binary(BinOp::Mul, h("beta1", s), var(&m, s), s),
                        binary(BinOp::Mul, one_minus("beta1"), var(&g, s), s),
                        s,
                    ),
                ));
                body.push(let_(
                    ns.clone(),
                    binary(
                        BinOp::Add,
                        binary(BinOp::Mul, h("beta2", s), var(&sv, s), s),
                        binary(
                            BinOp::Mul,
                            binary(BinOp::Mul, one_minus("beta2"), var(&g, s), s),
                            var(&g, s),
                            s,
                        ),
                        s,
                    ),
                ));
                let bias = |b: &str| {
                    binary(
                        BinOp::Sub,
                        real("1.0", s),
                        call("pow", vec![h(b, s), k1()], s),
                        s,
                    )
                };
                body.push(let_(
                    mh.clone(),
                    binary(BinOp::Div, var(&nm, s), bias("beta1"), s),
                ));
                body.push(let_(
                    sh.clone(),
                    binary(BinOp::Div, var(&ns, s), bias("beta2"), s),
                ));
                body.push(next(m, var(&nm, s)));
                body.push(next(sv, var(&ns, s)));
                body.push(next(
                    p.to_string(),
                    binary(
                        BinOp::Sub,
                        var(p, s),
                        binary(
                            BinOp::Div,
                            binary(BinOp::Mul, h("lr", s), var(&mh, s), s),
                            binary(
                                BinOp::Add,
                                call("sqrt", vec![var(&sh, s)], s),
                                h("eps", s),
                                s,
                            ),
                            s,
                        ),
                        s,
                    ),
                ));
            }
        }
    }
    if opt_name == "Adam" && !params.is_empty() {
        body.push(item(
            SysItemKind::Update {
                kind: UpdateKind::Next,
                kw: opt_span,
                target: ident("adam_k", opt_span),
                value: binary(
                    BinOp::Add,
                    var("adam_k", opt_span),
                    real("1.0", opt_span),
                    opt_span,
                ),
            },
            opt_span,
        ));
    }
    def.body = body;
    Ok(LearnerPorts {
        ins: real_ins.iter().map(|p| p.name.name.clone()).collect(),
        outs: real_outs.iter().map(|p| p.name.name.clone()).collect(),
    })
}
