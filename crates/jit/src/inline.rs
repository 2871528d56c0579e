//! Signal inlining: which signals are computed where they are read instead of being stored.
//!
//! A signal (a `let`, an out port, or an inner box's input fed by a wire) whose defining
//! expression is cheap — arithmetic on states, params and other such signals, no calls into
//! math functions, no noise, no tensors — is *virtual*: every read of it evaluates its
//! expression in place (in the frame of the element that defines it), so no store and load
//! go through memory inside the integration loop. The same operations run in the same order,
//! so values are bit-identical to the stored ones. Virtual signals are still written to the
//! signal buffer before each record (the "full" signal pass), for traces.
//!
//! An input is virtual only when one wire feeds it in a regular way: a single box, or a box
//! array wired by `for i in 0..n { box[i].port <- … }`, so that the element of the wire is
//! found from the element of the input by division.

use dyn_ir::expr::{Bin, Expr, Num, Un};
use dyn_ir::flat::{Flat, eval_index};
use dyn_ir::system::Readout;
use std::collections::HashMap;

/// Largest cost (roughly, operations) of an inlined signal, its own inlined reads included.
const BUDGET: usize = 24;

/// A kind of signal of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sig {
    /// `let` number.
    Let(u32),
    /// Out port number.
    Out(u32),
    /// Input port number.
    In(u32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Computing,
    Yes(usize),
    No,
}

/// The virtual signals of a program, per group.
pub(crate) struct Virtual {
    memo: HashMap<(u32, Sig), State>,
}

impl Virtual {
    /// Decides every signal of `flat`.
    pub(crate) fn new(flat: &Flat) -> Virtual {
        let mut v = Virtual {
            memo: HashMap::new(),
        };
        for (g, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            for l in 0..sys.lets.len() {
                v.status(flat, g as u32, Sig::Let(l as u32));
            }
            for p in 0..sys.outputs.len() {
                v.status(flat, g as u32, Sig::Out(p as u32));
            }
            for i in 0..sys.inputs.len() {
                v.status(flat, g as u32, Sig::In(i as u32));
            }
        }
        v
    }

    /// Is this signal computed where it is read?
    pub(crate) fn is(&self, g: u32, s: Sig) -> bool {
        matches!(self.memo.get(&(g, s)), Some(State::Yes(_)))
    }

    fn status(&mut self, flat: &Flat, g: u32, s: Sig) -> State {
        if let Some(st) = self.memo.get(&(g, s)) {
            // A signal met while its own cost is being computed is read, not inlined.
            return if *st == State::Computing {
                State::No
            } else {
                *st
            };
        }
        self.memo.insert((g, s), State::Computing);
        let st = match definition(flat, g, s) {
            Some((dg, x)) => match self.cost(flat, dg, x) {
                Some(c) if c <= BUDGET => State::Yes(c),
                _ => State::No,
            },
            None => State::No,
        };
        self.memo.insert((g, s), st);
        st
    }

    /// The cost of computing `x` in group `g` with virtual reads inlined; `None` when `x`
    /// must not be duplicated.
    fn cost(&mut self, flat: &Flat, g: u32, x: &Expr) -> Option<usize> {
        let grp = &flat.groups[g as usize];
        let read = |v: &mut Virtual, s: Sig| match v.status(flat, g, s) {
            State::Yes(c) => c,
            _ => 1,
        };
        Some(match x {
            Expr::Const(_) | Expr::Param(_) | Expr::State(_) | Expr::Loop(_) | Expr::Arg(_) => 1,
            Expr::Let(i) => read(self, Sig::Let(*i)),
            Expr::Input(i) => read(self, Sig::In(*i)) + 2,
            Expr::BoxOut { b, index, port } => {
                let child = grp.children[*b as usize];
                let at = match index {
                    Some(i) => self.cost(flat, g, i)?,
                    None => 0,
                };
                at + match self.status(flat, child, Sig::Out(*port)) {
                    State::Yes(c) => c,
                    _ => 1,
                }
            }
            Expr::Un(
                Un::Neg
                | Un::Not
                | Un::ToReal
                | Un::ToInt
                | Un::Abs
                | Un::Sqrt
                | Un::Floor
                | Un::Ceil,
                a,
            ) => 1 + self.cost(flat, g, a)?,
            // Math functions are calls: computed once, not at every read.
            Expr::Un(..) => return None,
            Expr::Bin(op, num, a, b) => {
                let own = match (op, num) {
                    (Bin::Pow | Bin::Atan2 | Bin::MatMul, _) => return None,
                    (Bin::Rem, Num::Real) => return None,
                    (Bin::Div | Bin::Rem, Num::Int) if !matches!(**b, Expr::Const(_)) => {
                        return None;
                    }
                    (Bin::Min | Bin::Max, Num::Real) => 3,
                    _ => 1,
                };
                own + self.cost(flat, g, a)? + self.cost(flat, g, b)?
            }
            Expr::If(c, a, b) => {
                1 + self.cost(flat, g, c)? + self.cost(flat, g, a)? + self.cost(flat, g, b)?
            }
            Expr::Call(fi, xs) => {
                let mut c = 0;
                for a in xs {
                    c += self.cost(flat, g, a)?;
                }
                c + self.cost(flat, g, &flat.program.fns[*fi as usize].body)?
            }
            _ => return None,
        })
    }
}

/// Where signal `s` of group `g` is defined: the group whose frame evaluates it and the
/// expression. `None` for signals that are never inlined (tensors, mode readouts, the root's
/// inputs, irregularly wired inputs).
pub(crate) fn definition(flat: &Flat, g: u32, s: Sig) -> Option<(u32, &Expr)> {
    let grp = &flat.groups[g as usize];
    let sys = &flat.program.systems[grp.system as usize];
    match s {
        Sig::Let(l) => {
            let (slot, x) = &sys.lets[l as usize];
            slot.shape.is_empty().then_some((g, x))
        }
        Sig::Out(p) => match &sys.readout {
            Readout::Ports(xs) if sys.outputs[p as usize].shape.is_empty() => {
                Some((g, &xs[p as usize]))
            }
            _ => None,
        },
        Sig::In(i) => {
            if !sys.inputs[i as usize].shape.is_empty() {
                return None;
            }
            let (pg, bi) = grp.parent?;
            let w = regular_wire(flat, pg, bi, i)?;
            let psys = &flat.program.systems[flat.groups[pg as usize].system as usize];
            Some((pg, &psys.wires[w].value))
        }
    }
}

/// The one wire of group `pg` that feeds input `port` of every element of box `bi`, when
/// it is regular (see the module docs).
pub(crate) fn regular_wire(flat: &Flat, pg: u32, bi: u32, port: u32) -> Option<usize> {
    let psys = &flat.program.systems[flat.groups[pg as usize].system as usize];
    let mut found = psys
        .wires
        .iter()
        .enumerate()
        .filter(|(_, w)| w.b == bi && w.port == port);
    let (k, w) = found.next()?;
    if found.next().is_some() {
        return None;
    }
    let regular = match psys.boxes[bi as usize].count {
        None => w.loops.is_empty() && w.index.is_none(),
        Some(n) => {
            w.loops.len() == 1
                && eval_index(&w.loops[0].1, &[]) == Some(0)
                && eval_index(&w.loops[0].2, &[]) == Some(n as i64)
                && matches!(w.index, Some(Expr::Loop(0)))
        }
    };
    regular.then_some(k)
}
