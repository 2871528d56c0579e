//! The outline of a file: items, with the ports and modes of interfaces and the params,
//! states, lets and boxes of systems nested inside them.

use super::DefKind;
use dyn_diag::Span;
use dyn_syntax::ast::{Dir, File, IfaceEntry, ItemKind, PolyKind, PortDecl, SysItem, SysItemKind};

/// One entry of the outline.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: DefKind,
    /// The whole definition.
    pub span: Span,
    /// The name.
    pub selection: Span,
    /// A short description (a box's system, a port's direction).
    pub detail: Option<String>,
    /// Nested entries.
    pub children: Vec<Symbol>,
}

fn leaf(
    name: &dyn_syntax::ast::Ident,
    kind: DefKind,
    span: Span,
    detail: Option<String>,
) -> Symbol {
    Symbol {
        name: name.name.clone(),
        kind,
        span: span.to(name.span),
        selection: name.span,
        detail,
        children: Vec::new(),
    }
}

fn port(p: &PortDecl) -> Symbol {
    let (kind, word) = match p.dir {
        Dir::Out => (DefKind::OutPort, "out"),
        Dir::In => (DefKind::InPort, "in"),
    };
    leaf(&p.name, kind, p.span, Some(word.into()))
}

fn ports(p: &dyn_syntax::ast::Poly) -> Vec<Symbol> {
    let PolyKind::Body(b) = &p.kind else {
        return Vec::new();
    };
    b.entries
        .iter()
        .filter_map(|e| match e {
            IfaceEntry::Port(p) => Some(port(p)),
            IfaceEntry::Mode { name, ports, .. } => {
                let mut s = leaf(name, DefKind::Mode, name.span, None);
                s.children = ports.iter().map(port).collect();
                if let (Some(a), Some(b)) = (s.children.first(), s.children.last()) {
                    s.span = s.span.to(a.span).to(b.span);
                }
                Some(s)
            }
            IfaceEntry::Error => None,
        })
        .collect()
}

fn body(items: &[SysItem], out: &mut Vec<Symbol>) {
    for it in items {
        match &it.kind {
            SysItemKind::Param { name, .. } => out.push(leaf(name, DefKind::Param, it.span, None)),
            SysItemKind::State { name, .. } => out.push(leaf(name, DefKind::State, it.span, None)),
            SysItemKind::Let { name, .. } => out.push(leaf(name, DefKind::Let, it.span, None)),
            SysItemKind::Box { name, system, .. } => {
                let sys: Vec<&str> = system.iter().map(|i| i.name.as_str()).collect();
                out.push(leaf(name, DefKind::Box, it.span, Some(sys.join("."))));
            }
            SysItemKind::For { body: inner, .. } => body(inner, out),
            _ => {}
        }
    }
}

/// The outline of a parsed file.
pub fn outline(file: &File) -> Vec<Symbol> {
    let mut out = Vec::new();
    for item in &file.items {
        let (name, kind, children, detail) = match &item.kind {
            ItemKind::Const(c) => (&c.name, DefKind::Const, Vec::new(), None),
            ItemKind::TypeAlias(t) => (&t.name, DefKind::Type, Vec::new(), None),
            ItemKind::Enum(e) => (
                &e.name,
                DefKind::Enum,
                e.variants
                    .iter()
                    .map(|v| leaf(v, DefKind::Variant, v.span, None))
                    .collect(),
                None,
            ),
            ItemKind::Fn(f) => (&f.name, DefKind::Fn, Vec::new(), None),
            ItemKind::Interface(i) => (&i.name, DefKind::Interface, ports(&i.poly), None),
            ItemKind::System(s) => {
                let mut children = ports(&s.iface.poly);
                body(&s.body, &mut children);
                (&s.name, DefKind::System, children, None)
            }
            ItemKind::Lens(l) => (&l.name, DefKind::Lens, Vec::new(), None),
            ItemKind::Run(r) => (
                &r.system,
                DefKind::System,
                Vec::new(),
                Some("run".to_string()),
            ),
            ItemKind::Use(_) | ItemKind::Error => continue,
        };
        let mut s = leaf(name, kind, item.span, detail);
        s.children = children;
        if let ItemKind::Run(_) = item.kind {
            s.name = format!("run {}", s.name);
        }
        out.push(s);
    }
    out
}
