//! The checker's diagnostics as LSP diagnostics: the same code, message and labels as
//! `dyn check`, with secondary labels as related information and the hint appended.

use crate::analysis::Analysis;
use crate::uri;
use dyn_diag::{Diagnostic, Severity};
use lsp_types::{DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Uri};

/// The diagnostics of an analysis that belong to its root file. Problems inside imported
/// files are shown at the `use` that imports them, with a link to the real place.
pub fn for_root(a: &Analysis, root: &Uri) -> Vec<lsp_types::Diagnostic> {
    let root_file = a.root_file();
    let mut out = Vec::new();
    for d in &a.checked.diagnostics {
        if d.primary.span.file == root_file {
            out.push(convert(a, root, d));
        } else if let Some(use_span) = a.import_site(d.primary.span.file) {
            let mut ld = convert(a, root, d);
            let here = a.location(root, d.primary.span);
            ld.range = a.range(use_span);
            let file = &a.checked.sources.get(d.primary.span.file).name;
            ld.message = format!("in {file}: {}", ld.message);
            let mut related = vec![DiagnosticRelatedInformation {
                location: here,
                message: d.message.clone(),
            }];
            related.extend(ld.related_information.take().unwrap_or_default());
            ld.related_information = Some(related);
            out.push(ld);
        }
    }
    out
}

/// One diagnostic, converted.
pub fn convert(a: &Analysis, root: &Uri, d: &Diagnostic) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    if !d.primary.message.is_empty() {
        message.push_str(&format!("\n{}", d.primary.message));
    }
    if let Some(h) = &d.hint {
        message.push_str(&format!("\nhelp: {h}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .map(|l| DiagnosticRelatedInformation {
            location: a.location(root, l.span),
            message: l.message.clone(),
        })
        .collect();
    lsp_types::Diagnostic {
        range: a.range(d.primary.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.id.to_string())),
        source: Some("dyn".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

/// A location for a span, falling back to the root for files without a path (stdlib
/// embedded in the binary).
pub fn fallback_location(
    root: &Uri,
    range: lsp_types::Range,
    path: Option<&std::path::Path>,
) -> Location {
    let uri = path
        .and_then(uri::from_path)
        .unwrap_or_else(|| root.clone());
    Location::new(uri, range)
}
