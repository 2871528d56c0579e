//! What the editor needs to know about names: every definition (with its kind, type, doc
//! comment and members), every use of a name resolved to its definition, the local names
//! of each system, lens and fn (for completion), and the outline of the root file.
//!
//! The index is built after checking, from the checked modules, with a fresh
//! [`dyn_check::checker::Checker`] used only through its public API (scopes, type and
//! interface resolution); the diagnostics that checker produces are discarded, since the
//! real check already reported them. It knows nothing of LSP: spans are byte offsets.

mod env;
mod symbols;
mod walk;

pub use symbols::Symbol;

use dyn_check::Checked;
use dyn_diag::{FileId, Span};
use std::collections::HashMap;

/// What a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefKind {
    /// A module (a file reached by `use`).
    Module,
    /// `const`.
    Const,
    /// `type`.
    Type,
    /// `enum`.
    Enum,
    /// A variant of an enum.
    Variant,
    /// `fn`.
    Fn,
    /// A parameter of a fn.
    FnParam,
    /// A size parameter `<n>`.
    SizeParam,
    /// `interface`.
    Interface,
    /// A mode of an interface.
    Mode,
    /// An `in` port.
    InPort,
    /// An `out` port.
    OutPort,
    /// A named factor `a: P`.
    Factor,
    /// `system`.
    System,
    /// `lens`.
    Lens,
    /// `param` of a system.
    Param,
    /// `state`.
    State,
    /// `let`.
    Let,
    /// `box`.
    Box,
    /// A `for` loop variable.
    LoopVar,
}

impl DefKind {
    /// The word that introduces such a definition in source.
    pub fn word(self) -> &'static str {
        match self {
            DefKind::Module => "module",
            DefKind::Const => "const",
            DefKind::Type => "type",
            DefKind::Enum => "enum",
            DefKind::Variant => "variant",
            DefKind::Fn => "fn",
            DefKind::FnParam => "parameter",
            DefKind::SizeParam => "size parameter",
            DefKind::Interface => "interface",
            DefKind::Mode => "mode",
            DefKind::InPort => "in",
            DefKind::OutPort => "out",
            DefKind::Factor => "factor",
            DefKind::System => "system",
            DefKind::Lens => "lens",
            DefKind::Param => "param",
            DefKind::State => "state",
            DefKind::Let => "let",
            DefKind::Box => "box",
            DefKind::LoopVar => "for",
        }
    }
}

/// One definition.
#[derive(Debug, Clone)]
pub struct Def {
    /// The name as written at the definition.
    pub name: String,
    /// What it is.
    pub kind: DefKind,
    /// The defining name (empty at the start of the file for a module).
    pub span: Span,
    /// The whole definition.
    pub full: Span,
    /// Its type, as text (ports, params, states, lets, consts, boxes).
    pub ty: Option<String>,
    /// Its `///` doc comment.
    pub doc: Option<String>,
    /// More to show on hover: a signature, a polynomial and its normal form.
    pub detail: Option<String>,
    /// What `name.member` can name: a box's or system's ports, a module's items, an
    /// enum's variants, a mode's out ports.
    pub members: Vec<usize>,
}

/// The names visible inside one system, lens or fn body.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The item.
    pub span: Span,
    /// Its local definitions.
    pub defs: Vec<usize>,
}

/// The index of one checked root source.
#[derive(Debug, Default)]
pub struct Index {
    /// Every definition met.
    pub defs: Vec<Def>,
    /// Every use of a name: where, and which definition.
    pub refs: Vec<(Span, usize)>,
    /// Local names per body, in the root file.
    pub scopes: Vec<Scope>,
    /// The root module's scope: names and definitions.
    pub module_scope: Vec<(String, usize)>,
    /// The outline of the root file.
    pub symbols: Vec<Symbol>,
    by_span: HashMap<Span, usize>,
}

impl Index {
    /// Builds the index of a checked source (module 0 is the root).
    pub fn build(checked: &Checked) -> Index {
        let mut ix = walk::Walker::new(checked).run();
        if let Some(root) = checked.modules.first() {
            ix.symbols = symbols::outline(&root.ast);
        }
        ix
    }

    /// The definition whose name is at `span`, if any.
    pub fn def_at_span(&self, span: Span) -> Option<usize> {
        self.by_span.get(&span).copied()
    }

    /// The innermost occurrence of a name (a use or a definition) at byte `offset` of
    /// `file`: its span and its definition. A cursor just after a name still finds it.
    pub fn at(&self, file: FileId, offset: usize) -> Option<(Span, usize)> {
        let offset = offset as u32;
        let hit = |s: &Span| s.file == file && s.lo < s.hi && s.lo <= offset && offset <= s.hi;
        let uses = self.refs.iter().map(|(s, d)| (*s, *d));
        let defs = self.defs.iter().enumerate().map(|(i, d)| (d.span, i));
        uses.chain(defs)
            .filter(|(s, _)| hit(s))
            .min_by_key(|(s, _)| (s.hi - s.lo, u32::MAX - s.lo))
    }

    /// Every occurrence of definition `def`: its name (first, when it has one) and its uses.
    pub fn occurrences(&self, def: usize) -> Vec<Span> {
        let mut out = Vec::new();
        if let Some(d) = self.defs.get(def)
            && d.span.lo < d.span.hi
        {
            out.push(d.span);
        }
        out.extend(self.refs.iter().filter(|(_, d)| *d == def).map(|(s, _)| *s));
        out.sort_by_key(|s| (s.file, s.lo));
        out.dedup();
        out
    }

    /// The names visible at `offset` of `file`: the locals of the enclosing body, then the
    /// module scope.
    pub fn visible(&self, file: FileId, offset: usize) -> Vec<(String, usize)> {
        let offset = offset as u32;
        let mut out: Vec<(String, usize)> = self
            .scopes
            .iter()
            .filter(|s| s.span.file == file && s.span.lo <= offset && offset <= s.span.hi)
            .flat_map(|s| s.defs.iter().map(|&d| (self.defs[d].name.clone(), d)))
            .collect();
        out.extend(self.module_scope.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        out.retain(|(n, _)| seen.insert(n.clone()));
        out
    }

    /// The member of `def` called `name`.
    pub fn member(&self, def: usize, name: &str) -> Option<usize> {
        let d = self.defs.get(def)?;
        d.members
            .iter()
            .copied()
            .find(|&m| self.defs[m].name == name)
    }
}
