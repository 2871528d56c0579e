//! Type checking of expressions.
//!
//! Names are resolved through an [`Env`] supplied by the context (a system body, a lens,
//! a fn body), falling back to the module scope (consts, enum variants, fns). Contexts
//! record what an expression reads through their `Env`, which is how feed-through, mode
//! scoping and the lens side rules are checked.

use crate::checker::{Binding, Checker, FnSig, GlobalConsts, Sizes, suggest};
use crate::consteval::{self, Value};
use crate::types::{Dim, Elem, ModesTy, Ty};
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::{Arg, BinOp, Expr, ExprKind, Ident, ItemKind, Pattern, UnOp};
use std::collections::HashMap;
use std::rc::Rc;

/// What a name means in a context.
#[derive(Debug, Clone)]
pub enum Res {
    /// A value of this type.
    Val(Ty),
    /// An inner box (index into the context's boxes).
    Box(usize),
    /// A group of ports (`a` of a named factor `a: P`, or `src`/`tgt` in a lens).
    Group(String),
    /// The name exists but may not be read here; the context already reported why.
    Forbidden,
}

/// Names of a context.
pub trait Env {
    /// Resolves a bare name, or `None` to fall back to the module scope.
    fn lookup(&mut self, cx: &mut Checker, name: &Ident) -> Option<Res>;
    /// `group.field` for a [`Res::Group`].
    fn group_field(&mut self, _cx: &mut Checker, _group: &str, _field: &Ident) -> Option<Ty> {
        None
    }
    /// `b.port` or `b[i].port` for a [`Res::Box`].
    fn box_port(
        &mut self,
        _cx: &mut Checker,
        _b: usize,
        _index: Option<&Expr>,
        _port: &Ident,
        _span: Span,
    ) -> Ty {
        Ty::Error
    }
    /// The mode-value type of the context's own interface, if it has modes.
    fn modes(&self) -> Option<Rc<ModesTy>> {
        None
    }
    /// Names the context knows (for "did you mean").
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
    /// Size parameters in scope: bound in an instantiated system, symbolic in a generic fn.
    fn sizes(&self) -> Sizes {
        Sizes::default()
    }
    /// `match mode { … }` in an expression reads the mode the system's readout chose: the
    /// context records the read and returns the mode-value type, or says why the mode cannot
    /// be read here.
    fn read_mode(&mut self) -> Result<Rc<ModesTy>, String> {
        Err("`match mode` reads the mode of a system whose interface has modes".into())
    }
    /// Scopes the inputs of mode `m` (an index into the modes; `None`: not known) while one
    /// arm of `match mode` is checked; returns the scoping to restore afterwards.
    fn arm_mode(&mut self, _m: Option<usize>) -> Option<usize> {
        None
    }
}

/// The module scope alone (const initialisers).
pub struct GlobalEnv;

impl Env for GlobalEnv {
    fn lookup(&mut self, _cx: &mut Checker, _name: &Ident) -> Option<Res> {
        None
    }
}

/// A fn body: its parameters and size parameters.
pub struct FnEnv<'a> {
    /// Parameters.
    pub params: &'a [(String, Ty)],
    /// Size parameters (usable as Int values).
    pub sizes: &'a std::collections::HashSet<String>,
}

impl Env for FnEnv<'_> {
    fn lookup(&mut self, _cx: &mut Checker, name: &Ident) -> Option<Res> {
        if let Some((_, t)) = self.params.iter().find(|(n, _)| *n == name.name) {
            return Some(Res::Val(t.clone()));
        }
        self.sizes.contains(&name.name).then_some(Res::Val(Ty::Int))
    }
    fn names(&self) -> Vec<String> {
        self.params.iter().map(|(n, _)| n.clone()).collect()
    }
    fn sizes(&self) -> Sizes {
        Sizes {
            bound: HashMap::new(),
            symbolic: self.sizes.clone(),
        }
    }
}

const UNARY_MATH: &[&str] = &[
    "exp", "log", "sqrt", "abs", "sin", "cos", "tan", "tanh", "sinh", "cosh", "atan", "floor",
    "ceil", "round", "sigmoid", "relu",
];
const BINARY_MATH: &[&str] = &["min", "max", "pow", "atan2"];
/// Every built-in function name.
pub const BUILTINS: &[&str] = &[
    "exp",
    "log",
    "sqrt",
    "abs",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sinh",
    "cosh",
    "atan",
    "floor",
    "ceil",
    "round",
    "sigmoid",
    "relu",
    "min",
    "max",
    "pow",
    "atan2",
    "sum",
    "dot",
    "norm",
    "len",
    "real",
    "int",
    "randn",
    "uniform",
    "normal",
    "zeros",
    "ones",
    "transpose",
    "mean",
    "outer",
    "softmax",
    "logsumexp",
    "argmax",
    "argmin",
    "one_hot",
    "solve",
    "spectral_radius",
    "eye",
    "grad",
];

fn elem_of(t: &Ty) -> Option<Elem> {
    match t {
        Ty::Tensor(e, _) => Some(*e),
        t => t.elem(),
    }
}

fn with_elem(t: &Ty, e: Elem) -> Ty {
    match t {
        Ty::Tensor(_, d) => Ty::Tensor(e, d.clone()),
        _ => e.scalar(),
    }
}

