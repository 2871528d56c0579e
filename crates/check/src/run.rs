//! `run` blocks: which system to run, for how long, with which method, recording what.

use crate::checker::{Binding, Checker};
use crate::system::SystemSig;
use crate::types::Ty;
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::{Expr, ExprKind, Ident, ItemKind, RunDef, RunItem};
use std::rc::Rc;

/// The keys a run block understands.
pub const RUN_KEYS: &[&str] = &["until", "steps", "method", "record", "every", "seed"];
/// Integration methods.
pub const METHODS: &[&str] = &["euler", "rk4", "rk45"];

/// One segment of a recorded path: a name and an optional array index.
#[derive(Debug, Clone, PartialEq)]
pub struct Seg {
    /// Name.
    pub name: String,
    /// Index expression, for `cell[3]`.
    pub index: Option<Expr>,
    /// Where.
    pub span: Span,
}

/// `a.b[3].c` as segments, or `None` if the expression is not a path.
pub fn expr_path(e: &Expr) -> Option<Vec<Seg>> {
    match &e.kind {
        ExprKind::Var(i) => Some(vec![Seg {
            name: i.name.clone(),
            index: None,
            span: i.span,
        }]),
        ExprKind::Field(b, f) => {
            let mut p = expr_path(b)?;
            p.push(Seg {
                name: f.name.clone(),
                index: None,
                span: f.span,
            });
            Some(p)
        }
        ExprKind::Index(b, idx) if idx.len() == 1 => {
            let mut p = expr_path(b)?;
            let last = p.last_mut()?;
            if last.index.is_some() {
                return None;
            }
            last.index = Some(idx[0].clone());
            last.span = last.span.to(e.span);
            Some(p)
        }
        _ => None,
    }
}

