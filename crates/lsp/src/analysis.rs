//! One checked document: the checker's result, the index of its names, and the position
//! conversions for every file it read.

use crate::index::Index;
use crate::lines::LineIndex;
use crate::uri;
use dyn_check::Checked;
use dyn_check::modules::Stdlib;
use dyn_diag::{FileId, Span};
use dyn_syntax::ast::ItemKind;
use lsp_types::{Location, Position, Range, Uri};

/// A checked document.
pub struct Analysis {
    /// What the checker found.
    pub checked: Checked,
    /// Names, uses and scopes.
    pub index: Index,
    lines: Vec<LineIndex>,
    uris: Vec<Option<Uri>>,
}

impl Analysis {
    /// Checks `text` as the document `uri` (a `file:` URI gives `use lib.X` its directory).
    pub fn new(doc: &Uri, text: String, stdlib: &Stdlib) -> Analysis {
        let path = uri::to_path(doc);
        let name = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| doc.as_str().to_string());
        let checked = dyn_check::check_source(&name, path, text, stdlib);
        let index = Index::build(&checked);
        let root = checked.modules.first().map(|m| m.file);
        let mut lines = Vec::new();
        let mut uris = Vec::new();
        for (id, f) in checked.sources.files() {
            lines.push(LineIndex::new(&f.text));
            uris.push(if Some(id) == root {
                Some(doc.clone())
            } else {
                f.path.as_deref().and_then(uri::from_path)
            });
        }
        Analysis {
            checked,
            index,
            lines,
            uris,
        }
    }

    /// The root document's file.
    pub fn root_file(&self) -> FileId {
        self.checked
            .modules
            .first()
            .map(|m| m.file)
            .unwrap_or_default()
    }

    /// The text of a file.
    pub fn text(&self, file: FileId) -> &str {
        &self.checked.sources.get(file).text
    }

    /// The URI of a file, when it has one (the embedded stdlib has none).
    pub fn uri_of(&self, file: FileId) -> Option<&Uri> {
        self.uris.get(file.0 as usize)?.as_ref()
    }

    /// The LSP range of a span.
    pub fn range(&self, span: Span) -> Range {
        let Some(ix) = self.lines.get(span.file.0 as usize) else {
            return Range::default();
        };
        ix.range(self.text(span.file), span.lo as usize, span.hi as usize)
    }

    /// The byte offset of a position in the root document.
    pub fn offset(&self, pos: Position) -> usize {
        let root = self.root_file();
        match self.lines.get(root.0 as usize) {
            Some(ix) => ix.offset(self.text(root), pos),
            None => 0,
        }
    }

    /// The location of a span; a file without a URI falls back to the root document.
    pub fn location(&self, root: &Uri, span: Span) -> Location {
        match self.uri_of(span.file) {
            Some(u) => Location::new(u.clone(), self.range(span)),
            None => Location::new(root.clone(), Range::default()),
        }
    }

    /// The `use` item of the root through which a file was loaded (the first `use` when it
    /// was reached indirectly).
    pub fn import_site(&self, file: FileId) -> Option<Span> {
        let root = self.checked.modules.first()?;
        let uses = || {
            root.ast
                .items
                .iter()
                .enumerate()
                .filter(|(_, it)| matches!(it.kind, ItemKind::Use(_)))
        };
        uses()
            .find(|(i, _)| {
                root.imports
                    .get(i)
                    .is_some_and(|&m| self.checked.modules[m].file == file)
            })
            .or_else(|| uses().next())
            .map(|(_, it)| it.span)
    }

    /// True when the root document has a parse error.
    pub fn has_parse_errors(&self) -> bool {
        let root = self.root_file();
        self.checked
            .diagnostics
            .iter()
            .any(|d| d.primary.span.file == root && d.code.id == dyn_diag::codes::PARSE_ERROR.id)
    }
}
