//! The lexer: logos turns source text into tokens with byte spans.
//!
//! Invariant: lexing never fails as a whole. An unrecognised character becomes a
//! [`LexError`] at its span and lexing continues after it. Doc comments (`///`) are not
//! tokens: they are collected on the side and attached to items after parsing.

use logos::Logos;
use std::fmt;

/// A token. Unicode operators and their ASCII spellings lex to the same token.
#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
pub enum Token {
    // Keywords.
    #[token("use")]
    Use,
    #[token("const")]
    Const,
    #[token("type")]
    Type,
    #[token("enum")]
    Enum,
    #[token("fn")]
    Fn,
    #[token("interface")]
    Interface,
    #[token("system")]
    System,
    #[token("lens")]
    Lens,
    #[token("learner")]
    Learner,
    #[token("run")]
    Run,
    #[token("out")]
    Out,
    #[token("in")]
    In,
    #[token("mode")]
    Mode,
    #[token("param")]
    Param,
    #[token("state")]
    State,
    #[token("let")]
    Let,
    #[token("next")]
    Next,
    #[token("der")]
    Der,
    #[token("when")]
    When,
    #[token("box")]
    Box,
    #[token("for")]
    For,
    #[token("match")]
    Match,
    #[token("if")]
    If,
    #[token("then")]
    Then,
    #[token("else")]
    Else,
    #[token("true")]
    True,
    #[token("false")]
    False,

    // Literals and names.
    /// An identifier (ASCII or Unicode letters, digits, `_`).
    #[regex(r"[\p{XID_Start}_][\p{XID_Continue}]*", |lex| lex.slice().to_string())]
    Ident(String),
    /// An integer literal, kept as text so that overflow is a diagnostic, not a panic.
    #[regex(r"[0-9][0-9_]*", |lex| lex.slice().to_string())]
    Int(String),
    /// A real literal, kept as text.
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9]+)?", |lex| lex.slice().to_string())]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9]+", |lex| lex.slice().to_string())]
    Real(String),

    // Operators and punctuation.
    #[token("⊗")]
    #[token("(*)")]
    Tensor,
    #[token("◁")]
    #[token("<|")]
    Tri,
    #[token("×")]
    #[token("*")]
    Star,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("@")]
    At,
    #[token("^")]
    Caret,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("!")]
    Bang,
    #[token("=")]
    Eq,
    #[token("<-")]
    #[token("←")]
    LArrow,
    #[token("->")]
    #[token("→")]
    RArrow,
    #[token("=>")]
    FatArrow,
    #[token(":")]
    Colon,
    #[token(",")]
    Comma,
    #[token(".")]
    Dot,
    #[token("..")]
    DotDot,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    /// `/*`: block comments are skipped by hand so that they can nest.
    #[token("/*")]
    BlockCommentStart,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Token::Ident(s) | Token::Int(s) | Token::Real(s) => return write!(f, "`{s}`"),
            Token::Use => "use",
            Token::Const => "const",
            Token::Type => "type",
            Token::Enum => "enum",
            Token::Fn => "fn",
            Token::Interface => "interface",
            Token::System => "system",
            Token::Lens => "lens",
            Token::Learner => "learner",
            Token::Run => "run",
            Token::Out => "out",
            Token::In => "in",
            Token::Mode => "mode",
            Token::Param => "param",
            Token::State => "state",
            Token::Let => "let",
            Token::Next => "next",
            Token::Der => "der",
            Token::When => "when",
            Token::Box => "box",
            Token::For => "for",
            Token::Match => "match",
            Token::If => "if",
            Token::Then => "then",
            Token::Else => "else",
            Token::True => "true",
            Token::False => "false",
            Token::Tensor => "⊗",
            Token::Tri => "◁",
            Token::Star => "*",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Slash => "/",
            Token::Percent => "%",
            Token::At => "@",
            Token::Caret => "^",
            Token::EqEq => "==",
            Token::NotEq => "!=",
            Token::Le => "<=",
            Token::Ge => ">=",
            Token::Lt => "<",
            Token::Gt => ">",
            Token::AndAnd => "&&",
            Token::OrOr => "||",
            Token::Bang => "!",
            Token::Eq => "=",
            Token::LArrow => "<-",
            Token::RArrow => "->",
            Token::FatArrow => "=>",
            Token::Colon => ":",
            Token::Comma => ",",
            Token::Dot => ".",
            Token::DotDot => "..",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::BlockCommentStart => "/*",
        };
        write!(f, "`{s}`")
    }
}

