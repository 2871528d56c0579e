//! Driving the generated parser: lexing, error conversion to diagnostics, doc comments.

use crate::ast::*;
use crate::grammar::FileParser;
use crate::lexer::{DocComment, LexError, Token, lex};
use dyn_diag::{Diagnostic, FileId, Span, codes};
use lalrpop_util::ParseError;

/// Parses one file. Never fails: returns the (possibly partial) tree and every lexical and
/// syntax error found, in source order.
pub fn parse(file: FileId, src: &str) -> (File, Vec<Diagnostic>) {
    let lexed = lex(src);
    let mut diags = Vec::new();
    for e in &lexed.errors {
        diags.push(lex_diagnostic(file, src, e));
    }
    if let Some(d) = too_deep(file, &lexed.tokens) {
        diags.push(d);
        return (File::default(), diags);
    }
    let mut recovered = Vec::new();
    let tokens = lexed.tokens.iter().cloned().map(Ok::<_, LexError>);
    let result = FileParser::new().parse(file, &mut recovered, tokens);
    for r in recovered {
        diags.push(parse_diagnostic(file, src, r.error));
    }
    let mut ast = match result {
        Ok(f) => f,
        Err(e) => {
            diags.push(parse_diagnostic(file, src, e));
            File::default()
        }
    };
    attach_docs(src, &lexed.docs, &mut ast);
    diags.sort_by_key(|d| d.primary.span.lo);
    (ast, diags)
}

/// True when `src` is complete enough to check: it does not end in the middle of an item
/// (an open brace, a dangling operator). The REPL uses it to ask for another line.
pub fn is_complete(src: &str) -> bool {
    let lexed = lex(src);
    if lexed
        .errors
        .iter()
        .any(|e| matches!(e, LexError::UnterminatedComment { .. }))
    {
        return false;
    }
    let mut recovered = Vec::new();
    let tokens = lexed.tokens.into_iter().map(Ok::<_, LexError>);
    let result = FileParser::new().parse(FileId(0), &mut recovered, tokens);
    let eof =
        |e: &ParseError<usize, Token, LexError>| matches!(e, ParseError::UnrecognizedEof { .. });
    !(recovered.iter().any(|r| eof(&r.error)) || result.as_ref().err().is_some_and(eof))
}

/// Deepest bracket nesting the parser accepts.
pub const MAX_NESTING: usize = 128;
/// Most operators in one run of tokens between two items or wires.
pub const MAX_OPERATORS: usize = 500;

/// Rejects inputs whose expressions would nest deeper than the later stages' recursion
/// allows (a fuzzer's `((((…` or `-------x`), before building the tree.
fn too_deep(file: FileId, tokens: &[(usize, Token, usize)]) -> Option<Diagnostic> {
    let mut depth = 0usize;
    let mut ops = 0usize;
    for (lo, t, hi) in tokens {
        match t {
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::new(
                            codes::PARSE_ERROR,
                            Span::new(file, *lo, *hi),
                            format!("brackets nest more than {MAX_NESTING} deep"),
                        )
                        .label("too deep")
                        .hint("split the expression with `let` definitions"),
                    );
                }
            }
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            Token::Plus
            | Token::Minus
            | Token::Star
            | Token::Slash
            | Token::Percent
            | Token::At
            | Token::Caret
            | Token::Bang
            | Token::AndAnd
            | Token::OrOr
            | Token::Tensor
            | Token::Tri
            | Token::If => {
                ops += 1;
                if ops > MAX_OPERATORS {
                    return Some(
                        Diagnostic::new(
                            codes::PARSE_ERROR,
                            Span::new(file, *lo, *hi),
                            format!("more than {MAX_OPERATORS} operators in one expression"),
                        )
                        .label("expression too long")
                        .hint("split the expression with `let` definitions"),
                    );
                }
            }
            Token::Eq | Token::LArrow | Token::Comma | Token::Colon | Token::FatArrow => ops = 0,
            _ => {}
        }
    }
    None
}

