//! Syntax highlighting of the input line with ANSI colours (keywords, types, numbers,
//! polynomial operators, comments, commands).

use dyn_syntax::lexer::{Token, lex};

const KEYWORD: &str = "\x1b[1;35m";
const TYPE: &str = "\x1b[36m";
const NUMBER: &str = "\x1b[33m";
const OPERATOR: &str = "\x1b[34m";
const COMMENT: &str = "\x1b[90m";
const COMMAND: &str = "\x1b[1;32m";
const RESET: &str = "\x1b[0m";

fn colour(t: &Token) -> Option<&'static str> {
    Some(match t {
        Token::Ident(s) if matches!(s.as_str(), "Real" | "Int" | "Bool" | "y") => TYPE,
        Token::Ident(_) => return None,
        Token::Int(_) | Token::Real(_) | Token::True | Token::False => NUMBER,
        Token::Tensor | Token::Tri | Token::LArrow | Token::RArrow | Token::FatArrow => OPERATOR,
        Token::Use
        | Token::Const
        | Token::Type
        | Token::Enum
        | Token::Fn
        | Token::Interface
        | Token::System
        | Token::Lens
        | Token::Learner
        | Token::Run
        | Token::Out
        | Token::In
        | Token::Mode
        | Token::Param
        | Token::State
        | Token::Let
        | Token::Next
        | Token::Der
        | Token::When
        | Token::Box
        | Token::For
        | Token::Match
        | Token::If
        | Token::Then
        | Token::Else => KEYWORD,
        _ => return None,
    })
}

/// Text between tokens: whitespace and comments (`//` to the end of the line, `/* */`).
fn gap(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find("//").or_else(|| rest.find("/*")) {
        out.push_str(&rest[..i]);
        let end = if rest[i..].starts_with("//") {
            rest[i..].find('\n').map(|j| i + j).unwrap_or(rest.len())
        } else {
            rest[i..]
                .find("*/")
                .map(|j| i + j + 2)
                .unwrap_or(rest.len())
        };
        out.push_str(COMMENT);
        out.push_str(&rest[i..end]);
        out.push_str(RESET);
        rest = &rest[end..];
    }
    out.push_str(rest);
}

/// The line with colour codes added; the visible characters are unchanged.
pub fn highlight(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let mut from = 0;
    if line.trim_start().starts_with(':') {
        let lead = line.len() - line.trim_start().len();
        let end = line[lead..]
            .find(char::is_whitespace)
            .map(|i| lead + i)
            .unwrap_or(line.len());
        out.push_str(&line[..lead]);
        out.push_str(COMMAND);
        out.push_str(&line[lead..end]);
        out.push_str(RESET);
        from = end;
    }
    let rest = &line[from..];
    let mut at = 0;
    for (lo, t, hi) in lex(rest).tokens {
        if lo < at || hi > rest.len() {
            continue;
        }
        gap(&mut out, &rest[at..lo]);
        match colour(&t) {
            Some(c) => {
                out.push_str(c);
                out.push_str(&rest[lo..hi]);
                out.push_str(RESET);
            }
            None => out.push_str(&rest[lo..hi]),
        }
        at = hi;
    }
    gap(&mut out, &rest[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::highlight;

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn keeps_the_text() {
        for s in [
            "system S : { out x: Real } { state n: Int = 0 // c\n next n = n + 1 }",
            ":poly P <| Q ⊗ y^2",
            "/* open",
            "1.5e3 + τ",
        ] {
            assert_eq!(strip(&highlight(s)), s);
        }
        assert!(highlight("system").contains("\x1b[1;35msystem"));
    }
}
