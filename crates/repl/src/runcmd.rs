//! `:run`, `:params`, `:set`, `:ir` and `:check` on a system of the session.
//!
//! A run uses the system's `run` block when the session has one, then the command's
//! arguments, then the `:set` overrides whose paths exist in the model. Ctrl-C sets the
//! session's interrupt flag; the recording callback sees it and unwinds out of the
//! interpreter (without a panic message), and the rows recorded so far are shown.

use crate::chart::Trace;
use crate::eval::fmt_real;
use crate::session::{Io, Session, Status};
use dyn_check::Checked;
use dyn_check::consteval::{self, ConstEnv, NotConst, Value};
use dyn_check::system::{Domain, SystemSig};
use dyn_diag::{Diagnostic, Span};
use dyn_interp::run::{Method, RunError, RunSpec};
use dyn_ir::flat::Flat;
use dyn_syntax::ast::{Expr, ExprKind, ItemKind, RunDef, RunItem};
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// A run-time error as one message.
pub fn run_error(e: &RunError) -> String {
    match e {
        RunError::NotFinite { name, time, last } => format!(
            "state `{name}` became NaN or infinite at t = {time} (last finite value: {last})"
        ),
        RunError::UnknownParam { path, valid } => format!(
            "`{path}` names no param (valid: {})",
            if valid.is_empty() {
                "none".into()
            } else {
                valid.join(", ")
            }
        ),
        RunError::UnknownRecord { name, valid } => format!(
            "cannot record `{name}`: no such state, port or let (recordable: {})",
            valid.join(", ")
        ),
        RunError::Setting(m) | RunError::Eval(m) | RunError::Input(m) => m.clone(),
    }
}

/// The payload that unwinds out of an interrupted run.
struct Interrupted;

/// Run-block values: numbers only.
struct Numbers;

impl ConstEnv for Numbers {
    fn value(&mut self, name: &str, span: Span) -> Result<Value, NotConst> {
        Err(NotConst {
            span,
            why: format!("names `{name}`; run settings take numbers"),
            quiet: false,
            arith: false,
        })
    }
}

fn number(e: &Expr) -> Option<f64> {
    match consteval::eval(&mut Numbers, e) {
        Ok(Value::Int(i)) => Some(i as f64),
        Ok(Value::Real(r)) => Some(r),
        _ => None,
    }
}

fn path_text(e: &Expr) -> Option<String> {
    Some(match &e.kind {
        ExprKind::Var(i) => i.name.clone(),
        ExprKind::Field(b, f) => format!("{}.{}", path_text(b)?, f.name),
        ExprKind::Index(b, i) if i.len() == 1 => {
            format!("{}[{}]", path_text(b)?, number(&i[0])? as i64)
        }
        _ => return None,
    })
}

fn method(s: &str) -> Option<Method> {
    match s {
        "euler" => Some(Method::Euler),
        "rk4" => Some(Method::Rk4),
        "rk45" => Some(Method::Rk45),
        _ => None,
    }
}