fn lex_diagnostic(file: FileId, src: &str, e: &LexError) -> Diagnostic {
    match *e {
        LexError::Unexpected { lo, hi, ch } => {
            let hint = match ch {
                ';' => "items need no separators: remove the `;`".to_string(),
                '"' | '\'' => "dyn has no string literals".to_string(),
                _ => format!(
                    "`{}` (U+{:04X}) is not part of any token of dyn",
                    ch.escape_default(),
                    ch as u32
                ),
            };
            Diagnostic::new(
                codes::LEX_ERROR,
                Span::new(file, lo, hi),
                format!("unrecognised character `{}`", ch.escape_default()),
            )
            .label("not valid here")
            .hint(hint)
        }
        LexError::UnterminatedComment { lo } => Diagnostic::new(
            codes::BAD_LITERAL,
            Span::new(file, lo, (lo + 2).min(src.len())),
            "unterminated block comment",
        )
        .label("this `/*` is never closed")
        .hint("close the comment with `*/` (block comments nest)"),
    }
}

/// Readable names for the terminals lalrpop lists as expected.
fn pretty_expected(expected: &[String]) -> String {
    let mut names: Vec<String> = expected
        .iter()
        .map(|e| match e.as_str() {
            "IDENT" => "a name".to_string(),
            "INT" => "an integer".to_string(),
            "REAL" => "a number".to_string(),
            s => format!("`{}`", s.trim_matches('"')),
        })
        .collect();
    names.dedup();
    match names.len() {
        0 => String::new(),
        1 => names.remove(0),
        n if n <= 8 => {
            let last = names.pop().unwrap_or_default();
            format!("{} or {}", names.join(", "), last)
        }
        _ => format!("{}, …", names[..8].join(", ")),
    }
}

fn parse_diagnostic(file: FileId, src: &str, e: ParseError<usize, Token, LexError>) -> Diagnostic {
    match e {
        ParseError::UnrecognizedEof { location, expected } => {
            let lo = location.min(src.len());
            Diagnostic::new(
                codes::PARSE_ERROR,
                Span::new(file, lo, lo),
                "unexpected end of file",
            )
            .label(format!("expected {}", pretty_expected(&expected)))
            .hint("an item is not finished: look for an unclosed `{`, `(` or `[`")
        }
        ParseError::UnrecognizedToken {
            token: (lo, tok, hi),
            expected,
        } => {
            let mut d = Diagnostic::new(
                codes::PARSE_ERROR,
                Span::new(file, lo, hi),
                format!("unexpected {tok}"),
            );
            if !expected.is_empty() {
                d = d.label(format!("expected {}", pretty_expected(&expected)));
            }
            let hint = match tok {
                Token::LBrace => Some(
                    "a record literal may not stand right before a block's `{` (in `when`, `for`, `match` heads): parenthesise it",
                ),
                Token::LArrow
                    if src[hi..].starts_with(|c: char| c.is_ascii_digit() || c == '.') =>
                {
                    Some(
                        "`<-` is one token (a wire): to compare with a negative number write `x < -1.0`",
                    )
                }
                Token::LArrow => Some(
                    "`<-` wires an inner box's input, `box.port <- expr`, and only inside a system",
                ),
                Token::Eq if expected.iter().any(|e| e == "\"<-\"") => {
                    Some("wires use `<-`: write `box.port <- expr`")
                }
                Token::Eq => Some("`=` defines; to compare, write `==`"),
                Token::Lt | Token::Gt | Token::Le | Token::Ge | Token::EqEq | Token::NotEq => {
                    Some("comparisons do not chain: write `a < b && b < c`")
                }
                _ => None,
            };
            if let Some(h) = hint {
                d = d.hint(h);
            }
            d
        }
        ParseError::ExtraToken {
            token: (lo, tok, hi),
        } => Diagnostic::new(
            codes::PARSE_ERROR,
            Span::new(file, lo, hi),
            format!("unexpected {tok}"),
        )
        .label("nothing more was expected here"),
        ParseError::InvalidToken { location } => Diagnostic::new(
            codes::LEX_ERROR,
            Span::new(file, location, location + 1),
            "invalid token",
        ),
        ParseError::User { error } => lex_diagnostic(file, src, &error),
    }
}

