//! The session: an ordered list of definitions kept as source text, keyed by name.
//!
//! A definition that names an existing one replaces it in place; the whole session is then
//! re-checked, and definitions that checked before but fail now are listed. A definition
//! with errors of its own is refused and the session is left as it was.

use crate::complete::Index;
use crate::source::{Assembly, Input, Mapped, Mapper};
use dyn_check::Checked;
use dyn_check::checker::Checker;
use dyn_check::modules::Stdlib;
use dyn_diag::{Diagnostic, FileId, SourceMap};
use dyn_syntax::ast::ItemKind;
use dyn_syntax::lexer::{Token, lex};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Where a command writes: results to `out`, diagnostics and errors to `err`.
pub struct Io<'a> {
    /// Results.
    pub out: &'a mut dyn Write,
    /// Diagnostics and error messages.
    pub err: &'a mut dyn Write,
}

/// What became of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It worked.
    Ok,
    /// It failed; the session goes on (a script stops).
    Failed,
    /// `:quit`.
    Quit,
}

/// One top-level definition of the session.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What identifies it for replacement: its name, `use PATH` or `run SYSTEM`.
    pub key: String,
    /// The defined name (none for `use` and `run`).
    pub name: Option<String>,
    /// `system`, `interface`, `lens`, `fn`, `const`, `type`, `enum`, `use` or `run`.
    pub kind: &'static str,
    /// The input holding its text.
    pub input: usize,
    /// Byte range of the text in the input (with its doc comment).
    pub lo: usize,
    /// End of the range.
    pub hi: usize,
    /// The names its text mentions (for dependencies).
    pub idents: HashSet<String>,
}

/// The state of one REPL session.
pub struct Session {
    /// Everything typed or loaded, in order.
    pub inputs: Vec<Input>,
    /// The definitions, in order.
    pub entries: Vec<Entry>,
    /// Where `use std.…` reads from.
    pub stdlib: Stdlib,
    /// Param overrides from `:set`, applied to every `:run` where the path exists.
    pub overrides: Vec<(String, f64)>,
    /// Files given to `:load`, for `:reload`.
    pub loaded: Vec<PathBuf>,
    /// Colour diagnostics and results.
    pub color: bool,
    /// The trace of the last `:run` (for `:plot`).
    pub last_trace: Option<crate::chart::Trace>,
    /// Set by Ctrl-C while a `:run` is going.
    pub interrupt: Arc<AtomicBool>,
    /// Names and ports for tab completion, refreshed after each definition.
    pub index: Rc<RefCell<Index>>,
    /// On a terminal: a `:run` says that Ctrl-C stops it.
    pub interactive: bool,
    broken: BTreeSet<String>,
    typed: usize,
}

/// The keyword that starts an item of this kind.
fn kind_word(k: &ItemKind) -> &'static str {
    match k {
        ItemKind::Use(_) => "use",
        ItemKind::Const(_) => "const",
        ItemKind::TypeAlias(_) => "type",
        ItemKind::Enum(_) => "enum",
        ItemKind::Fn(_) => "fn",
        ItemKind::Interface(_) => "interface",
        ItemKind::System(_) => "system",
        ItemKind::Lens(_) => "lens",
        ItemKind::Run(_) => "run",
        ItemKind::Error => "item",
    }
}

