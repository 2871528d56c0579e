//! Deeply interacting systems — composites whose wiring has its own state — run end to end:
//! the examples' claims checked on both backends (which must agree to the bit).

mod common;
use common::dyn_cmd;

/// Runs `args` on both backends, checks that they agree, and returns the header and rows.
fn trace(args: &[&str]) -> (Vec<String>, Vec<Vec<f64>>) {
    let run = |backend: &str| {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        a.extend(["--backend", backend]);
        let o = dyn_cmd(&a);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?} on {backend}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (i, j) = (run("interp"), run("jit"));
    assert_eq!(
        i, j,
        "{args:?}: the JIT's trace differs from the interpreter's"
    );
    let mut lines = i.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

#[test]
fn hebbian_weights_grow_only_between_co_active_units() {
    let (h, rows) = trace(&["examples/hebbian.dyn"]);
    let last = rows.last().unwrap();
    let (w01, w10) = (last[col(&h, "w01")], last[col(&h, "w10")]);
    assert!(w01 > 0.15 && w01 == w10, "w01 = {w01}, w10 = {w10}");
    // Growth: the co-active pair's weight rises over the run.
    let early = rows[2][col(&h, "w01")];
    assert!(early > 0.0 && early < w01);
    // Units never active together: exactly 0 throughout.
    for name in ["w02", "w12", "w03", "w23"] {
        assert!(rows.iter().all(|r| r[col(&h, name)] == 0.0), "{name}");
    }
    // Every unit's activity: 0 and 1 together, 2 alone, 3 never.
    let (h, rows) = trace(&[
        "examples/hebbian.dyn",
        "--record",
        "u[0].a,u[1].a,u[2].a,u[3].a",
        "--steps",
        "40",
        "--every",
        "1",
    ]);
    for r in &rows {
        let a: Vec<f64> = (0..4).map(|i| r[col(&h, &format!("u[{i}].a"))]).collect();
        assert_eq!(a[0] > 0.0, a[1] > 0.0);
        assert!(a[0] * a[2] == 0.0 && a[3] == 0.0);
    }
}

#[test]
fn hopfield_recalls_each_stored_pattern_from_a_corrupted_copy() {
    let (h, rows) = trace(&["examples/hopfield.dyn"]);
    let m = |r: &Vec<f64>, p: usize| r[col(&h, &format!("m{p}"))];
    let row = |t: usize| rows.iter().find(|r| r[0] == t as f64).unwrap();
    // Steps 0–29 learn; trial p cues at step 30 + 10 p (the state shows the cue one step
    // later) and runs free until step 40 + 10 p.
    for p in 0..3 {
        let start = 30 + 10 * p;
        assert_eq!(row(start)[col(&h, "cued")], p as f64);
        // The cue (3 of 16 units flipped) overlaps the pattern by 10/16 (times tanh(4)).
        let cue = row(start + 1);
        assert!(
            (m(cue, p) - 0.625 * 4f64.tanh()).abs() < 1e-9,
            "cue {p}: {}",
            m(cue, p)
        );
        let end = row(start + 10);
        assert!(m(end, p) > 0.999, "pattern {p} recalled: {}", m(end, p));
        for q in (0..3).filter(|q| *q != p) {
            assert!(m(end, q).abs() < 1e-3, "pattern {p}: overlap with {q}");
        }
    }
}

#[test]
fn pruning_removes_weak_connections_and_regrows_them() {
    let (h, rows) = trace(&["examples/pruning.dyn"]);
    let at = |t: f64, name: &str| rows.iter().find(|r| r[0] == t).unwrap()[col(&h, name)];
    // All-to-all at first; the first night prunes the 8 synapses the senses never used.
    assert_eq!(at(30.0, "live"), 12.0);
    assert_eq!(at(40.0, "live"), 4.0);
    assert_eq!(at(40.0, "brain.syn.w12"), 0.0);
    assert!(at(40.0, "brain.syn.w01") > 0.3);
    // Day 3: units 1 and 2 fire together and their synapse regrows (and grows).
    assert_eq!(at(130.0, "live"), 8.0);
    assert!(at(130.0, "brain.syn.w12") > 0.1 && at(270.0, "brain.syn.w12") > 0.5);
    // The old pair's synapse is no longer used: it decays and is pruned in a later night.
    assert!(at(270.0, "brain.syn.w01") > 0.0);
    assert_eq!(at(280.0, "brain.syn.w01"), 0.0);
    assert_eq!(at(360.0, "live"), 4.0);
    // The mode follows the clock (30 steps awake, 10 asleep), and is recordable.
    let (h, rows) = trace(&[
        "examples/pruning.dyn",
        "--record",
        "brain.mode",
        "--steps",
        "80",
        "--every",
        "1",
    ]);
    for r in &rows {
        let awake = (r[0] as u64) % 40 < 30;
        assert_eq!(r[col(&h, "brain.mode")], if awake { 0.0 } else { 1.0 });
    }
}
