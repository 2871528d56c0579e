//! `dyn analyze`: each subcommand on the examples, with its numbers checked (Lorenz's
//! exponent, Van der Pol's unstable origin, the logistic map's period doublings, the double
//! well's two basins, the Ornstein–Uhlenbeck spread), its figures written, and clear errors
//! with exit code 2 for bad flags.

use serde_json::Value;
use std::path::PathBuf;
mod common;
use common::{dyn_cmd, text};

/// Runs `dyn analyze ARGS --json` and parses its output.
fn json(args: &[&str]) -> Value {
    let mut a = vec!["analyze"];
    a.extend_from_slice(args);
    a.push("--json");
    let o = dyn_cmd(&a);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dyn-analyze-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn fixed_points_of_van_der_pol_and_lorenz() {
    for (mu, class) in [("0.5", "unstable focus"), ("3.0", "unstable node")] {
        let v = json(&[
            "fixed-points",
            "examples/van_der_pol.dyn",
            "--param",
            &format!("mu={mu}"),
        ]);
        let pts = v["points"].as_array().unwrap();
        assert_eq!(pts.len(), 1, "{v}");
        assert_eq!(pts[0]["class"], class);
        assert_eq!(pts[0]["stable"], false);
        assert_eq!(v["states"], serde_json::json!(["osc.x", "osc.v"]));
    }
    let plot = tmp("lorenz_fixed.svg");
    let v = json(&[
        "fixed-points",
        "examples/lorenz.dyn",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let pts = v["points"].as_array().unwrap();
    assert_eq!(pts.len(), 3);
    assert!(pts.iter().all(|p| p["class"] == "saddle"));
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
    // CSV by default: a header, then one row per point.
    let o = dyn_cmd(&["analyze", "fixed-points", "examples/double_well.dyn"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let csv = String::from_utf8_lossy(&o.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("point,class,x,v,residual,hits,eig1_re,eig1_im,eig2_re,eig2_im")
    );
    let classes: Vec<&str> = lines.map(|l| l.split(',').nth(1).unwrap()).collect();
    assert_eq!(classes.iter().filter(|c| **c == "stable focus").count(), 2);
    assert_eq!(classes.iter().filter(|c| **c == "saddle").count(), 1);
}

#[test]
fn lyapunov_exponent_of_lorenz() {
    let plot = tmp("lorenz_lyap.png");
    let v = json(&[
        "lyapunov",
        "examples/lorenz.dyn",
        "--time",
        "2000",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let x = v["exponent"].as_f64().unwrap();
    assert!((x - 0.9056).abs() < 0.02, "exponent {x}");
    assert_eq!(v["integrator"], "rk4");
    assert_eq!(v["dt"], 0.01);
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
    // The logistic map at r = 4 has exponent ln 2 per step.
    let v = json(&[
        "lyapunov",
        "examples/logistic.dyn",
        "--param",
        "r=4.0",
        "--time",
        "200000",
    ]);
    let x = v["exponent"].as_f64().unwrap();
    assert!((x - 2f64.ln()).abs() < 0.01, "logistic exponent {x}");
}

#[test]
fn sweep_finds_the_logistic_period_doublings() {
    let plot = tmp("logistic.svg");
    let v = json(&[
        "sweep",
        "examples/logistic.dyn",
        "--param",
        "r=2.9..3.5:601",
        "--record",
        "x",
        "--transient",
        "30000",
        "--samples",
        "64",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let pts = v["points"].as_array().unwrap();
    assert_eq!(pts.len(), 601);
    let first = |p: u64| {
        pts.iter()
            .find(|q| q["period"].as_u64().is_some_and(|k| k >= p))
            .map(|q| q["value"].as_f64().unwrap())
            .unwrap()
    };
    assert!((first(2) - 3.0).abs() <= 0.0015, "r1 = {}", first(2));
    assert!(
        (first(4) - (1.0 + 6f64.sqrt())).abs() <= 0.0015,
        "r2 = {}",
        first(4)
    );
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
    // A flow: the local maxima of Van der Pol's x grow with mu towards 2.
    let v = json(&[
        "sweep",
        "examples/van_der_pol.dyn",
        "--param",
        "mu=0.5..2:4",
        "--record",
        "x",
        "--samples",
        "2000",
        "--transient",
        "3000",
    ]);
    for p in v["points"].as_array().unwrap() {
        let maxima = p["values"].as_array().unwrap();
        assert!(!maxima.is_empty());
        for m in maxima {
            let m = m.as_f64().unwrap();
            assert!((1.95..2.1).contains(&m), "{p}");
        }
    }
}

#[test]
fn basins_of_the_double_well() {
    let plot = tmp("wells.png");
    let out = tmp("wells.json");
    let o = dyn_cmd(&[
        "analyze",
        "basins",
        "examples/double_well.dyn",
        "--x",
        "x=-2..2:24",
        "--y",
        "v=-2..2:24",
        "--tail",
        "20",
        "--plot",
        plot.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ats = v["attractors"].as_array().unwrap();
    assert_eq!(ats.len(), 2, "{v}");
    let mut wells: Vec<f64> = ats
        .iter()
        .map(|a| a["mean"]["x"].as_f64().unwrap())
        .collect();
    wells.sort_by(f64::total_cmp);
    assert!((wells[0] + 1.0).abs() < 1e-3 && (wells[1] - 1.0).abs() < 1e-3);
    // The start at rest near the right well's bottom ends in it.
    let labels = v["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 24);
    let xs = v["x"]["values"].as_array().unwrap();
    let i = xs
        .iter()
        .position(|x| (x.as_f64().unwrap() - 0.956).abs() < 0.05)
        .unwrap();
    let label = labels[11][i].as_i64().unwrap() as usize;
    assert!(ats[label]["mean"]["x"].as_f64().unwrap() > 0.9);
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
}

#[test]
fn ensemble_of_an_ornstein_uhlenbeck_process() {
    let v = json(&[
        "ensemble",
        "examples/noisy_well.dyn",
        "--ensemble",
        "400",
        "--seed",
        "7",
    ]);
    let std = v["std"].as_array().unwrap();
    let last = std.last().unwrap()[0].as_f64().unwrap();
    // Stationary standard deviation sigma / sqrt(2 theta) = 0.354 (reached at t = 5 to 0.01%).
    assert!((last - 0.3536).abs() < 0.04, "std {last}");
    let mean = v["mean"].as_array().unwrap();
    let m = mean.last().unwrap()[0].as_f64().unwrap();
    assert!((m - (-5f64).exp()).abs() < 0.06, "mean {m}");
    assert_eq!(v["members"], 400);
    assert_eq!(v["failed"], 0);
}

#[test]
fn bad_flags_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["sweep", "examples/logistic.dyn", "--record", "x"],
            "exactly one `--param NAME=LO..HI:COUNT`",
        ),
        (
            &[
                "sweep",
                "examples/logistic.dyn",
                "--record",
                "x",
                "--param",
                "r=3..4",
            ],
            "expected LO..HI:COUNT",
        ),
        (
            &[
                "sweep",
                "examples/logistic.dyn",
                "--record",
                "x",
                "--param",
                "r=3..4:0",
            ],
            "COUNT at least 1",
        ),
        (
            &["fixed-points", "examples/logistic.dyn", "--backend", "gpu"],
            "unknown backend",
        ),
        (
            &["fixed-points", "examples/lorenz.dyn", "--from", "w=1"],
            "not a Real state",
        ),
        (
            &["lyapunov", "examples/lorenz.dyn", "--plot", "x.gif"],
            "use a .svg or .png file",
        ),
        (
            &[
                "basins",
                "examples/double_well.dyn",
                "--x",
                "x=-1..1:3",
                "--y",
                "x=-1..1:3",
            ],
            "different states",
        ),
        (
            &["lyapunov", "examples/lorenz.dyn", "--method", "leapfrog"],
            "unknown method",
        ),
    ];
    for (args, msg) in cases {
        let mut a = vec!["analyze"];
        a.extend_from_slice(args);
        let o = dyn_cmd(&a);
        assert!(
            matches!(o.status.code(), Some(1 | 2)),
            "{args:?}: {}",
            text(&o)
        );
        assert!(text(&o).contains(msg), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{args:?}: {}", text(&o));
    }
    // A param that does not exist is an analysis error with the valid ones listed.
    let o = dyn_cmd(&[
        "analyze",
        "sweep",
        "examples/logistic.dyn",
        "--record",
        "x",
        "--param",
        "q=1..2:3",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("valid params: r"), "{}", text(&o));
}