/// Every identifier in a text.
pub fn idents(text: &str) -> HashSet<String> {
    lex(text)
        .tokens
        .into_iter()
        .filter_map(|(_, t, _)| match t {
            Token::Ident(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Start of the `///` lines directly above byte `lo`.
fn doc_start(text: &str, lo: usize) -> usize {
    let mut start = lo.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut cur = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    if text[cur..start].trim().is_empty() {
        start = cur;
    }
    while cur > 0 {
        let prev = text[..cur - 1].rfind('\n').map(|i| i + 1).unwrap_or(0);
        if text[prev..cur].trim_start().starts_with("///") {
            start = prev;
            cur = prev;
        } else {
            break;
        }
    }
    start
}

impl Session {
    /// A new, empty session.
    pub fn new(stdlib: Stdlib, color: bool) -> Self {
        Session {
            inputs: Vec::new(),
            entries: Vec::new(),
            stdlib,
            overrides: Vec::new(),
            loaded: Vec::new(),
            color,
            last_trace: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            index: Rc::new(RefCell::new(Index::default())),
            interactive: false,
            broken: BTreeSet::new(),
            typed: 0,
        }
    }

    /// Records a typed input as `<repl:N>` and returns its index.
    pub fn add_typed(&mut self, text: &str) -> usize {
        self.typed += 1;
        self.inputs.push(Input {
            name: format!("<repl:{}>", self.typed),
            path: None,
            text: text.to_string(),
        });
        self.inputs.len() - 1
    }

    /// The text of an entry.
    pub fn text(&self, e: &Entry) -> &str {
        self.inputs[e.input].text.get(e.lo..e.hi).unwrap_or("")
    }

    /// The entry defining `name`.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.name.as_deref() == Some(name))
    }

    /// The entries `names` need: those names' definitions and everything they mention,
    /// transitively, plus every `use` (run blocks are left out).
    pub fn closure<'n>(&self, names: impl IntoIterator<Item = &'n String>) -> Vec<usize> {
        let mut want: Vec<String> = names.into_iter().cloned().collect();
        let mut seen: HashSet<String> = HashSet::new();
        let mut keep: BTreeSet<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == "use")
            .map(|(i, _)| i)
            .collect();
        while let Some(n) = want.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            for (i, e) in self.entries.iter().enumerate() {
                if e.name.as_deref() == Some(n.as_str()) && keep.insert(i) {
                    want.extend(e.idents.iter().cloned());
                }
            }
        }
        keep.into_iter().collect()
    }

    /// The root text of some entries, with the root range of each.
    pub fn assemble(&self, entries: &[Entry], which: &[usize]) -> (Assembly, Vec<(usize, usize)>) {
        let mut asm = Assembly::new();
        let mut ranges = Vec::new();
        for &i in which {
            let e = &entries[i];
            let lo = asm.len();
            asm.piece(&self.inputs, e.input, e.lo, e.hi);
            ranges.push((lo, asm.len()));
            asm.raw("\n\n");
        }
        (asm, ranges)
    }

    /// The path given to the checker for the root (its directory is where `use lib.X` looks).
    fn root_path(&self) -> Option<PathBuf> {
        match self.loaded.last() {
            Some(p) => Some(p.clone()),
            None => std::env::current_dir().ok().map(|d| d.join("repl.dyn")),
        }
    }

    /// Checks an assembled text.
    pub fn check(&self, asm: &Assembly) -> Checked {
        dyn_check::check_source(
            "<session>",
            self.root_path(),
            asm.text.clone(),
            &self.stdlib,
        )
    }

    /// Moves a check's diagnostics into the inputs.
    pub fn map(&self, asm: &Assembly, checked: &Checked, diags: Vec<Diagnostic>) -> Mapped {
        let root = checked.modules.first().map(|m| m.file).unwrap_or(FileId(0));
        Mapper::new(&self.inputs, asm, &checked.sources, root).map(diags)
    }

    /// Renders diagnostics as `dyn check` does.
    pub fn render(&self, sources: &SourceMap, diags: &[Diagnostic]) -> String {
        dyn_diag::render_all(sources, diags, self.color)
    }

    /// Parses input `input` (its whole text, or a loaded file) into entries; parse errors
    /// are written and give `None`.
    fn parse_entries(&self, input: usize, io: &mut Io) -> Option<Vec<Entry>> {
        let text = &self.inputs[input].text;
        let (ast, diags) = dyn_syntax::parse(FileId(0), text);
        if diags.iter().any(Diagnostic::is_error) {
            let mut map = SourceMap::new();
            let i = &self.inputs[input];
            map.add(i.name.clone(), i.path.clone(), i.text.clone());
            let _ = write!(io.err, "{}", self.render(&map, &diags));
            return None;
        }
        let mut out = Vec::new();
        for item in &ast.items {
            let kind = kind_word(&item.kind);
            let (key, name) = match &item.kind {
                ItemKind::Use(u) => {
                    let p: Vec<&str> = u.path.iter().map(|i| i.name.as_str()).collect();
                    let glob = if u.glob { ".*" } else { "" };
                    (format!("use {}{glob}", p.join(".")), None)
                }
                ItemKind::Run(r) => (format!("run {}", r.system.name), None),
                ItemKind::Error => continue,
                k => match Checker::item_name(item) {
                    Some(n) => (n.name.clone(), Some(n.name.clone())),
                    None => (format!("{} #{}", kind_word(k), out.len()), None),
                },
            };
            let lo = doc_start(text, item.span.lo as usize);
            let hi = (item.span.hi as usize).min(text.len());
            out.push(Entry {
                key,
                name,
                kind,
                input,
                lo,
                hi,
                idents: idents(text.get(lo..hi).unwrap_or("")),
            });
        }
        Some(out)
    }

    /// Adds the definitions of an input (typed, or a loaded file: what an earlier load of
    /// the same file defined is dropped first, so `:reload` forgets removed items). With
    /// `quiet`, the `defined …` lines are not written.
    pub fn define(&mut self, input: usize, io: &mut Io, quiet: bool) -> Status {
        let Some(new) = self.parse_entries(input, io) else {
            return Status::Failed;
        };
        if new.is_empty() {
            let _ = writeln!(io.err, "error: nothing to define");
            return Status::Failed;
        }
        let path = self.inputs[input].path.clone();
        let mut cand: Vec<Entry> = self
            .entries
            .iter()
            .filter(|e| path.is_none() || self.inputs[e.input].path != path)
            .cloned()
            .collect();
        let mut fresh = Vec::new();
        let mut notes = Vec::new();
        for e in new {
            let word = match cand.iter().position(|c| c.key == e.key) {
                Some(i) => {
                    cand[i] = e.clone();
                    fresh.push(i);
                    "redefined"
                }
                None => {
                    cand.push(e.clone());
                    fresh.push(cand.len() - 1);
                    "defined"
                }
            };
            notes.push(match (&e.name, e.kind) {
                (Some(n), k) => format!("{word} {k} {n}"),
                (None, "use") => format!("imported {}", e.key.trim_start_matches("use ")),
                (None, _) => format!("{word} {}", e.key),
            });
        }
        let all: Vec<usize> = (0..cand.len()).collect();
        let (asm, ranges) = self.assemble(&cand, &all);
        let checked = self.check(&asm);
        let root = checked.modules.first().map(|m| m.file);
        // Errors per entry, found by the root range of each diagnostic's primary span.
        let owner = |d: &Diagnostic| -> Option<usize> {
            if Some(d.primary.span.file) != root {
                return None;
            }
            let at = d.primary.span.lo as usize;
            ranges.iter().position(|&(lo, hi)| lo <= at && at <= hi)
        };
        let diags = checked.diagnostics.clone();
        let owners: Vec<Option<usize>> = diags.iter().map(&owner).collect();
        let mapped = self.map(&asm, &checked, diags);
        let own: Vec<Diagnostic> = mapped
            .diags
            .iter()
            .zip(&mapped.origin)
            .filter(|(_, o)| **o == Some(input))
            .map(|(d, _)| d.clone())
            .collect();
        // Errors outside the root (an imported file) belong to the input's `use`s.
        let foreign_errors = mapped
            .diags
            .iter()
            .zip(&owners)
            .any(|(d, o)| d.is_error() && o.is_none())
            && cand.iter().any(|e| e.kind == "use" && e.input == input);
        if own.iter().any(Diagnostic::is_error) || foreign_errors {
            let shown: Vec<Diagnostic> = if foreign_errors {
                mapped
                    .diags
                    .iter()
                    .zip(&owners)
                    .filter(|(d, o)| o.is_none() && d.is_error())
                    .map(|(d, _)| d.clone())
                    .chain(own)
                    .collect()
            } else {
                own
            };
            let _ = write!(io.err, "{}", self.render(&mapped.sources, &shown));
            return Status::Failed;
        }
        let _ = write!(io.err, "{}", self.render(&mapped.sources, &own));
        // Which entries fail now.
        let mut failing: BTreeSet<usize> = BTreeSet::new();
        for (d, o) in mapped.diags.iter().zip(&owners) {
            if d.is_error()
                && let Some(i) = o
            {
                failing.insert(*i);
            }
        }
        let now: BTreeSet<String> = failing.iter().map(|&i| cand[i].key.clone()).collect();
        let newly: Vec<usize> = failing
            .iter()
            .copied()
            .filter(|i| !fresh.contains(i) && !self.broken.contains(&cand[*i].key))
            .collect();
        let fixed: Vec<String> = self
            .broken
            .iter()
            .filter(|k| !now.contains(*k) && cand.iter().any(|c| &c.key == *k))
            .cloned()
            .collect();
        self.entries = cand;
        self.broken = now;
        if !quiet {
            for n in &notes {
                let _ = writeln!(io.out, "{n}");
            }
        }
        if !newly.is_empty() {
            let names: Vec<String> = newly
                .iter()
                .map(|&i| format!("`{}`", self.entries[i].key))
                .collect();
            let _ = writeln!(
                io.err,
                "warning: {} no longer check{}:",
                names.join(", "),
                if names.len() == 1 { "s" } else { "" }
            );
            let theirs: Vec<Diagnostic> = mapped
                .diags
                .iter()
                .zip(&owners)
                .filter(|(d, o)| d.is_error() && o.is_some_and(|i| newly.contains(&i)))
                .map(|(d, _)| d.clone())
                .collect();
            let _ = write!(io.err, "{}", self.render(&mapped.sources, &theirs));
        }
        for k in fixed {
            let _ = writeln!(io.out, "`{k}` checks again");
        }
        self.index.borrow_mut().refresh(self, &checked);
        Status::Ok
    }

    /// `:load FILE`: reads a file and defines its items (replacing same-named ones, and
    /// whatever an earlier load of the same file defined).
    pub fn load(&mut self, path: &str, io: &mut Io) -> Status {
        let p = PathBuf::from(path);
        let text = match std::fs::read(&p) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                let _ = writeln!(io.err, "error: cannot read `{path}`: {e}");
                return Status::Failed;
            }
        };
        self.inputs.push(Input {
            name: path.to_string(),
            path: Some(p.clone()),
            text,
        });
        let input = self.inputs.len() - 1;
        let was = self.loaded.clone();
        if !self.loaded.contains(&p) {
            self.loaded.push(p);
        }
        let st = self.define(input, io, true);
        if st == Status::Ok {
            let n = self.entries.iter().filter(|e| e.input == input).count();
            let _ = writeln!(
                io.out,
                "loaded {path}: {n} definition{}",
                if n == 1 { "" } else { "s" }
            );
        } else {
            self.loaded = was;
        }
        st
    }

    /// `:reload`: loads every loaded file again.
    pub fn reload(&mut self, io: &mut Io) -> Status {
        if self.loaded.is_empty() {
            let _ = writeln!(io.err, "error: no file was loaded (use :load FILE)");
            return Status::Failed;
        }
        let mut st = Status::Ok;
        for p in self.loaded.clone() {
            if self.load(&p.display().to_string(), io) != Status::Ok {
                st = Status::Failed;
            }
        }
        st
    }

    /// `:save FILE`: writes the definitions as a `.dyn` file.
    pub fn save(&self, path: &str, io: &mut Io) -> Status {
        let mut text = String::new();
        for e in &self.entries {
            text.push_str(self.text(e).trim_end());
            text.push_str("\n\n");
        }
        let text = text.trim_end().to_string() + "\n";
        match std::fs::write(path, text) {
            Ok(()) => {
                let n = self.entries.len();
                let _ = writeln!(
                    io.out,
                    "saved {n} definition{} to {path}",
                    if n == 1 { "" } else { "s" }
                );
                Status::Ok
            }
            Err(e) => {
                let _ = writeln!(io.err, "error: cannot write `{path}`: {e}");
                Status::Failed
            }
        }
    }
}
