//! Lenses between interfaces: the checkable analogy (LANGUAGE.md §4).
//!
//! A lens `p → q` defines, for every mode of `p`, a mode of `q`; every out port of that
//! target mode from the source's out ports (forward, on positions), and every in port of
//! the source mode from the source's out ports and the target's in ports (backward, on
//! directions). Each rule broken is a reason the analogy does not type-check.

use crate::checker::Checker;
use crate::expr::{Env, Res};
use crate::iface::{Iface, ModeSig};
use crate::types::Ty;
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::{Dir, Ident, LensDef, LensItem, LensItemKind};
use std::collections::HashMap;
use std::rc::Rc;

struct LensEnv {
    src: Rc<Iface>,
    tgt: Rc<Iface>,
    sm: usize,
    tm: usize,
    backward: bool,
    src_span: Span,
    tgt_span: Span,
    lets: Vec<(String, Ty, bool)>,
    read_backward: bool,
}

impl LensEnv {
    fn smode(&self) -> &ModeSig {
        &self.src.modes[self.sm]
    }
    fn tmode(&self) -> &ModeSig {
        &self.tgt.modes[self.tm]
    }

    fn forbid(
        &self,
        cx: &mut Checker,
        span: Span,
        msg: String,
        label: &str,
        hint: &str,
        side: Span,
    ) -> Option<Res> {
        cx.report(
            Diagnostic::new(codes::LENS_FORBIDDEN_READ, span, msg)
                .label(label.to_string())
                .with(side, "declared in this interface")
                .hint(hint.to_string()),
        );
        Some(Res::Forbidden)
    }

    fn resolve(
        &mut self,
        cx: &mut Checker,
        name: &str,
        span: Span,
        side: Option<&str>,
    ) -> Option<Res> {
        let src_out = self
            .smode()
            .outs
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.ty.clone());
        let tgt_in = self
            .tmode()
            .ins
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.ty.clone());
        let src_in = self.smode().ins.iter().any(|p| p.name == name);
        let tgt_out = self.tmode().outs.iter().any(|p| p.name == name);
        let (src_out, tgt_in) = match side {
            Some("src") => (src_out, None),
            Some("tgt") => (None, tgt_in),
            _ => (src_out, tgt_in),
        };
        let (src_in, tgt_out) = match side {
            Some("src") => (src_in, false),
            Some("tgt") => (false, tgt_out),
            _ => (src_in, tgt_out),
        };
        let part = if self.backward {
            "the backward part (`in`)"
        } else {
            "the forward part (`out`)"
        };
        match (src_out, tgt_in) {
            (Some(_), Some(_)) if self.backward => {
                cx.report(
                    Diagnostic::new(codes::LENS_FORBIDDEN_READ, span, format!("`{name}` is both a source out port and a target in port"))
                        .label("ambiguous")
                        .with(self.src_span, "source")
                        .with(self.tgt_span, "target")
                        .hint(format!("say which: `src.{name}` or `tgt.{name}`")),
                );
                Some(Res::Forbidden)
            }
            (Some(t), _) => Some(Res::Val(t)),
            (None, Some(t)) if self.backward => {
                self.read_backward = true;
                Some(Res::Val(t))
            }
            (None, Some(_)) => self.forbid(
                cx,
                span,
                format!("the forward part reads `{name}`, an in port of the target"),
                "the target's in port is not known going forward",
                "forward (`out …`) maps positions: it may read only the source's out ports; directions arrive later, in the backward part",
                self.tgt_span,
            ),
            (None, None) if src_in => self.forbid(
                cx,
                span,
                format!("{part} reads `{name}`, an in port of the source"),
                "the source's in port is what the lens defines, not reads",
                "a lens reads the source's out ports (and, backward, the target's in ports); it defines the source's in ports",
                self.src_span,
            ),
            (None, None) if tgt_out => self.forbid(
                cx,
                span,
                format!("{part} reads `{name}`, an out port of the target"),
                "the target's out port is what the lens defines, not reads",
                "compute shared values in a `let` over the source's out ports",
                self.tgt_span,
            ),
            _ => None,
        }
    }
}

impl Env for LensEnv {
    fn lookup(&mut self, cx: &mut Checker, name: &Ident) -> Option<Res> {
        if name.name == "src" || name.name == "tgt" {
            return Some(Res::Group(name.name.clone()));
        }
        if let Some((_, t, back)) = self.lets.iter().find(|l| l.0 == name.name).cloned() {
            if back && !self.backward {
                cx.report(
                    Diagnostic::new(
                        codes::LENS_FORBIDDEN_READ,
                        name.span,
                        format!(
                            "the forward part reads `let {}`, which reads the target's in ports",
                            name.name
                        ),
                    )
                    .label("a backward value")
                    .hint("forward (`out …`) may read only the source's out ports"),
                );
                return Some(Res::Forbidden);
            }
            if back {
                self.read_backward = true;
            }
            return Some(Res::Val(t));
        }
        if let Some(r) = self.resolve(cx, &name.name, name.span, None) {
            return Some(r);
        }
        let prefix = format!("{}.", name.name);
        let all = [self.smode(), self.tmode()];
        all.iter()
            .any(|m| {
                m.outs
                    .iter()
                    .chain(&m.ins)
                    .any(|p| p.name.starts_with(&prefix))
            })
            .then(|| Res::Group(name.name.clone()))
    }

