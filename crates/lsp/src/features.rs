//! The answers to position requests: hover, definition, references, completion, outline
//! and rename. Each takes an [`Analysis`] of the document and LSP positions.

use crate::analysis::Analysis;
use crate::index::{Def, DefKind, Symbol};
use dyn_check::modules::Stdlib;
use lsp_types::{
    CompletionItem, CompletionItemKind, DocumentSymbol, Hover, HoverContents, Location,
    MarkupContent, MarkupKind, Position, Range, SymbolKind, TextEdit, Uri, WorkspaceEdit,
};
use std::collections::HashMap;

/// The keywords of the language (for completion and rename checks).
pub const KEYWORDS: &[&str] = &[
    "use",
    "const",
    "type",
    "enum",
    "fn",
    "interface",
    "system",
    "lens",
    "learner",
    "run",
    "out",
    "in",
    "mode",
    "param",
    "state",
    "let",
    "next",
    "der",
    "when",
    "box",
    "for",
    "match",
    "if",
    "then",
    "else",
    "true",
    "false",
];

/// Hover text for the name at `pos`: its kind, type, polynomial and normal form, doc.
pub fn hover(a: &Analysis, pos: Position) -> Option<Hover> {
    let off = a.offset(pos);
    let (span, d) = a.index.at(a.root_file(), off)?;
    let def = &a.index.defs[d];
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: describe(def),
        }),
        range: Some(a.range(span)),
    })
}

/// The Markdown description of a definition.
pub fn describe(def: &Def) -> String {
    let head = match (&def.detail, &def.ty) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) if def.kind == DefKind::Box => format!("box {}: {t}", def.name),
        (None, Some(t)) => format!("{} {}: {t}", def.kind.word(), def.name),
        (None, None) => format!("{} {}", def.kind.word(), def.name),
    };
    let (code, rest) = match head.split_once("\n\n") {
        Some((c, r)) => (c.to_string(), Some(r.to_string())),
        None => (head, None),
    };
    let mut out = format!("```dyn\n{code}\n```");
    if let Some(r) = rest {
        out.push_str(&format!("\n\n{r}"));
    }
    if let Some(doc) = &def.doc {
        out.push_str(&format!("\n\n---\n\n{doc}"));
    }
    out
}

/// Where the name at `pos` is defined.
pub fn definition(a: &Analysis, doc: &Uri, pos: Position) -> Option<Location> {
    let (_, d) = a.index.at(a.root_file(), a.offset(pos))?;
    let def = &a.index.defs[d];
    a.uri_of(def.span.file)?;
    Some(a.location(doc, def.span))
}

/// Every occurrence of the name at `pos` (with or without its definition).
pub fn references(a: &Analysis, doc: &Uri, pos: Position, with_decl: bool) -> Vec<Location> {
    let Some((_, d)) = a.index.at(a.root_file(), a.offset(pos)) else {
        return Vec::new();
    };
    let def_span = a.index.defs[d].span;
    a.index
        .occurrences(d)
        .into_iter()
        .filter(|s| with_decl || *s != def_span)
        .filter(|s| a.uri_of(s.file).is_some())
        .map(|s| a.location(doc, s))
        .collect()
}

/// The range of the name at `pos`, when it can be renamed.
pub fn prepare_rename(a: &Analysis, pos: Position) -> Result<Range, String> {
    let (span, d) = a
        .index
        .at(a.root_file(), a.offset(pos))
        .ok_or("no name here")?;
    renamable(a, d)?;
    Ok(a.range(span))
}

fn renamable(a: &Analysis, d: usize) -> Result<(), String> {
    let def = &a.index.defs[d];
    if def.kind == DefKind::Module {
        return Err("modules are renamed by renaming their file".into());
    }
    if def.span.file != a.root_file() {
        return Err(format!("`{}` is defined in another file", def.name));
    }
    Ok(())
}

/// The edits that rename the name at `pos` (defined in this document) to `new_name`.
// `Uri` hashes by its text; clippy only sees a cell inside it.
#[allow(clippy::mutable_key_type)]
pub fn rename(
    a: &Analysis,
    doc: &Uri,
    pos: Position,
    new_name: &str,
) -> Result<WorkspaceEdit, String> {
    let valid = new_name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && new_name.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !valid || KEYWORDS.contains(&new_name) {
        return Err(format!("`{new_name}` is not a valid name"));
    }
    let (_, d) = a
        .index
        .at(a.root_file(), a.offset(pos))
        .ok_or("no name here")?;
    renamable(a, d)?;
    let old = a.index.defs[d]
        .name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let root = a.root_file();
    let edits: Vec<TextEdit> = a
        .index
        .occurrences(d)
        .into_iter()
        .filter(|s| s.file == root && a.checked.sources.snippet(*s) == old)
        .map(|s| TextEdit::new(a.range(s), new_name.to_string()))
        .collect();
    let mut changes = HashMap::new();
    changes.insert(doc.clone(), edits);
    Ok(WorkspaceEdit {
        changes: Some(changes),
        ..Default::default()
    })
}

