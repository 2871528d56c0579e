//! No input panics lowering, the expansion of `grad` or the interpreter: programs with
//! tensors and gradients, mutated at random, are checked, and every one that checks without
//! errors is lowered, flattened and run for a few steps. Failures must be diagnostics or
//! run-time errors.

use dyn_interp::run::{Method, RunSpec, run};
use proptest::prelude::*;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn corpus() -> Vec<String> {
    let mut v: Vec<String> = [
        "tests/ui/pass/grad.dyn",
        "tests/ui/pass/tensor_ops.dyn",
        "examples/grad_descent.dyn",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(repo().join(p)).expect("corpus file"))
    .collect();
    v.push(
        "fn f(a: Real, v: Real[3], m: Real[2, 3]) -> Real = logsumexp(m @ v) * a + max(v) - mean(outer(m[.., 1], v))
         system G : { out g: Real[3]  out h: Real[2, 3]  out k: Int  out s: Real[2] } {
           param a: Real = 0.5
           param v: Real[3] = [1.0, -2.0, 0.5]
           state m: Real[2, 3] = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
           let y = f(a, v, m)
           out g = grad(y, v)
           out h = grad(y + sum(softmax(v)[1..] * m[0, 0..2]), m)
           out k = argmax(m[1]) + argmin(v)
           out s = transpose(m)[2] + one_hot(1, 2) + grad(grad(y, a) * a, m)[.., 0]
           next m = m - 0.1 * h
         }"
        .to_string(),
    );
    v
}

const PIECES: &[&str] = &[
    "x",
    "v",
    "m",
    "w",
    "a",
    "y",
    "h",
    "grad(",
    "grad(y, ",
    ")",
    "(",
    "[",
    "]",
    "..",
    ", ",
    "0",
    "1",
    "2",
    "3",
    "-1",
    "1.5",
    "@",
    "*",
    "+",
    "-",
    "/",
    "^",
    "transpose(",
    "softmax(",
    "logsumexp(",
    "argmax(",
    "one_hot(",
    "outer(",
    "mean(",
    "max(",
    "sum(",
    "relu(",
    "randn()",
    "Real",
    "Int",
    "Real[2]",
    "Real[3]",
    "Real[2, 3]",
    "if y > 0.0 then ",
    " else ",
    "let q = ",
    "state",
    "next",
    "out",
    "der",
    "[1..3]",
    "[.., 0]",
    "[0]",
    "[2..]",
    "}",
    "{",
];

fn mutate(src: &str, at: usize, len: usize, piece: usize) -> String {
    let bytes = src.len();
    let mut i = at % bytes.max(1);
    while i > 0 && !src.is_char_boundary(i) {
        i -= 1;
    }
    let mut j = (i + len % 12).min(bytes);
    while j < bytes && !src.is_char_boundary(j) {
        j += 1;
    }
    format!("{}{}{}", &src[..i], PIECES[piece % PIECES.len()], &src[j..])
}

/// Checks, and if clean lowers, flattens and runs every system of the root module.
fn pipeline(src: String) {
    let stdlib = dyn_check::modules::Stdlib::Dir(repo().join("stdlib"));
    let checked = dyn_check::check_source("m.dyn", None, src, &stdlib);
    if checked.has_errors() {
        return;
    }
    for (_, sig) in &checked.systems {
        let Ok(flat) = dyn_ir::lower(&checked, sig).and_then(dyn_ir::flat::flatten) else {
            continue;
        };
        let spec = RunSpec {
            steps: Some(3),
            method: Method::Euler,
            dt: 0.01,
            until: Some(0.03),
            ..RunSpec::default()
        };
        let _ = run(&flat, &spec, &mut |_| {}, &mut |_, _| {});
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn mutated_tensor_and_grad_programs_never_panic(
        which in any::<usize>(),
        ms in prop::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 1..4),
    ) {
        let c = corpus();
        let mut src = c[which % c.len()].clone();
        for (at, len, piece) in ms {
            src = mutate(&src, at, len, piece);
        }
        pipeline(src);
    }
}

#[test]
fn the_corpus_itself_runs() {
    for src in corpus() {
        pipeline(src);
    }
}
