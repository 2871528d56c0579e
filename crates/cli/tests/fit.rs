//! `dyn fit`: the Lotka–Volterra example recovers its params within 5 % (L-BFGS and Adam),
//! initial states are fitted, and bad data, names and flags give clear errors.

use std::process::Output;
mod common;
use common::dyn_cmd;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The value printed as `name = value`.
fn value(out: &str, name: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} = ")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{name} = …` in\n{out}"))
}

const EX: &str = "examples/fit_lotka_volterra.dyn";
const DATA: &str = "examples/data/lotka_volterra_noisy.csv";

#[test]
fn lbfgs_recovers_lotka_volterra_within_5_percent() {
    let o = dyn_cmd(&[
        "fit", EX, "--data", DATA, "--params", "a,b,c,d", "--method", "lbfgs", "--iters", "60",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    for (name, truth) in [("a", 1.5), ("b", 1.0), ("c", 3.0), ("d", 1.0)] {
        let v = value(&out, name);
        assert!(
            ((v - truth) / truth).abs() < 0.05,
            "{name} = {v}, true {truth}\n{out}"
        );
    }
    let loss = value(&out, "loss");
    // 1 % noise on values of order 1–10: the loss at the truth is about 1e-3; the start's
    // is far larger.
    assert!(loss < 0.01, "{out}");
    assert!(out.contains("iterations of lbfgs"), "{out}");
}

#[test]
fn adam_lowers_the_loss_from_a_nearby_start() {
    let o = dyn_cmd(&[
        "fit", EX, "--data", DATA, "--params", "a,b,c,d", "--method", "adam", "--iters", "30",
        "--lr", "0.02", "--param", "a=1.45", "--param", "b=0.97", "--param", "c=3.1", "--param",
        "d=1.03",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let loss = value(&out, "loss");
    let initial: f64 = out
        .split("initial ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("initial loss");
    assert!(loss < 0.5 * initial, "{out}");
    for (name, truth) in [("a", 1.5), ("b", 1.0), ("c", 3.0), ("d", 1.0)] {
        let v = value(&out, name);
        assert!(((v - truth) / truth).abs() < 0.05, "{name} = {v}\n{out}");
    }
}

#[test]
fn initial_states_are_fitted_by_state_name() {
    // The true params, wrong starts of both populations (x = 9, y = 5.5): the fit moves
    // them back to 10 and 5 (the interpreter runs it: the reference backend).
    let o = dyn_cmd(&[
        "fit",
        EX,
        "--data",
        DATA,
        "--params",
        "x,y",
        "--param",
        "a=1.5",
        "--param",
        "b=1",
        "--param",
        "c=3",
        "--param",
        "d=1",
        "--init",
        "x=9",
        "--init",
        "y=5.5",
        "--iters",
        "30",
        "--backend",
        "interp",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("interp"), "{out}");
    let (x, y) = (value(&out, "x"), value(&out, "y"));
    assert!((x - 10.0).abs() < 0.1 && (y - 5.0).abs() < 0.05, "{out}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--data", DATA, "--params", "a,zz"],
            "`zz` is neither a param nor a state",
        ),
        (
            &["--data", DATA, "--params", "a", "--method", "sgd"],
            "unknown optimizer `sgd`",
        ),
        (
            &["--data", DATA, "--params", "a", "--integrator", "rk45"],
            "fixed step",
        ),
        (&["--data", DATA, "--params", "a,a"], "named twice"),
        (
            &["--params", "a", "--data", "examples/data/nope.csv"],
            "cannot read",
        ),
        (
            &["--params", "a", "--data", "examples/lotka_volterra.dyn"],
            "the data",
        ),
        (
            &["--params", "a", "--data", "examples/data/digits_test.csv"],
            "no time column",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["fit", EX];
        args.extend_from_slice(extra);
        let o = dyn_cmd(&args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{out}\n{err}");
        assert!(err.contains(want), "{args:?}: wanted `{want}` in\n{err}");
    }
    // A column the model does not record.
    let dir = std::env::temp_dir().join(format!("dyn-fit-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("bad.csv");
    std::fs::write(&csv, "t,wolves\n0,1\n").unwrap();
    let o = dyn_cmd(&["fit", EX, "--data", csv.to_str().unwrap(), "--params", "a"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`wolves` is not a recordable name"), "{err}");
    // A time between steps.
    std::fs::write(&csv, "t,prey\n0.005,1\n").unwrap();
    let o = dyn_cmd(&["fit", EX, "--data", csv.to_str().unwrap(), "--params", "a"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not a whole number of steps"), "{err}");
    // A model with an event: a diagnostic with a code.
    let model = dir.join("event.dyn");
    std::fs::write(
        &model,
        "system E : { out v: Real } {\n  param k: Real = 1.0\n  state v: Real = 0.0\n  out v = v\n  der v = k\n  when v >= 1.0 { v = 0.0 }\n}\nrun E { until 2.0  method rk4(dt = 0.01) }\n",
    )
    .unwrap();
    std::fs::write(&csv, "t,v\n0,0\n0.5,0.5\n").unwrap();
    let o = dyn_cmd(&[
        "fit",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--params",
        "k",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("E0080") && err.contains("`when` event"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
