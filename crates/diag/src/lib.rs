//! The one `Diagnostic` type shared by every stage of dyn, the source map that spans point
//! into, and the two renderings of a diagnostic: ariadne text for terminals and the REPL,
//! and JSON lines for tools. Only this crate knows ariadne.

pub mod codes;
mod render;
mod source;

pub use codes::Code;
pub use render::{render, render_all, to_json};
pub use source::{FileId, LineCol, SourceFile, SourceMap, Span};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The program is rejected.
    Error,
    /// The program is accepted, but something looks wrong.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A span with a message, pointing at the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is there (may be empty).
    pub message: String,
}

/// One finding: a code, a message, a primary label, secondary labels and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The rule that was broken.
    pub code: Code,
    /// Error or warning; warnings come from `W` codes.
    pub severity: Severity,
    /// One sentence saying what is wrong.
    pub message: String,
    /// The place that is wrong.
    pub primary: Label,
    /// Other places that explain it (the other end of a wire, the interface declared).
    pub secondary: Vec<Label>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A new diagnostic for `code` at `span`; the severity follows the code's letter.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        let severity = if code.id.starts_with('W') {
            Severity::Warning
        } else {
            Severity::Error
        };
        Diagnostic {
            code,
            severity,
            message: message.into(),
            primary: Label {
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            hint: None,
        }
    }

    /// Sets the text of the primary label.
    pub fn label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary label.
    pub fn with(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