/// The `///` lines directly above byte `lo` (only whitespace between), joined.
fn doc_before(src: &str, docs: &[DocComment], lo: usize) -> Option<String> {
    let mut idx = docs.partition_point(|d| d.hi <= lo);
    let mut end = lo;
    let mut lines = Vec::new();
    while idx > 0 {
        let d = &docs[idx - 1];
        if !src.get(d.hi..end).is_some_and(|gap| gap.trim().is_empty()) {
            break;
        }
        lines.push(d.text.as_str());
        end = d.lo;
        idx -= 1;
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}

fn attach_docs(src: &str, docs: &[DocComment], file: &mut File) {
    if docs.is_empty() {
        return;
    }
    for item in &mut file.items {
        item.doc = doc_before(src, docs, item.span.lo as usize);
        match &mut item.kind {
            ItemKind::Interface(i) => attach_poly(src, docs, &mut i.poly),
            ItemKind::System(s) => {
                attach_poly(src, docs, &mut s.iface.poly);
                attach_sys(src, docs, &mut s.body);
            }
            _ => {}
        }
    }
}

fn attach_sys(src: &str, docs: &[DocComment], items: &mut [SysItem]) {
    for it in items {
        it.doc = doc_before(src, docs, it.span.lo as usize);
        if let SysItemKind::For { body, .. } = &mut it.kind {
            attach_sys(src, docs, body);
        }
    }
}

fn attach_poly(src: &str, docs: &[DocComment], poly: &mut Poly) {
    if let PolyKind::Body(b) = &mut poly.kind {
        for e in &mut b.entries {
            match e {
                IfaceEntry::Port(p) => p.doc = doc_before(src, docs, p.span.lo as usize),
                IfaceEntry::Mode { doc, name, ports } => {
                    // The mode keyword is 4 bytes and some spaces before the name; search back.
                    let kw = src[..name.span.lo as usize]
                        .rfind("mode")
                        .unwrap_or(name.span.lo as usize);
                    *doc = doc_before(src, docs, kw);
                    for p in ports {
                        p.doc = doc_before(src, docs, p.span.lo as usize);
                    }
                }
                IfaceEntry::Error => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> File {
        let (f, d) = parse(FileId(0), src);
        assert!(d.is_empty(), "unexpected diagnostics for {src:?}: {d:#?}");
        f
    }

    #[test]
    fn parses_the_design_examples() {
        for f in std::fs::read_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/conformance/ok"
        ))
        .into_iter()
        .flatten()
        .flatten()
        {
            let src = std::fs::read_to_string(f.path()).unwrap();
            ok(&src);
        }
    }

    #[test]
    fn record_literal_not_before_block() {
        let f = ok(
            "system S : { out o: Real } { state v: Real = 0.0 out o = v der v = 1.0 when v >= th { v = 0.0 } }",
        );
        let ItemKind::System(s) = &f.items[0].kind else {
            panic!()
        };
        assert!(matches!(s.body[3].kind, SysItemKind::When { .. }));
    }

    #[test]
    fn recovery_reports_several_errors() {
        let (f, d) = parse(
            FileId(0),
            "const A = 1 +\nconst B = 2\nsystem S : P { out x = ) }\nconst C = 3",
        );
        assert!(d.len() >= 2, "{d:#?}");
        assert!(
            f.items
                .iter()
                .any(|i| matches!(&i.kind, ItemKind::Const(c) if c.name.name == "C"))
        );
    }

    #[test]
    fn docs_attach_to_items_and_ports() {
        let f = ok(
            "/// A population.\n/// Second line.\ninterface P {\n  /// its size\n  out pop: Real\n}\n",
        );
        assert_eq!(
            f.items[0].doc.as_deref(),
            Some("A population.\nSecond line.")
        );
        let ItemKind::Interface(i) = &f.items[0].kind else {
            panic!()
        };
        let PolyKind::Body(b) = &i.poly.kind else {
            panic!()
        };
        let IfaceEntry::Port(p) = &b.entries[0] else {
            panic!()
        };
        assert_eq!(p.doc.as_deref(), Some("its size"));
    }

    #[test]
    fn completeness_for_the_repl() {
        assert!(!is_complete("system S : P {"));
        assert!(is_complete("const N = 3"));
        assert!(!is_complete("/* open"));
    }
}
