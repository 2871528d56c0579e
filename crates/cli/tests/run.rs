//! Correctness of running models, against solutions computed independently (closed forms,
//! the conformance suite's scipy reference, an mpmath reference in tests/reference/).
//! Tolerances follow each method's order.

use dyn_interp::run::{Method, RunError, RunSpec, run};
use std::path::Path;

/// Recorded names and rows `(t, values)`.
type Trace = (Vec<String>, Vec<(f64, Vec<f64>)>);

/// Runs `src` (system `system`) and returns the header and rows.
fn trace(src: &str, system: &str, spec: &RunSpec) -> Result<Trace, RunError> {
    let stdlib =
        dyn_check::modules::Stdlib::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib"));
    let checked = dyn_check::check_source("test.dyn", None, src.to_string(), &stdlib);
    assert!(
        !checked.has_errors(),
        "{}",
        dyn_diag::render_all(&checked.sources, &checked.diagnostics, false)
    );
    let sig = checked
        .systems
        .iter()
        .find(|(_, s)| s.name == system)
        .expect("system")
        .1
        .clone();
    let flat = dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .expect("lowers");
    let mut names = vec![];
    let mut rows = vec![];
    run(&flat, spec, &mut |n| names = n.to_vec(), &mut |t, v| {
        rows.push((t, v.to_vec()))
    })?;
    Ok((names, rows))
}

fn spec(method: Method, dt: f64, until: f64) -> RunSpec {
    RunSpec {
        method,
        dt,
        until: Some(until),
        every: Some(until),
        ..RunSpec::default()
    }
}

const HARMONIC: &str = "
system Harmonic : { out x: Real } {
  param omega: Real = 1.0
  state x: Real = 1.0
  state v: Real = 0.0
  out x = x
  der x = v
  der v = -omega * omega * x
}";

fn harmonic_error(method: Method, dt: f64) -> f64 {
    let (_, rows) = trace(HARMONIC, "Harmonic", &spec(method, dt, 10.0)).unwrap();
    let (t, v) = rows.last().unwrap();
    assert_eq!(*t, 10.0);
    (v[0] - 10f64.cos()).abs()
}

#[test]
fn rk4_is_fourth_order_and_euler_first_order() {
    // Halving dt divides the global error by 2^p: 16 for RK4, 2 for Euler (asymptotically).
    let r4 = harmonic_error(Method::Rk4, 0.02) / harmonic_error(Method::Rk4, 0.01);
    assert!((15.0..17.0).contains(&r4), "RK4 error ratio {r4}");
    let r1 = harmonic_error(Method::Euler, 0.0002) / harmonic_error(Method::Euler, 0.0001);
    assert!((1.95..2.05).contains(&r1), "Euler error ratio {r1}");
}

#[test]
fn rk45_meets_a_tight_tolerance() {
    let s = RunSpec {
        rtol: 1e-10,
        atol: 1e-12,
        ..spec(Method::Rk45, 0.01, 10.0)
    };
    let (_, rows) = trace(HARMONIC, "Harmonic", &s).unwrap();
    let err = (rows.last().unwrap().1[0] - 10f64.cos()).abs();
    assert!(err < 1e-8, "rk45 error {err}");
}

const LV_TWO_BOXES: &str = include_str!("../../../../shared/conformance/ok/predator_prey.dyn");

const LV_ONE_BOX: &str = "
system LV : { out prey: Real  out predators: Real } {
  param a: Real = 1.5
  param c: Real = 3.0
  param d: Real = 1.0
  state r: Real = 10.0
  state f: Real = 5.0
  out prey = r
  out predators = f
  der r = a * r - (1.0 * f) * r
  der f = -c * f + d * r * f
}";

#[test]
fn lotka_volterra_two_boxes_equal_one_box_to_the_bit() {
    let s = RunSpec {
        every: Some(0.1),
        ..spec(Method::Rk4, 1e-3, 10.0)
    };
    let (_, two) = trace(LV_TWO_BOXES, "LotkaVolterra", &s).unwrap();
    let (_, one) = trace(LV_ONE_BOX, "LV", &s).unwrap();
    assert_eq!(two.len(), 101);
    for ((t1, a), (t2, b)) in two.iter().zip(&one) {
        assert_eq!(t1, t2);
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.to_bits(), y.to_bits(), "t = {t1}: {x} vs {y}");
        }
    }
}

#[test]
fn lotka_volterra_matches_the_reference() {
    // Reference: scipy DOP853 at rtol 1e-13 (from the shared conformance suite).
    let (_, rows) = trace(
        LV_TWO_BOXES,
        "LotkaVolterra",
        &spec(Method::Rk4, 1e-3, 10.0),
    )
    .unwrap();
    let v = &rows.last().unwrap().1;
    let rel = |x: f64, r: f64| ((x - r) / r).abs();
    assert!(rel(v[0], 0.28721296420211223) < 1e-8, "prey {}", v[0]);
    assert!(rel(v[1], 0.4497774635062142) < 1e-8, "predators {}", v[1]);
}

