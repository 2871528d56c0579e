//! Tab completion: commands, keywords, names in scope, built-ins, stdlib modules and their
//! items after `use std.`, and the ports of a box after `box.`.

use crate::session::Session;
use dyn_check::Checked;
use dyn_check::checker::{Binding, Checker};
use dyn_check::modules::Stdlib;
use dyn_syntax::ast::ItemKind;
use dyn_syntax::lexer::{Token, lex};
use std::collections::{BTreeMap, BTreeSet};

/// The REPL's commands, for completion and `:help`.
pub const COMMANDS: &[&str] = &[
    ":help", ":load", ":reload", ":type", ":poly", ":check", ":ir", ":run", ":plot", ":params",
    ":set", ":save", ":quit",
];

/// The language's keywords.
pub const KEYWORDS: &[&str] = &[
    "use",
    "const",
    "type",
    "enum",
    "fn",
    "interface",
    "system",
    "lens",
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

/// Built-in types; the built-in functions are the checker's (`dyn_check::expr::BUILTINS`)
/// and the forms unrolled before checking (`dyn_check::flow::NAMES`).
pub const TYPES: &[&str] = &["Real", "Int", "Bool"];

/// What completion knows about the session, refreshed after every definition.
#[derive(Debug, Default, Clone)]
pub struct Index {
    /// Names in scope (own definitions and imports).
    pub names: BTreeSet<String>,
    /// The ports of every system in scope.
    pub ports: BTreeMap<String, Vec<String>>,
    /// The stdlib's modules with their item names.
    pub stdlib: BTreeMap<String, Vec<String>>,
    /// The text of every definition (to find `box name: System` typed earlier).
    pub texts: Vec<String>,
}

fn item_names(text: &str) -> Vec<String> {
    let (ast, _) = dyn_syntax::parse(dyn_diag::FileId(0), text);
    ast.items
        .iter()
        .filter_map(|i| Checker::item_name(i).map(|n| n.name.clone()))
        .collect()
}

/// Every stdlib module with its items.
pub fn stdlib_modules(stdlib: &Stdlib) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    match stdlib {
        Stdlib::Dir(d) => {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "dyn")
                        && let (Some(stem), Ok(text)) = (p.file_stem(), std::fs::read_to_string(&p))
                    {
                        out.insert(stem.to_string_lossy().into_owned(), item_names(&text));
                    }
                }
            }
        }
        Stdlib::Embedded(files) => {
            for (n, t) in files.iter() {
                out.insert(n.to_string(), item_names(t));
            }
        }
    }
    out
}

impl Index {
    /// Rebuilds the index from the session and its last full check.
    pub fn refresh(&mut self, session: &Session, checked: &Checked) {
        if self.stdlib.is_empty() {
            self.stdlib = stdlib_modules(&session.stdlib);
        }
        self.names = session
            .entries
            .iter()
            .filter_map(|e| e.name.clone())
            .collect();
        self.texts = session
            .entries
            .iter()
            .map(|e| session.text(e).to_string())
            .collect();
        self.ports.clear();
        let Some(scope) = checked.scopes.first() else {
            return;
        };
        let mut cx = Checker::new(&checked.modules);
        for (name, b) in scope {
            if name.starts_with("__") {
                continue;
            }
            self.names.insert(name.clone());
            let Binding::Item(id) = *b else { continue };
            let Some(item) = checked
                .modules
                .get(id.module)
                .and_then(|m| m.ast.items.get(id.index))
            else {
                continue;
            };
            let ItemKind::System(s) = &item.kind else {
                continue;
            };
            if !s.sizes.is_empty() {
                continue;
            }
            if let Some(sig) = cx.system_sig(id, vec![], s.name.span) {
                let mut ports: Vec<String> = Vec::new();
                for m in &sig.iface.modes {
                    for p in m.outs.iter().chain(&m.ins) {
                        if !ports.contains(&p.name) {
                            ports.push(p.name.clone());
                        }
                    }
                }
                self.ports.insert(name.clone(), ports);
            }
        }
    }

