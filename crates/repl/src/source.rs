//! Generated session text and the mapping of its spans back to what the user typed.
//!
//! The checker reads one root text. The session builds it from pieces: definitions taken
//! from the user's inputs (each input is its own file, `<repl:3>` or a loaded path) and a
//! little generated text (the wrappers that evaluate an expression). Every diagnostic in the
//! root text is then moved back into the input it came from, so reports point at what was
//! typed, rendered exactly as `dyn check` renders them.

use dyn_diag::{Diagnostic, FileId, Label, SourceMap, Span};
use std::collections::HashMap;
use std::path::PathBuf;

/// One thing the user gave the session: a typed input or a loaded file.
#[derive(Debug, Clone)]
pub struct Input {
    /// The name shown in diagnostics: `<repl:3>` or the path as given.
    pub name: String,
    /// The path of a loaded file.
    pub path: Option<PathBuf>,
    /// The text.
    pub text: String,
}

/// A stretch of the root text copied from an input.
#[derive(Debug, Clone, Copy)]
struct Piece {
    root_lo: usize,
    root_hi: usize,
    input: usize,
    lo: usize,
}

/// A root text under construction, remembering where each piece came from.
#[derive(Debug, Default)]
pub struct Assembly {
    /// The text given to the checker.
    pub text: String,
    pieces: Vec<Piece>,
    /// Where generated text is reported: an input and a byte range in it.
    anchor: Option<(usize, usize, usize)>,
}

impl Assembly {
    /// An empty text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends generated text.
    pub fn raw(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Appends `inputs[input].text[lo..hi]`, remembering where it came from.
    pub fn piece(&mut self, inputs: &[Input], input: usize, lo: usize, hi: usize) {
        let Some(src) = inputs.get(input).and_then(|i| i.text.get(lo..hi)) else {
            return;
        };
        let root_lo = self.text.len();
        self.text.push_str(src);
        self.pieces.push(Piece {
            root_lo,
            root_hi: self.text.len(),
            input,
            lo,
        });
    }

    /// Reports errors in generated text at this range of an input (the expression typed).
    pub fn anchor(&mut self, input: usize, lo: usize, hi: usize) {
        self.anchor = Some((input, lo, hi));
    }

    /// The byte offset in the root text where the next piece starts.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Where a root byte range came from: (input, lo, hi), if it lies in a piece.
    fn locate(&self, lo: usize, hi: usize) -> Option<(usize, usize, usize)> {
        let p = self
            .pieces
            .iter()
            .find(|p| p.root_lo <= lo && lo <= p.root_hi)?;
        let hi = hi.clamp(lo, p.root_hi);
        Some((p.input, p.lo + (lo - p.root_lo), p.lo + (hi - p.root_lo)))
    }

    /// The input a root byte offset belongs to, and the offset in it.
    pub fn origin(&self, at: usize) -> Option<(usize, usize)> {
        self.locate(at, at).map(|(i, lo, _)| (i, lo))
    }
}

/// A source map for rendering: the checker's files plus the user's inputs, and the
/// diagnostics moved into them.
pub struct Mapped {
    /// Files to render against.
    pub sources: SourceMap,
    /// The diagnostics, with spans in the inputs.
    pub diags: Vec<Diagnostic>,
    /// For each diagnostic, the input its primary span lies in (if any).
    pub origin: Vec<Option<usize>>,
}

/// Moves diagnostics whose spans lie in `root` (the assembled text) or in `extra` files
/// (text such as `<poly>` built as `prefix + input range`) into the user's inputs.
pub struct Mapper<'a> {
    inputs: &'a [Input],
    asm: &'a Assembly,
    root: FileId,
    extra: Vec<(FileId, usize, usize, usize)>,
    sources: SourceMap,
    files: HashMap<usize, FileId>,
}

impl<'a> Mapper<'a> {
    /// A mapper for a check of `asm` whose root file is `root` in `sources`.
    pub fn new(inputs: &'a [Input], asm: &'a Assembly, sources: &SourceMap, root: FileId) -> Self {
        Mapper {
            inputs,
            asm,
            root,
            extra: Vec::new(),
            sources: sources.clone(),
            files: HashMap::new(),
        }
    }

    /// Spans in `file` at byte `b >= prefix` map to `input` at `lo + b - prefix`.
    pub fn extra(&mut self, file: FileId, prefix: usize, input: usize, lo: usize) {
        self.extra.push((file, prefix, input, lo));
    }

    fn file_of(&mut self, input: usize) -> FileId {
        if let Some(f) = self.files.get(&input) {
            return *f;
        }
        let i = &self.inputs[input];
        let f = self
            .sources
            .add(i.name.clone(), i.path.clone(), i.text.clone());
        self.files.insert(input, f);
        f
    }

    fn span(&mut self, s: Span) -> (Span, Option<usize>) {
        let found = if s.file == self.root {
            self.asm
                .locate(s.lo as usize, s.hi as usize)
                .or(self.asm.anchor)
        } else if let Some(&(_, prefix, input, lo)) = self.extra.iter().find(|e| e.0 == s.file) {
            let a = (s.lo as usize).saturating_sub(prefix);
            let b = (s.hi as usize).saturating_sub(prefix);
            let len = self.inputs[input].text.len();
            Some((input, (lo + a).min(len), (lo + b).min(len)))
        } else {
            None
        };
        match found {
            Some((input, lo, hi)) => (Span::new(self.file_of(input), lo, hi), Some(input)),
            None => (s, None),
        }
    }

    /// Maps every span of every diagnostic.
    pub fn map(mut self, diags: Vec<Diagnostic>) -> Mapped {
        let mut out = Vec::with_capacity(diags.len());
        let mut origin = Vec::with_capacity(diags.len());
        for mut d in diags {
            let (s, o) = self.span(d.primary.span);
            d.primary.span = s;
            d.secondary = d
                .secondary
                .into_iter()
                .map(|l| Label {
                    span: self.span(l.span).0,
                    message: l.message,
                })
                .collect();
            out.push(d);
            origin.push(o);
        }
        Mapped {
            sources: self.sources,
            diags: out,
            origin,
        }
    }
}
