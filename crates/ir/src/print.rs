//! Readable text of the IR (`dyn ir`) and of the flattened program (`dyn ir --flat`).

use crate::expr::{Bin, Expr, Reduce, Sel, TensorOp, Un};
use crate::flat::{Flat, OpKind};
use crate::system::{Program, Readout, System};
use std::fmt::Write;

fn bin(b: Bin) -> &'static str {
    match b {
        Bin::Add => "+",
        Bin::Sub => "-",
        Bin::Mul => "*",
        Bin::Div => "/",
        Bin::Rem => "%",
        Bin::Pow => "^",
        Bin::MatMul => "@",
        Bin::Eq => "==",
        Bin::Ne => "!=",
        Bin::Lt => "<",
        Bin::Le => "<=",
        Bin::Gt => ">",
        Bin::Ge => ">=",
        Bin::And => "&&",
        Bin::Or => "||",
        Bin::Min => "min",
        Bin::Max => "max",
        Bin::Atan2 => "atan2",
    }
}

fn shape(sh: &[u64]) -> String {
    if sh.is_empty() {
        String::new()
    } else {
        format!("{sh:?}")
    }
}

/// An expression in the names of system `s`.
pub fn expr(p: &Program, s: &System, x: &Expr) -> String {
    let e = |x: &Expr| expr(p, s, x);
    match x {
        Expr::Const(c) if *c != 0.0 && (c.abs() < 1e-6 || c.abs() >= 1e16) => format!("{c:e}"),
        Expr::Const(c) => format!("{c}"),
        Expr::Param(i) => format!("param.{}", s.params[*i as usize].0.name),
        Expr::State(i) => format!("state.{}", s.states[*i as usize].0.name),
        Expr::Input(i) => format!("in.{}", s.inputs[*i as usize].name),
        Expr::Let(i) => format!("let.{}", s.lets[*i as usize].0.name),
        Expr::Loop(d) => format!("loop{d}"),
        Expr::Arg(i) => format!("arg{i}"),
        Expr::Time => "t".into(),
        Expr::BoxOut { b, index, port } => {
            let bx = &s.boxes[*b as usize];
            let child = &p.systems[bx.system as usize];
            let idx = index
                .as_ref()
                .map(|i| format!("[{}]", e(i)))
                .unwrap_or_default();
            format!("{}{idx}.{}", bx.name, child.outputs[*port as usize].name)
        }
        Expr::Un(u, a) => match u {
            Un::Neg => format!("-({})", e(a)),
            Un::Not => format!("!({})", e(a)),
            other => format!("{}({})", format!("{other:?}").to_lowercase(), e(a)),
        },
        Expr::Bin(b @ (Bin::Min | Bin::Max | Bin::Atan2), n, x, y) => {
            format!("{}:{n:?}({}, {})", bin(*b), e(x), e(y))
        }
        Expr::Bin(b, n, x, y) => format!("({} {}:{n:?} {})", e(x), bin(*b), e(y)),
        Expr::Reduce(r, a) => format!(
            "{}({})",
            match r {
                Reduce::Sum => "sum",
                Reduce::Norm => "norm",
                Reduce::Len => "len",
            },
            e(a)
        ),
        Expr::Dot(a, b) => format!("dot({}, {})", e(a), e(b)),
        Expr::Call(f, xs) => format!(
            "{}({})",
            p.fns[*f as usize].name,
            xs.iter().map(e).collect::<Vec<_>>().join(", ")
        ),
        Expr::If(c, a, b) => format!("(if {} then {} else {})", e(c), e(a), e(b)),
        Expr::Array(xs) => format!("[{}]", xs.iter().map(e).collect::<Vec<_>>().join(", ")),
        Expr::Index(a, xs) => format!(
            "{}[{}]",
            e(a),
            xs.iter().map(e).collect::<Vec<_>>().join(", ")
        ),
        Expr::Mode(m, xs) => format!(
            "mode#{m}({})",
            xs.iter().map(e).collect::<Vec<_>>().join(", ")
        ),
        Expr::Randn => "randn()".into(),
        Expr::Tensor(op, xs) => tensor(op, &xs.iter().map(e).collect::<Vec<_>>()),
    }
}

