//! `Runner::restart` continues a runner as a new `Runner` would start, and `compile_lean`
//! records what `compile` records, on a discrete model with an input stream (lets, a noisy
//! free state is not involved) and on a continuous one.

use dyn_interp::run::{Method, RunSpec, Stream};
use dyn_ir::flat::Flat;
use std::path::Path;

fn flat(src: &str, system: &str) -> Flat {
    let stdlib =
        dyn_check::modules::Stdlib::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib"));
    let checked = dyn_check::check_source("t.dyn", None, src.to_string(), &stdlib);
    assert!(!checked.has_errors(), "model checks");
    let sig = checked
        .systems
        .iter()
        .find(|(_, s)| s.name == system)
        .map(|(_, s)| s.clone())
        .expect("system");
    dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .expect("lowers")
}

const DISCRETE: &str = "
system Acc : { in u: Real  out y: Real } {
  param k: Real = 0.5
  state s: Real = 1.0  state z: Real = 0.0
  let a = sin(s) * k + u
  out y = a * 2.0
  next s = s + a
  next z = z * 0.9 + cos(a)
}";

const CONTINUOUS: &str = "
system Osc : { out q: Real } {
  param k: Real = 2.0
  state q: Real = 0.5  state v: Real = 0.0
  let f = -k * sin(q)
  out q = q
  der q = v
  der v = f
}";

/// The rows of a run of `steps` from `x0`, on a fresh runner or on `reuse` restarted.
fn rows(r: &mut dyn_jit::Runner, steps: u64) -> Vec<Vec<f64>> {
    let mut out = vec![];
    r.advance(steps, &mut |_, v| out.push(v.to_vec()))
        .expect("runs");
    out
}

fn check(src: &str, sys: &str, spec: RunSpec, table: Option<Vec<Vec<f64>>>) {
    let f = flat(src, sys);
    let full = dyn_jit::compile(&f, &spec).expect("spec").expect("jit");
    let lean = dyn_jit::compile_lean(&f, &spec)
        .expect("spec")
        .expect("jit");
    let x0 = vec![0.3, -0.2];
    let x1 = vec![1.1, 0.4];
    let mut fresh = dyn_jit::Runner::new(&full, &f, &spec, Some(&x1)).expect("runner");
    fresh.sim.m.params[0] = 0.75;
    let want = rows(&mut fresh, 40);
    for c in [&full, &lean] {
        let mut r = dyn_jit::Runner::new(c, &f, &spec, Some(&x0)).expect("runner");
        let first = rows(&mut r, 25);
        assert_eq!(first.len(), 26);
        r.restart(&x1, table.as_deref()).expect("restarts");
        r.sim.m.params[0] = 0.75;
        let got = rows(&mut r, 40);
        let bits = |v: &[Vec<f64>]| -> Vec<Vec<u64>> {
            v.iter()
                .map(|r| r.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&got), bits(&want), "{sys}: restarted run");
        assert_eq!(r.sim.x, fresh.sim.x, "{sys}: final state");
    }
}

#[test]
fn restart_equals_a_new_runner_and_lean_records_equal_full_ones() {
    let table: Vec<Vec<f64>> = (0..60).map(|k| vec![(k as f64 * 0.37).sin()]).collect();
    let spec = RunSpec {
        record: vec!["s".into(), "z".into()],
        stream: Some(Stream {
            columns: vec!["u".into()],
            rows: table.clone(),
        }),
        ..RunSpec::default()
    };
    check(DISCRETE, "Acc", spec, Some(table));
    let spec = RunSpec {
        method: Method::Rk4,
        dt: 0.01,
        record: vec!["q".into(), "v".into()],
        ..RunSpec::default()
    };
    check(CONTINUOUS, "Osc", spec, None);
}

#[test]
fn restart_refuses_a_state_of_the_wrong_size() {
    let f = flat(CONTINUOUS, "Osc");
    let spec = RunSpec {
        method: Method::Rk4,
        dt: 0.01,
        ..RunSpec::default()
    };
    let c = dyn_jit::compile_lean(&f, &spec)
        .expect("spec")
        .expect("jit");
    let mut r = dyn_jit::Runner::new(&c, &f, &spec, None).expect("runner");
    assert!(r.restart(&[1.0], None).is_err());
    assert!(r.restart(&[1.0, 2.0], Some(&[vec![0.0]])).is_err());
}