impl Checker<'_> {
    /// Checks an expression and returns its type. `expected` guides literals (an Int
    /// literal where a Real is expected is a Real) and mode literals; the caller still
    /// compares the result with what it needs.
    pub fn check_expr(&mut self, env: &mut dyn Env, e: &Expr, expected: Option<&Ty>) -> Ty {
        let t = self.check_expr_untracked(env, e, expected);
        self.typeck.record(self.ctx, e, &t);
        t
    }

    fn check_expr_untracked(&mut self, env: &mut dyn Env, e: &Expr, expected: Option<&Ty>) -> Ty {
        match &e.kind {
            ExprKind::Error => Ty::Error,
            ExprKind::Int(s) => match s.replace('_', "").parse::<i64>() {
                Ok(v) => match expected {
                    Some(Ty::Real) => Ty::Real,
                    Some(Ty::Fin(n)) => {
                        if v < 0 || v as u64 >= *n {
                            self.report(
                                Diagnostic::new(
                                    codes::BAD_SIZE,
                                    e.span,
                                    format!("{v} is not an element of the numeral type {n}"),
                                )
                                .label(format!(
                                    "the type {n} has the elements 0 to {}",
                                    n.saturating_sub(1)
                                )),
                            );
                        }
                        Ty::Fin(*n)
                    }
                    _ => Ty::Int,
                },
                Err(_) => {
                    self.report(
                        Diagnostic::new(
                            codes::BAD_LITERAL,
                            e.span,
                            format!("integer literal `{s}` is too large"),
                        )
                        .label("Int is 64-bit")
                        .hint("write it as a Real (`1e20`) if it is a real number"),
                    );
                    Ty::Error
                }
            },
            ExprKind::Real(_) => Ty::Real,
            ExprKind::Bool(_) => Ty::Bool,
            ExprKind::Unit => Ty::Unit,
            ExprKind::Var(name) => self.check_var(env, name),
            ExprKind::Field(base, field) => self.check_field(env, base, field, e.span),
            ExprKind::Index(base, idx) => self.check_index(env, base, idx, e.span),
            ExprKind::Call(f, args) => self.check_call(env, f, args, e.span),
            ExprKind::Unary(op, a) => {
                let t = self.check_expr(env, a, expected);
                match op {
                    UnOp::Neg
                        if t.is_numeric() || matches!(t, Ty::Tensor(Elem::Real | Elem::Int, _)) =>
                    {
                        if let Ty::Fin(_) = t {
                            Ty::Int
                        } else {
                            t
                        }
                    }
                    UnOp::Not if matches!(t, Ty::Bool | Ty::Error | Ty::Tensor(Elem::Bool, _)) => t,
                    _ => {
                        let (sym, want) = if *op == UnOp::Neg {
                            ("-", "a number")
                        } else {
                            ("!", "a Bool")
                        };
                        self.report(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                a.span,
                                format!("`{sym}` needs {want}, found {t}"),
                            )
                            .label(format!("this is {t}")),
                        );
                        Ty::Error
                    }
                }
            }
            ExprKind::Binary(op, a, b) => self.check_binary(env, *op, a, b, e.span, expected),
            ExprKind::If(c, a, b) => {
                let ct = self.check_expr(env, c, Some(&Ty::Bool));
                if !matches!(ct, Ty::Bool | Ty::Error) {
                    self.report(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            c.span,
                            format!("the condition of `if` must be a Bool, found {ct}"),
                        )
                        .label(format!("this is {ct}"))
                        .hint("compare it: `x > 0.0`"),
                    );
                }
                let ta = self.check_expr(env, a, expected);
                let tb = self.check_expr(env, b, expected.or(Some(&ta)));
                self.unify_branches(&ta, &tb, a.span, b.span, "`if` branches")
            }
            ExprKind::Match(scrut, arms) => self.check_match(env, scrut, arms, e.span, expected),
            ExprKind::Array(items) => {
                let inner_expected = match expected {
                    Some(Ty::Tensor(el, d)) if d.len() > 1 => {
                        Some(Ty::Tensor(*el, d[1..].to_vec()))
                    }
                    Some(Ty::Tensor(el, _)) => Some(el.scalar()),
                    _ => None,
                };
                if items.is_empty() {
                    self.report(
                        Diagnostic::new(codes::BAD_SIZE, e.span, "empty tensor literal")
                            .hint("tensors have at least one element"),
                    );
                    return Ty::Error;
                }
                let mut t = self.check_expr(env, &items[0], inner_expected.as_ref());
                for it in &items[1..] {
                    let ti = self.check_expr(env, it, inner_expected.as_ref().or(Some(&t)));
                    t = self.unify_branches(&t, &ti, items[0].span, it.span, "tensor elements");
                }
                match t {
                    Ty::Error => Ty::Error,
                    Ty::Tensor(el, mut d) => {
                        d.insert(0, Dim::Known(items.len() as u64));
                        Ty::Tensor(el, d)
                    }
                    s => match s.elem() {
                        Some(el) => Ty::Tensor(el, vec![Dim::Known(items.len() as u64)]),
                        None => {
                            self.report(
                                Diagnostic::new(
                                    codes::TYPE_MISMATCH,
                                    items[0].span,
                                    format!("tensors hold Real, Int or Bool, not {s}"),
                                )
                                .label("element"),
                            );
                            Ty::Error
                        }
                    },
                }
            }
            ExprKind::Record(name, fields) => {
                self.check_record(env, name.as_ref(), fields, e.span, expected)
            }
            ExprKind::Range(lo, hi) => {
                for b in [lo, hi].into_iter().flatten() {
                    self.check_expr(env, b, Some(&Ty::Int));
                }
                self.report(
                    Diagnostic::new(
                        codes::BAD_SLICE,
                        e.span,
                        "a range is allowed only inside the brackets of a tensor slice",
                    )
                    .label("a range here")
                    .hint("slice a tensor with `x[lo..hi]`; box arrays and run blocks take single indices"),
                );
                Ty::Error
            }
        }
    }

    fn unify_branches(&mut self, a: &Ty, b: &Ty, sa: Span, sb: Span, what: &str) -> Ty {
        if a.fits(b) && !matches!(b, Ty::Error) {
            return b.clone();
        }
        if b.fits(a) {
            return a.clone();
        }
        let code = if matches!((a, b), (Ty::Tensor(..), Ty::Tensor(..))) {
            codes::SHAPE_MISMATCH
        } else {
            codes::TYPE_MISMATCH
        };
        self.report(
            Diagnostic::new(
                code,
                sb,
                format!("{what} have different types: {a} and {b}"),
            )
            .label(format!("this is {b}"))
            .with(sa, format!("this is {a}"))
            .hint("both must have one type (Int mixes with Real)"),
        );
        Ty::Error
    }

    fn check_var(&mut self, env: &mut dyn Env, name: &Ident) -> Ty {
        match env.lookup(self, name) {
            Some(Res::Val(t)) => return t,
            Some(Res::Forbidden) => return Ty::Error,
            Some(Res::Box(_)) => {
                self.report(
                    Diagnostic::new(
                        codes::WRONG_KIND,
                        name.span,
                        format!("`{}` is a box, not a value", name.name),
                    )
                    .label("a box")
                    .hint(format!("read one of its out ports: `{}.PORT`", name.name)),
                );
                return Ty::Error;
            }
            Some(Res::Group(_)) => {
                self.report(
                    Diagnostic::new(
                        codes::WRONG_KIND,
                        name.span,
                        format!("`{}` is a group of ports, not a value", name.name),
                    )
                    .label("a group")
                    .hint(format!("read one of its ports: `{}.PORT`", name.name)),
                );
                return Ty::Error;
            }
            None => {}
        }
        match self.lookup(&name.name) {
            Some(Binding::Item(id)) => match &self.item(id).kind {
                ItemKind::Const(_) => self.const_item(id).0,
                _ => {
                    self.report(
                        Diagnostic::new(
                            codes::WRONG_KIND,
                            name.span,
                            format!("`{}` is not a value", name.name),
                        )
                        .label("a definition, not a value")
                        .hint("values are consts, params, states, inputs, lets and box outputs"),
                    );
                    Ty::Error
                }
            },
            Some(Binding::Variant(id, _)) => Ty::Enum(self.enum_ty(id)),
            Some(Binding::Module(_)) => {
                self.report(Diagnostic::new(
                    codes::WRONG_KIND,
                    name.span,
                    format!("`{}` is a module, not a value", name.name),
                ));
                Ty::Error
            }
            None if self.poisoned.contains(&(self.cur, name.name.clone())) => Ty::Error,
            None => {
                let mut names = env.names();
                names.extend(self.scope_names());
                let mut d = Diagnostic::new(
                    codes::UNKNOWN_NAME,
                    name.span,
                    format!("unknown name `{}`", name.name),
                )
                .label("not found in this scope");
                if let Some(s) = suggest(&name.name, names.iter().map(String::as_str)) {
                    d = d.hint(format!("did you mean `{s}`?"));
                }
                self.report(d);
                Ty::Error
            }
        }
    }

    fn check_field(&mut self, env: &mut dyn Env, base: &Expr, field: &Ident, span: Span) -> Ty {
        // Boxes, box arrays, port groups, modules and enums are resolved by name.
        match &base.kind {
            ExprKind::Var(b) => match env.lookup(self, b) {
                Some(Res::Box(i)) => return env.box_port(self, i, None, field, span),
                Some(Res::Group(g)) => {
                    return match env.group_field(self, &g, field) {
                        Some(t) => t,
                        None => {
                            self.report(
                                Diagnostic::new(
                                    codes::UNKNOWN_PORT,
                                    field.span,
                                    format!("`{g}` has no port `{}`", field.name),
                                )
                                .label("unknown port"),
                            );
                            Ty::Error
                        }
                    };
                }
                Some(Res::Forbidden) => return Ty::Error,
                Some(Res::Val(t)) => return self.record_field(&t, field, base.span),
                None => match self.lookup(&b.name) {
                    Some(Binding::Module(m)) => {
                        let saved = self.cur;
                        self.cur = m;
                        let t = self.check_var(&mut GlobalEnv, field);
                        self.cur = saved;
                        return t;
                    }
                    Some(Binding::Item(id)) if matches!(self.item(id).kind, ItemKind::Enum(_)) => {
                        let et = self.enum_ty(id);
                        if !et.variants.contains(&field.name) {
                            self.report(
                                Diagnostic::new(
                                    codes::UNKNOWN_NAME,
                                    field.span,
                                    format!("enum `{}` has no variant `{}`", et.name, field.name),
                                )
                                .label("unknown variant")
                                .hint(format!("its variants: {}", et.variants.join(", "))),
                            );
                        }
                        return Ty::Enum(et);
                    }
                    _ => {}
                },
            },
            ExprKind::Field(inner, group) => {
                // `t.a.pop`: the port `a.pop` of a box whose interface has a named factor `a`.
                let target = match &inner.kind {
                    ExprKind::Var(b) => Some((b, None)),
                    ExprKind::Index(bb, idx) if idx.len() == 1 => match &bb.kind {
                        ExprKind::Var(b) => Some((b, Some(&idx[0]))),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some((b, idx)) = target
                    && let Some(Res::Box(i)) = env.lookup(self, b)
                {
                    let port = Ident {
                        name: format!("{}.{}", group.name, field.name),
                        span: group.span.to(field.span),
                    };
                    return env.box_port(self, i, idx, &port, span);
                }
            }
            ExprKind::Index(inner, idx) if idx.len() == 1 => {
                if let ExprKind::Var(b) = &inner.kind
                    && let Some(Res::Box(i)) = env.lookup(self, b)
                {
                    let ti = self.check_expr(env, &idx[0], Some(&Ty::Int));
                    if !ti.is_int() {
                        self.report(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                idx[0].span,
                                format!("a box-array index must be an Int, found {ti}"),
                            )
                            .label(format!("this is {ti}")),
                        );
                    }
                    return env.box_port(self, i, Some(&idx[0]), field, span);
                }
            }
            _ => {}
        }
        let t = self.check_expr(env, base, None);
        self.record_field(&t, field, base.span)
    }

    fn record_field(&mut self, t: &Ty, field: &Ident, base: Span) -> Ty {
        match t {
            Ty::Error => Ty::Error,
            Ty::Record(fields) => match fields.iter().find(|(n, _)| *n == field.name) {
                Some((_, t)) => t.clone(),
                None => {
                    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_NAME,
                            field.span,
                            format!("no field `{}` in {t}", field.name),
                        )
                        .label("unknown field")
                        .with(base, format!("this is {t}"))
                        .hint(format!("its fields: {}", names.join(", "))),
                    );
                    Ty::Error
                }
            },
            _ => {
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_PORT,
                        field.span,
                        format!("`.{}` on a value of type {t}", field.name),
                    )
                    .label("no such field or port")
                    .with(base, format!("this is {t}, which has no fields")),
                );
                Ty::Error
            }
        }
    }

    fn check_index(&mut self, env: &mut dyn Env, base: &Expr, idx: &[Expr], span: Span) -> Ty {
        if let ExprKind::Var(b) = &base.kind
            && let Some(Res::Box(_)) = env.lookup(self, b)
        {
            self.report(
                Diagnostic::new(
                    codes::WRONG_KIND,
                    span,
                    format!("`{}[…]` is a box, not a value", b.name),
                )
                .label("a box of a box array")
                .hint(format!("read a port: `{}[i].PORT`", b.name)),
            );
            return Ty::Error;
        }
        let bt = self.check_expr(env, base, None);
        if idx.iter().any(|i| matches!(i.kind, ExprKind::Range(..))) {
            return self.check_slice(env, base, bt, idx, span);
        }
        for i in idx {
            let it = self.check_expr(env, i, Some(&Ty::Int));
            if !it.is_int() {
                self.report(
                    Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        i.span,
                        format!("an index must be an Int, found {it}"),
                    )
                    .label(format!("this is {it}")),
                );
            }
        }
        match bt {
            Ty::Error => Ty::Error,
            Ty::Tensor(el, dims) => {
                if idx.len() > dims.len() {
                    self.report(
                        Diagnostic::new(
                            codes::SHAPE_MISMATCH,
                            span,
                            format!("{} indices into a tensor of rank {}", idx.len(), dims.len()),
                        )
                        .label(format!("indexes {}", Ty::Tensor(el, dims.clone()))),
                    );
                    return Ty::Error;
                }
                // Constant indices are checked against known sizes.
                for (i, d) in idx.iter().zip(&dims) {
                    if let (Dim::Known(n), Ok(crate::consteval::Value::Int(v))) = (d, {
                        let sizes = crate::checker::Sizes::default();
                        let mut ce = crate::checker::GlobalConsts {
                            cx: self,
                            sizes: &sizes,
                            loop_vars: &HashMap::new(),
                        };
                        crate::consteval::eval(&mut ce, i)
                    }) && (v < 0 || v as u64 >= *n)
                    {
                        self.report(
                            Diagnostic::new(
                                codes::INDEX_RANGE,
                                i.span,
                                format!("index {v} is out of range for a dimension of size {n}"),
                            )
                            .label(format!("valid indices are 0 to {}", n.saturating_sub(1))),
                        );
                    }
                }
                if idx.len() == dims.len() {
                    el.scalar()
                } else {
                    Ty::Tensor(el, dims[idx.len()..].to_vec())
                }
            }
            t => {
                self.report(
                    Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        base.span,
                        format!("only tensors can be indexed, this is {t}"),
                    )
                    .label(format!("this is {t}")),
                );
                Ty::Error
            }
        }
    }

    /// A compile-time Int bound of a slice; `None` (reported) when it is not one.
    fn slice_bound(&mut self, env: &mut dyn Env, e: &Expr) -> Option<i64> {
        let t = self.check_expr(env, e, Some(&Ty::Int));
        if t.is_error() {
            return None;
        }
        let sizes = env.sizes();
        let v = {
            let mut ce = GlobalConsts {
                cx: self,
                sizes: &sizes,
                loop_vars: &HashMap::new(),
            };
            consteval::eval(&mut ce, e)
        };
        match v {
            Ok(Value::Int(v)) => Some(v),
            Ok(_) => {
                self.report(
                    Diagnostic::new(codes::BAD_SLICE, e.span, "a slice bound must be an Int")
                        .label(format!("this is {t}")),
                );
                None
            }
            Err(nc) if nc.quiet => None,
            Err(nc) => {
                self.report(
                    Diagnostic::new(
                        codes::BAD_SLICE,
                        e.span,
                        "slice bounds must be known at compile time",
                    )
                    .label(format!("this {}", nc.why))
                    .hint("the bounds fix the result's size: use literals, consts and their arithmetic; a run-time position can be read with an index `x[i]`"),
                );
                None
            }
        }
    }

    /// `x[a, lo..hi, …]`: a slice with at least one range item.
    fn check_slice(
        &mut self,
        env: &mut dyn Env,
        base: &Expr,
        bt: Ty,
        idx: &[Expr],
        span: Span,
    ) -> Ty {
        let (el, dims) = match bt {
            Ty::Tensor(el, dims) => (el, dims),
            t => {
                for i in idx {
                    if let ExprKind::Range(lo, hi) = &i.kind {
                        for b in [lo, hi].into_iter().flatten() {
                            self.check_expr(env, b, Some(&Ty::Int));
                        }
                    } else {
                        self.check_expr(env, i, Some(&Ty::Int));
                    }
                }
                if !t.is_error() {
                    self.report(
                        Diagnostic::new(
                            codes::WRONG_RANK,
                            base.span,
                            format!("only tensors can be sliced, this is {t}"),
                        )
                        .label(format!("this is {t}")),
                    );
                }
                return Ty::Error;
            }
        };
        let mut ok = true;
        if idx.len() > dims.len() {
            self.report(
                Diagnostic::new(
                    codes::WRONG_RANK,
                    span,
                    format!(
                        "{} slice items for a tensor of rank {}",
                        idx.len(),
                        dims.len()
                    ),
                )
                .label(format!("slices {}", Ty::Tensor(el, dims.clone())))
                .with(base.span, format!("this has {}", axes(dims.len())))
                .hint("give at most one item (an index or a range) per axis"),
            );
            ok = false;
        }
        let mut out: Vec<Dim> = Vec::new();
        for (k, i) in idx.iter().enumerate() {
            let dim = dims.get(k).cloned();
            match &i.kind {
                ExprKind::Range(lo, hi) => {
                    let l = match lo {
                        Some(e) => self.slice_bound(env, e),
                        None => Some(0),
                    };
                    let h = match hi {
                        Some(e) => self.slice_bound(env, e).map(Some),
                        None => Some(None),
                    };
                    let (Some(l), Some(h), Some(dim)) = (l, h, dim) else {
                        ok = false;
                        continue;
                    };
                    let size = match &dim {
                        Dim::Known(n) => Some(*n as i64),
                        Dim::Param(_) => None,
                    };
                    let h_val = h.or(size);
                    let Some(hv) = h_val else {
                        if l == 0 {
                            out.push(dim);
                        } else {
                            self.report(
                                Diagnostic::new(
                                    codes::BAD_SLICE,
                                    i.span,
                                    format!("`{l}..` of an axis of symbolic size `{dim}` has no known size"),
                                )
                                .label("open upper bound")
                                .hint(format!("write both bounds (`{l}..HI`) so that the result's size is known")),
                            );
                            ok = false;
                        }
                        continue;
                    };
                    let in_range = l >= 0 && size.is_none_or(|n| hv <= n);
                    if !in_range {
                        let n = size.unwrap_or(0);
                        self.report(
                            Diagnostic::new(
                                codes::BAD_SLICE,
                                i.span,
                                format!("slice {l}..{hv} is out of range for an axis of size {n}"),
                            )
                            .label(format!("valid bounds are 0 <= lo < hi <= {n}"))
                            .with(
                                base.span,
                                format!("this is {}", Ty::Tensor(el, dims.clone())),
                            )
                            .hint("`x[lo..hi]` keeps the elements lo to hi - 1; leave a bound out to run to an end of the axis (`x[lo..]`, `x[..hi]`)"),
                        );
                        ok = false;
                    } else if l >= hv {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_SLICE,
                                i.span,
                                format!("slice {l}..{hv} is empty"),
                            )
                            .label("no elements")
                            .hint("a slice keeps at least one element: the upper bound is exclusive and must exceed the lower one"),
                        );
                        ok = false;
                    } else {
                        out.push(Dim::Known((hv - l) as u64));
                    }
                }
                _ => {
                    let it = self.check_expr(env, i, Some(&Ty::Int));
                    if !it.is_int() {
                        self.report(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                i.span,
                                format!("an index must be an Int, found {it}"),
                            )
                            .label(format!("this is {it}")),
                        );
                        ok = false;
                    }
                    if let Some(Dim::Known(n)) = dim {
                        let sizes = env.sizes();
                        let v = {
                            let mut ce = GlobalConsts {
                                cx: self,
                                sizes: &sizes,
                                loop_vars: &HashMap::new(),
                            };
                            consteval::eval(&mut ce, i)
                        };
                        if let Ok(Value::Int(v)) = v
                            && (v < 0 || v as u64 >= n)
                        {
                            self.report(
                                Diagnostic::new(
                                    codes::INDEX_RANGE,
                                    i.span,
                                    format!(
                                        "index {v} is out of range for a dimension of size {n}"
                                    ),
                                )
                                .label(format!("valid indices are 0 to {}", n.saturating_sub(1))),
                            );
                            ok = false;
                        }
                    }
                }
            }
        }
        if !ok {
            return Ty::Error;
        }
        out.extend(dims[idx.len()..].iter().cloned());
        Ty::Tensor(el, out)
    }

    fn check_binary(
        &mut self,
        env: &mut dyn Env,
        op: BinOp,
        a: &Expr,
        b: &Expr,
        span: Span,
        expected: Option<&Ty>,
    ) -> Ty {
        let hint = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem | BinOp::Pow => expected,
            _ => None,
        };
        let ta = self.check_expr(env, a, hint);
        let tb = self.check_expr(env, b, hint.or(Some(&ta)).filter(|t| t.is_numeric()));
        if ta.is_error() || tb.is_error() {
            return match op {
                BinOp::Eq
                | BinOp::Ne
                | BinOp::Lt
                | BinOp::Le
                | BinOp::Gt
                | BinOp::Ge
                | BinOp::And
                | BinOp::Or => Ty::Bool,
                _ => Ty::Error,
            };
        }
        let mismatch = |cx: &mut Self, what: String, hint: &str| {
            cx.report(
                Diagnostic::new(codes::TYPE_MISMATCH, span, what)
                    .label(format!("`{}` here", op.symbol()))
                    .with(a.span, format!("this is {ta}"))
                    .with(b.span, format!("this is {tb}"))
                    .hint(hint.to_string()),
            );
            Ty::Error
        };
        match op {
            BinOp::And | BinOp::Or => {
                if ta == Ty::Bool && tb == Ty::Bool {
                    Ty::Bool
                } else {
                    mismatch(
                        self,
                        format!("`{}` needs two Bools, found {ta} and {tb}", op.symbol()),
                        "compare numbers first: `x > 0.0 && y > 0.0`",
                    );
                    Ty::Bool
                }
            }
            BinOp::Eq | BinOp::Ne => {
                let ok = (ta.is_numeric() && tb.is_numeric())
                    || ta == tb && matches!(ta, Ty::Bool | Ty::Enum(_));
                if !ok {
                    mismatch(
                        self,
                        format!("cannot compare {ta} with {tb}"),
                        "compare numbers with numbers, Bools with Bools, enums with the same enum",
                    );
                }
                Ty::Bool
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                if !(ta.is_numeric() && tb.is_numeric()) {
                    mismatch(
                        self,
                        format!("`{}` compares numbers, found {ta} and {tb}", op.symbol()),
                        "order comparisons need Real or Int on both sides",
                    );
                }
                Ty::Bool
            }
            BinOp::MatMul => self.matmul(&ta, &tb, a.span, b.span, span),
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem | BinOp::Pow => {
                let (Some(ea), Some(eb)) = (elem_of(&ta), elem_of(&tb)) else {
                    return mismatch(
                        self,
                        format!("`{}` needs numbers, found {ta} and {tb}", op.symbol()),
                        "arithmetic works on Real, Int and their tensors",
                    );
                };
                if ea == Elem::Bool || eb == Elem::Bool {
                    return mismatch(
                        self,
                        format!("`{}` needs numbers, found {ta} and {tb}", op.symbol()),
                        "a Bool is not a number: write `if b then 1.0 else 0.0`",
                    );
                }
                let el = if ea == Elem::Real || eb == Elem::Real {
                    Elem::Real
                } else {
                    Elem::Int
                };
                match (&ta, &tb) {
                    (Ty::Tensor(_, da), Ty::Tensor(_, db)) => {
                        if da != db {
                            self.report(
                                Diagnostic::new(codes::SHAPE_MISMATCH, span, format!("`{}` on tensors of different shapes: {ta} and {tb}", op.symbol()))
                                    .label("element-wise operation")
                                    .with(a.span, format!("this is {ta}"))
                                    .with(b.span, format!("this is {tb}"))
                                    .hint("element-wise operations need equal shapes; use `@` for a matrix product"),
                            );
                            return Ty::Error;
                        }
                        Ty::Tensor(el, da.clone())
                    }
                    (Ty::Tensor(_, d), _) | (_, Ty::Tensor(_, d)) => Ty::Tensor(el, d.clone()),
                    _ => el.scalar(),
                }
            }
        }
    }

    fn matmul(&mut self, ta: &Ty, tb: &Ty, sa: Span, sb: Span, span: Span) -> Ty {
        let (Ty::Tensor(ea, da), Ty::Tensor(eb, db)) = (ta, tb) else {
            self.report(
                Diagnostic::new(
                    codes::TYPE_MISMATCH,
                    span,
                    format!("`@` multiplies tensors, found {ta} and {tb}"),
                )
                .label("matrix product")
                .with(sa, format!("this is {ta}"))
                .with(sb, format!("this is {tb}"))
                .hint("use `*` to scale by a number"),
            );
            return Ty::Error;
        };
        if *ea == Elem::Bool || *eb == Elem::Bool {
            self.report(
                Diagnostic::new(codes::TYPE_MISMATCH, span, "`@` needs numeric tensors")
                    .label("Bool tensor"),
            );
            return Ty::Error;
        }
        let el = if *ea == Elem::Real || *eb == Elem::Real {
            Elem::Real
        } else {
            Elem::Int
        };
        let inner_a = da.last();
        let inner_b = db.first();
        let ok_rank = da.len() <= 2 && db.len() <= 2;
        if !ok_rank || inner_a != inner_b {
            let why = if ok_rank {
                format!(
                    "the inner dimensions differ: {} (columns of the left) vs {} (rows of the right)",
                    inner_a.map(|d| d.to_string()).unwrap_or_default(),
                    inner_b.map(|d| d.to_string()).unwrap_or_default()
                )
            } else {
                "`@` takes vectors and matrices".to_string()
            };
            self.report(
                Diagnostic::new(codes::SHAPE_MISMATCH, span, format!("shape mismatch in matrix product: {ta} @ {tb}"))
                    .label(why)
                    .with(sa, format!("this is {ta}"))
                    .with(sb, format!("this is {tb}"))
                    .hint("`Real[m, n] @ Real[n]` is `Real[m]`; `Real[m, n] @ Real[n, k]` is `Real[m, k]`"),
            );
            return Ty::Error;
        }
        let mut dims: Vec<Dim> = da[..da.len() - 1].to_vec();
        dims.extend_from_slice(&db[1..]);
        if dims.is_empty() {
            el.scalar()
        } else {
            Ty::Tensor(el, dims)
        }
    }

    fn check_call(&mut self, env: &mut dyn Env, f: &Expr, args: &[Arg], span: Span) -> Ty {
        let name = match &f.kind {
            ExprKind::Var(n) => n.clone(),
            ExprKind::Field(base, n) => match &base.kind {
                ExprKind::Var(m) if matches!(self.lookup(&m.name), Some(Binding::Module(_))) => {
                    let Some(Binding::Module(mid)) = self.lookup(&m.name) else {
                        unreachable!()
                    };
                    let saved = self.cur;
                    self.cur = mid;
                    let sig = match self.lookup(&n.name) {
                        Some(Binding::Item(id))
                            if matches!(self.item(id).kind, ItemKind::Fn(_)) =>
                        {
                            self.fn_sig(id)
                        }
                        _ => None,
                    };
                    self.cur = saved;
                    return match sig {
                        Some(sig) => self.apply_sig(env, &sig, &n.name, args, span),
                        None => {
                            self.report(
                                Diagnostic::new(
                                    codes::BAD_CALL,
                                    n.span,
                                    format!("`{}` has no fn `{}`", m.name, n.name),
                                )
                                .label("unknown function"),
                            );
                            Ty::Error
                        }
                    };
                }
                _ => {
                    self.report(
                        Diagnostic::new(codes::BAD_CALL, f.span, "only functions can be called")
                            .label("not a function"),
                    );
                    return Ty::Error;
                }
            },
            _ => {
                self.report(
                    Diagnostic::new(codes::BAD_CALL, f.span, "only functions can be called")
                        .label("not a function"),
                );
                return Ty::Error;
            }
        };
        for a in args {
            if let Some(n) = &a.name {
                self.report(
                    Diagnostic::new(codes::BAD_CALL, n.span, "function arguments are positional")
                        .label("named argument")
                        .hint("named arguments set params of boxes (`box b: S(k = 1.0)`) and methods in run blocks"),
                );
            }
        }
        if let Some(Binding::Item(id)) = self.lookup(&name.name)
            && matches!(self.item(id).kind, ItemKind::Fn(_))
        {
            return match self.fn_sig(id) {
                Some(sig) => self.apply_sig(env, &sig, &name.name, args, span),
                None => Ty::Error,
            };
        }
        self.builtin(env, &name, args, span)
    }

    fn arg_count(&mut self, name: &Ident, args: &[Arg], n: usize, span: Span) -> bool {
        if args.len() == n {
            return true;
        }
        self.report(
            Diagnostic::new(
                codes::BAD_CALL,
                span,
                format!(
                    "`{}` takes {n} argument{}, {} given",
                    name.name,
                    if n == 1 { "" } else { "s" },
                    args.len()
                ),
            )
            .label("wrong number of arguments"),
        );
        false
    }

    /// Reports a tensor of the wrong rank (or a scalar) given to the built-in `f`.
    fn rank_error(&mut self, f: &str, t: &Ty, at: Span, want: &str) -> Ty {
        self.report(
            Diagnostic::new(
                codes::WRONG_RANK,
                at,
                format!("`{f}` takes {want}, found {t}"),
            )
            .label(format!("this is {t}"))
            .hint(match t {
                Ty::Tensor(_, d) => format!("this tensor has {}", axes(d.len())),
                _ => "this is not a tensor".to_string(),
            }),
        );
        Ty::Error
    }

    /// Checks the argument of a built-in that takes a numeric tensor (of rank `rank` if
    /// given); its element type and dimensions, or `None` once reported.
    fn numeric_tensor(
        &mut self,
        env: &mut dyn Env,
        f: &str,
        arg: &Expr,
        rank: Option<usize>,
    ) -> Option<(Elem, Vec<Dim>)> {
        let t = self.check_expr(env, arg, None);
        let want = match rank {
            Some(1) => "a vector `Real[n]`",
            Some(2) => "a matrix `Real[n, n]`",
            _ => "a tensor",
        };
        match &t {
            Ty::Error => None,
            Ty::Tensor(Elem::Bool, _) => {
                self.report(
                    Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        arg.span,
                        format!("`{f}` needs a numeric tensor, found {t}"),
                    )
                    .label(format!("this is {t}")),
                );
                None
            }
            Ty::Tensor(el, d) if rank.is_none_or(|r| r == d.len()) => Some((*el, d.clone())),
            _ => {
                self.rank_error(f, &t, arg.span, want);
                None
            }
        }
    }

    /// Checks the argument of `solve` or `spectral_radius`: a numeric square matrix. Its
    /// size, or `None` once reported (E0026 for another rank, E0028 for a non-square one).
    fn square_matrix(&mut self, env: &mut dyn Env, f: &str, arg: &Expr) -> Option<Dim> {
        let (el, d) = self.numeric_tensor(env, f, arg, Some(2))?;
        if d[0] != d[1] {
            let t = Ty::Tensor(el, d.clone());
            self.report(
                Diagnostic::new(
                    codes::NOT_SQUARE,
                    arg.span,
                    format!("`{f}` needs a square matrix, found {t}"),
                )
                .label(format!("{} rows, {} columns", d[0], d[1]))
                .hint(if f == "solve" {
                    "for least squares, solve the normal equations: `solve(transpose(A) @ A, transpose(A) @ b)`"
                } else {
                    "eigenvalues exist only for square matrices `Real[n, n]`"
                }),
            );
            return None;
        }
        Some(d[0].clone())
    }

    /// `grad(expr, wrt)`: `wrt` names a Real (tensor) variable in scope, `expr` is a Real
    /// scalar; the type is `wrt`'s.
    fn check_grad(&mut self, env: &mut dyn Env, name: &Ident, args: &[Arg], span: Span) -> Ty {
        if !self.arg_count(name, args, 2, span) {
            for a in args {
                self.check_expr(env, &a.value, None);
            }
            return Ty::Error;
        }
        let (e, w) = (&args[0].value, &args[1].value);
        let what = "a state, param, let, input or fn argument";
        let wt = match &w.kind {
            ExprKind::Var(v) => match env.lookup(self, v) {
                Some(Res::Val(t)) => {
                    self.typeck.record(self.ctx, w, &t);
                    Some(t)
                }
                Some(Res::Forbidden) => None,
                Some(_) => {
                    self.report(
                        Diagnostic::new(
                            codes::BAD_GRAD,
                            w.span,
                            format!("`grad` differentiates with respect to a variable, and `{}` is not a value", v.name),
                        )
                        .label("not a variable")
                        .hint(format!("name {what}")),
                    );
                    None
                }
                None => {
                    let t = self.check_var(env, v);
                    if !t.is_error() {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_GRAD,
                                w.span,
                                format!("`{}` is a module-level constant, not a variable `grad` can differentiate with respect to", v.name),
                            )
                            .label("a constant")
                            .hint(format!("name {what}")),
                        );
                    }
                    None
                }
            },
            _ => {
                self.check_expr(env, w, None);
                self.report(
                    Diagnostic::new(
                        codes::BAD_GRAD,
                        w.span,
                        "the second argument of `grad` must name a variable",
                    )
                    .label("an expression, not a variable")
                    .hint(format!(
                        "`grad(expr, x)` differentiates with respect to {what}; to differentiate with respect to an expression, put it in a `let`"
                    )),
                );
                None
            }
        };
        let et = self.check_expr(env, e, Some(&Ty::Real));
        let mut ok = wt.is_some();
        if !matches!(et, Ty::Real | Ty::Error) {
            let hint = if matches!(et, Ty::Tensor(..)) {
                "`grad` differentiates a Real scalar: reduce the tensor first (`sum`, `dot`, `norm`, a loss)"
            } else {
                "`grad` differentiates a Real scalar"
            };
            self.report(
                Diagnostic::new(
                    codes::BAD_GRAD,
                    e.span,
                    format!("`grad` of {et}: only a Real scalar can be differentiated"),
                )
                .label(format!("this is {et}"))
                .hint(hint),
            );
            ok = false;
        }
        let wt = wt.unwrap_or(Ty::Error);
        match &wt {
            Ty::Real | Ty::Error | Ty::Tensor(Elem::Real, _) => {}
            t => {
                self.report(
                    Diagnostic::new(
                        codes::BAD_GRAD,
                        w.span,
                        format!("`grad` with respect to {t}: only Real variables (or Real tensors) vary continuously"),
                    )
                    .label(format!("this is {t}"))
                    .hint("declare the variable Real to differentiate with respect to it"),
                );
                ok = false;
            }
        }
        if ok && !et.is_error() { wt } else { Ty::Error }
    }

    fn builtin(&mut self, env: &mut dyn Env, name: &Ident, args: &[Arg], span: Span) -> Ty {
        let n = name.name.as_str();
        if UNARY_MATH.contains(&n) {
            if !self.arg_count(name, args, 1, span) {
                return Ty::Error;
            }
            let t = self.check_expr(env, &args[0].value, Some(&Ty::Real));
            return match elem_of(&t) {
                _ if t.is_error() => Ty::Error,
                Some(Elem::Int) if n == "abs" => t,
                Some(Elem::Real | Elem::Int) => with_elem(&t, Elem::Real),
                _ => {
                    self.report(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            args[0].value.span,
                            format!("`{n}` needs a number or a numeric tensor, found {t}"),
                        )
                        .label(format!("this is {t}")),
                    );
                    Ty::Error
                }
            };
        }
        if matches!(n, "min" | "max") && args.len() == 1 {
            let which = if n == "max" { "largest" } else { "smallest" };
            let t = self.check_expr(env, &args[0].value, None);
            return match &t {
                Ty::Error => Ty::Error,
                Ty::Tensor(el @ (Elem::Real | Elem::Int), _) => el.scalar(),
                _ => {
                    self.report(
                        Diagnostic::new(
                            codes::WRONG_RANK,
                            args[0].value.span,
                            format!("`{n}` of one argument is the {which} element of a numeric tensor, found {t}"),
                        )
                        .label(format!("this is {t}"))
                        .hint(format!("`{n}(a, b)` compares two numbers; `{n}(x)` reduces a tensor")),
                    );
                    Ty::Error
                }
            };
        }
        if BINARY_MATH.contains(&n) {
            if !self.arg_count(name, args, 2, span) {
                return Ty::Error;
            }
            let a = self.check_expr(env, &args[0].value, None);
            let b = self.check_expr(env, &args[1].value, Some(&a));
            if a.is_error() || b.is_error() {
                return Ty::Error;
            }
            let int = a.is_int() && b.is_int() && matches!(n, "min" | "max");
            return match (&a, &b) {
                (x, y) if x.is_numeric() && y.is_numeric() => {
                    if int {
                        Ty::Int
                    } else {
                        Ty::Real
                    }
                }
                (Ty::Tensor(_, d), y) | (y, Ty::Tensor(_, d)) if y.is_numeric() => {
                    Ty::Tensor(Elem::Real, d.clone())
                }
                (Ty::Tensor(_, d1), Ty::Tensor(_, d2)) if d1 == d2 => {
                    Ty::Tensor(Elem::Real, d1.clone())
                }
                _ => {
                    self.report(
                        Diagnostic::new(codes::TYPE_MISMATCH, span, format!("`{n}` needs two numbers (or tensors of one shape), found {a} and {b}"))
                            .label("here"),
                    );
                    Ty::Error
                }
            };
        }
        match n {
            "transpose" => {
                if !self.arg_count(name, args, 1, span) {
                    return Ty::Error;
                }
                let t = self.check_expr(env, &args[0].value, None);
                match &t {
                    Ty::Error => Ty::Error,
                    Ty::Tensor(el, d) if d.len() == 2 => {
                        Ty::Tensor(*el, vec![d[1].clone(), d[0].clone()])
                    }
                    _ => self.rank_error(n, &t, args[0].value.span, "a matrix `Real[m, n]`"),
                }
            }
            "mean" => {
                if !self.arg_count(name, args, 1, span) {
                    return Ty::Error;
                }
                match self.numeric_tensor(env, n, &args[0].value, None) {
                    Some(_) => Ty::Real,
                    None => Ty::Error,
                }
            }
            "softmax" | "logsumexp" | "argmax" | "argmin" => {
                if !self.arg_count(name, args, 1, span) {
                    return Ty::Error;
                }
                match self.numeric_tensor(env, n, &args[0].value, Some(1)) {
                    Some((_, d)) => match n {
                        "softmax" => Ty::Tensor(Elem::Real, d),
                        "logsumexp" => Ty::Real,
                        _ => Ty::Int,
                    },
                    None => Ty::Error,
                }
            }
            "outer" => {
                if !self.arg_count(name, args, 2, span) {
                    return Ty::Error;
                }
                let a = self.numeric_tensor(env, n, &args[0].value, Some(1));
                let b = self.numeric_tensor(env, n, &args[1].value, Some(1));
                match (a, b) {
                    (Some((ea, da)), Some((eb, db))) => {
                        let el = if ea == Elem::Int && eb == Elem::Int {
                            Elem::Int
                        } else {
                            Elem::Real
                        };
                        Ty::Tensor(el, vec![da[0].clone(), db[0].clone()])
                    }
                    _ => Ty::Error,
                }
            }
            "one_hot" => {
                if !self.arg_count(name, args, 2, span) {
                    return Ty::Error;
                }
                let k = self.check_expr(env, &args[0].value, Some(&Ty::Int));
                if !k.is_int() {
                    self.report(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            args[0].value.span,
                            format!("`one_hot` takes an Int class, found {k}"),
                        )
                        .label(format!("this is {k}"))
                        .hint("convert a Real label with `int(x)` or `round(x)`"),
                    );
                }
                let sizes = env.sizes();
                let n_arg = &args[1].value;
                if let ExprKind::Var(v) = &n_arg.kind
                    && !sizes.symbolic.contains(&v.name)
                    && !sizes.bound.contains_key(&v.name)
                {
                    // A param here is an error below, not an unused param.
                    let _ = env.lookup(self, v);
                }
                let dim = self.size(n_arg, &sizes);
                match dim {
                    Some(Dim::Known(0)) => {
                        self.report(
                            Diagnostic::new(codes::BAD_SIZE, n_arg.span, "`one_hot` of 0 classes")
                                .label("no classes")
                                .hint(
                                    "the number of classes is the length of the result, at least 1",
                                ),
                        );
                        Ty::Error
                    }
                    Some(d) if k.is_int() => Ty::Tensor(Elem::Real, vec![d]),
                    _ => Ty::Error,
                }
            }
            "solve" => {
                if !self.arg_count(name, args, 2, span) {
                    return Ty::Error;
                }
                let a = self.square_matrix(env, n, &args[0].value);
                let bt = self.check_expr(env, &args[1].value, None);
                let b = match &bt {
                    Ty::Error => None,
                    Ty::Tensor(Elem::Real | Elem::Int, d) if d.len() <= 2 => Some(d.clone()),
                    t => {
                        self.rank_error(
                            n,
                            t,
                            args[1].value.span,
                            "a right-hand side `Real[n]` or `Real[n, k]`",
                        );
                        None
                    }
                };
                let (Some(rows), Some(db)) = (a, b) else {
                    return Ty::Error;
                };
                if db[0] != rows {
                    self.report(
                        Diagnostic::new(
                            codes::SHAPE_MISMATCH,
                            args[1].value.span,
                            format!(
                                "`solve`: the matrix has {rows} rows, the right-hand side {}",
                                db[0]
                            ),
                        )
                        .label(format!("{} rows", db[0]))
                        .with(args[0].value.span, format!("{rows} rows"))
                        .hint("`solve(A, b)` with `A: Real[n, n]` takes `b: Real[n]` or `b: Real[n, k]`"),
                    );
                    return Ty::Error;
                }
                Ty::Tensor(Elem::Real, db)
            }
            "spectral_radius" => {
                if !self.arg_count(name, args, 1, span) {
                    return Ty::Error;
                }
                match self.square_matrix(env, n, &args[0].value) {
                    Some(_) => Ty::Real,
                    None => Ty::Error,
                }
            }
            "eye" => {
                if !self.arg_count(name, args, 1, span) {
                    return Ty::Error;
                }
                let sizes = env.sizes();
                let n_arg = &args[0].value;
                if let ExprKind::Var(v) = &n_arg.kind
                    && !sizes.symbolic.contains(&v.name)
                    && !sizes.bound.contains_key(&v.name)
                {
                    // A param here is an error below, not an unused param.
                    let _ = env.lookup(self, v);
                }
                match self.size(n_arg, &sizes) {
                    Some(Dim::Known(0)) => {
                        self.report(
                            Diagnostic::new(codes::BAD_SIZE, n_arg.span, "`eye` of size 0")
                                .label("empty")
                                .hint("`eye(n)` is the `Real[n, n]` identity, n at least 1"),
                        );
                        Ty::Error
                    }
                    Some(Dim::Known(k)) if k.saturating_mul(k) > crate::checker::MAX_ELEMENTS => {
                        self.report(
                            Diagnostic::new(
                                codes::BAD_SIZE,
                                n_arg.span,
                                format!(
                                    "`eye({k})` has more than {} elements",
                                    crate::checker::MAX_ELEMENTS
                                ),
                            )
                            .label("too large to allocate"),
                        );
                        Ty::Error
                    }
                    Some(d) => Ty::Tensor(Elem::Real, vec![d.clone(), d]),
                    None => Ty::Error,
                }
            }
            "grad" => self.check_grad(env, name, args, span),
            "zeros" | "ones" => {
                if !(1..=2).contains(&args.len()) {
                    self.report(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            span,
                            format!("`{n}` takes 1 or 2 sizes, found {} arguments", args.len()),
                        )
                        .label("here")
                        .hint(format!("`{n}(m)` is a Real[m], `{n}(m, n)` a Real[m, n]")),
                    );
                    return Ty::Error;
                }
                let sizes = env.sizes();
                let mut dims = Vec::new();
                for a in args {
                    if let ExprKind::Var(v) = &a.value.kind
                        && !sizes.symbolic.contains(&v.name)
                        && !sizes.bound.contains_key(&v.name)
                    {
                        // A param here is an error below, not an unused param.
                        let _ = env.lookup(self, v);
                    }
                    match self.size(&a.value, &sizes) {
                        Some(Dim::Known(0)) => {
                            self.report(
                                Diagnostic::new(codes::BAD_SIZE, a.value.span, "a size of 0")
                                    .label("empty")
                                    .hint(format!("each size of `{n}` is at least 1")),
                            );
                            return Ty::Error;
                        }
                        Some(d) => dims.push(d),
                        None => return Ty::Error,
                    }
                }
                Ty::Tensor(Elem::Real, dims)
            }
            "uniform" | "normal" => {
                let name = name.name.as_str();
                let (lo, hi) = if name == "uniform" {
                    ("lo", "hi")
                } else {
                    ("mean", "std")
                };
                if !(2..=4).contains(&args.len()) {
                    self.report(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            span,
                            format!(
                                "`{name}` takes 2 to 4 arguments ({lo}, {hi}, then sizes), found {}",
                                args.len()
                            ),
                        )
                        .label("here")
                        .hint(format!(
                            "`{name}({lo}, {hi})` is a Real, `{name}({lo}, {hi}, m, n)` a Real[m, n]"
                        )),
                    );
                    return Ty::Error;
                }
                for a in &args[..2] {
                    let t = self.check_expr(env, &a.value, Some(&Ty::Real));
                    if !t.is_error() && !matches!(t, Ty::Real | Ty::Int) {
                        self.report(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                a.value.span,
                                format!("`{name}`'s {lo} and {hi} are numbers, found {t}"),
                            )
                            .label(format!("this is {t}")),
                        );
                    }
                }
                let sizes = env.sizes();
                let mut dims = Vec::new();
                for a in &args[2..] {
                    if let ExprKind::Var(v) = &a.value.kind
                        && !sizes.symbolic.contains(&v.name)
                        && !sizes.bound.contains_key(&v.name)
                    {
                        // A param here is an error below, not an unused param.
                        let _ = env.lookup(self, v);
                    }
                    match self.size(&a.value, &sizes) {
                        Some(Dim::Known(0)) => {
                            self.report(
                                Diagnostic::new(codes::BAD_SIZE, a.value.span, "a size of 0")
                                    .label("empty")
                                    .hint(format!("each size of `{name}` is at least 1")),
                            );
                            return Ty::Error;
                        }
                        Some(d) => dims.push(d),
                        None => return Ty::Error,
                    }
                }
                if dims.is_empty() {
                    Ty::Real
                } else {
                    Ty::Tensor(Elem::Real, dims)
                }
            }
            "randn" => {
                self.arg_count(name, args, 0, span);
                Ty::Real
            }
            "real" | "int" => {
                if !self.arg_count(name, args, 1, span) {
                    return Ty::Error;
                }
                let t = self.check_expr(env, &args[0].value, None);
                if !t.is_numeric() {
                    self.report(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            args[0].value.span,
                            format!("`{n}` converts a number, found {t}"),
                        )
                        .label(format!("this is {t}")),
                    );
                }
                if n == "real" { Ty::Real } else { Ty::Int }
            }
            "sum" | "norm" | "len" => {
                if !self.arg_count(name, args, 1, span) {
                    return Ty::Error;
                }
                let t = self.check_expr(env, &args[0].value, None);
                match (&t, n) {
                    (Ty::Error, _) => Ty::Error,
                    (Ty::Tensor(_, _), "len") => Ty::Int,
                    (Ty::Tensor(Elem::Real | Elem::Int, _), "norm") => Ty::Real,
                    (Ty::Tensor(Elem::Int, _), "sum") => Ty::Int,
                    (Ty::Tensor(Elem::Real, _), "sum") => Ty::Real,
                    _ => {
                        self.report(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                args[0].value.span,
                                format!("`{n}` needs a numeric tensor, found {t}"),
                            )
                            .label(format!("this is {t}")),
                        );
                        Ty::Error
                    }
                }
            }
            "dot" => {
                if !self.arg_count(name, args, 2, span) {
                    return Ty::Error;
                }
                let a = self.check_expr(env, &args[0].value, None);
                let b = self.check_expr(env, &args[1].value, None);
                match (&a, &b) {
                    (Ty::Error, _) | (_, Ty::Error) => Ty::Error,
                    (Ty::Tensor(_, d1), Ty::Tensor(_, d2)) if d1 == d2 && d1.len() == 1 => Ty::Real,
                    _ => {
                        self.report(
                            Diagnostic::new(
                                codes::SHAPE_MISMATCH,
                                span,
                                format!("`dot` needs two vectors of one length, found {a} and {b}"),
                            )
                            .label("here")
                            .with(args[0].value.span, format!("this is {a}"))
                            .with(args[1].value.span, format!("this is {b}")),
                        );
                        Ty::Error
                    }
                }
            }
            _ => {
                for a in args {
                    self.check_expr(env, &a.value, None);
                }
                let mut names: Vec<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
                names.extend(self.scope_names());
                let mut d = Diagnostic::new(
                    codes::BAD_CALL,
                    name.span,
                    format!("unknown function `{n}`"),
                )
                .label("not a fn or built-in");
                d = match suggest(n, names.iter().map(String::as_str)) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint("define it with `fn NAME(x: Real) -> Real = …`"),
                };
                self.report(d);
                Ty::Error
            }
        }
    }

    /// Applies a fn signature to arguments, inferring size parameters.
    fn apply_sig(
        &mut self,
        env: &mut dyn Env,
        sig: &FnSig,
        name: &str,
        args: &[Arg],
        span: Span,
    ) -> Ty {
        if args.len() != sig.params.len() {
            self.report(
                Diagnostic::new(
                    codes::BAD_CALL,
                    span,
                    format!(
                        "`{name}` takes {} argument(s), {} given",
                        sig.params.len(),
                        args.len()
                    ),
                )
                .label("wrong number of arguments")
                .hint(format!(
                    "`{name}({})`",
                    sig.params
                        .iter()
                        .map(|(n, t)| format!("{n}: {t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
            for a in args {
                self.check_expr(env, &a.value, None);
            }
            return Ty::Error;
        }
        let mut bound: HashMap<String, Dim> = HashMap::new();
        let mut ok = true;
        for ((pname, pt), a) in sig.params.iter().zip(args) {
            let at = self.check_expr(
                env,
                &a.value,
                Some(pt).filter(|t| !matches!(t, Ty::Tensor(..))),
            );
            if at.is_error() {
                ok = false;
                continue;
            }
            match (pt, &at) {
                (Ty::Tensor(pe, pd), Ty::Tensor(ae, ad)) => {
                    let elem_ok = pe == ae || (*pe == Elem::Real && *ae == Elem::Int);
                    let mut shape_ok = elem_ok && pd.len() == ad.len();
                    if shape_ok {
                        for (p, a) in pd.iter().zip(ad) {
                            match p {
                                Dim::Known(_) => shape_ok &= p == a,
                                Dim::Param(n) => match bound.get(n) {
                                    Some(prev) => shape_ok &= prev == a,
                                    None => {
                                        bound.insert(n.clone(), a.clone());
                                    }
                                },
                            }
                        }
                    }
                    if !shape_ok {
                        ok = false;
                        let expected = subst(pt, &bound);
                        self.report(
                            Diagnostic::new(codes::SHAPE_MISMATCH, a.value.span, format!("argument `{pname}` of `{name}` expects {expected}, found {at}"))
                                .label(format!("this is {at}"))
                                .hint(format!("`{name}` declares `{pname}: {pt}`; size parameters must agree across arguments")),
                        );
                    }
                }
                _ => {
                    if !at.fits(pt) {
                        ok = false;
                        self.report(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                a.value.span,
                                format!("argument `{pname}` of `{name}` expects {pt}, found {at}"),
                            )
                            .label(format!("this is {at}")),
                        );
                    }
                }
            }
        }
        if !ok {
            return Ty::Error;
        }
        subst(&sig.ret, &bound)
    }

    fn check_match(
        &mut self,
        env: &mut dyn Env,
        scrut: &Expr,
        arms: &[dyn_syntax::ast::MatchArm],
        span: Span,
        expected: Option<&Ty>,
    ) -> Ty {
        // `match mode` (the parser's only source of a `Var` named `mode`, a keyword).
        if matches!(&scrut.kind, ExprKind::Var(v) if v.name == "mode") {
            return self.check_mode_match(env, scrut, arms, span, expected);
        }
        let st = self.check_expr(env, scrut, None);
        let mut result: Option<(Ty, Span)> = None;
        let mut seen: Vec<String> = Vec::new();
        let mut wild = false;
        for arm in arms {
            match (&arm.pat, &st) {
                (Pattern::Wild(_), _) => wild = true,
                (Pattern::Name(n), Ty::Enum(et)) => {
                    if !et.variants.contains(&n.name) {
                        self.report(
                            Diagnostic::new(
                                codes::MODE_MATCH,
                                n.span,
                                format!("`{}` is not a variant of {}", n.name, et.name),
                            )
                            .label("unknown variant")
                            .hint(format!("its variants: {}", et.variants.join(", "))),
                        );
                    }
                    seen.push(n.name.clone());
                }
                (Pattern::Int(..), t) if t.is_int() => {}
                (Pattern::Bool(b, _), Ty::Bool) => seen.push(b.to_string()),
                (_, Ty::Error) => {}
                (p, t) => {
                    self.report(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            p.span(),
                            format!("this pattern cannot match a value of type {t}"),
                        )
                        .label("pattern")
                        .with(scrut.span, format!("this is {t}")),
                    );
                }
            }
            let t = self.check_expr(env, &arm.value, expected.or(result.as_ref().map(|r| &r.0)));
            result = Some(match result {
                None => (t, arm.value.span),
                Some((prev, ps)) => (
                    self.unify_branches(&prev, &t, ps, arm.value.span, "`match` arms"),
                    ps,
                ),
            });
        }
        let missing: Vec<String> = match &st {
            Ty::Enum(et) => et
                .variants
                .iter()
                .filter(|v| !seen.contains(v))
                .cloned()
                .collect(),
            Ty::Bool => ["true", "false"]
                .iter()
                .filter(|v| !seen.iter().any(|s| s == *v))
                .map(|s| s.to_string())
                .collect(),
            Ty::Error => vec![],
            _ => vec!["other values".to_string()],
        };
        if !wild && !missing.is_empty() {
            self.report(
                Diagnostic::new(
                    codes::MODE_MATCH,
                    span,
                    format!("`match` does not cover {}", missing.join(", ")),
                )
                .label("not exhaustive")
                .hint("add the missing arms, or `_ => …`"),
            );
        }
        result.map(|r| r.0).unwrap_or(Ty::Error)
    }

    /// `match mode { A => …, B => … }`: one arm per mode of the context's interface (or `_`);
    /// inside an arm the inputs of that mode are in scope.
    fn check_mode_match(
        &mut self,
        env: &mut dyn Env,
        scrut: &Expr,
        arms: &[dyn_syntax::ast::MatchArm],
        span: Span,
        expected: Option<&Ty>,
    ) -> Ty {
        let modes = match env.read_mode() {
            Ok(m) => {
                self.typeck.record(self.ctx, scrut, &Ty::Modes(m.clone()));
                Some(m)
            }
            Err(why) => {
                self.report(
                    Diagnostic::new(
                        codes::MODE_MATCH,
                        scrut.span,
                        format!("`match mode` cannot be used here: {why}"),
                    )
                    .label("no mode to match")
                    .hint("`match mode` in an expression reads the mode a system's readout chose; it may appear in its wires, lets and updates"),
                );
                None
            }
        };
        let mut result: Option<(Ty, Span)> = None;
        let mut seen: Vec<usize> = Vec::new();
        let mut wild = false;
        for arm in arms {
            let mut arm_mode = None;
            match (&arm.pat, &modes) {
                (Pattern::Wild(_), _) => wild = true,
                (Pattern::Name(n), Some(m)) => match m.modes.iter().position(|(x, _)| *x == n.name)
                {
                    Some(k) => {
                        if seen.contains(&k) {
                            self.report(
                                Diagnostic::new(
                                    codes::MODE_MATCH,
                                    n.span,
                                    format!("mode `{}` has two arms", n.name),
                                )
                                .label("second arm"),
                            );
                        }
                        seen.push(k);
                        arm_mode = Some(k);
                    }
                    None => {
                        let names: Vec<&str> = m.modes.iter().map(|(x, _)| x.as_str()).collect();
                        self.report(
                            Diagnostic::new(
                                codes::MODE_MATCH,
                                n.span,
                                format!("`{}` is not a mode of {}", n.name, m.name),
                            )
                            .label("unknown mode")
                            .hint(format!("its modes: {}", names.join(", "))),
                        );
                    }
                },
                (p, Some(m)) => {
                    self.report(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            p.span(),
                            format!("this pattern cannot match a mode of {}", m.name),
                        )
                        .label("pattern")
                        .hint("the arms of `match mode` name modes: `Open => …`"),
                    );
                }
                (_, None) => {}
            }
            let saved = env.arm_mode(arm_mode);
            let t = self.check_expr(env, &arm.value, expected.or(result.as_ref().map(|r| &r.0)));
            env.arm_mode(saved);
            result = Some(match result {
                None => (t, arm.value.span),
                Some((prev, ps)) => (
                    self.unify_branches(&prev, &t, ps, arm.value.span, "`match` arms"),
                    ps,
                ),
            });
        }
        if let Some(m) = &modes {
            let missing: Vec<String> = m
                .modes
                .iter()
                .enumerate()
                .filter(|(k, _)| !seen.contains(k))
                .map(|(_, (n, _))| format!("`{n}`"))
                .collect();
            if !wild && !missing.is_empty() {
                self.report(
                    Diagnostic::new(
                        codes::MODE_MATCH,
                        span,
                        format!("`match mode` does not cover {}", missing.join(", ")),
                    )
                    .label("not exhaustive")
                    .hint("add an arm for each mode, or `_ => …`"),
                );
            }
        }
        result.map(|r| r.0).unwrap_or(Ty::Error)
    }

    fn check_record(
        &mut self,
        env: &mut dyn Env,
        name: Option<&Ident>,
        fields: &[(Ident, Expr)],
        span: Span,
        expected: Option<&Ty>,
    ) -> Ty {
        let Some(name) = name else {
            let mut out = Vec::new();
            for (n, e) in fields {
                let t = self.check_expr(env, e, None);
                out.push((n.name.clone(), t));
            }
            return Ty::Record(Rc::new(out));
        };
        // A mode literal of the expected (or the context's) mode-dependent interface.
        let modes = match expected {
            Some(Ty::Modes(m)) => Some(m.clone()),
            _ => env.modes(),
        };
        if let Some(m) = modes.filter(|m| m.modes.iter().any(|(n, _)| *n == name.name)) {
            let (_, outs) = m
                .modes
                .iter()
                .find(|(n, _)| *n == name.name)
                .expect("checked above")
                .clone();
            self.check_fields(
                env,
                &outs,
                fields,
                span,
                &format!("mode `{}`", name.name),
                codes::OUT_UNDEFINED,
            );
            return Ty::Modes(m);
        }
        // A record through a type alias.
        if let Some(Binding::Item(id)) = self.lookup(&name.name)
            && let ItemKind::TypeAlias(_) = self.item(id).kind
        {
            let t = self.resolve_type(
                &dyn_syntax::ast::TypeExpr {
                    kind: dyn_syntax::ast::TypeKind::Named(vec![name.clone()]),
                    span: name.span,
                },
                &Default::default(),
            );
            if let Ty::Record(fs) = &t {
                let fs = fs.as_ref().clone();
                self.check_fields(
                    env,
                    &fs,
                    fields,
                    span,
                    &format!("`{}`", name.name),
                    codes::TYPE_MISMATCH,
                );
                return t;
            }
        }
        for (_, e) in fields {
            self.check_expr(env, e, None);
        }
        let mut d = Diagnostic::new(
            codes::UNKNOWN_NAME,
            name.span,
            format!("`{}` is neither a mode nor a record type", name.name),
        )
        .label("unknown mode or record");
        if let Some(m) = env.modes() {
            let names: Vec<&str> = m.modes.iter().map(|(n, _)| n.as_str()).collect();
            d = d.hint(format!("the modes of {} are: {}", m.name, names.join(", ")));
        }
        self.report(d);
        Ty::Error
    }

    fn check_fields(
        &mut self,
        env: &mut dyn Env,
        decl: &[(String, Ty)],
        fields: &[(Ident, Expr)],
        span: Span,
        what: &str,
        missing_code: dyn_diag::Code,
    ) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for (n, e) in fields {
            if let Some(prev) = seen.insert(&n.name, n.span) {
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE,
                        n.span,
                        format!("`{}` is given twice", n.name),
                    )
                    .with(prev, "first here"),
                );
            }
            match decl.iter().find(|(d, _)| *d == n.name) {
                Some((_, t)) => {
                    let at = self.check_expr(env, e, Some(t));
                    self.expect_fits(&at, t, e.span, None);
                }
                None => {
                    self.check_expr(env, e, None);
                    let names: Vec<&str> = decl.iter().map(|(d, _)| d.as_str()).collect();
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_PORT,
                            n.span,
                            format!("{what} has no `{}`", n.name),
                        )
                        .label("unknown field")
                        .hint(format!(
                            "{what} has: {}",
                            if names.is_empty() {
                                "nothing".to_string()
                            } else {
                                names.join(", ")
                            }
                        )),
                    );
                }
            }
        }
        let missing: Vec<&str> = decl
            .iter()
            .filter(|(d, _)| !seen.contains_key(d.as_str()))
            .map(|(d, _)| d.as_str())
            .collect();
        if !missing.is_empty() {
            self.report(
                Diagnostic::new(
                    missing_code,
                    span,
                    format!(
                        "{what} is missing {}",
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .label("incomplete")
                .hint("give every field a value"),
            );
        }
    }
}

/// "1 axis", "2 axes".
fn axes(n: usize) -> String {
    if n == 1 {
        "1 axis".to_string()
    } else {
        format!("{n} axes")
    }
}

fn subst(t: &Ty, bound: &HashMap<String, Dim>) -> Ty {
    match t {
        Ty::Tensor(e, dims) => Ty::Tensor(
            *e,
            dims.iter()
                .map(|d| match d {
                    Dim::Param(n) => bound.get(n).cloned().unwrap_or_else(|| d.clone()),
                    k => k.clone(),
                })
                .collect(),
        ),
        t => t.clone(),
    }
}