fn symbol_kind(k: DefKind) -> SymbolKind {
    match k {
        DefKind::Module => SymbolKind::MODULE,
        DefKind::Const => SymbolKind::CONSTANT,
        DefKind::Type => SymbolKind::STRUCT,
        DefKind::Enum => SymbolKind::ENUM,
        DefKind::Variant | DefKind::Mode => SymbolKind::ENUM_MEMBER,
        DefKind::Fn | DefKind::Lens => SymbolKind::FUNCTION,
        DefKind::FnParam | DefKind::SizeParam | DefKind::LoopVar => SymbolKind::VARIABLE,
        DefKind::Interface => SymbolKind::INTERFACE,
        DefKind::InPort | DefKind::OutPort | DefKind::Factor => SymbolKind::PROPERTY,
        DefKind::System => SymbolKind::CLASS,
        DefKind::Param => SymbolKind::CONSTANT,
        DefKind::State | DefKind::Let => SymbolKind::VARIABLE,
        DefKind::Box => SymbolKind::OBJECT,
    }
}

fn completion_kind(k: DefKind) -> CompletionItemKind {
    match k {
        DefKind::Module => CompletionItemKind::MODULE,
        DefKind::Const | DefKind::Param => CompletionItemKind::CONSTANT,
        DefKind::Type => CompletionItemKind::STRUCT,
        DefKind::Enum => CompletionItemKind::ENUM,
        DefKind::Variant | DefKind::Mode => CompletionItemKind::ENUM_MEMBER,
        DefKind::Fn | DefKind::Lens => CompletionItemKind::FUNCTION,
        DefKind::Interface => CompletionItemKind::INTERFACE,
        DefKind::InPort | DefKind::OutPort | DefKind::Factor => CompletionItemKind::FIELD,
        DefKind::System => CompletionItemKind::CLASS,
        DefKind::Box => CompletionItemKind::VARIABLE,
        _ => CompletionItemKind::VARIABLE,
    }
}

/// The outline of the document.
pub fn symbols(a: &Analysis) -> Vec<DocumentSymbol> {
    a.index.symbols.iter().map(|s| symbol(a, s)).collect()
}

#[allow(deprecated)] // `DocumentSymbol::deprecated` must still be written.
fn symbol(a: &Analysis, s: &Symbol) -> DocumentSymbol {
    DocumentSymbol {
        name: s.name.clone(),
        detail: s.detail.clone(),
        kind: symbol_kind(s.kind),
        tags: None,
        deprecated: None,
        range: a.range(s.span),
        selection_range: a.range(s.selection),
        children: (!s.children.is_empty())
            .then(|| s.children.iter().map(|c| symbol(a, c)).collect()),
    }
}

fn item(label: &str, def: Option<&Def>, kind: CompletionItemKind) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: def.and_then(|d| d.ty.clone().or_else(|| d.detail.clone())),
        documentation: def
            .and_then(|d| d.doc.clone())
            .map(lsp_types::Documentation::String),
        ..Default::default()
    }
}

