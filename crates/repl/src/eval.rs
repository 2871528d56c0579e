//! Expressions: `EXPR` (evaluate and print with its type), `:type EXPR` and `:poly EXPR`.
//!
//! An expression is checked inside a generated stateless system,
//! `system __Eval : { out __v: Int } { let __it = EXPR  out __v = 0 }`, together with the
//! definitions it mentions; its type is the one the checker recorded for it, and its value
//! is the `let` recorded by a zero-step run of the interpreter.

use crate::session::{Io, Session, Status, idents};
use crate::source::Mapper;
use dyn_check::Checked;
use dyn_check::types::{Elem, Ty};
use dyn_diag::Diagnostic;
use dyn_syntax::ast::{ItemKind, SysItemKind};

const EVAL: &str = "__Eval";
const IT: &str = "__it";

/// An expression's type and, when asked, its value.
struct Typed {
    checked: Checked,
    ty: Ty,
}

impl Session {
    /// Checks `inputs[input].text[lo..hi]` as an expression; diagnostics are written.
    fn type_expr(&self, input: usize, lo: usize, hi: usize, io: &mut Io) -> Option<Typed> {
        let text = self.inputs[input]
            .text
            .get(lo..hi)
            .unwrap_or("")
            .to_string();
        let need = idents(&text);
        let which = self.closure(need.iter());
        let (mut asm, _) = self.assemble(&self.entries, &which);
        asm.raw(&format!(
            "system {EVAL} : {{ out __v: Int }} {{\n  let {IT} = "
        ));
        asm.anchor(input, lo, hi);
        asm.piece(&self.inputs, input, lo, hi);
        asm.raw("\n  out __v = 0\n}\n");
        let checked = self.check(&asm);
        let errors: Vec<Diagnostic> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        if !errors.is_empty() {
            let m = self.map(&asm, &checked, errors);
            let _ = write!(io.err, "{}", self.render(&m.sources, &m.diags));
            return None;
        }
        let sig = checked
            .systems
            .iter()
            .find(|(_, s)| s.name == EVAL)?
            .1
            .clone();
        let item = checked
            .modules
            .first()?
            .ast
            .items
            .iter()
            .find_map(|i| match &i.kind {
                ItemKind::System(s) if s.name.name == EVAL => Some(s),
                _ => None,
            })?;
        let value = item.body.iter().find_map(|b| match &b.kind {
            SysItemKind::Let { name, value, .. } if name.name == IT => Some(value),
            _ => None,
        })?;
        let ty = checked.typeck.get(sig.ctx, value)?.clone();
        Some(Typed { checked, ty })
    }

    /// `EXPR`: evaluates and prints `value : Type`.
    pub fn eval(&mut self, input: usize, lo: usize, hi: usize, io: &mut Io) -> Status {
        let Some(t) = self.type_expr(input, lo, hi, io) else {
            return self.no_type(io);
        };
        match value(&t) {
            Ok(v) => {
                let _ = writeln!(io.out, "{v} : {}", t.ty);
                Status::Ok
            }
            Err(msg) => {
                let _ = writeln!(io.err, "error: {msg}");
                Status::Failed
            }
        }
    }

    fn no_type(&self, io: &mut Io) -> Status {
        let _ = io.err.flush();
        Status::Failed
    }

    /// `:type EXPR`: the type of an expression, or a description of a named item.
    pub fn type_of(&mut self, input: usize, lo: usize, hi: usize, io: &mut Io) -> Status {
        let text = self.inputs[input].text.get(lo..hi).unwrap_or("").trim();
        if let Some(d) = self.describe(text) {
            let _ = write!(io.out, "{d}");
            return Status::Ok;
        }
        match self.type_expr(input, lo, hi, io) {
            Some(t) => {
                let _ = writeln!(io.out, "{text} : {}", t.ty);
                Status::Ok
            }
            None => self.no_type(io),
        }
    }

