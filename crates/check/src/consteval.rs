//! Compile-time evaluation: constants, tensor sizes, box-array counts, `for` bounds and
//! box-array indices.

use dyn_diag::Span;
use dyn_syntax::ast::{BinOp, Expr, ExprKind, UnOp};
use std::collections::HashMap;

/// A value known at compile time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A real.
    Real(f64),
    /// A boolean.
    Bool(bool),
}

/// Why an expression has no compile-time value.
#[derive(Debug, Clone, PartialEq)]
pub struct NotConst {
    /// Where.
    pub span: Span,
    /// Why, as a phrase (`reads state \`v\``).
    pub why: String,
    /// Already reported elsewhere (a const that failed): do not report again.
    pub quiet: bool,
    /// The expression is constant but its arithmetic fails (overflow, division by zero).
    pub arith: bool,
}

/// Resolves names to compile-time values (loop variables, consts, size arguments).
pub trait ConstEnv {
    /// The value of a name, `None` if it has none at compile time; `Err` with a reason.
    fn value(&mut self, name: &str, span: Span) -> Result<Value, NotConst>;
}

/// A map of bound names, falling back to another environment.
pub struct Bound<'a> {
    /// Names bound here (loop variables).
    pub vars: &'a HashMap<String, i64>,
    /// Everything else.
    pub rest: &'a mut dyn ConstEnv,
}

impl ConstEnv for Bound<'_> {
    fn value(&mut self, name: &str, span: Span) -> Result<Value, NotConst> {
        match self.vars.get(name) {
            Some(v) => Ok(Value::Int(*v)),
            None => self.rest.value(name, span),
        }
    }
}

fn nc(span: Span, why: impl Into<String>) -> NotConst {
    NotConst {
        span,
        why: why.into(),
        quiet: false,
        arith: false,
    }
}

fn arith(span: Span, why: impl Into<String>) -> NotConst {
    NotConst {
        span,
        why: why.into(),
        quiet: false,
        arith: true,
    }
}

/// Evaluates `e` at compile time.
pub fn eval(env: &mut dyn ConstEnv, e: &Expr) -> Result<Value, NotConst> {
    use Value::*;
    match &e.kind {
        ExprKind::Int(s) => s
            .replace('_', "")
            .parse::<i64>()
            .map(Int)
            .map_err(|_| nc(e.span, "is too large for Int")),
        ExprKind::Real(s) => s
            .replace('_', "")
            .parse::<f64>()
            .map(Real)
            .map_err(|_| nc(e.span, "is not a number")),
        ExprKind::Bool(b) => Ok(Bool(*b)),
        ExprKind::Var(i) => env.value(&i.name, i.span),
        ExprKind::Unary(op, a) => match (op, eval(env, a)?) {
            (UnOp::Neg, Int(x)) => x
                .checked_neg()
                .map(Int)
                .ok_or_else(|| arith(e.span, "overflows")),
            (UnOp::Neg, Real(x)) => Ok(Real(-x)),
            (UnOp::Not, Bool(b)) => Ok(Bool(!b)),
            _ => Err(nc(e.span, "has operands of the wrong type")),
        },
        ExprKind::Binary(op, a, b) => {
            let (x, y) = (eval(env, a)?, eval(env, b)?);
            binary(*op, x, y)
                .ok_or_else(|| arith(e.span, "overflows, divides by zero or mixes types"))
        }
        ExprKind::If(c, a, b) => match eval(env, c)? {
            Bool(true) => eval(env, a),
            Bool(false) => eval(env, b),
            _ => Err(nc(c.span, "is not a Bool")),
        },
        ExprKind::Call(f, args) => {
            let ExprKind::Var(name) = &f.kind else {
                return Err(nc(e.span, "is a call"));
            };
            let vals: Result<Vec<Value>, NotConst> =
                args.iter().map(|a| eval(env, &a.value)).collect();
            let vals = vals?;
            let real = |v: &Value| match v {
                Int(i) => Some(*i as f64),
                Real(r) => Some(*r),
                Bool(_) => None,
            };
            let r = match (name.name.as_str(), vals.as_slice()) {
                ("min", [Int(a), Int(b)]) => Some(Int(*a.min(b))),
                ("max", [Int(a), Int(b)]) => Some(Int(*a.max(b))),
                ("abs", [Int(a)]) => a.checked_abs().map(Int),
                ("sqrt", [a]) => real(a).map(|x| Real(x.sqrt())),
                ("exp", [a]) => real(a).map(|x| Real(x.exp())),
                ("log", [a]) => real(a).map(|x| Real(x.ln())),
                ("sin", [a]) => real(a).map(|x| Real(x.sin())),
                ("cos", [a]) => real(a).map(|x| Real(x.cos())),
                ("real", [a]) => real(a).map(Real),
                _ => None,
            };
            r.ok_or_else(|| {
                nc(
                    e.span,
                    format!(
                        "calls `{}`, which is not evaluated at compile time",
                        name.name
                    ),
                )
            })
        }
        // Reported where it is written (a range outside a slice).
        ExprKind::Range(..) => Err(NotConst {
            span: e.span,
            why: String::new(),
            quiet: true,
            arith: false,
        }),
        _ => Err(nc(e.span, "is not a compile-time scalar")),
    }
}

fn binary(op: BinOp, x: Value, y: Value) -> Option<Value> {
    use Value::*;
    Some(match (x, y) {
        (Int(a), Int(b)) => match op {
            BinOp::Add => Int(a.checked_add(b)?),
            BinOp::Sub => Int(a.checked_sub(b)?),
            BinOp::Mul => Int(a.checked_mul(b)?),
            BinOp::Div => Int(a.checked_div(b)?),
            BinOp::Rem => Int(a.checked_rem_euclid(b)?),
            BinOp::Pow => Int(a.checked_pow(u32::try_from(b).ok()?)?),
            BinOp::Eq => Bool(a == b),
            BinOp::Ne => Bool(a != b),
            BinOp::Lt => Bool(a < b),
            BinOp::Le => Bool(a <= b),
            BinOp::Gt => Bool(a > b),
            BinOp::Ge => Bool(a >= b),
            _ => return None,
        },
        (Bool(a), Bool(b)) => match op {
            BinOp::And => Bool(a && b),
            BinOp::Or => Bool(a || b),
            BinOp::Eq => Bool(a == b),
            BinOp::Ne => Bool(a != b),
            _ => return None,
        },
        (a, b) => {
            let f = |v: Value| match v {
                Int(i) => Some(i as f64),
                Real(r) => Some(r),
                Bool(_) => None,
            };
            let (a, b) = (f(a)?, f(b)?);
            match op {
                BinOp::Add => Real(a + b),
                BinOp::Sub => Real(a - b),
                BinOp::Mul => Real(a * b),
                BinOp::Div => Real(a / b),
                BinOp::Rem => Real(a.rem_euclid(b)),
                BinOp::Pow => Real(a.powf(b)),
                BinOp::Eq => Bool(a == b),
                BinOp::Ne => Bool(a != b),
                BinOp::Lt => Bool(a < b),
                BinOp::Le => Bool(a <= b),
                BinOp::Gt => Bool(a > b),
                BinOp::Ge => Bool(a >= b),
                _ => return None,
            }
        }
    })
}