/// `x[2..5, i]`: the selections with the printed Int arguments of the `At` axes.
fn sels(sel: &[Sel], idx: &[String]) -> String {
    let mut k = 0;
    let parts: Vec<String> = sel
        .iter()
        .map(|s| match s {
            Sel::At => {
                k += 1;
                idx.get(k - 1).cloned().unwrap_or_else(|| "?".into())
            }
            Sel::Range(lo, hi) => format!("{lo}..{hi}"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn tensor(op: &TensorOp, a: &[String]) -> String {
    let all = a.join(", ");
    let first = a.first().cloned().unwrap_or_default();
    let rest = a.get(1..).unwrap_or(&[]);
    match op {
        TensorOp::Transpose => format!("transpose({all})"),
        TensorOp::Mean => format!("mean({all})"),
        TensorOp::MaxAll => format!("max({all})"),
        TensorOp::MinAll => format!("min({all})"),
        TensorOp::Argmax => format!("argmax({all})"),
        TensorOp::Argmin => format!("argmin({all})"),
        TensorOp::Outer => format!("outer({all})"),
        TensorOp::Softmax => format!("softmax({all})"),
        TensorOp::LogSumExp => format!("logsumexp({all})"),
        TensorOp::OneHot(n) => format!("one_hot({all}, {n})"),
        TensorOp::Slice(sel) => format!("{first}{}", sels(sel, rest)),
        TensorOp::Embed(sel, sh) => format!("embed{sh:?}({first} at {})", sels(sel, rest)),
        TensorOp::Fill(sh) => format!("fill{sh:?}({all})"),
        TensorOp::Select => format!("select({all})"),
        TensorOp::Solve => format!("solve({all})"),
        TensorOp::SpectralRadius => format!("spectral_radius({all})"),
        TensorOp::Eye(n) => format!("eye({n})"),
    }
}

/// The whole program, system by system.
pub fn program(p: &Program) -> String {
    let mut out = String::new();
    for (i, s) in p.systems.iter().enumerate() {
        let root = if i as u32 == p.root { " (root)" } else { "" };
        let _ = writeln!(out, "system #{i} {}{root}: {:?}", s.name, s.time);
        for (sl, d) in &s.params {
            let _ = writeln!(
                out,
                "  param {}{} = {}",
                sl.name,
                shape(&sl.shape),
                d.as_ref()
                    .map(|d| expr(p, s, d))
                    .unwrap_or_else(|| "(required)".into())
            );
        }
        for sl in &s.inputs {
            let _ = writeln!(out, "  in {}{}", sl.name, shape(&sl.shape));
        }
        for (sl, init) in &s.states {
            let _ = writeln!(
                out,
                "  state {}{} = {}",
                sl.name,
                shape(&sl.shape),
                expr(p, s, init)
            );
        }
        for (sl, v) in &s.lets {
            let _ = writeln!(out, "  let {} = {}", sl.name, expr(p, s, v));
        }
        match &s.readout {
            Readout::Ports(xs) => {
                for (sl, x) in s.outputs.iter().zip(xs) {
                    let _ = writeln!(out, "  out {} = {}", sl.name, expr(p, s, x));
                }
            }
            Readout::Mode(x, names, _) => {
                let _ = writeln!(out, "  out (modes {}) = {}", names.join("|"), expr(p, s, x));
            }
        }
        let kw = if s.time == crate::system::TimeKind::Discrete {
            "next"
        } else {
            "der"
        };
        for a in &s.updates {
            let _ = writeln!(
                out,
                "  {kw} {} = {}",
                s.states[a.state as usize].0.name,
                expr(p, s, &a.value)
            );
        }
        for (m, arm) in &s.mode_updates {
            for a in arm {
                let _ = writeln!(
                    out,
                    "  {kw}[mode#{m}] {} = {}",
                    s.states[a.state as usize].0.name,
                    expr(p, s, &a.value)
                );
            }
        }
        for ev in &s.events {
            let jumps: Vec<String> = ev
                .assigns
                .iter()
                .map(|a| {
                    format!(
                        "{} = {}",
                        s.states[a.state as usize].0.name,
                        expr(p, s, &a.value)
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "  when {} {{ {} }}",
                expr(p, s, &ev.cond),
                jumps.join("  ")
            );
        }
        for b in &s.boxes {
            let count = b.count.map(|n| format!("[{n}]")).unwrap_or_default();
            let child = &p.systems[b.system as usize];
            let args: Vec<String> = b
                .args
                .iter()
                .zip(&child.params)
                .filter_map(|(a, (sl, _))| {
                    a.as_ref()
                        .map(|a| format!("{} = {}", sl.name, expr(p, s, a)))
                })
                .collect();
            let _ = writeln!(
                out,
                "  box {}{count}: #{} {}({})",
                b.name,
                b.system,
                child.name,
                args.join(", ")
            );
        }
        for w in &s.wires {
            let loops: String = w
                .loops
                .iter()
                .enumerate()
                .map(|(d, (n, lo, hi))| {
                    format!("for loop{d}={n} in {}..{} ", expr(p, s, lo), expr(p, s, hi))
                })
                .collect();
            let b = &s.boxes[w.b as usize];
            let idx = w
                .index
                .as_ref()
                .map(|i| format!("[{}]", expr(p, s, i)))
                .unwrap_or_default();
            let port = &p.systems[b.system as usize].inputs[w.port as usize].name;
            let _ = writeln!(
                out,
                "  {loops}{}{idx}.{port} <- {}",
                b.name,
                expr(p, s, &w.value)
            );
        }
    }
    // A fn's body is printed in the names of a system that calls it (the temporaries of
    // `grad` read that system's values; user fns read only their arguments).
    let owners = fn_owners(p);
    for (f, owner) in p.fns.iter().zip(owners) {
        let s = &p.systems[owner.unwrap_or(p.root) as usize];
        let _ = writeln!(out, "fn {}/{} = {}", f.name, f.arity, expr(p, s, &f.body));
    }
    out
}

/// For each fn, the first system (by index) that calls it, directly or through other fns.
fn fn_owners(p: &Program) -> Vec<Option<u32>> {
    fn visit(x: &Expr, p: &Program, sys: u32, owners: &mut Vec<Option<u32>>) {
        let mut go = |y: &Expr| visit(y, p, sys, owners);
        match x {
            Expr::Call(f, xs) => {
                xs.iter().for_each(&mut go);
                let f = *f as usize;
                if f < owners.len() && owners[f].is_none() {
                    owners[f] = Some(sys);
                    visit(&p.fns[f].body, p, sys, owners);
                }
            }
            Expr::Un(_, a) | Expr::Reduce(_, a) => go(a),
            Expr::Bin(_, _, a, b) | Expr::Dot(a, b) => {
                go(a);
                go(b);
            }
            Expr::If(a, b, c) => {
                go(a);
                go(b);
                go(c);
            }
            Expr::Array(xs) | Expr::Mode(_, xs) | Expr::Tensor(_, xs) => xs.iter().for_each(go),
            Expr::Index(a, xs) => {
                go(a);
                xs.iter().for_each(go);
            }
            Expr::BoxOut { index: Some(i), .. } => go(i),
            _ => {}
        }
    }
    let mut owners = vec![None; p.fns.len()];
    for (i, s) in p.systems.iter().enumerate() {
        let sys = i as u32;
        let mut all: Vec<&Expr> = Vec::new();
        all.extend(s.params.iter().filter_map(|(_, d)| d.as_ref()));
        all.extend(s.states.iter().map(|(_, x)| x));
        all.extend(s.lets.iter().map(|(_, x)| x));
        match &s.readout {
            Readout::Ports(xs) => all.extend(xs),
            Readout::Mode(x, _, _) => all.push(x),
        }
        all.extend(s.updates.iter().map(|a| &a.value));
        all.extend(
            s.mode_updates
                .iter()
                .flat_map(|(_, a)| a.iter().map(|a| &a.value)),
        );
        for ev in &s.events {
            all.push(&ev.cond);
            all.extend(ev.assigns.iter().map(|a| &a.value));
        }
        all.extend(s.boxes.iter().flat_map(|b| b.args.iter().flatten()));
        all.extend(s.wires.iter().map(|w| &w.value));
        for x in all {
            visit(x, p, sys, &mut owners);
        }
    }
    owners
}

/// The flattened program: buffers, groups, schedule.
pub fn flat(f: &Flat) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "time: {:?}   state slots: {}   signal slots: {}   param slots: {}",
        f.time, f.n_state, f.n_signal, f.n_param
    );
    for (i, g) in f.groups.iter().enumerate() {
        let s = &f.program.systems[g.system as usize];
        let name = if g.path.is_empty() {
            "(root)".to_string()
        } else {
            g.path
                .iter()
                .map(|(n, c)| match c {
                    Some(c) => format!("{n}[{c}]"),
                    None => n.clone(),
                })
                .collect::<Vec<_>>()
                .join(".")
        };
        let _ = writeln!(
            out,
            "group #{i} {name}: {} × {}  state @{}+{}e  signals @{}+{}e",
            s.name, g.count, g.state_base, g.state_stride, g.sig_base, g.sig_stride
        );
        for (k, (sl, _)) in s.states.iter().enumerate() {
            let _ = writeln!(out, "    state {} at +{}", sl.name, g.state_off[k]);
        }
    }
    let _ = writeln!(out, "schedule ({} ops):", f.schedule.len());
    for op in &f.schedule {
        let what = match op.kind {
            OpKind::Let(g, l) => format!(
                "let {} of group #{g}",
                f.program.systems[f.groups[g as usize].system as usize].lets[l as usize]
                    .0
                    .name
            ),
            OpKind::Out(g, p) => format!(
                "out {} of group #{g}",
                f.program.systems[f.groups[g as usize].system as usize].outputs[p as usize].name
            ),
            OpKind::Mode(g) => format!("mode readout of group #{g}"),
            OpKind::Wire(g, w) => format!("wire #{w} of group #{g}"),
        };
        let _ = writeln!(out, "  {what} × {}", op.items.len());
    }
    out
}
