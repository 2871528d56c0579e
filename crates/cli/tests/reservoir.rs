//! Linear algebra (`solve`, `spectral_radius`, `eye`) and `std.reservoir` against known
//! solutions, on both backends: a solve and spectral radii with closed forms, the ridge
//! readout against the normal equations solved here independently, RLS converging to the
//! ridge solution, the errors of a singular system, and a short run of
//! `examples/esn_lorenz.dyn`.

use dyn_interp::run::{RunError, RunSpec, run};
use std::process::Command;

mod common;
use common::repo;

fn flat(src: &str, system: &str) -> dyn_ir::flat::Flat {
    let stdlib = dyn_check::modules::Stdlib::Dir(repo().join("stdlib"));
    let checked = dyn_check::check_source("linalg.dyn", None, src.to_string(), &stdlib);
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
    dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .expect("lowers")
}

type Trace = (Vec<String>, Vec<Vec<f64>>);

/// The interpreter's and the JIT's traces, which must agree to the bit.
fn both(
    src: &str,
    system: &str,
    spec: &RunSpec,
) -> (Result<Trace, RunError>, Result<Trace, RunError>) {
    let f = flat(src, system);
    let (mut n1, mut r1) = (vec![], vec![]);
    let a = run(&f, spec, &mut |n| n1 = n.to_vec(), &mut |_, v| {
        r1.push(v.to_vec())
    });
    let (mut n2, mut r2) = (vec![], vec![]);
    let b = match dyn_jit::run(&f, spec, &mut |n| n2 = n.to_vec(), &mut |_, v| {
        r2.push(v.to_vec())
    }) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => panic!("the JIT refused the model: {why}"),
        Err(e) => Err(e),
    };
    let bits = |rows: &[Vec<f64>]| -> Vec<Vec<u64>> {
        rows.iter()
            .map(|r| r.iter().map(|x| x.to_bits()).collect())
            .collect()
    };
    assert_eq!(bits(&r1), bits(&r2), "the backends' traces differ");
    (a.map(|_| (n1, r1)), b.map(|_| (n2, r2)))
}

fn column(t: &Trace, name: &str) -> Vec<f64> {
    let i =
        t.0.iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{name} in {:?}", t.0));
    t.1.iter().map(|r| r[i]).collect()
}