impl Checker<'_> {
    /// Checks a run block.
    pub fn check_run(&mut self, r: &RunDef) {
        let sig = match self.lookup(&r.system.name) {
            Some(Binding::Item(id)) if matches!(self.item(id).kind, ItemKind::System(_)) => {
                self.system_sig(id, vec![], r.system.span)
            }
            _ => {
                self.resolve_path(std::slice::from_ref(&r.system), "system");
                None
            }
        };
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for it in &r.items {
            match it {
                RunItem::Error => {}
                RunItem::Param { path, value, span } => {
                    let t = self.check_expr(&mut crate::expr::GlobalEnv, value, None);
                    if let Some(sig) = &sig {
                        self.check_param_path(sig, path, &t, *span);
                    }
                }
                RunItem::Setting { key, values, span } => {
                    if let Some((_, prev)) = seen.iter().find(|(k, _)| *k == key.name) {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_RUN,
                                key.span,
                                format!("`{}` is given twice", key.name),
                            )
                            .with(*prev, "first here"),
                        );
                    }
                    seen.push((&key.name, key.span));
                    if key.name == "method"
                        && let Some(sig) = sig
                            .as_ref()
                            .filter(|s| s.domain == crate::system::Domain::Discrete)
                    {
                        self.report(
                                Diagnostic::new(codes::BAD_RUN, *span, format!("`{}` is discrete: it steps by `next`, so an integration method does not apply", sig.name))
                                    .label("integration method")
                                    .with(sig.domain_span.unwrap_or(sig.span), "discrete here")
                                    .hint("remove the `method` line and give `steps N`"),
                            );
                    }
                    self.check_setting(sig.as_ref(), key, values, *span);
                }
            }
        }
        if seen.iter().any(|(k, _)| *k == "until") && seen.iter().any(|(k, _)| *k == "steps") {
            let s = seen
                .iter()
                .find(|(k, _)| *k == "steps")
                .map(|x| x.1)
                .unwrap_or_default();
            self.report(
                Diagnostic::new(
                    codes::BAD_RUN,
                    s,
                    "a run block takes `until` or `steps`, not both",
                )
                .label("second horizon"),
            );
        }
    }

    fn one_number(&mut self, key: &Ident, values: &[Expr], int: bool) {
        if values.len() != 1 {
            self.report(
                Diagnostic::new(
                    codes::BAD_RUN,
                    key.span,
                    format!("`{}` takes one value", key.name),
                )
                .label(format!("{} given", values.len())),
            );
            return;
        }
        let t = self.check_expr(&mut crate::expr::GlobalEnv, &values[0], None);
        let ok = if int { t.is_int() } else { t.is_numeric() };
        if !ok {
            self.report(
                Diagnostic::new(
                    codes::BAD_RUN,
                    values[0].span,
                    format!(
                        "`{}` takes {}, found {t}",
                        key.name,
                        if int { "an Int" } else { "a number" }
                    ),
                )
                .label(format!("this is {t}")),
            );
        }
    }

    fn check_setting(
        &mut self,
        sig: Option<&Rc<SystemSig>>,
        key: &Ident,
        values: &[Expr],
        span: Span,
    ) {
        match key.name.as_str() {
            "until" | "every" => self.one_number(key, values, false),
            "steps" | "seed" => self.one_number(key, values, true),
            "method" => {
                let [v] = values else {
                    self.report(
                        Diagnostic::new(codes::BAD_RUN, span, "`method` takes one method")
                            .label("e.g. `method rk4(dt = 0.001)`"),
                    );
                    return;
                };
                let (name, args) = match &v.kind {
                    ExprKind::Var(n) => (n, &[][..]),
                    ExprKind::Call(f, args) => match &f.kind {
                        ExprKind::Var(n) => (n, args.as_slice()),
                        _ => {
                            self.report(
                                Diagnostic::new(codes::BAD_RUN, v.span, "expected a method name")
                                    .label("not a method"),
                            );
                            return;
                        }
                    },
                    _ => {
                        self.report(
                            Diagnostic::new(codes::BAD_RUN, v.span, "expected a method name")
                                .label("not a method")
                                .hint("methods: euler, rk4, rk45"),
                        );
                        return;
                    }
                };
                if !METHODS.contains(&name.name.as_str()) {
                    self.report(
                        Diagnostic::new(
                            codes::BAD_RUN,
                            name.span,
                            format!("unknown method `{}`", name.name),
                        )
                        .label("not a method")
                        .hint("methods: euler(dt = …), rk4(dt = …), rk45(rtol = …, atol = …)"),
                    );
                }
                for a in args {
                    let Some(n) = &a.name else {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_RUN,
                                a.value.span,
                                "method options are named",
                            )
                            .label("write `dt = 0.01`"),
                        );
                        continue;
                    };
                    if !["dt", "rtol", "atol", "dt_max", "dt_min"].contains(&n.name.as_str()) {
                        self.report(
                            Diagnostic::new(codes::BAD_RUN, n.span, format!("unknown method option `{}`", n.name))
                                .label("unknown option")
                                .hint("options: dt (euler, rk4, and the first step of rk45), rtol, atol, dt_max, dt_min (rk45)"),
                        );
                    }
                    let t = self.check_expr(&mut crate::expr::GlobalEnv, &a.value, Some(&Ty::Real));
                    if !t.is_numeric() {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_RUN,
                                a.value.span,
                                format!("`{}` takes a number, found {t}", n.name),
                            )
                            .label(format!("this is {t}")),
                        );
                    }
                }
            }
            "record" => {
                for v in values {
                    let Some(path) = expr_path(v) else {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_RUN,
                                v.span,
                                "`record` takes names of outputs or states",
                            )
                            .label("not a name")
                            .hint("e.g. `record prey, foxes.pop, ring.cell[3].v`"),
                        );
                        continue;
                    };
                    if let Some(sig) = sig {
                        self.check_record_path(sig, &path);
                    }
                }
            }
            _ => {
                self.report(
                    Diagnostic::new(
                        codes::BAD_RUN,
                        key.span,
                        format!("unknown run setting `{}`", key.name),
                    )
                    .label("not a run setting")
                    .hint(format!(
                        "run settings: {}, and `param box.name = value`",
                        RUN_KEYS.join(", ")
                    )),
                );
            }
        }
    }

    /// Checks that a recorded path names an output or state, descending through boxes.
    fn check_record_path(&mut self, sig: &Rc<SystemSig>, path: &[Seg]) {
        let mut cur = sig.clone();
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            if last
                && seg.index.is_none()
                && (cur.iface.all_outs().iter().any(|(p, _)| p.name == seg.name)
                    || cur.states.iter().any(|s| s.0 == seg.name))
            {
                return;
            }
            if let Some(b) = cur.boxes.iter().find(|b| b.name == seg.name)
                && !last
            {
                match (b.count, &seg.index) {
                    (Some(n), Some(ix)) => {
                        if let Some(k) = self.const_int(
                            ix,
                            &Default::default(),
                            &Default::default(),
                            "a recorded index",
                        ) && (k < 0 || k as u64 >= n)
                        {
                            self.report(
                                Diagnostic::new(
                                    codes::INDEX_RANGE,
                                    ix.span,
                                    format!(
                                        "index {k} is out of range for `{}`, which has {n} boxes",
                                        b.name
                                    ),
                                )
                                .label("out of range"),
                            );
                            return;
                        }
                    }
                    (Some(_), None) => {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_RUN,
                                seg.span,
                                format!("`{}` is a box array: say which box", b.name),
                            )
                            .label("no index")
                            .hint(format!("`{}[0]. …`", b.name)),
                        );
                        return;
                    }
                    (None, Some(_)) => {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_RUN,
                                seg.span,
                                format!("`{}` is a single box, not an array", b.name),
                            )
                            .label("index on a single box"),
                        );
                        return;
                    }
                    (None, None) => {}
                }
                cur = b.sys.clone();
                continue;
            }
            let mut known: Vec<String> = cur
                .iface
                .all_outs()
                .iter()
                .map(|(p, _)| p.name.clone())
                .collect();
            known.extend(cur.states.iter().map(|s| s.0.clone()));
            known.extend(cur.boxes.iter().map(|b| format!("{}.…", b.name)));
            self.report(
                Diagnostic::new(
                    codes::UNKNOWN_PORT,
                    seg.span,
                    format!(
                        "`{}` has no output, state or box `{}` to record",
                        cur.name, seg.name
                    ),
                )
                .label("cannot be recorded")
                .hint(format!(
                    "recordable here: {}",
                    if known.is_empty() {
                        "nothing".to_string()
                    } else {
                        known.join(", ")
                    }
                )),
            );
            return;
        }
    }

    fn check_param_path(&mut self, sig: &Rc<SystemSig>, path: &[Ident], t: &Ty, span: Span) {
        let mut cur = sig.clone();
        for (i, seg) in path.iter().enumerate() {
            if i + 1 == path.len() {
                match cur.params.iter().find(|p| p.name == seg.name) {
                    Some(p) => {
                        if !t.fits(&p.ty) {
                            self.report(
                                Diagnostic::new(
                                    codes::TYPE_MISMATCH,
                                    span,
                                    format!("param `{}` is {}, given {t}", p.name, p.ty),
                                )
                                .label("wrong type"),
                            );
                        }
                    }
                    None => {
                        let names: Vec<&str> = cur.params.iter().map(|p| p.name.as_str()).collect();
                        self.report(
                            Diagnostic::new(
                                codes::UNKNOWN_PARAM,
                                seg.span,
                                format!("`{}` has no param `{}`", cur.name, seg.name),
                            )
                            .label("unknown param")
                            .hint(format!(
                                "its params: {}",
                                if names.is_empty() {
                                    "none".into()
                                } else {
                                    names.join(", ")
                                }
                            )),
                        );
                    }
                }
                return;
            }
            match cur.boxes.iter().find(|b| b.name == seg.name) {
                Some(b) => cur = b.sys.clone(),
                None => {
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_PARAM,
                            seg.span,
                            format!("`{}` has no box `{}`", cur.name, seg.name),
                        )
                        .label("unknown box"),
                    );
                    return;
                }
            }
        }
    }
}
