//! `flow`: the flow of a vector field over a horizon, unrolled into lets.
//!
//! ```text
//! let z = flow(f, x, T, n, a1, a2, …)          // RK4
//! let z = flow_euler(f, x, T, n, a1, a2, …)    // explicit Euler
//! ```
//! integrates dz/dt = f(z, a1, a2, …) from z = x over the time `T` in `n` steps of
//! `h = T / n` (`n` an integer literal, 1 ≤ n ≤ [`MAX_STEPS`]) and binds `z` to the end point.
//! `f` names a `fn` whose first argument is the state. The stages are the interpreter's
//! (`fixed_step` in crates/interp/src/run.rs), written as the same expressions in the same
//! order, so `flow(f, x, dt, 1, …)` each tick gives the bits of a continuous system
//! `der z = f(z, …)` run by `rk4(dt = …)`.
//!
//! The pass runs before checking and rewrites the `let` into one `let` per stage, so the
//! forward values are held by lets and `grad` differentiates through every step (reverse
//! mode through the integrator: the discrete adjoint; memory grows with `n`, as the stages
//! are kept). This is what makes a Neural ODE block a learner like any other
//! (`NeuralODE` in std.learn).

use crate::build::{binary as bin, call_expr, let_item, real, var};
use crate::modules::Module;
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::*;

/// The names of the flow forms (RK4, Euler), unless a module defines a fn of that name.
pub const NAMES: [&str; 2] = ["flow", "flow_euler"];

/// The most steps one `flow` unrolls.
pub const MAX_STEPS: u64 = 1000;

/// Expands every `let NAME = flow(…)` in every system; reports `flow` anywhere else.
pub fn expand(modules: &mut [Module], diags: &mut Vec<Diagnostic>) {
    for module in modules.iter_mut() {
        let defines = |n: &str| {
            module
                .ast
                .items
                .iter()
                .any(|it| matches!(&it.kind, ItemKind::Fn(f) if f.name.name == n))
        };
        let names: Vec<&str> = NAMES.into_iter().filter(|n| !defines(n)).collect();
        if names.is_empty() {
            continue;
        }
        for item in &mut module.ast.items {
            if let ItemKind::System(def) = &mut item.kind {
                def.body = expand_body(std::mem::take(&mut def.body), &names, diags);
            }
        }
    }
}

fn expand_body(body: Vec<SysItem>, names: &[&str], diags: &mut Vec<Diagnostic>) -> Vec<SysItem> {
    let mut out = Vec::with_capacity(body.len());
    for mut it in body {
        match &mut it.kind {
            SysItemKind::Let { name, value, ty } if flow_call(value, names).is_some() => {
                let (method, args) = flow_call(value, names).expect("checked");
                let mut args = args.to_vec();
                for a in &mut args {
                    misplaced(&mut a.value, names, diags);
                }
                match unroll(method, name, &args, value.span, it.span) {
                    Ok(mut items) => {
                        // The last let is the user's: its type annotation and doc comment.
                        if let Some(last) = items.last_mut() {
                            last.doc = it.doc.clone();
                            if let SysItemKind::Let { ty: t, .. } = &mut last.kind {
                                *t = ty.clone();
                            }
                        }
                        out.extend(items);
                    }
                    Err(d) => {
                        diags.push(*d);
                        // Keep a let of that name so its readers are not reported as well.
                        *value = Expr {
                            kind: ExprKind::Error,
                            span: value.span,
                        };
                        out.push(it);
                    }
                }
                continue;
            }
            SysItemKind::For { body, .. } => {
                *body = expand_body(std::mem::take(body), names, diags);
            }
            _ => visit_exprs(&mut it.kind, &mut |e| misplaced(e, names, diags)),
        }
        out.push(it);
    }
    out
}

/// `(method, args)` when `e` is a call of `flow` or `flow_euler`.
fn flow_call<'e>(e: &'e Expr, names: &[&str]) -> Option<(&'static str, &'e [Arg])> {
    let ExprKind::Call(f, args) = &e.kind else {
        return None;
    };
    let ExprKind::Var(n) = &f.kind else {
        return None;
    };
    if !names.contains(&n.name.as_str()) {
        return None;
    }
    Some((
        if n.name == NAMES[0] { "rk4" } else { "euler" },
        args.as_slice(),
    ))
}

/// Reports a `flow` call that is not the whole value of a let, and replaces it by an error
/// expression (so it is not reported again as an unknown function).
fn misplaced(e: &mut Expr, names: &[&str], diags: &mut Vec<Diagnostic>) {
    if flow_call(e, names).is_some() {
        diags.push(
            Diagnostic::new(
                codes::FLOW,
                e.span,
                "`flow` must be the whole value of a `let`",
            )
            .label("inside an expression")
            .hint("bind it first: `let z = flow(f, x, T, n, …)`, then use `z`"),
        );
        e.kind = ExprKind::Error;
        return;
    }
    let mut go = |x: &mut Expr| misplaced(x, names, diags);
    match &mut e.kind {
        ExprKind::Field(b, _) => go(b),
        ExprKind::Index(b, ix) => {
            go(b);
            ix.iter_mut().for_each(go);
        }
        ExprKind::Range(lo, hi) => {
            lo.iter_mut().for_each(|x| go(x));
            hi.iter_mut().for_each(|x| go(x));
        }
        ExprKind::Call(c, args) => {
            go(c);
            args.iter_mut().for_each(|a| go(&mut a.value));
        }
        ExprKind::Unary(_, a) => go(a),
        ExprKind::Binary(_, a, b) => {
            go(a);
            go(b);
        }
        ExprKind::If(c, a, b) => {
            go(c);
            go(a);
            go(b);
        }
        ExprKind::Match(x, arms) => {
            go(x);
            arms.iter_mut().for_each(|a| go(&mut a.value));
        }
        ExprKind::Array(xs) => xs.iter_mut().for_each(go),
        ExprKind::Record(_, fs) => fs.iter_mut().for_each(|(_, x)| go(x)),
        _ => {}
    }
}

