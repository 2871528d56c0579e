//! Flattening: the tree of systems becomes one step program.
//!
//! Every instantiated system becomes a *group* of elements (a box array of N cells is one
//! group of N elements, nested arrays multiply). Values live in three flat buffers — state,
//! signals (ports and lets) and params — at `base + element * stride + offset`. The signal
//! computations (lets, readouts, wires) are ordered by their dependencies, element by
//! element, and consecutive computations of the same kind are batched into one op over
//! many elements, so a ring of 1,000 cells is a handful of loops, not 1,000 copies.

use crate::expr::{Bin, Expr, Num, Un};
use crate::system::*;
use dyn_diag::{Diagnostic, Span, codes};
use std::collections::{HashMap, VecDeque};

/// One instantiated system and all its elements.
#[derive(Debug, Clone)]
pub struct Group {
    /// The system.
    pub system: u32,
    /// Path segments from the root with array lengths, e.g. `[("ring", None), ("cell", Some(1000))]`.
    pub path: Vec<(String, Option<u64>)>,
    /// Number of elements.
    pub count: u64,
    /// Parent group and the box index in it.
    pub parent: Option<(u32, u32)>,
    /// Child group per box of the system.
    pub children: Vec<u32>,
    /// First state slot, slots per element, and the offset of each state variable.
    pub state_base: usize,
    /// Slots per element.
    pub state_stride: usize,
    /// Offset of each state variable.
    pub state_off: Vec<usize>,
    /// First signal slot.
    pub sig_base: usize,
    /// Signal slots per element.
    pub sig_stride: usize,
    /// Offsets of inputs, outputs and lets.
    pub in_off: Vec<usize>,
    /// Offsets of outputs.
    pub out_off: Vec<usize>,
    /// Offsets of lets.
    pub let_off: Vec<usize>,
    /// Offset of the chosen mode (mode-dependent readout).
    pub mode_off: Option<usize>,
    /// First param slot (params are the same for every element of a group).
    pub param_base: usize,
    /// Offset of each param.
    pub param_off: Vec<usize>,
}

impl Group {
    /// Name of element `e`, e.g. `ring.cell[3]` (empty for the root).
    pub fn element_name(&self, mut e: u64) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (name, count) in self.path.iter().rev() {
            match count {
                Some(n) => {
                    parts.push(format!("{name}[{}]", e % n));
                    e /= n;
                }
                None => parts.push(name.clone()),
            }
        }
        parts.reverse();
        parts.join(".")
    }

    /// State slot of variable `s` of element `e`.
    pub fn state(&self, e: u64, s: usize) -> usize {
        self.state_base + e as usize * self.state_stride + self.state_off[s]
    }

    /// Signal slot at offset `off` of element `e`.
    pub fn sig(&self, e: u64, off: usize) -> usize {
        self.sig_base + e as usize * self.sig_stride + off
    }
}

/// What an op computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Let `l` of group `g`.
    Let(u32, u32),
    /// Out port `p` of group `g`.
    Out(u32, u32),
    /// The mode readout of group `g`.
    Mode(u32),
    /// Wire `w` of (composite) group `g`.
    Wire(u32, u32),
}

/// One computation of an op: an element, and for wires the loop bindings and target.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Element of the op's group.
    pub elem: u64,
    /// Loop variable values (wires).
    pub loops: Vec<i64>,
    /// Target element of the wired box (wires).
    pub target: u64,
}

/// A batch of computations of one kind.
#[derive(Debug, Clone)]
pub struct Op {
    /// What.
    pub kind: OpKind,
    /// For which elements.
    pub items: Vec<Item>,
}

/// The flattened program.
#[derive(Debug, Clone)]
pub struct Flat {
    /// The IR it came from.
    pub program: Program,
    /// Groups; group 0 is the root.
    pub groups: Vec<Group>,
    /// State slots.
    pub n_state: usize,
    /// Signal slots.
    pub n_signal: usize,
    /// Param slots.
    pub n_param: usize,
    /// Signal computations in dependency order.
    pub schedule: Vec<Op>,
    /// The time domain of the whole model.
    pub time: TimeKind,
}