    /// `:poly EXPR`: the normal form of a finite polynomial.
    pub fn poly(&mut self, input: usize, lo: usize, hi: usize, io: &mut Io) -> Status {
        let text = self.inputs[input]
            .text
            .get(lo..hi)
            .unwrap_or("")
            .to_string();
        if text.trim().is_empty() {
            let _ = writeln!(io.err, "error: :poly needs a polynomial, e.g. :poly P <| Q");
            return Status::Failed;
        }
        let which = self.closure(idents(&text).iter());
        let (asm, _) = self.assemble(&self.entries, &which);
        let mut checked = self.check(&asm);
        let errors: Vec<Diagnostic> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        if !errors.is_empty() {
            let m = self.map(&asm, &checked, errors);
            let _ = write!(io.err, "{}", self.render(&m.sources, &m.diags));
            return Status::Failed;
        }
        match dyn_check::normal_form(&mut checked, &text) {
            Ok(nf) => {
                let _ = writeln!(io.out, "{} = {nf}", text.trim());
                Status::Ok
            }
            Err(ds) => {
                let root = checked.modules[0].file;
                let poly = checked
                    .sources
                    .files()
                    .filter(|(_, f)| f.name == "<poly>")
                    .map(|(id, _)| id)
                    .last();
                let mut mapper = Mapper::new(&self.inputs, &asm, &checked.sources, root);
                if let Some(f) = poly {
                    mapper.extra(f, "interface __poly__ = ".len(), input, lo);
                }
                let m = mapper.map(ds);
                let _ = write!(io.err, "{}", self.render(&m.sources, &m.diags));
                Status::Failed
            }
        }
    }
}

/// Runs the wrapper for zero steps and formats the recorded `let`.
fn value(t: &Typed) -> Result<String, String> {
    let sig = t
        .checked
        .systems
        .iter()
        .find(|(_, s)| s.name == EVAL)
        .map(|(_, s)| s.clone())
        .ok_or("the expression could not be checked")?;
    let unsupported =
        |d: Box<Diagnostic>| format!("cannot evaluate this expression: {}", d.message);
    let program = dyn_ir::lower(&t.checked, &sig).map_err(unsupported)?;
    let flat = dyn_ir::flat::flatten(program).map_err(unsupported)?;
    let spec = dyn_interp::run::RunSpec {
        steps: Some(0),
        record: vec![IT.to_string()],
        ..Default::default()
    };
    let mut vals: Vec<f64> = Vec::new();
    dyn_interp::run::run(&flat, &spec, &mut |_| {}, &mut |_, v| vals = v.to_vec())
        .map_err(|e| crate::runcmd::run_error(&e))?;
    Ok(format_value(&t.ty, &vals))
}

/// A Real as written in dyn: `3.0`, `0.1`, `1e-7`, `NaN`, `inf`.
pub fn fmt_real(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

fn fmt_scalar(ty: &Ty, v: f64) -> String {
    match ty {
        Ty::Real => fmt_real(v),
        Ty::Int | Ty::Fin(_) => format!("{}", v as i64),
        Ty::Bool => (v != 0.0).to_string(),
        Ty::Enum(e) => e
            .variants
            .get(v as usize)
            .cloned()
            .unwrap_or_else(|| fmt_real(v)),
        Ty::Unit => "()".into(),
        _ => fmt_real(v),
    }
}

/// Formats recorded slots as a value of type `ty` (tensors as nested lists).
pub fn format_value(ty: &Ty, vals: &[f64]) -> String {
    match ty {
        Ty::Tensor(e, dims) => {
            let dims: Vec<usize> = dims
                .iter()
                .map(|d| match d {
                    dyn_check::types::Dim::Known(n) => *n as usize,
                    dyn_check::types::Dim::Param(_) => 0,
                })
                .collect();
            let total: usize = dims.iter().product();
            if total != vals.len() || dims.is_empty() {
                return list(vals.iter().map(|v| fmt_real(*v)));
            }
            let scalar = match e {
                Elem::Real => Ty::Real,
                Elem::Int => Ty::Int,
                Elem::Bool => Ty::Bool,
            };
            nested(&scalar, &dims, vals)
        }
        Ty::Record(fields) if fields.len() == vals.len() => {
            let fs: Vec<String> = fields
                .iter()
                .zip(vals)
                .map(|((n, t), v)| format!("{n} = {}", fmt_scalar(t, *v)))
                .collect();
            format!("{{ {} }}", fs.join(", "))
        }
        _ if vals.len() == 1 => fmt_scalar(ty, vals[0]),
        _ => list(vals.iter().map(|v| fmt_real(*v))),
    }
}

fn nested(scalar: &Ty, dims: &[usize], vals: &[f64]) -> String {
    if dims.len() <= 1 {
        return list(vals.iter().map(|v| fmt_scalar(scalar, *v)));
    }
    let inner: usize = dims[1..].iter().product();
    if inner == 0 {
        return "[]".into();
    }
    list(vals.chunks(inner).map(|c| nested(scalar, &dims[1..], c)))
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}