/// What went wrong while lexing, at a byte span.
#[derive(Debug, Clone, PartialEq)]
pub enum LexError {
    /// A character that starts no token.
    Unexpected { lo: usize, hi: usize, ch: char },
    /// A `/*` without its `*/`.
    UnterminatedComment { lo: usize },
}

/// A `///` doc comment: its text (without the slashes) and where it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct DocComment {
    /// Byte offset of the `///`.
    pub lo: usize,
    /// Byte offset just past the comment's line.
    pub hi: usize,
    /// The text after `///`, with one leading space removed.
    pub text: String,
}

/// The result of lexing a whole file.
#[derive(Debug, Default)]
pub struct Lexed {
    /// Tokens with byte spans, in order.
    pub tokens: Vec<(usize, Token, usize)>,
    /// Lexical errors, in order.
    pub errors: Vec<LexError>,
    /// Doc comments, in order.
    pub docs: Vec<DocComment>,
}

/// Lexes a whole source text. Never fails and never panics.
pub fn lex(src: &str) -> Lexed {
    let mut out = Lexed::default();
    let mut lexer = Token::lexer(src);
    while let Some(tok) = lexer.next() {
        let span = lexer.span();
        match tok {
            Ok(Token::BlockCommentStart) => {
                // Skip a nested block comment by hand.
                let rest = &src[span.end..];
                let mut depth = 1usize;
                let mut i = 0usize;
                let bytes = rest.as_bytes();
                while i < bytes.len() && depth > 0 {
                    if bytes[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if bytes[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                if depth > 0 {
                    out.errors
                        .push(LexError::UnterminatedComment { lo: span.start });
                    break;
                }
                lexer.bump(i);
            }
            Ok(t) => out.tokens.push((span.start, t, span.end)),
            Err(()) => {
                let ch = src[span.start..].chars().next().unwrap_or('\u{fffd}');
                out.errors.push(LexError::Unexpected {
                    lo: span.start,
                    hi: span.start + ch.len_utf8().max(span.end - span.start),
                    ch,
                });
            }
        }
    }
    collect_docs(src, &mut out.docs);
    out
}

/// Finds `///` comments (not `////`) that start a line (after indentation).
fn collect_docs(src: &str, docs: &mut Vec<DocComment>) {
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("///") && !trimmed.starts_with("////") {
            let lo = offset + (line.len() - trimmed.len());
            let body = trimmed[3..].trim_end_matches(['\n', '\r']);
            let text = body.strip_prefix(' ').unwrap_or(body).to_string();
            docs.push(DocComment {
                lo,
                hi: offset + line.len(),
                text,
            });
        }
        offset += line.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Token> {
        lex(src).tokens.into_iter().map(|(_, t, _)| t).collect()
    }

    #[test]
    fn unicode_and_ascii_operators_agree() {
        assert_eq!(kinds("⊗ ◁ × →"), kinds("(*) <| * ->"));
    }

    #[test]
    fn arrow_is_one_token_and_range_is_not_real() {
        assert_eq!(
            kinds("a <- 0..N"),
            vec![
                Token::Ident("a".into()),
                Token::LArrow,
                Token::Int("0".into()),
                Token::DotDot,
                Token::Ident("N".into())
            ]
        );
        assert_eq!(
            kinds("x < -1"),
            vec![
                Token::Ident("x".into()),
                Token::Lt,
                Token::Minus,
                Token::Int("1".into())
            ]
        );
    }

    #[test]
    fn nested_comments_and_docs() {
        let l = lex("/* a /* b */ c */ x /// doc\n/// two\ny");
        assert_eq!(l.tokens.len(), 2);
        assert_eq!(
            l.docs.len(),
            1,
            "a trailing /// after code is not a doc line"
        );
        assert_eq!(l.docs[0].text, "two");
        let l = lex("x /* open");
        assert_eq!(l.errors, vec![LexError::UnterminatedComment { lo: 2 }]);
    }

    #[test]
    fn stray_characters_are_errors_and_lexing_goes_on() {
        let l = lex("a $ b");
        assert_eq!(l.tokens.len(), 2);
        assert_eq!(
            l.errors,
            vec![LexError::Unexpected {
                lo: 2,
                hi: 3,
                ch: '$'
            }]
        );
        assert_eq!(
            kinds("τ σ"),
            vec![Token::Ident("τ".into()), Token::Ident("σ".into())]
        );
    }
}