fn err(span: Span, msg: String) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(codes::UNSUPPORTED, span, msg).label("here"))
}

/// Evaluates an integer expression of loop variables and constants (bounds, indices).
pub fn eval_index(e: &Expr, loops: &[i64]) -> Option<i64> {
    Some(match e {
        Expr::Const(x) => *x as i64,
        Expr::Loop(d) => *loops.get(*d as usize)?,
        Expr::Un(Un::Neg, a) => -eval_index(a, loops)?,
        Expr::Bin(op, Num::Int, a, b) => {
            let (x, y) = (eval_index(a, loops)?, eval_index(b, loops)?);
            match op {
                Bin::Add => x.checked_add(y)?,
                Bin::Sub => x.checked_sub(y)?,
                Bin::Mul => x.checked_mul(y)?,
                Bin::Div => x.checked_div(y)?,
                Bin::Rem => x.checked_rem_euclid(y)?,
                Bin::Min => x.min(y),
                Bin::Max => x.max(y),
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// For each fn of the program: does its body (or a fn it calls) read a signal (an input,
/// a let or an inner box's output) of the frame it is called in? User fns never do; the
/// let-like temporaries that `grad` expands into do.
pub fn body_reads_signals(p: &Program) -> Vec<bool> {
    fn reads(x: &Expr, p: &Program, memo: &mut Vec<Option<bool>>) -> bool {
        match x {
            Expr::Input(_) | Expr::Let(_) | Expr::BoxOut { .. } => true,
            Expr::Call(f, xs) => {
                xs.iter().any(|a| reads(a, p, memo)) || fn_reads(*f as usize, p, memo)
            }
            Expr::Un(_, a) | Expr::Reduce(_, a) => reads(a, p, memo),
            Expr::Bin(_, _, a, b) | Expr::Dot(a, b) => reads(a, p, memo) || reads(b, p, memo),
            Expr::If(a, b, c) => reads(a, p, memo) || reads(b, p, memo) || reads(c, p, memo),
            Expr::Array(xs) | Expr::Mode(_, xs) | Expr::Tensor(_, xs) => {
                xs.iter().any(|a| reads(a, p, memo))
            }
            Expr::Index(a, xs) => reads(a, p, memo) || xs.iter().any(|i| reads(i, p, memo)),
            Expr::Const(_)
            | Expr::Param(_)
            | Expr::State(_)
            | Expr::Loop(_)
            | Expr::Arg(_)
            | Expr::Time
            | Expr::Randn => false,
        }
    }
    fn fn_reads(f: usize, p: &Program, memo: &mut Vec<Option<bool>>) -> bool {
        match memo.get(f) {
            Some(Some(v)) => *v,
            Some(None) => {
                // Mark first: fns are not recursive, but a cycle must not loop.
                memo[f] = Some(false);
                let v = reads(&p.fns[f].body, p, memo);
                memo[f] = Some(v);
                v
            }
            None => false,
        }
    }
    let mut memo = vec![None; p.fns.len()];
    (0..p.fns.len())
        .map(|f| fn_reads(f, p, &mut memo))
        .collect()
}

/// Flattens a program.
pub fn flatten(program: Program) -> Result<Flat, Box<Diagnostic>> {
    let mut f = Flat {
        groups: vec![],
        n_state: 0,
        n_signal: 0,
        n_param: 0,
        schedule: vec![],
        time: TimeKind::Stateless,
        program,
    };
    f.add_group(f.program.root, vec![], 1, None);
    f.time = f
        .groups
        .iter()
        .map(|g| f.program.systems[g.system as usize].time)
        .find(|t| *t != TimeKind::Stateless)
        .unwrap_or(TimeKind::Stateless);
    f.schedule()?;
    Ok(f)
}

impl Flat {
    fn add_group(
        &mut self,
        sys: u32,
        path: Vec<(String, Option<u64>)>,
        count: u64,
        parent: Option<(u32, u32)>,
    ) -> u32 {
        let s = &self.program.systems[sys as usize];
        let mut off = 0;
        let state_off: Vec<usize> = s
            .states
            .iter()
            .map(|(sl, _)| {
                let o = off;
                off += slots(&sl.shape);
                o
            })
            .collect();
        let state_stride = off;
        let mut off = 0;
        let mut alloc = |v: &Vec<Slot>| -> Vec<usize> {
            v.iter()
                .map(|sl| {
                    let o = off;
                    off += slots(&sl.shape).max(1);
                    o
                })
                .collect()
        };
        let in_off = alloc(&s.inputs);
        let out_off = alloc(&s.outputs);
        let let_slots: Vec<Slot> = s.lets.iter().map(|(sl, _)| sl.clone()).collect();
        let let_off = alloc(&let_slots);
        let mode_off = matches!(s.readout, Readout::Mode(..)).then(|| {
            let o = off;
            off += 1;
            o
        });
        let sig_stride = off;
        let mut poff = 0;
        let param_off: Vec<usize> = s
            .params
            .iter()
            .map(|(sl, _)| {
                let o = poff;
                poff += slots(&sl.shape).max(1);
                o
            })
            .collect();
        let id = self.groups.len() as u32;
        let g = Group {
            system: sys,
            path: path.clone(),
            count,
            parent,
            children: vec![],
            state_base: self.n_state,
            state_stride,
            state_off,
            sig_base: self.n_signal,
            sig_stride,
            in_off,
            out_off,
            let_off,
            mode_off,
            param_base: self.n_param,
            param_off,
        };
        self.n_state += state_stride * count as usize;
        self.n_signal += sig_stride * count as usize;
        self.n_param += poff;
        self.groups.push(g);
        let boxes = self.program.systems[sys as usize].boxes.clone();
        for (bi, b) in boxes.iter().enumerate() {
            let mut p = path.clone();
            p.push((b.name.clone(), b.count));
            let c = self.add_group(
                b.system,
                p,
                count * b.count.unwrap_or(1),
                Some((id, bi as u32)),
            );
            self.groups[id as usize].children.push(c);
        }
        id
    }

    /// Signal slots an expression reads in element `e` of group `g`. `fns` says which fn
    /// bodies read signals themselves (see [`body_reads_signals`]).
    fn reads(
        &self,
        fns: &[bool],
        g: u32,
        e: u64,
        x: &Expr,
        loops: &[i64],
        out: &mut Vec<usize>,
    ) -> Result<(), Box<Diagnostic>> {
        let grp = &self.groups[g as usize];
        match x {
            Expr::Input(i) => out.push(grp.sig(e, grp.in_off[*i as usize])),
            Expr::Let(l) => out.push(grp.sig(e, grp.let_off[*l as usize])),
            Expr::BoxOut { b, index, port } => {
                let c = &self.groups[grp.children[*b as usize] as usize];
                let bx = &self.program.systems[grp.system as usize].boxes[*b as usize];
                let k = match index {
                    Some(i) => {
                        let k = eval_index(i, loops).ok_or_else(|| {
                            err(
                                bx.span,
                                "a box index that is not known at compile time".into(),
                            )
                        })?;
                        let n = bx.count.unwrap_or(1) as i64;
                        if k < 0 || k >= n {
                            return Err(err(
                                bx.span,
                                format!("index {k} out of range for `{}`", bx.name),
                            ));
                        }
                        k as u64
                    }
                    None => 0,
                };
                let ce = e * bx.count.unwrap_or(1) + k;
                out.push(c.sig(ce, c.out_off[*port as usize]));
                if let Some(i) = index {
                    self.reads(fns, g, e, i, loops, out)?;
                }
            }
            Expr::Un(_, a) | Expr::Reduce(_, a) => self.reads(fns, g, e, a, loops, out)?,
            Expr::Bin(_, _, a, b) | Expr::Dot(a, b) => {
                self.reads(fns, g, e, a, loops, out)?;
                self.reads(fns, g, e, b, loops, out)?;
            }
            Expr::If(a, b, c) => {
                self.reads(fns, g, e, a, loops, out)?;
                self.reads(fns, g, e, b, loops, out)?;
                self.reads(fns, g, e, c, loops, out)?;
            }
            Expr::Call(f, xs) => {
                for a in xs {
                    self.reads(fns, g, e, a, loops, out)?;
                }
                // A body runs in its caller's frame; the let-like temporaries of `grad`
                // read the caller's signals there.
                if fns.get(*f as usize).copied().unwrap_or(false) {
                    let body = &self.program.fns[*f as usize].body;
                    self.reads(fns, g, e, body, loops, out)?;
                }
            }
            Expr::Array(xs) | Expr::Mode(_, xs) | Expr::Tensor(_, xs) => {
                for a in xs {
                    self.reads(fns, g, e, a, loops, out)?;
                }
            }
            Expr::Index(a, xs) => {
                self.reads(fns, g, e, a, loops, out)?;
                for i in xs {
                    self.reads(fns, g, e, i, loops, out)?;
                }
            }
            Expr::Const(_)
            | Expr::Param(_)
            | Expr::State(_)
            | Expr::Loop(_)
            | Expr::Arg(_)
            | Expr::Time
            | Expr::Randn => {}
        }
        Ok(())
    }

    /// Enumerates the iterations of a wire's loops: (loop values, target element).
    pub fn wire_items(
        &self,
        g: u32,
        e: u64,
        w: &Wire,
    ) -> Result<Vec<(Vec<i64>, u64)>, Box<Diagnostic>> {
        let mut out = Vec::new();
        let mut vals = Vec::new();
        self.iterate(g, e, w, 0, &mut vals, &mut out)?;
        Ok(out)
    }

    fn iterate(
        &self,
        g: u32,
        e: u64,
        w: &Wire,
        depth: usize,
        vals: &mut Vec<i64>,
        out: &mut Vec<(Vec<i64>, u64)>,
    ) -> Result<(), Box<Diagnostic>> {
        if depth == w.loops.len() {
            let grp = &self.groups[g as usize];
            let bx = &self.program.systems[grp.system as usize].boxes[w.b as usize];
            let k = match &w.index {
                Some(i) => eval_index(i, vals).ok_or_else(|| {
                    err(
                        w.span,
                        "a box index that is not known at compile time".into(),
                    )
                })?,
                None => 0,
            };
            out.push((vals.clone(), e * bx.count.unwrap_or(1) + k as u64));
            return Ok(());
        }
        let (_, lo, hi) = &w.loops[depth];
        let (a, b) = (
            eval_index(lo, vals)
                .ok_or_else(|| err(w.span, "a loop bound not known at compile time".into()))?,
            eval_index(hi, vals)
                .ok_or_else(|| err(w.span, "a loop bound not known at compile time".into()))?,
        );
        for i in a..b {
            vals.push(i);
            self.iterate(g, e, w, depth + 1, vals, out)?;
            vals.pop();
        }
        Ok(())
    }

    fn schedule(&mut self) -> Result<(), Box<Diagnostic>> {
        struct Prod {
            kind: OpKind,
            item: Item,
            writes: Vec<usize>,
            reads: Vec<usize>,
        }
        let mut prods: Vec<Prod> = Vec::new();
        let body_reads = body_reads_signals(&self.program);
        for (gi, grp) in self.groups.iter().enumerate() {
            let g = gi as u32;
            let sys = &self.program.systems[grp.system as usize];
            for e in 0..grp.count {
                let item = Item {
                    elem: e,
                    loops: vec![],
                    target: 0,
                };
                for (l, (_, x)) in sys.lets.iter().enumerate() {
                    let mut r = vec![];
                    self.reads(&body_reads, g, e, x, &[], &mut r)?;
                    prods.push(Prod {
                        kind: OpKind::Let(g, l as u32),
                        item: item.clone(),
                        writes: vec![grp.sig(e, grp.let_off[l])],
                        reads: r,
                    });
                }
                match &sys.readout {
                    Readout::Ports(xs) => {
                        for (p, x) in xs.iter().enumerate() {
                            let mut r = vec![];
                            self.reads(&body_reads, g, e, x, &[], &mut r)?;
                            prods.push(Prod {
                                kind: OpKind::Out(g, p as u32),
                                item: item.clone(),
                                writes: vec![grp.sig(e, grp.out_off[p])],
                                reads: r,
                            });
                        }
                    }
                    Readout::Mode(x, _, _) => {
                        let mut r = vec![];
                        self.reads(&body_reads, g, e, x, &[], &mut r)?;
                        let mut w: Vec<usize> =
                            grp.out_off.iter().map(|o| grp.sig(e, *o)).collect();
                        w.push(grp.sig(e, grp.mode_off.expect("mode slot")));
                        prods.push(Prod {
                            kind: OpKind::Mode(g),
                            item: item.clone(),
                            writes: w,
                            reads: r,
                        });
                    }
                }
                for (wi, w) in sys.wires.iter().enumerate() {
                    let child = &self.groups[grp.children[w.b as usize] as usize];
                    for (loops, target) in self.wire_items(g, e, w)? {
                        let mut r = vec![];
                        self.reads(&body_reads, g, e, &w.value, &loops, &mut r)?;
                        prods.push(Prod {
                            kind: OpKind::Wire(g, wi as u32),
                            item: Item {
                                elem: e,
                                loops,
                                target,
                            },
                            writes: vec![child.sig(target, child.in_off[w.port as usize])],
                            reads: r,
                        });
                    }
                }
            }
        }
        // Producer of each signal slot.
        let mut producer: Vec<u32> = vec![u32::MAX; self.n_signal];
        for (i, p) in prods.iter().enumerate() {
            for w in &p.writes {
                producer[*w] = i as u32;
            }
        }
        let n = prods.len();
        let mut indeg = vec![0u32; n];
        let mut dependents: Vec<Vec<u32>> = vec![vec![]; n];
        for (i, p) in prods.iter().enumerate() {
            let mut deps: Vec<u32> = p
                .reads
                .iter()
                .filter_map(|r| (producer[*r] != u32::MAX).then_some(producer[*r]))
                .collect();
            deps.sort_unstable();
            deps.dedup();
            for d in deps {
                if d as usize == i {
                    return Err(err(
                        Span::default(),
                        "a value that depends on itself in the same step".into(),
                    ));
                }
                indeg[i] += 1;
                dependents[d as usize].push(i as u32);
            }
        }
        // Kahn's algorithm, batching ready computations of the same kind.
        let mut buckets: HashMap<OpKind, Vec<u32>> = HashMap::new();
        let mut queue: VecDeque<OpKind> = VecDeque::new();
        for (i, p) in prods.iter().enumerate() {
            if indeg[i] == 0 {
                let b = buckets.entry(p.kind).or_default();
                if b.is_empty() {
                    queue.push_back(p.kind);
                }
                b.push(i as u32);
            }
        }
        let mut done = 0;
        while let Some(k) = queue.pop_front() {
            let mut items = buckets.remove(&k).unwrap_or_default();
            if items.is_empty() {
                continue;
            }
            items.sort_unstable();
            done += items.len();
            for &i in &items {
                for &d in &dependents[i as usize] {
                    indeg[d as usize] -= 1;
                    if indeg[d as usize] == 0 {
                        let kind = prods[d as usize].kind;
                        let b = buckets.entry(kind).or_default();
                        if b.is_empty() && !queue.contains(&kind) {
                            queue.push_back(kind);
                        }
                        b.push(d);
                    }
                }
            }
            self.schedule.push(Op {
                kind: k,
                items: items
                    .iter()
                    .map(|&i| prods[i as usize].item.clone())
                    .collect(),
            });
        }
        if done != n {
            return Err(err(
                Span::default(),
                "an algebraic loop remained after checking".into(),
            ));
        }
        Ok(())
    }
}