/// The expressions directly held by a body item (not inside nested `for` bodies).
fn visit_exprs(k: &mut SysItemKind, f: &mut dyn FnMut(&mut Expr)) {
    match k {
        SysItemKind::Param { default, .. } => default.iter_mut().for_each(&mut *f),
        SysItemKind::State { init, .. } => f(init),
        SysItemKind::Let { value, .. }
        | SysItemKind::Out { value, .. }
        | SysItemKind::Update { value, .. }
        | SysItemKind::Wire { value, .. } => f(value),
        SysItemKind::UpdateMatch { arms, .. } => arms
            .iter_mut()
            .for_each(|a| a.body.iter_mut().for_each(|s| f(&mut s.value))),
        SysItemKind::When { cond, body } => {
            f(cond);
            body.iter_mut().for_each(|s| f(&mut s.value));
        }
        SysItemKind::Box { args, .. } => args.iter_mut().for_each(|a| f(&mut a.value)),
        _ => {}
    }
}

/// The lets of one `let name = flow(…)`.
fn unroll(
    method: &str,
    name: &Ident,
    args: &[Arg],
    span: Span,
    item_span: Span,
) -> Result<Vec<SysItem>, Box<Diagnostic>> {
    let err = |at: Span, msg: &str, label: &str| {
        Box::new(
            Diagnostic::new(codes::FLOW, at, msg.to_string())
                .label(label.to_string())
                .hint("write `flow(f, x, T, n, a1, …)`: dz/dt = f(z, a1, …) from z = x over time T in n steps (an integer literal)"),
        )
    };
    if let Some(a) = args.iter().find(|a| a.name.is_some()) {
        return Err(err(
            a.value.span,
            "`flow` takes positional arguments",
            "named",
        ));
    }
    if args.len() < 4 {
        return Err(err(
            span,
            "`flow` needs a field, a start, a horizon and a step count",
            "too few arguments",
        ));
    }
    let steps = match &args[3].value.kind {
        ExprKind::Int(t) => t.replace('_', "").parse::<u64>().ok(),
        _ => None,
    };
    let Some(steps) = steps.filter(|n| (1..=MAX_STEPS).contains(n)) else {
        return Err(err(
            args[3].value.span,
            &format!("the step count of `flow` is an integer literal from 1 to {MAX_STEPS}"),
            "not a step count",
        ));
    };
    let field = args[0].value.clone();
    let base = format!("__flow_{}", name.name);
    let s = span;
    let mut items = Vec::new();
    // Extra arguments and the step are held by lets, computed once.
    let mut extra = Vec::new();
    for (i, a) in args[4..].iter().enumerate() {
        let n = format!("{base}_a{i}");
        items.push(let_item(&n, a.value.clone(), a.value.span, item_span));
        extra.push(n);
    }
    let h = format!("{base}_h");
    items.push(let_item(
        &h,
        bin(
            BinOp::Div,
            args[2].value.clone(),
            real(&format!("{steps}.0"), s),
            args[2].value.span,
        ),
        args[2].value.span,
        item_span,
    ));
    let z0 = format!("{base}_0");
    items.push(let_item(
        &z0,
        args[1].value.clone(),
        args[1].value.span,
        item_span,
    ));
    let call = |z: Expr| {
        let mut a = vec![z];
        a.extend(extra.iter().map(|n| var(n, s)));
        call_expr(field.clone(), a, s)
    };
    let mut z = z0;
    for k in 0..steps {
        let next = if k + 1 == steps {
            name.name.clone()
        } else {
            format!("{base}_{}", k + 1)
        };
        let kn = |i: u32| format!("{base}_{k}_k{i}");
        items.push(let_item(&kn(1), call(var(&z, s)), s, item_span));
        let value = if method == "euler" {
            // x + h k1
            bin(
                BinOp::Add,
                var(&z, s),
                bin(BinOp::Mul, var(&h, s), var(&kn(1), s), s),
                s,
            )
        } else {
            // x + 0.5 h k1, x + 0.5 h k2, x + h k3, then x + h / 6 (k1 + 2 k2 + 2 k3 + k4).
            let half = || bin(BinOp::Mul, real("0.5", s), var(&h, s), s);
            let stage = |c: Expr, k: String| {
                bin(BinOp::Add, var(&z, s), bin(BinOp::Mul, c, var(&k, s), s), s)
            };
            items.push(let_item(&kn(2), call(stage(half(), kn(1))), s, item_span));
            items.push(let_item(&kn(3), call(stage(half(), kn(2))), s, item_span));
            items.push(let_item(
                &kn(4),
                call(stage(var(&h, s), kn(3))),
                s,
                item_span,
            ));
            let two = |k: String| bin(BinOp::Mul, real("2.0", s), var(&k, s), s);
            let sum = bin(
                BinOp::Add,
                bin(
                    BinOp::Add,
                    bin(BinOp::Add, var(&kn(1), s), two(kn(2)), s),
                    two(kn(3)),
                    s,
                ),
                var(&kn(4), s),
                s,
            );
            bin(
                BinOp::Add,
                var(&z, s),
                bin(
                    BinOp::Mul,
                    bin(BinOp::Div, var(&h, s), real("6.0", s), s),
                    sum,
                    s,
                ),
                s,
            )
        };
        let at = if k + 1 == steps { name.span } else { s };
        items.push(let_item(&next, value, at, item_span));
        z = next;
    }
    Ok(items)
}
