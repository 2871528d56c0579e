//! Rendering diagnostics: ariadne reports for people, JSON objects for tools.

use crate::{Diagnostic, Severity, SourceMap, Span};
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};
use serde_json::{Value, json};

/// Ariadne's cache over a [`SourceMap`]: file ids map to sources by name.
struct Cache<'a> {
    map: &'a SourceMap,
    sources: Vec<ariadne::Source<&'a str>>,
}

impl<'a> Cache<'a> {
    fn new(map: &'a SourceMap) -> Self {
        let sources = map
            .files()
            .map(|(_, f)| ariadne::Source::from(f.text.as_str()))
            .collect();
        Cache { map, sources }
    }
}

impl<'a> ariadne::Cache<u32> for &Cache<'a> {
    type Storage = &'a str;
    fn fetch(&mut self, id: &u32) -> Result<&ariadne::Source<&'a str>, impl std::fmt::Debug> {
        self.sources.get(*id as usize).ok_or("unknown file")
    }
    fn display<'b>(&self, id: &'b u32) -> Option<impl std::fmt::Display + 'b> {
        Some(self.map.get(crate::FileId(*id)).name.clone())
    }
}

type ASpan = (u32, std::ops::Range<usize>);

fn aspan(map: &SourceMap, s: Span) -> ASpan {
    let len = map.get(s.file).text.len();
    let lo = (s.lo as usize).min(len);
    let hi = (s.hi as usize).clamp(lo, len);
    (s.file.0, lo..hi)
}

/// Renders one diagnostic as ariadne text (with ANSI colours when `color`).
pub fn render(map: &SourceMap, d: &Diagnostic, color: bool) -> String {
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
    };
    let config = Config::default()
        .with_index_type(IndexType::Byte)
        .with_color(color);
    let primary = aspan(map, d.primary.span);
    let mut report = Report::build(kind, primary.clone())
        .with_config(config)
        .with_code(d.code.id)
        .with_message(&d.message);
    // A label without a message is not drawn by ariadne: always give the primary one.
    let msg = if d.primary.message.is_empty() {
        "here"
    } else {
        d.primary.message.as_str()
    };
    let mut labels: Vec<(ASpan, &str, Color)> = vec![(
        primary,
        msg,
        match d.severity {
            Severity::Error => Color::Red,
            Severity::Warning => Color::Yellow,
        },
    )];
    for l in &d.secondary {
        labels.push((aspan(map, l.span), l.message.as_str(), Color::Blue));
    }
    // Ariadne starts a new section whenever a label lies above the previous one; labels in
    // source order keep one section per file.
    labels.sort_by_key(|(s, _, _)| (s.0, s.1.start));
    for (span, message, c) in labels {
        let mut label = Label::new(span);
        if !message.is_empty() {
            label = label.with_message(message);
        }
        if color {
            label = label.with_color(c);
        }
        report = report.with_label(label);
    }
    if let Some(h) = &d.hint {
        report = report.with_help(h);
    }
    let mut out = Vec::new();
    let cache = Cache::new(map);
    if report.finish().write(&cache, &mut out).is_err() {
        // Ariadne only fails on I/O to the buffer or a missing file; fall back to one line.
        return format!("{}[{}]: {}\n", d.severity.as_str(), d.code.id, d.message);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Renders several diagnostics one after another.
pub fn render_all(map: &SourceMap, ds: &[Diagnostic], color: bool) -> String {
    ds.iter().map(|d| render(map, d, color)).collect()
}

fn span_json(map: &SourceMap, s: Span) -> Value {
    let f = map.get(s.file);
    let a = f.line_col(s.lo as usize);
    let b = f.line_col(s.hi as usize);
    json!({
        "file": f.name,
        "byte_start": s.lo,
        "byte_end": s.hi,
        "line_start": a.line + 1,
        "col_start": a.col + 1,
        "line_end": b.line + 1,
        "col_end": b.col + 1,
    })
}

/// The diagnostic as one JSON object (lines and columns 1-based, columns in characters).
pub fn to_json(map: &SourceMap, d: &Diagnostic) -> Value {
    let mut labels = vec![{
        let mut v = span_json(map, d.primary.span);
        v["message"] = json!(d.primary.message);
        v["primary"] = json!(true);
        v
    }];
    for l in &d.secondary {
        let mut v = span_json(map, l.span);
        v["message"] = json!(l.message);
        v["primary"] = json!(false);
        labels.push(v);
    }
    let mut v = span_json(map, d.primary.span);
    v["code"] = json!(d.code.id);
    v["severity"] = json!(d.severity.as_str());
    v["message"] = json!(d.message);
    v["labels"] = json!(labels);
    v["hint"] = json!(d.hint);
    v
}