#[test]
fn solve_spectral_radius_and_eye_have_their_closed_forms() {
    let src = "
system S : { out x0: Real  out x1: Real  out i01: Real  out r: Real  out rd: Real  out e: Real } {
  param a: Real[2, 2] = [[4.0, 1.0], [2.0, 3.0]]
  param theta: Real = 0.3
  state k: Real = 0.0
  let x = solve(a, [1.0, 2.0])
  let inv = solve(a, eye(2))
  let rot = [[cos(theta), -sin(theta)], [sin(theta), cos(theta)]]
  out x0 = x[0]
  out x1 = x[1]
  out i01 = inv[0, 1]
  out r = spectral_radius((2.0 + k) * rot)
  out rd = spectral_radius([[0.5, 0.0, 0.0], [0.0, -3.0 - k, 0.0], [0.0, 0.0, 1.0]])
  out e = sum(eye(3) * [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
  next k = k + 1.0
}";
    let spec = RunSpec {
        steps: Some(3),
        ..RunSpec::default()
    };
    let (a, b) = both(src, "S", &spec);
    let t = a.expect("interpreter runs");
    b.expect("JIT runs");
    // [[4, 1], [2, 3]] x = [1, 2]: x = [1/10, 3/5]; the inverse's (0, 1) entry is -1/10.
    assert!((column(&t, "x0")[0] - 0.1).abs() < 1e-15);
    assert!((column(&t, "x1")[0] - 0.6).abs() < 1e-15);
    assert!((column(&t, "i01")[0] + 0.1).abs() < 1e-15);
    for (k, (r, rd)) in column(&t, "r").iter().zip(column(&t, "rd")).enumerate() {
        // A scaled rotation has eigenvalues (2 + k) e^{±0.3i}; a diagonal matrix its entries.
        assert!((r - (2.0 + k as f64)).abs() < 1e-13, "step {k}: {r}");
        assert!((rd - (3.0 + k as f64)).abs() < 1e-13, "step {k}: {rd}");
    }
    assert_eq!(column(&t, "e")[0], 15.0);
}

/// A readout test bench: `n` = 4 features of a deterministic signal, the target a fixed
/// linear combination of them plus a nonlinear part (so the fit is not exact), trained for
/// 200 ticks by both readouts and fitted at tick 200.
const BENCH: &str = "
use std.reservoir.*
system Bench : { out y: Real } {
  param lambda: Real = 0.01
  state k: Real = 0.0
  let r = [sin(0.3 * k), cos(0.7 * k), tanh(sin(0.11 * k) + 0.5), 1.0]
  let target = 0.5 * r[0] - 2.0 * r[1] + r[2] * r[2] + 0.25
  box ridge: Ridge<4>(lambda = lambda)
  box rls: RLS<4>(delta = lambda)
  ridge.r <- r
  ridge.target <- target
  ridge.train <- k < 200.0
  ridge.fit <- k == 200.0
  rls.r <- r
  rls.target <- target
  rls.train <- k < 200.0
  out y = ridge.y - rls.y
  next k = k + 1.0
}";

/// The normal equations of the bench, solved here by Gaussian elimination with partial
/// pivoting (independent of nalgebra).
fn bench_ridge(lambda: f64) -> Vec<f64> {
    let n = 4;
    let mut a = vec![vec![0.0; n + 1]; n];
    for k in 0..200 {
        let k = k as f64;
        let r = [
            (0.3 * k).sin(),
            (0.7 * k).cos(),
            ((0.11 * k).sin() + 0.5).tanh(),
            1.0,
        ];
        let t = 0.5 * r[0] - 2.0 * r[1] + r[2] * r[2] + 0.25;
        for i in 0..n {
            for j in 0..n {
                a[i][j] += r[i] * r[j];
            }
            a[i][n] += t * r[i];
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += lambda;
    }
    for c in 0..n {
        let p = (c..n)
            .max_by(|x, y| a[*x][c].abs().total_cmp(&a[*y][c].abs()))
            .unwrap();
        a.swap(c, p);
        let pivot = a[c].clone();
        for row in a.iter_mut().skip(c + 1) {
            let f = row[c] / pivot[c];
            for (x, p) in row.iter_mut().zip(&pivot).skip(c) {
                *x -= f * p;
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| a[i][j] * x[j]).sum();
        x[i] = (a[i][n] - s) / a[i][i];
    }
    x
}

#[test]
fn ridge_readout_solves_the_normal_equations_and_rls_converges_to_it() {
    let spec = RunSpec {
        steps: Some(201),
        record: vec!["ridge.w".into(), "rls.w".into()],
        ..RunSpec::default()
    };
    let (a, b) = both(BENCH, "Bench", &spec);
    let t = a.expect("interpreter runs");
    b.expect("JIT runs");
    let want = bench_ridge(0.01);
    let last = t.1.last().unwrap();
    for (i, w) in want.iter().enumerate() {
        let ridge = last[t
            .0
            .iter()
            .position(|n| *n == format!("ridge.w[{i}]"))
            .unwrap()];
        let rls = last[t
            .0
            .iter()
            .position(|n| *n == format!("rls.w[{i}]"))
            .unwrap()];
        // The fit is well conditioned (λ = 0.01, 200 samples of 4 features): the two
        // eliminations agree to rounding, and RLS (200 rank-one updates of P) to 1e-9.
        assert!(
            (ridge - w).abs() < 1e-12 * (1.0 + w.abs()),
            "w[{i}]: {ridge} vs {w}"
        );
        assert!(
            (rls - w).abs() < 1e-9 * (1.0 + w.abs()),
            "rls w[{i}]: {rls} vs {w}"
        );
    }
    // Before the fit the ridge weights are zero.
    assert!(t.1[0].iter().all(|x| *x == 0.0));
}

#[test]
fn a_singular_system_is_an_error_in_both_backends() {
    let src = "
system Fit : { out w0: Real } {
  state a: Real[2, 2] = zeros(2, 2)
  state w: Real[2] = zeros(2)
  out w0 = w[0]
  next a = a + outer([1.0, 2.0], [1.0, 2.0])
  next w = solve(a, [1.0, 1.0])
}";
    let spec = RunSpec {
        steps: Some(3),
        ..RunSpec::default()
    };
    let (a, b) = both(src, "Fit", &spec);
    for r in [a, b] {
        match r {
            Err(RunError::Eval(m)) => {
                assert!(m.starts_with("solve: ") && m.contains("singular"), "{m}");
                assert!(dyn_ir::linalg::is_failure(&m));
            }
            other => panic!(
                "expected the singular-matrix error, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    // The CLI reports it with its code.
    let tmp = std::env::temp_dir().join(format!("dyn-singular-{}.dyn", std::process::id()));
    std::fs::write(&tmp, format!("{src}\nrun Fit {{ steps 3 }}\n")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_dyn"))
        .args(["run", tmp.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error[E0084]: solve: the 2×2 matrix is singular"),
        "{err}"
    );
    let _ = std::fs::remove_file(&tmp);
}

#[test]
fn grad_through_spectral_radius_is_refused_and_through_solve_is_exact() {
    let stdlib = dyn_check::modules::Stdlib::Dir(repo().join("stdlib"));
    let src = "
system S : { out g: Real[2, 2] } {
  param a: Real[2, 2] = [[2.0, 1.0], [0.0, 1.0]]
  out g = grad(spectral_radius(a), a)
}";
    let checked = dyn_check::check_source("s.dyn", None, src.to_string(), &stdlib);
    assert!(!checked.has_errors());
    let sig = checked
        .systems
        .iter()
        .find(|(_, s)| s.name == "S")
        .unwrap()
        .1
        .clone();
    let Err(d) = dyn_ir::lower(&checked, &sig) else {
        panic!("a lowering error expected");
    };
    assert_eq!(d.code.id, "E0027", "{}", d.message);
    assert!(d.message.contains("spectral_radius"), "{}", d.message);

    // d/db of c · solve(A, b) is solve(Aᵀ, c); d/dA is -outer(solve(Aᵀ, c), solve(A, b)).
    let src = "
system T : { out gb0: Real  out gb1: Real  out ga01: Real } {
  param a: Real[2, 2] = [[4.0, 1.0], [2.0, 3.0]]
  param b: Real[2] = [1.0, 2.0]
  let l = dot([1.0, -1.0], solve(a, b))
  let gb = grad(l, b)
  let ga = grad(l, a)
  out gb0 = gb[0]
  out gb1 = gb[1]
  out ga01 = ga[0, 1]
}";
    let spec = RunSpec {
        steps: Some(1),
        ..RunSpec::default()
    };
    let (a, b) = both(src, "T", &spec);
    let t = a.expect("interpreter runs");
    b.expect("JIT runs");
    // Aᵀ = [[4, 2], [1, 3]]; Aᵀ y = [1, -1] gives y = [1/2, -1/2]; x = [1/10, 3/5];
    // Ā[0, 1] = -y[0] x[1] = -3/10.
    assert!((column(&t, "gb0")[0] - 0.5).abs() < 1e-15);
    assert!((column(&t, "gb1")[0] + 0.5).abs() < 1e-15);
    assert!((column(&t, "ga01")[0] + 0.3).abs() < 1e-15);
}

/// `examples/esn_lorenz.dyn` for 600 ticks (washout and the start of training; the full
/// 7,500-tick run and its figures are in examples/README.md): both backends agree to the
/// bit, the reservoir stays bounded, and `dyn build` refuses it with a clear message.
#[test]
fn esn_lorenz_short_run() {
    let src = std::fs::read_to_string(repo().join("examples/esn_lorenz.dyn")).unwrap();
    let spec = RunSpec {
        steps: Some(600),
        every: Some(100.0),
        record: vec!["u".into(), "esn.x[0]".into(), "esn.x[499]".into()],
        seed: 1,
        ..RunSpec::default()
    };
    let (a, b) = both(&src, "Forecast", &spec);
    let t = a.expect("interpreter runs");
    b.expect("JIT runs");
    assert_eq!(t.1.len(), 7);
    for row in &t.1[1..] {
        assert!(
            row.iter().all(|x| x.is_finite() && x.abs() < 3.0),
            "{row:?}"
        );
    }
    let out = std::env::temp_dir().join(format!("dyn-esn-{}", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_dyn"))
        .args([
            "build",
            "examples/esn_lorenz.dyn",
            "-o",
            out.to_str().unwrap(),
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("does not support `spectral_radius`"), "{err}");
}
