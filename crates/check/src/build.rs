//! Small builders of syntax trees, for the passes that rewrite the AST before checking
//! (`flow`, `learner`). Every node gets the span it is given, so diagnostics about derived
//! code point at what the user wrote.

use dyn_diag::Span;
use dyn_syntax::ast::*;

/// A name.
pub fn ident(name: &str, span: Span) -> Ident {
    Ident {
        name: name.to_string(),
        span,
    }
}

/// A variable reference.
pub fn var(name: &str, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Var(ident(name, span)),
        span,
    }
}

/// A Real literal written as `text`.
pub fn real(text: &str, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Real(text.to_string()),
        span,
    }
}

/// `a op b`.
pub fn binary(op: BinOp, a: Expr, b: Expr, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Binary(op, Box::new(a), Box::new(b)),
        span,
    }
}

/// `f(args)` with positional arguments, `f` an expression (a name or a qualified path).
pub fn call_expr(f: Expr, args: Vec<Expr>, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Call(
            Box::new(f),
            args.into_iter()
                .map(|value| Arg { name: None, value })
                .collect(),
        ),
        span,
    }
}

/// `f(args)` for a named function.
pub fn call(f: &str, args: Vec<Expr>, span: Span) -> Expr {
    call_expr(var(f, span), args, span)
}

/// A body item.
pub fn item(kind: SysItemKind, span: Span) -> SysItem {
    SysItem {
        doc: None,
        kind,
        span,
    }
}

/// `let name = value` (the name written at `at`, the item spanning `span`).
pub fn let_item(name: &str, value: Expr, at: Span, span: Span) -> SysItem {
    item(
        SysItemKind::Let {
            name: ident(name, at),
            ty: None,
            value,
        },
        span,
    )
}