#[test]
fn lorenz_rk45_follows_the_reference() {
    let src = "use std.oscillators.Lorenz\nsystem L : { out x: Real  out y: Real  out z: Real } {\n  box l: Lorenz\n  out x = l.x\n  out y = l.y\n  out z = l.z\n}";
    // mpmath Taylor integration at 40 digits: tests/reference/lorenz.py.
    let reference = include!("../../../tests/reference/lorenz.txt");
    let s = RunSpec {
        rtol: 1e-12,
        atol: 1e-12,
        every: Some(1.0),
        ..spec(Method::Rk45, 1e-3, 5.0)
    };
    let (names, rows) = trace(src, "L", &s).unwrap();
    assert_eq!(names, vec!["x", "y", "z"]);
    for (t, x, y, z) in reference {
        let row = rows
            .iter()
            .find(|(rt, _)| (*rt - t).abs() < 1e-9)
            .expect("recorded time");
        for (got, want) in row.1.iter().zip([x, y, z]) {
            // Chaos amplifies errors by about e^(0.9 t): local errors of 1e-12 grow to ~2e-8 by t = 5.
            assert!(
                (got - want).abs() < 1e-7 * want.abs().max(1.0),
                "t = {t}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn discrete_counter_and_logistic_map_are_exact() {
    let src = include_str!("../../../../shared/conformance/ok/counter.dyn");
    let s = RunSpec {
        steps: Some(5),
        ..RunSpec::default()
    };
    let (_, rows) = trace(src, "ByTwo", &s).unwrap();
    let counts: Vec<f64> = rows.iter().map(|r| r.1[0]).collect();
    assert_eq!(counts, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);

    let logistic = "system Logistic : { out x: Real } {\n  param r: Real = 3.7\n  state x: Real = 0.2\n  out x = x\n  next x = r * x * (1.0 - x)\n}";
    let (_, rows) = trace(
        logistic,
        "Logistic",
        &RunSpec {
            steps: Some(200),
            ..RunSpec::default()
        },
    )
    .unwrap();
    let mut x: f64 = 0.2;
    for (k, (_, v)) in rows.iter().enumerate() {
        assert_eq!(v[0].to_bits(), x.to_bits(), "step {k}");
        x = 3.7 * x * (1.0 - x);
    }
}

const LIF: &str = "
system LIF : { out spikes: Int  out last: Real  in current: Real } {
  param tau: Real = 10.0
  param v_th: Real = -50.0
  param v_reset: Real = -70.0
  state v: Real = -70.0
  state count: Int = 0
  state clock: Real = 0.0
  state last: Real = 0.0
  out spikes = count
  out last = last
  der v = (-(v + 70.0) + current) / tau
  der clock = 1.0
  when v >= v_th { v = v_reset  count = count + 1  last = clock }
}
system Driven : { out spikes: Int  out last: Real } {
  box n: LIF
  n.current <- 25.0
  out spikes = n.spikes
  out last = n.last
}";

#[test]
fn lif_fires_with_its_closed_form_period() {
    // v∞ = -70 + 25 = -45; T = τ ln((v∞ - v_reset) / (v∞ - v_th)) = 10 ln 5.
    let period = 10.0 * 5f64.ln();
    let s = RunSpec {
        record: vec!["spikes".into(), "last".into()],
        ..spec(Method::Rk4, 0.01, 100.0)
    };
    let (_, rows) = trace(LIF, "Driven", &s).unwrap();
    let v = &rows.last().unwrap().1;
    assert_eq!(v[0], 6.0, "six spikes in 100 ms");
    // Fixed steps detect the crossing at the end of the step: each spike is late by < dt, and
    // the reset restarts from the step's end, so the n-th spike lies within n·dt of n·T.
    assert!(
        (v[1] - 6.0 * period).abs() < 6.0 * 0.01,
        "last spike at {}",
        v[1]
    );
    let s = RunSpec {
        rtol: 1e-10,
        atol: 1e-10,
        record: vec!["spikes".into(), "last".into()],
        ..spec(Method::Rk45, 0.01, 100.0)
    };
    let (_, rows) = trace(LIF, "Driven", &s).unwrap();
    let v = &rows.last().unwrap().1;
    assert_eq!(v[0], 6.0);
    assert!(
        (v[1] - 6.0 * period).abs() < 1e-6,
        "rk45 last spike at {} vs {}",
        v[1],
        6.0 * period
    );
}

#[test]
fn non_finite_state_names_the_variable() {
    let src = "system Blow : { out x: Real } {\n  state x: Real = 1.0\n  out x = x\n  der x = x * x\n}\nsystem Top : { out y: Real } {\n  box b: Blow\n  out y = b.x\n}";
    let err = trace(src, "Top", &spec(Method::Euler, 0.1, 100.0)).unwrap_err();
    match err {
        RunError::NotFinite { name, time, last } => {
            assert_eq!(name, "b.x");
            assert!(time > 0.9 && time < 10.0, "blow-up time {time}");
            assert!(last.is_finite() && last > 1e10);
        }
        e => panic!("unexpected {e:?}"),
    }
}

#[test]
fn unknown_param_lists_the_valid_ones() {
    let s = RunSpec {
        params: vec![("foxes.k".into(), 1.0)],
        ..spec(Method::Rk4, 0.01, 1.0)
    };
    match trace(LV_TWO_BOXES, "LotkaVolterra", &s).unwrap_err() {
        RunError::UnknownParam { path, valid } => {
            assert_eq!(path, "foxes.k");
            assert!(
                valid.contains(&"foxes.c".to_string()) && valid.contains(&"rabbits.a".to_string()),
                "{valid:?}"
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    // A valid override changes the result.
    let s = RunSpec {
        params: vec![("foxes.c".into(), 2.5)],
        ..spec(Method::Rk4, 0.01, 1.0)
    };
    let (_, a) = trace(LV_TWO_BOXES, "LotkaVolterra", &s).unwrap();
    let (_, b) = trace(LV_TWO_BOXES, "LotkaVolterra", &spec(Method::Rk4, 0.01, 1.0)).unwrap();
    assert_ne!(a.last().unwrap().1, b.last().unwrap().1);
}

const OU: &str = "
system OU : { out x: Real } {
  state x: Real = 0.0
  out x = x
  der x = -x + sqrt(2.0) * randn()
}";

#[test]
fn euler_maruyama_noise_has_the_right_variance_and_is_seeded() {
    // dx = -x dt + sqrt(2) dW has stationary variance 1 (Euler–Maruyama: 1 / (1 - dt/2)).
    let s = RunSpec {
        method: Method::Euler,
        dt: 0.01,
        until: Some(3000.0),
        every: Some(1.0),
        seed: 7,
        ..RunSpec::default()
    };
    let (_, rows) = trace(OU, "OU", &s).unwrap();
    let xs: Vec<f64> = rows.iter().skip(10).map(|r| r.1[0]).collect();
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    // ~3000 samples one correlation time apart: the variance estimate's sd is about 4%.
    assert!((var - 1.005).abs() < 0.15, "stationary variance {var}");
    assert!(mean.abs() < 0.15, "stationary mean {mean}");
    let short = RunSpec {
        until: Some(5.0),
        ..s.clone()
    };
    let (_, a) = trace(OU, "OU", &short).unwrap();
    let (_, b) = trace(OU, "OU", &short).unwrap();
    assert_eq!(a, b, "same seed, same trace");
    let (_, c) = trace(OU, "OU", &RunSpec { seed: 8, ..short }).unwrap();
    assert_ne!(a, c, "another seed, another trace");
    // Noise needs Euler–Maruyama.
    assert!(matches!(
        trace(
            OU,
            "OU",
            &RunSpec {
                method: Method::Rk4,
                ..s
            }
        ),
        Err(RunError::Setting(_))
    ));
}

#[test]
fn rk45_stops_on_a_blow_up_instead_of_shrinking_forever() {
    // x' = x² reaches infinity at t = 1: the step shrinks, then the non-finite state is
    // reported (a NaN error estimate must not leave the step size NaN).
    let src =
        "system Blow : { out x: Real } {\n  state x: Real = 1.0\n  out x = x\n  der x = x * x\n}";
    let start = std::time::Instant::now();
    let err = trace(
        src,
        "Blow",
        &RunSpec {
            method: Method::Rk45,
            until: Some(3.0),
            every: Some(0.5),
            ..RunSpec::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, RunError::NotFinite { ref name, .. } if name == "x"),
        "{err:?}"
    );
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

/// The default recording is the root's out ports, by their slots: a state of the same name
/// is not recorded in the port's place, and a name is one column.
#[test]
fn an_out_port_named_like_a_state_records_the_port() {
    let src = "system S : { out w: Real } {\n  state w: Real = 1.0\n  out w = 2.0 * w\n  next w = w + 1.0\n}";
    let s = RunSpec {
        steps: Some(2),
        ..RunSpec::default()
    };
    let (names, rows) = trace(src, "S", &s).unwrap();
    assert_eq!(names, ["w"]);
    let w: Vec<f64> = rows.iter().map(|r| r.1[0]).collect();
    assert_eq!(w, [2.0, 4.0, 6.0]);
}

/// `match mode` in a wire: the connection from the outer input exists only in mode `On`.
#[test]
fn mode_dependent_wiring_follows_the_mode() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ui/pass/match_mode_wiring.dyn"),
    )
    .unwrap();
    let s = RunSpec {
        steps: Some(8),
        record: vec!["n.mode".into(), "n.u1.drive".into(), "n.u0.a".into()],
        ..RunSpec::default()
    };
    let (_, rows) = trace(&src, "Top", &s).unwrap();
    for (_, v) in &rows {
        let (mode, drive, a0) = (v[0], v[1], v[2]);
        if mode == 0.0 {
            assert_eq!(drive, 2.0 + a0, "On: p + u0.a");
        } else {
            assert_eq!((mode, drive), (1.0, 0.0), "Off: no connection");
        }
    }
    assert!(rows.iter().any(|r| r.1[0] == 1.0) && rows.iter().any(|r| r.1[0] == 0.0));
}
