//! `:type NAME` for items that are not values: systems, interfaces, lenses, fns, types.

use crate::session::Session;
use dyn_check::checker::{Binding, Checker};
use dyn_check::iface::Iface;
use dyn_check::system::{Domain, SystemSig};
use dyn_syntax::ast::ItemKind;
use std::fmt::Write;

/// An interface as written: `{ out pop: Real  in rate: Real }`, with modes if it has them.
pub fn iface_text(i: &Iface) -> String {
    let ports = |m: &dyn_check::iface::ModeSig| {
        let mut v: Vec<String> = m
            .outs
            .iter()
            .map(|p| format!("out {}: {}", p.name, p.ty))
            .collect();
        v.extend(m.ins.iter().map(|p| format!("in {}: {}", p.name, p.ty)));
        v.join("  ")
    };
    if i.moded {
        let ms: Vec<String> = i
            .modes
            .iter()
            .map(|m| format!("mode {} {{ {} }}", m.name, ports(m)))
            .collect();
        format!("{{ {} }}", ms.join("  "))
    } else {
        match i.modes.first() {
            Some(m) => format!("{{ {} }}", ports(m)),
            None => "{ }".into(),
        }
    }
}

fn domain(d: Domain) -> &'static str {
    match d {
        Domain::Stateless => "stateless",
        Domain::Discrete => "discrete",
        Domain::Continuous => "continuous",
    }
}

/// A system's signature over several lines.
pub fn system_text(s: &SystemSig) -> String {
    let mut out = format!(
        "system {} : {} ({})\n",
        s.name,
        iface_text(&s.iface),
        domain(s.domain)
    );
    for p in &s.params {
        let _ = writeln!(out, "  param {}: {}", p.name, p.ty);
    }
    for (n, t) in &s.states {
        let _ = writeln!(out, "  state {n}: {t}");
    }
    for b in &s.boxes {
        let count = b.count.map(|c| format!("[{c}]")).unwrap_or_default();
        let _ = writeln!(out, "  box {}{count}: {}", b.name, b.sys.name);
    }
    out
}

impl Session {
    /// Describes `name` if it is a system, interface, lens, fn, type or enum in scope.
    pub fn describe(&self, name: &str) -> Option<String> {
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        let key = name.to_string();
        let which = self.closure(std::iter::once(&key));
        let (asm, _) = self.assemble(&self.entries, &which);
        let mut checked = self.check(&asm);
        let Binding::Item(id) = *checked.scopes.first()?.get(name)? else {
            return None;
        };
        let item = checked.modules.get(id.module)?.ast.items.get(id.index)?;
        let span = Checker::item_name(item)?.span;
        let text = |s: dyn_diag::Span| checked.sources.snippet(s).to_string();
        let described = match &item.kind {
            ItemKind::System(s) if s.sizes.is_empty() => {
                let mut cx = Checker::new(&checked.modules);
                let sig = cx.system_sig(id, vec![], span)?;
                system_text(&sig)
            }
            ItemKind::System(s) => format!(
                "system {}<{}> (generic)\n",
                s.name.name,
                s.sizes
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ItemKind::Interface(i) => {
                let ports = if i.sizes.is_empty() {
                    let mut cx = Checker::new(&checked.modules);
                    match cx.iface_item(id, vec![], span).as_deref() {
                        Some(Ok(f)) => iface_text(f),
                        _ => text(i.poly.span),
                    }
                } else {
                    text(i.poly.span)
                };
                let nf = dyn_check::normal_form(&mut checked, name)
                    .map(|nf| format!(" = {nf}"))
                    .unwrap_or_default();
                format!("interface {name} : {ports}{nf}\n")
            }
            ItemKind::Lens(l) => format!(
                "lens {name} : {} -> {}\n",
                text(l.src.poly.span),
                text(l.tgt.poly.span)
            ),
            ItemKind::Fn(f) => {
                let ps: Vec<String> = f
                    .params
                    .iter()
                    .map(|(n, t)| format!("{}: {}", n.name, text(t.span)))
                    .collect();
                format!("fn {name}({}) -> {}\n", ps.join(", "), text(f.ret.span))
            }
            ItemKind::TypeAlias(t) => format!("type {name} = {}\n", text(t.ty.span)),
            ItemKind::Enum(e) => format!(
                "enum {name} {{ {} }}\n",
                e.variants
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => return None,
        };
        Some(described)
    }
}