/// Completion at `pos` of `text` (the document as the editor has it now). `stable` is an
/// earlier analysis without syntax errors, used when the current one lost the scope the
/// cursor is in.
pub fn completion(
    a: &Analysis,
    stable: Option<&Analysis>,
    text: &str,
    pos: Position,
    stdlib: &Stdlib,
) -> Vec<CompletionItem> {
    let off = a.offset(pos).min(text.len());
    let before = &text[..off];
    let line = before.rsplit('\n').next().unwrap_or_default();
    let word_start = line
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    let head = &line[..word_start];
    if let Some(rest) = head.trim_start().strip_prefix("use ") {
        return use_completion(a, rest.trim(), stdlib);
    }
    if let Some(chain) = head.strip_suffix('.') {
        let name = base_name(chain);
        let mut out = member_completion(a, off, &name);
        if out.is_empty()
            && let Some(s) = stable
        {
            out = member_completion(s, off.min(s.text(s.root_file()).len()), &name);
        }
        return out;
    }
    let mut out: Vec<CompletionItem> = Vec::new();
    let mut visible: Vec<(String, &Def)> = a
        .index
        .visible(a.root_file(), off)
        .into_iter()
        .map(|(n, d)| (n, &a.index.defs[d]))
        .collect();
    let in_scope = a
        .index
        .scopes
        .iter()
        .any(|s| s.span.lo as usize <= off && off <= s.span.hi as usize);
    if !in_scope && let Some(s) = stable {
        let off = off.min(s.text(s.root_file()).len());
        visible.extend(
            s.index
                .visible(s.root_file(), off)
                .into_iter()
                .map(|(n, d)| (n, &s.index.defs[d])),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (n, def) in &visible {
        if n.contains('.') || !seen.insert(n.clone()) {
            continue;
        }
        out.push(item(n, Some(def), completion_kind(def.kind)));
    }
    for b in dyn_check::expr::BUILTINS
        .iter()
        .chain(&dyn_check::flow::NAMES)
    {
        if seen.insert(b.to_string()) {
            out.push(item(b, None, CompletionItemKind::FUNCTION));
        }
    }
    for k in KEYWORDS.iter().chain(["Real", "Int", "Bool"].iter()) {
        if seen.insert(k.to_string()) {
            out.push(item(k, None, CompletionItemKind::KEYWORD));
        }
    }
    out
}

/// The last name of a chain like `ring.cell[i]` → `cell`; `b` → `b`.
fn base_name(chain: &str) -> String {
    let mut s = chain.trim_end();
    // Drop a trailing index `[…]`.
    if s.ends_with(']') {
        let mut depth = 0i32;
        for (i, c) in s.char_indices().rev() {
            match c {
                ']' => depth += 1,
                '[' => {
                    depth -= 1;
                    if depth == 0 {
                        s = &s[..i];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    s.chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

fn member_completion(a: &Analysis, off: usize, name: &str) -> Vec<CompletionItem> {
    let visible = a.index.visible(a.root_file(), off);
    let mut out = Vec::new();
    if let Some((_, d)) = visible.iter().find(|(n, _)| n == name) {
        for &m in &a.index.defs[*d].members {
            let def = &a.index.defs[m];
            let label = def.name.rsplit('.').next().unwrap_or(&def.name);
            out.push(item(label, Some(def), completion_kind(def.kind)));
        }
    }
    // Named factors and lens sides: `a.pop`, `src.flow`.
    let prefix = format!("{name}.");
    for (n, d) in &visible {
        if let Some(rest) = n.strip_prefix(&prefix)
            && !out.iter().any(|c| c.label == rest)
        {
            let def = &a.index.defs[*d];
            out.push(item(rest, Some(def), completion_kind(def.kind)));
        }
    }
    out
}

fn use_completion(a: &Analysis, path: &str, stdlib: &Stdlib) -> Vec<CompletionItem> {
    let module = |n: &str| item(n, None, CompletionItemKind::MODULE);
    match path {
        "" => vec![module("std"), module("lib")],
        "std." => stdlib_modules(stdlib).iter().map(|n| module(n)).collect(),
        "lib." => {
            let dir = a
                .checked
                .modules
                .first()
                .and_then(|m| m.dir.clone())
                .map(|d| d.join("lib"));
            let mut names: Vec<String> = dir
                .and_then(|d| std::fs::read_dir(d).ok())
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let p = e.path();
                    dyn_stem(&p)
                })
                .collect();
            names.sort();
            names.iter().map(|n| module(n)).collect()
        }
        _ => {
            // `use std.neurons.`: the items of a loaded module.
            let modname = path.trim_end_matches('.');
            let Some(m) = a.checked.modules.iter().find(|m| m.name == modname) else {
                return Vec::new();
            };
            let mut out = vec![item("*", None, CompletionItemKind::KEYWORD)];
            for it in &m.ast.items {
                if let Some(n) = dyn_check::checker::Checker::item_name(it) {
                    out.push(item(&n.name, None, CompletionItemKind::REFERENCE));
                }
            }
            out
        }
    }
}

/// The module names of the standard library (`neurons` for `std.neurons`).
pub fn stdlib_modules(stdlib: &Stdlib) -> Vec<String> {
    let mut names: Vec<String> = match stdlib {
        Stdlib::Embedded(files) => files.iter().map(|(n, _)| n.to_string()).collect(),
        Stdlib::Dir(d) => std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                dyn_stem(&p)
            })
            .collect(),
    };
    names.sort();
    names.dedup();
    names
}

/// The file stem of a `.dyn` path.
fn dyn_stem(p: &std::path::Path) -> Option<String> {
    (p.extension()? == "dyn").then_some(())?;
    Some(p.file_stem()?.to_string_lossy().into_owned())
}