    /// The system of box `b` declared in `buffer` or in an earlier definition.
    fn box_system(&self, buffer: &str, b: &str) -> Option<String> {
        std::iter::once(buffer)
            .chain(self.texts.iter().map(String::as_str))
            .find_map(|t| box_in(t, b))
    }

    /// Completions of the word before `pos`: its start and the candidates.
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let mut pos = pos.min(line.len());
        while !line.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .last()
            .map(|(i, _)| i)
            .unwrap_or(pos);
        let word = &before[start..];
        let pick = |cands: &mut dyn Iterator<Item = String>| -> Vec<String> {
            let mut v: Vec<String> = cands.filter(|c| c.starts_with(word)).collect();
            v.sort();
            v.dedup();
            v
        };
        let head = &before[..start];
        // Commands at the start of a line.
        let typed = before.trim_start();
        if typed.starts_with(':') && !typed.contains(char::is_whitespace) {
            let s = before.len() - typed.len();
            let v: Vec<String> = COMMANDS
                .iter()
                .filter(|c| c.starts_with(typed))
                .map(|c| c.to_string())
                .collect();
            return (s, v);
        }
        if let Some(q) = head.strip_suffix('.') {
            let path = dotted_tail(q);
            let line_start = q[..q.len() - path.len()].rsplit('\n').next().unwrap_or("");
            if line_start.trim_end().ends_with("use") || line_start.trim() == ":load" {
                let parts: Vec<&str> = path.split('.').collect();
                return match parts.as_slice() {
                    ["std"] => (start, pick(&mut self.stdlib.keys().cloned())),
                    ["std", m] => {
                        let items = self.stdlib.get(*m).cloned().unwrap_or_default();
                        (start, pick(&mut items.into_iter().chain(["*".to_string()])))
                    }
                    _ => (start, vec![]),
                };
            }
            let boxname = path.rsplit('.').next().unwrap_or("");
            let boxname = boxname.split('[').next().unwrap_or("");
            if let Some(sys) = self.box_system(line, boxname)
                && let Some(ports) = self.ports.get(&sys)
            {
                return (start, pick(&mut ports.iter().cloned()));
            }
            return (start, vec![]);
        }
        if head.trim_end().ends_with("use") && head.ends_with(' ') {
            return (
                start,
                pick(&mut ["std".to_string(), "lib".to_string()].into_iter()),
            );
        }
        let mut all = KEYWORDS
            .iter()
            .chain(TYPES)
            .chain(dyn_check::expr::BUILTINS)
            .chain(&dyn_check::flow::NAMES)
            .map(|s| s.to_string())
            .chain(self.names.iter().cloned());
        (start, pick(&mut all))
    }
}

/// The dotted path (`std.neurons`, `cell[3]`) that ends a text.
fn dotted_tail(s: &str) -> &str {
    let mut depth = 0i32;
    let mut start = s.len();
    for (i, c) in s.char_indices().rev() {
        match c {
            ']' => depth += 1,
            '[' => depth -= 1,
            c if depth > 0 || c.is_alphanumeric() || c == '_' || c == '.' => {}
            _ => break,
        }
        start = i;
    }
    &s[start..]
}

/// The system named by `box b: System` (or `box b[N]: System`) in a text.
fn box_in(text: &str, b: &str) -> Option<String> {
    let toks: Vec<Token> = lex(text).tokens.into_iter().map(|(_, t, _)| t).collect();
    let mut found = None;
    for i in 0..toks.len() {
        if toks[i] != Token::Box || toks.get(i + 1) != Some(&Token::Ident(b.to_string())) {
            continue;
        }
        let mut j = i + 2;
        if toks.get(j) == Some(&Token::LBracket) {
            while j < toks.len() && toks[j] != Token::RBracket {
                j += 1;
            }
            j += 1;
        }
        if toks.get(j) != Some(&Token::Colon) {
            continue;
        }
        j += 1;
        while let Some(Token::Ident(s)) = toks.get(j) {
            found = Some(s.clone());
            if toks.get(j + 1) == Some(&Token::Dot) {
                j += 2;
            } else {
                break;
            }
        }
    }
    found
}