    fn group_field(&mut self, cx: &mut Checker, group: &str, field: &Ident) -> Option<Ty> {
        let r = if group == "src" || group == "tgt" {
            self.resolve(cx, &field.name, field.span, Some(group))
        } else {
            self.resolve(cx, &format!("{group}.{}", field.name), field.span, None)
        };
        match r? {
            Res::Val(t) => Some(t),
            _ => Some(Ty::Error),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.smode().outs.iter().map(|p| p.name.clone()).collect();
        v.extend(self.tmode().ins.iter().map(|p| p.name.clone()));
        v.extend(self.lets.iter().map(|l| l.0.clone()));
        v
    }
}

impl Checker<'_> {
    /// Checks a lens declaration.
    pub fn check_lens(&mut self, l: &LensDef) {
        let sizes = Default::default();
        let src = self.header_iface(&l.src, &sizes);
        let tgt = self.header_iface(&l.tgt, &sizes);
        let (Some(src), Some(tgt)) = (src, tgt) else {
            return;
        };
        let mut env = LensEnv {
            src: src.clone(),
            tgt: tgt.clone(),
            sm: 0,
            tm: 0,
            backward: false,
            src_span: l.src.poly.span,
            tgt_span: l.tgt.poly.span,
            lets: vec![],
            read_backward: false,
        };
        let matches: Vec<(&Vec<dyn_syntax::ast::LensArm>, Span)> = l
            .body
            .iter()
            .filter_map(|it| {
                if let LensItemKind::Match(a) = &it.kind {
                    Some((a, it.span))
                } else {
                    None
                }
            })
            .collect();
        let top_defs: Vec<&LensItem> = l
            .body
            .iter()
            .filter(|it| matches!(it.kind, LensItemKind::Def { .. }))
            .collect();
        // Top-level lets (forward unless they read the target's ins).
        if !src.moded || !matches.is_empty() {
            for it in &l.body {
                if let LensItemKind::Let { name, value } = &it.kind {
                    env.backward = true;
                    env.read_backward = false;
                    let t = self.check_expr(&mut env, value, None);
                    env.lets.push((name.name.clone(), t, env.read_backward));
                }
            }
        }
        if src.moded || tgt.moded {
            if matches.is_empty() {
                self.report(
                    Diagnostic::new(codes::MODE_MATCH, l.name.span, format!("lens `{}` is between interfaces with modes but has no `match mode`", l.name.name))
                        .label("no mode match")
                        .with(l.src.poly.span, if src.moded { "source has modes" } else { "source" })
                        .with(l.tgt.poly.span, if tgt.moded { "target has modes" } else { "target" })
                        .hint(format!(
                            "match the source's mode and name the target mode: `match mode {{ {} => {} {{ out … in … }} }}`",
                            src.modes[0].name,
                            if tgt.moded { tgt.modes[0].name.as_str() } else { "" }
                        )),
                );
                return;
            }
            for d in &top_defs {
                self.report(
                    Diagnostic::new(
                        codes::MODE_MATCH,
                        d.span,
                        "between interfaces with modes, definitions go inside `match mode` arms",
                    )
                    .label("outside the match"),
                );
            }
            let mut seen: HashMap<String, Span> = HashMap::new();
            for (arms, mspan) in matches {
                for arm in arms {
                    let sm = if src.moded {
                        match src.modes.iter().position(|m| m.name == arm.src_mode.name) {
                            Some(i) => i,
                            None => {
                                let names: Vec<&str> =
                                    src.modes.iter().map(|m| m.name.as_str()).collect();
                                self.report(
                                    Diagnostic::new(
                                        codes::MODE_MATCH,
                                        arm.src_mode.span,
                                        format!(
                                            "`{}` is not a mode of the source",
                                            arm.src_mode.name
                                        ),
                                    )
                                    .label("unknown mode")
                                    .with(l.src.poly.span, "the source")
                                    .hint(format!("its modes: {}", names.join(", "))),
                                );
                                continue;
                            }
                        }
                    } else {
                        0
                    };
                    if let Some(prev) = seen.insert(arm.src_mode.name.clone(), arm.src_mode.span) {
                        self.report(
                            Diagnostic::new(
                                codes::MODE_MATCH,
                                arm.src_mode.span,
                                format!("mode `{}` is matched twice", arm.src_mode.name),
                            )
                            .with(prev, "first arm"),
                        );
                    }
                    let tm = match (&arm.tgt_mode, tgt.moded) {
                        (Some(t), true) => match tgt.modes.iter().position(|m| m.name == t.name) {
                            Some(i) => i,
                            None => {
                                let names: Vec<&str> =
                                    tgt.modes.iter().map(|m| m.name.as_str()).collect();
                                self.report(
                                    Diagnostic::new(
                                        codes::MODE_MATCH,
                                        t.span,
                                        format!("`{}` is not a mode of the target", t.name),
                                    )
                                    .label("unknown mode")
                                    .with(l.tgt.poly.span, "the target")
                                    .hint(format!("its modes: {}", names.join(", "))),
                                );
                                continue;
                            }
                        },
                        (None, true) => {
                            self.report(
                                Diagnostic::new(
                                    codes::MODE_MATCH,
                                    arm.src_mode.span,
                                    "name the target mode this arm maps to",
                                )
                                .label("no target mode")
                                .with(l.tgt.poly.span, "the target has modes")
                                .hint(format!(
                                    "`{} => {} {{ … }}`",
                                    arm.src_mode.name, tgt.modes[0].name
                                )),
                            );
                            continue;
                        }
                        (Some(t), false) => {
                            self.report(
                                Diagnostic::new(
                                    codes::MODE_MATCH,
                                    t.span,
                                    "the target has no modes",
                                )
                                .label("not a mode")
                                .hint(format!("write `{} => {{ … }}`", arm.src_mode.name)),
                            );
                            0
                        }
                        (None, false) => 0,
                    };
                    env.sm = sm;
                    env.tm = tm;
                    self.lens_defs(&mut env, l, arm.body.iter().collect(), arm.span);
                }
                if src.moded {
                    let missing: Vec<&str> = src
                        .modes
                        .iter()
                        .map(|m| m.name.as_str())
                        .filter(|m| !seen.contains_key(*m))
                        .collect();
                    if !missing.is_empty() {
                        self.report(
                            Diagnostic::new(codes::MODE_MATCH, mspan, format!("lens `{}` does not say what to do in source mode {}", l.name.name, missing.join(", ")))
                                .label("not exhaustive")
                                .with(l.src.poly.span, "the source's modes")
                                .hint("a lens maps every position of the source: add an arm for each mode"),
                        );
                    }
                }
            }
        } else {
            self.lens_defs(&mut env, l, l.body.iter().collect(), l.name.span);
        }
    }

