//! The front of dyn: source text to an AST with spans, with diagnostics for every lexical
//! and syntax error.
//!
//! Invariant: parsing never fails. [`parse`] always returns a [`ast::File`] (with `Error`
//! nodes where the source did not parse) and the diagnostics found on the way; no input
//! makes it panic.

pub mod ast;
pub mod lexer;
mod parse;

pub use parse::{is_complete, parse};

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused_parens, dead_code)]
    grammar,
    "/dyn.rs"
);

/// Helper used by grammar actions: a binary expression node.
pub(crate) fn bin(
    file: dyn_diag::FileId,
    l: usize,
    r: usize,
    op: ast::BinOp,
    a: ast::Expr,
    b: ast::Expr,
) -> ast::Expr {
    ast::Expr {
        kind: ast::ExprKind::Binary(op, Box::new(a), Box::new(b)),
        span: dyn_diag::Span::new(file, l, r),
    }
}
