//! Causality: the graph of instantaneous (feed-through) dependencies inside one system,
//! the algebraic-loop check, and the feed-through summary a system shows its parent.
//!
//! Nodes are values computed within one step: inner inputs and outputs (per element of
//! a box array), lets, the system's outputs and inputs. An edge `a → b` means `a` needs
//! `b` in the same step. Reading state or params adds no edge: that is the delay that
//! makes feedback through a Moore box fine. A cycle is an algebraic loop.

use dyn_diag::{Diagnostic, Span, codes};
use std::collections::HashMap;

/// A value inside one step of a system.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// Input port of an inner box (box index, array element, port).
    BoxIn(usize, Option<u64>, String),
    /// Output port of an inner box.
    BoxOut(usize, Option<u64>, String),
    /// A `let` by index.
    Let(usize),
    /// An out port of the system (`*` for a mode readout).
    Out(String),
    /// An input of the system.
    Input(String),
}

/// The dependency graph.
#[derive(Debug, Default)]
pub struct Graph {
    /// Node ids.
    pub index: HashMap<Node, usize>,
    nodes: Vec<Node>,
    edges: Vec<Vec<usize>>,
    spans: Vec<Option<Span>>,
}

impl Graph {
    /// The id of a node, added if new.
    pub fn node(&mut self, n: Node) -> usize {
        if let Some(&i) = self.index.get(&n) {
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(n.clone());
        self.edges.push(Vec::new());
        self.spans.push(None);
        self.index.insert(n, i);
        i
    }

    /// Records where a node's value is defined (the wire).
    pub fn set_span(&mut self, n: usize, s: Span) {
        self.spans[n] = Some(s);
    }

    /// `from` needs `to` in the same step.
    pub fn edge(&mut self, from: usize, to: usize, _why: Option<Span>) {
        self.edges[from].push(to);
    }

    /// The system inputs that node `n` depends on without delay.
    pub fn reachable_inputs(&self, n: usize) -> Vec<String> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![n];
        let mut out = Vec::new();
        while let Some(x) = stack.pop() {
            if std::mem::replace(&mut seen[x], true) {
                continue;
            }
            if let Node::Input(name) = &self.nodes[x] {
                out.push(name.clone());
            }
            stack.extend(self.edges[x].iter().copied().filter(|&y| !seen[y]));
        }
        out.sort();
        out
    }
}

fn node_name(
    n: &Node,
    boxes: &[(String, Option<u64>, Span, String)],
    lets: &dyn Fn(usize) -> String,
) -> String {
    let elem = |b: usize, k: &Option<u64>| match k {
        Some(k) => format!("{}[{k}]", boxes[b].0),
        None => boxes[b].0.clone(),
    };
    match n {
        Node::BoxIn(b, k, p) | Node::BoxOut(b, k, p) => format!("{}.{p}", elem(*b, k)),
        Node::Let(i) => lets(*i),
        Node::Out(p) if p == "*" => "the mode (the readout)".to_string(),
        Node::Out(p) => format!("out {p}"),
        Node::Input(p) => p.clone(),
    }
}

/// Finds one cycle and describes it as an algebraic loop, in the direction values flow.
pub fn find_loop(
    g: &Graph,
    boxes: &[(String, Option<u64>, Span, String)],
    lets: &[String],
) -> Option<Diagnostic> {
    let n = g.nodes.len();
    // 0 = unvisited, 1 = on the stack, 2 = done. Iterative DFS.
    let mut color = vec![0u8; n];
    for root in 0..n {
        if color[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        color[root] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if *next < g.edges[v].len() {
                let w = g.edges[v][*next];
                *next += 1;
                match color[w] {
                    0 => {
                        color[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let pos = stack
                            .iter()
                            .position(|(x, _)| *x == w)
                            .expect("gray node is on the stack");
                        let cycle: Vec<usize> = stack[pos..].iter().map(|(x, _)| *x).collect();
                        return Some(describe(g, &cycle, boxes, lets));
                    }
                    _ => {}
                }
            } else {
                color[v] = 2;
                stack.pop();
            }
        }
    }
    None
}

fn describe(
    g: &Graph,
    cycle: &[usize],
    boxes: &[(String, Option<u64>, Span, String)],
    let_names: &[String],
) -> Diagnostic {
    // `cycle` lists nodes each needing the next; values flow the other way.
    let mut flow: Vec<usize> = cycle.to_vec();
    flow.reverse();
    // Start at an inner output, so the text reads "out → wire → in → feed-through → out".
    if let Some(p) = flow
        .iter()
        .position(|&x| matches!(g.nodes[x], Node::BoxOut(..)))
    {
        flow.rotate_left(p);
    }
    let lets = |i: usize| {
        let_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("let #{i}"))
    };
    let mut names: Vec<String> = flow
        .iter()
        .map(|&x| node_name(&g.nodes[x], boxes, &lets))
        .collect();
    names.push(names[0].clone());
    let mut wire_spans: Vec<Span> = Vec::new();
    for s in flow.iter().filter_map(|&x| g.spans[x]) {
        if !wire_spans.contains(&s) {
            wire_spans.push(s);
        }
    }
    let primary = wire_spans.first().copied().or_else(|| {
        flow.iter().find_map(|&x| match &g.nodes[x] {
            Node::BoxIn(b, ..) | Node::BoxOut(b, ..) => Some(boxes[*b].2),
            _ => None,
        })
    });
    let primary = primary.unwrap_or_default();
    let mut d = Diagnostic::new(
        codes::ALGEBRAIC_LOOP,
        primary,
        format!("algebraic loop: {}", names.join(" → ")),
    )
    .label("this wire is part of the loop");
    for s in wire_spans.iter().skip(1) {
        d = d.with(*s, "and this wire");
    }
    let mut noted = Vec::new();
    for &x in &flow {
        if let Node::BoxIn(b, _, p) = &g.nodes[x]
            && !noted.contains(b)
        {
            noted.push(*b);
            d = d.with(
                boxes[*b].2,
                format!(
                    "`{}` ({}) passes `{p}` to an output without delay",
                    boxes[*b].0, boxes[*b].3
                ),
            );
        }
    }
    d.hint("every value in the loop needs the others in the same step: break it with state, e.g. make one box's output read only its state (a Moore box)")
}