    fn lens_defs(&mut self, env: &mut LensEnv, l: &LensDef, items: Vec<&LensItem>, at: Span) {
        let mut outs: HashMap<String, Span> = HashMap::new();
        let mut ins: HashMap<String, Span> = HashMap::new();
        let nlets = env.lets.len();
        for it in &items {
            match &it.kind {
                LensItemKind::Let { name, value } => {
                    env.backward = true;
                    env.read_backward = false;
                    let t = self.check_expr(env, value, None);
                    env.lets.push((name.name.clone(), t, env.read_backward));
                }
                LensItemKind::Def {
                    dir,
                    kw,
                    port,
                    value,
                } => {
                    let (want, wrong_side) = match dir {
                        Dir::Out => (
                            env.tmode()
                                .outs
                                .iter()
                                .find(|p| p.name == port.name)
                                .cloned(),
                            {
                                if env.smode().ins.iter().any(|p| p.name == port.name) {
                                    Some(("an in port of the source", "the backward part: `in"))
                                } else if env.tmode().ins.iter().any(|p| p.name == port.name) {
                                    Some(("an in port of the target", ""))
                                } else if env.smode().outs.iter().any(|p| p.name == port.name) {
                                    Some(("an out port of the source", ""))
                                } else {
                                    None
                                }
                            },
                        ),
                        Dir::In => (
                            env.smode()
                                .ins
                                .iter()
                                .find(|p| p.name == port.name)
                                .cloned(),
                            {
                                if env.tmode().outs.iter().any(|p| p.name == port.name) {
                                    Some(("an out port of the target", "the forward part: `out"))
                                } else if env.smode().outs.iter().any(|p| p.name == port.name) {
                                    Some(("an out port of the source", ""))
                                } else if env.tmode().ins.iter().any(|p| p.name == port.name) {
                                    Some(("an in port of the target", ""))
                                } else {
                                    None
                                }
                            },
                        ),
                    };
                    env.backward = *dir == Dir::In;
                    env.read_backward = false;
                    let t = self.check_expr(env, value, want.as_ref().map(|p| &p.ty));
                    let (side_word, rule) = match dir {
                        Dir::Out => (
                            "forward part (`out`)",
                            "`out p = …` defines an out port of the target, from the source's out ports",
                        ),
                        Dir::In => (
                            "backward part (`in`)",
                            "`in p = …` defines an in port of the source, from the source's out ports and the target's in ports",
                        ),
                    };
                    match (want, wrong_side) {
                        (Some(p), _) => {
                            self.expect_fits(&t, &p.ty, value.span, Some(p.span));
                            let map = if *dir == Dir::Out {
                                &mut outs
                            } else {
                                &mut ins
                            };
                            if let Some(prev) = map.insert(port.name.clone(), port.span) {
                                self.report(
                                    Diagnostic::new(
                                        codes::LENS_DUPLICATE,
                                        port.span,
                                        format!(
                                            "lens `{}` defines `{}` twice",
                                            l.name.name, port.name
                                        ),
                                    )
                                    .label("second definition")
                                    .with(prev, "first definition"),
                                );
                            }
                        }
                        (None, Some((what, fix))) => {
                            // The port was meant for the other side: do not also call it missing.
                            match dir {
                                Dir::In if env.tmode().outs.iter().any(|p| p.name == port.name) => {
                                    outs.entry(port.name.clone()).or_insert(port.span);
                                }
                                Dir::Out if env.smode().ins.iter().any(|p| p.name == port.name) => {
                                    ins.entry(port.name.clone()).or_insert(port.span);
                                }
                                _ => {}
                            }
                            let mut d = Diagnostic::new(
                                codes::LENS_WRONG_SIDE,
                                kw.to(port.span),
                                format!(
                                    "the {side_word} of lens `{}` defines `{}`, which is {what}",
                                    l.name.name, port.name
                                ),
                            )
                            .label("defined on the wrong side")
                            .with(env.src_span, "source interface")
                            .with(env.tgt_span, "target interface");
                            d = if fix.is_empty() {
                                d.hint(rule)
                            } else {
                                d.hint(format!(
                                    "{rule}; `{}` belongs in {fix} {} = …`",
                                    port.name, port.name
                                ))
                            };
                            self.report(d);
                        }
                        (None, None) => {
                            let side = if *dir == Dir::Out {
                                "target's out ports"
                            } else {
                                "source's in ports"
                            };
                            let names: Vec<String> = match dir {
                                Dir::Out => {
                                    env.tmode().outs.iter().map(|p| p.name.clone()).collect()
                                }
                                Dir::In => env.smode().ins.iter().map(|p| p.name.clone()).collect(),
                            };
                            self.report(
                                Diagnostic::new(
                                    codes::UNKNOWN_PORT,
                                    port.span,
                                    format!("`{}` is none of the {side}", port.name),
                                )
                                .label("unknown port")
                                .with(
                                    if *dir == Dir::Out {
                                        env.tgt_span
                                    } else {
                                        env.src_span
                                    },
                                    "this interface",
                                )
                                .hint(format!(
                                    "the {side}: {}",
                                    if names.is_empty() {
                                        "none".to_string()
                                    } else {
                                        names.join(", ")
                                    }
                                )),
                            );
                        }
                    }
                }
                LensItemKind::Match(_) => {
                    self.report(
                        Diagnostic::new(
                            codes::MODE_MATCH,
                            it.span,
                            "`match mode` cannot be nested or used without modes",
                        )
                        .label("unexpected match"),
                    );
                }
                LensItemKind::Error => {}
            }
        }
        env.lets.truncate(nlets);
        let tm = env.tmode().clone();
        let sm = env.smode().clone();
        for p in &tm.outs {
            if !outs.contains_key(&p.name) {
                self.report(
                    Diagnostic::new(
                        codes::LENS_MISSING,
                        at,
                        format!(
                            "lens `{}` never defines the target's out port `{}`",
                            l.name.name, p.name
                        ),
                    )
                    .label("missing a forward definition")
                    .with(p.span, "declared in the target here")
                    .with(env.src_span, "source interface")
                    .hint(format!(
                        "add `out {} = …` computed from the source's out ports",
                        p.name
                    )),
                );
            }
        }
        for p in &sm.ins {
            if !ins.contains_key(&p.name) {
                self.report(
                    Diagnostic::new(
                        codes::LENS_MISSING,
                        at,
                        format!(
                            "lens `{}` never defines the source's in port `{}`",
                            l.name.name, p.name
                        ),
                    )
                    .label("missing a backward definition")
                    .with(p.span, "declared in the source here")
                    .with(env.tgt_span, "target interface")
                    .hint(format!(
                        "add `in {} = …` computed from the source's outs and the target's ins",
                        p.name
                    )),
                );
            }
        }
    }
}