/// Applies a `run` block.
fn apply_block(spec: &mut RunSpec, r: &RunDef) {
    for it in &r.items {
        match it {
            RunItem::Setting { key, values, .. } => {
                let first = values.first().and_then(number);
                match key.name.as_str() {
                    "until" => spec.until = first.or(spec.until),
                    "steps" => spec.steps = first.map(|s| s as u64).or(spec.steps),
                    "every" => spec.every = first.or(spec.every),
                    "seed" => spec.seed = first.map(|s| s as u64).unwrap_or(spec.seed),
                    "record" => spec.record = values.iter().filter_map(path_text).collect(),
                    "method" => {
                        let Some(v) = values.first() else { continue };
                        let (name, args) = match &v.kind {
                            ExprKind::Var(n) => (n.name.clone(), vec![]),
                            ExprKind::Call(f, a) => match &f.kind {
                                ExprKind::Var(n) => (n.name.clone(), a.clone()),
                                _ => continue,
                            },
                            _ => continue,
                        };
                        spec.method = method(&name).unwrap_or(Method::Rk4);
                        for a in args {
                            let Some(v) = number(&a.value) else { continue };
                            match a.name.as_ref().map(|n| n.name.as_str()) {
                                Some("dt") => spec.dt = v,
                                Some("rtol") => spec.rtol = v,
                                Some("atol") => spec.atol = v,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            RunItem::Param { path, value, .. } => {
                let p: Vec<&str> = path.iter().map(|i| i.name.as_str()).collect();
                if let Some(v) = number(value) {
                    spec.params.push((p.join("."), v));
                }
            }
            RunItem::Error => {}
        }
    }
}

/// Applies `:run` arguments: `[N] [steps N] [until T] [dt X] [every E] [method M]
/// [seed S] [record a b …]`.
fn apply_args(spec: &mut RunSpec, domain: Domain, args: &[&str]) -> Result<(), String> {
    let mut i = 0;
    let num = |i: usize, what: &str| -> Result<f64, String> {
        let s = args.get(i).ok_or(format!("`{what}` needs a number"))?;
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or(format!("`{what} {s}`: expected a non-negative number"))
    };
    while i < args.len() {
        match args[i] {
            "steps" => {
                spec.steps = Some(num(i + 1, "steps")? as u64);
                spec.until = None;
                i += 2;
            }
            "until" => {
                spec.until = Some(num(i + 1, "until")?);
                spec.steps = None;
                i += 2;
            }
            "dt" => {
                spec.dt = num(i + 1, "dt")?;
                i += 2;
            }
            "every" => {
                spec.every = Some(num(i + 1, "every")?);
                i += 2;
            }
            "seed" => {
                spec.seed = num(i + 1, "seed")? as u64;
                i += 2;
            }
            "method" => {
                let m = args.get(i + 1).copied().unwrap_or("");
                spec.method =
                    method(m).ok_or(format!("unknown method `{m}`: use euler, rk4 or rk45"))?;
                i += 2;
            }
            "record" => {
                spec.record = args[i + 1..].iter().map(|s| s.to_string()).collect();
                i = args.len();
            }
            s if s.parse::<f64>().is_ok() => {
                let v = num(i, "length")?;
                if domain == Domain::Continuous {
                    spec.until = Some(v);
                    spec.steps = None;
                } else {
                    spec.steps = Some(v as u64);
                    spec.until = None;
                }
                i += 1;
            }
            s => {
                return Err(format!(
                    "unexpected `{s}`: use :run NAME [steps|until] [record a b …] (also steps N, until T, dt X, every E, method M, seed S)"
                ));
            }
        }
    }
    Ok(())
}

/// A checked system ready to lower, with its run block.
struct Target {
    checked: Checked,
    sig: Rc<SystemSig>,
    asm: crate::source::Assembly,
}

impl Session {
    /// Checks `name` and what it needs; diagnostics and messages are written.
    fn target(&self, name: &str, io: &mut Io) -> Option<Target> {
        let name = name.trim();
        if name.is_empty() {
            let _ = writeln!(io.err, "error: name a system");
            return None;
        }
        match self.find(name) {
            Some(e) if e.kind == "system" => {}
            Some(e) => {
                let _ = writeln!(io.err, "error: `{name}` is a {}, not a system", e.kind);
                return None;
            }
            None => {
                let systems: Vec<&str> = self
                    .entries
                    .iter()
                    .filter(|e| e.kind == "system")
                    .filter_map(|e| e.name.as_deref())
                    .collect();
                let _ = writeln!(
                    io.err,
                    "error: no system `{name}` is defined in this session{}",
                    if systems.is_empty() {
                        " (an imported system runs as a box of one defined here)".to_string()
                    } else {
                        format!(" (systems: {})", systems.join(", "))
                    }
                );
                return None;
            }
        }
        let key = name.to_string();
        let mut which = self.closure(std::iter::once(&key));
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.key == format!("run {name}"))
        {
            which.push(i);
        }
        let (asm, _) = self.assemble(&self.entries, &which);
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
            .find(|(_, s)| s.name == name)?
            .1
            .clone();
        Some(Target { checked, sig, asm })
    }

    fn flat(&self, t: &Target, io: &mut Io) -> Option<Flat> {
        match dyn_ir::lower(&t.checked, &t.sig).and_then(dyn_ir::flat::flatten) {
            Ok(f) => Some(f),
            Err(d) => {
                self.lowering_error(t, *d, io);
                None
            }
        }
    }

    /// Writes a diagnostic of lowering or flattening, moved into the inputs.
    fn lowering_error(&self, t: &Target, d: Diagnostic, io: &mut Io) {
        let m = self.map(&t.asm, &t.checked, vec![d]);
        let _ = write!(io.err, "{}", self.render(&m.sources, &m.diags));
    }

    fn run_block(t: &Target) -> Option<RunDef> {
        t.checked
            .modules
            .first()?
            .ast
            .items
            .iter()
            .find_map(|i| match &i.kind {
                ItemKind::Run(r) if r.system.name == t.sig.name => Some(r.clone()),
                _ => None,
            })
    }

    /// The spec of a run: block, arguments, overrides that exist in `flat`.
    fn spec(&self, t: &Target, flat: &Flat, args: &[&str]) -> Result<RunSpec, String> {
        let mut spec = RunSpec::default();
        if let Some(b) = Self::run_block(t) {
            apply_block(&mut spec, &b);
        }
        if spec.until.is_none() && spec.steps.is_none() {
            match t.sig.domain {
                Domain::Continuous => spec.until = Some(10.0),
                _ => spec.steps = Some(10),
            }
        }
        apply_args(&mut spec, t.sig.domain, args)?;
        let paths = dyn_interp::run::param_paths(flat);
        for (p, v) in &self.overrides {
            if paths.iter().any(|(q, _)| q == p) {
                spec.params.retain(|(q, _)| q != p);
                spec.params.push((p.clone(), *v));
            }
        }
        Ok(spec)
    }

    /// `:run NAME [args]`.
    pub fn run(&mut self, args: &str, io: &mut Io) -> Status {
        let words: Vec<&str> = args
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .collect();
        let Some((name, rest)) = words.split_first() else {
            let _ = writeln!(
                io.err,
                "error: usage: :run NAME [steps|until] [record a b …]"
            );
            return Status::Failed;
        };
        let Some(t) = self.target(name, io) else {
            return Status::Failed;
        };
        let Some(flat) = self.flat(&t, io) else {
            return Status::Failed;
        };
        let spec = match self.spec(&t, &flat, rest) {
            Ok(s) => s,
            Err(m) => {
                let _ = writeln!(io.err, "error: {m}");
                return Status::Failed;
            }
        };
        let mut trace = Trace::new(&t.sig.name);
        let mut names = Vec::new();
        if self.interactive {
            let _ = writeln!(io.err, "running {}… (Ctrl-C stops it)", t.sig.name);
            let _ = io.err.flush();
        }
        self.interrupt.store(false, Ordering::SeqCst);
        let flag = self.interrupt.clone();
        // As `dyn run`: compiled when the JIT supports the program, else interpreted. Params
        // are run-time values of the compiled code, so `:set` never changes what is compiled.
        // (The row callback runs in Rust between compiled chunks, so Ctrl-C's unwind never
        // crosses generated code.)
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut on_header = |n: &[String]| names = n.to_vec();
            let mut on_row = |time: f64, vals: &[f64]| {
                trace.push(time, vals);
                if flag.load(Ordering::Relaxed) {
                    std::panic::resume_unwind(Box::new(Interrupted));
                }
            };
            match dyn_jit::run(&flat, &spec, &mut on_header, &mut on_row) {
                Ok(Ok(_)) => Ok(0),
                Ok(Err(_unsupported)) => {
                    dyn_interp::run::run(&flat, &spec, &mut on_header, &mut on_row)
                }
                Err(e) => Err(e),
            }
        }));
        let status = match result {
            Ok(Ok(_)) => Status::Ok,
            Ok(Err(e)) => {
                let _ = writeln!(io.err, "error: {}", run_error(&e));
                Status::Failed
            }
            Err(p) if p.is::<Interrupted>() => {
                let at = trace
                    .last_time()
                    .map(fmt_real)
                    .unwrap_or_else(|| "0".into());
                let _ = writeln!(io.err, "interrupted at t = {at}");
                Status::Ok
            }
            Err(_) => {
                let _ = writeln!(io.err, "error: the run stopped on an internal error");
                Status::Failed
            }
        };
        self.interrupt.store(false, Ordering::SeqCst);
        trace.names = names;
        let _ = write!(io.out, "{}", trace.table(11));
        let _ = write!(io.out, "{}", trace.chart(60, 10));
        self.last_trace = Some(trace);
        status
    }

    /// `:params NAME`: every param path with the value a run would use.
    pub fn params(&mut self, name: &str, io: &mut Io) -> Status {
        let Some(t) = self.target(name, io) else {
            return Status::Failed;
        };
        let Some(flat) = self.flat(&t, io) else {
            return Status::Failed;
        };
        let spec = match self.spec(&t, &flat, &[]) {
            Ok(s) => s,
            Err(m) => {
                let _ = writeln!(io.err, "error: {m}");
                return Status::Failed;
            }
        };
        let sim = match dyn_interp::run::Sim::new(&flat, &spec) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(io.err, "error: {}", run_error(&e));
                return Status::Failed;
            }
        };
        let paths = dyn_interp::run::param_paths(&flat);
        if paths.is_empty() {
            let _ = writeln!(io.out, "{} has no params", t.sig.name);
        }
        for (p, slot) in paths {
            let v = sim.m.params.get(slot).copied().unwrap_or(f64::NAN);
            let set = if self.overrides.iter().any(|(q, _)| *q == p) {
                "  (set)"
            } else {
                ""
            };
            let _ = writeln!(io.out, "{p} = {}{set}", fmt_real(v));
        }
        Status::Ok
    }

    /// `:set path=value` (or `:set` to list the overrides).
    pub fn set(&mut self, arg: &str, io: &mut Io) -> Status {
        let arg = arg.trim();
        if arg.is_empty() {
            if self.overrides.is_empty() {
                let _ = writeln!(io.out, "no params are set");
            }
            for (p, v) in &self.overrides {
                let _ = writeln!(io.out, "{p} = {}", fmt_real(*v));
            }
            return Status::Ok;
        }
        let Some((k, v)) = arg.split_once('=') else {
            let _ = writeln!(
                io.err,
                "error: usage: :set PATH=VALUE, e.g. :set foxes.c=2.5"
            );
            return Status::Failed;
        };
        let (k, v) = (k.trim(), v.trim());
        let valid = !k.is_empty()
            && k.split('.').all(|s| {
                !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "_[]".contains(c))
            });
        let Some(v) = v.parse::<f64>().ok().filter(|v| v.is_finite()) else {
            let _ = writeln!(io.err, "error: `{v}` is not a number");
            return Status::Failed;
        };
        if !valid {
            let _ = writeln!(io.err, "error: `{k}` is not a param path (like foxes.c)");
            return Status::Failed;
        }
        self.overrides.retain(|(p, _)| p != k);
        self.overrides.push((k.to_string(), v));
        let _ = writeln!(io.out, "{k} = {}", fmt_real(v));
        Status::Ok
    }

    /// `:ir NAME [flat]`: the IR of nested systems, or the flattened program.
    pub fn ir(&mut self, args: &str, io: &mut Io) -> Status {
        let mut words = args.split_whitespace();
        let name = words.next().unwrap_or("");
        let flat = matches!(words.next(), Some("flat" | "--flat"));
        let Some(t) = self.target(name, io) else {
            return Status::Failed;
        };
        let program = match dyn_ir::lower(&t.checked, &t.sig) {
            Ok(p) => p,
            Err(d) => {
                self.lowering_error(&t, *d, io);
                return Status::Failed;
            }
        };
        if flat {
            match dyn_ir::flat::flatten(program) {
                Ok(f) => {
                    let _ = write!(io.out, "{}", dyn_ir::print::flat(&f));
                }
                Err(d) => {
                    self.lowering_error(&t, *d, io);
                    return Status::Failed;
                }
            }
        } else {
            let _ = write!(io.out, "{}", dyn_ir::print::program(&program));
        }
        Status::Ok
    }

    /// `:check NAME`: checks a definition and what it uses (all of them without a name).
    pub fn check_cmd(&mut self, name: &str, io: &mut Io) -> Status {
        let name = name.trim();
        let which: Vec<usize> = if name.is_empty() {
            (0..self.entries.len()).collect()
        } else {
            match self.find(name) {
                Some(_) => {
                    let key = name.to_string();
                    self.closure(std::iter::once(&key))
                }
                None => {
                    let _ = writeln!(io.err, "error: `{name}` is not defined in this session");
                    return Status::Failed;
                }
            }
        };
        let (asm, _) = self.assemble(&self.entries, &which);
        let checked = self.check(&asm);
        let diags = checked.diagnostics.clone();
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let m = self.map(&asm, &checked, diags);
        let _ = write!(io.err, "{}", self.render(&m.sources, &m.diags));
        let what = match self.find(name) {
            Some(e) if e.kind == "lens" => format!("lens {name}: the analogy type-checks"),
            Some(e) => format!("{} {name}: ok", e.kind),
            None => "session: ok".to_string(),
        };
        if errors == 0 {
            let _ = writeln!(io.out, "{what}");
            Status::Ok
        } else {
            let _ = writeln!(
                io.err,
                "{}: {errors} error{}",
                if name.is_empty() { "session" } else { name },
                if errors == 1 { "" } else { "s" }
            );
            Status::Failed
        }
    }
}
