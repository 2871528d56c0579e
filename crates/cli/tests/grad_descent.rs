//! `examples/grad_descent.dyn` against independent computations: the Rosenbrock descent
//! against the same iteration with the gradient derived by hand, and the least-squares descent
//! against the solution of the normal equations.

use dyn_interp::run::{RunSpec, run};
use std::path::Path;

/// Recorded names and rows of system `system` of the example after `steps` steps.
fn trace(system: &str, steps: u64) -> (Vec<String>, Vec<Vec<f64>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src = std::fs::read_to_string(root.join("examples/grad_descent.dyn")).unwrap();
    let stdlib = dyn_check::modules::Stdlib::Dir(root.join("stdlib"));
    let checked = dyn_check::check_source("grad_descent.dyn", None, src, &stdlib);
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
    let spec = RunSpec {
        steps: Some(steps),
        ..RunSpec::default()
    };
    let (mut names, mut rows) = (vec![], vec![]);
    run(&flat, &spec, &mut |n| names = n.to_vec(), &mut |_, v| {
        rows.push(v.to_vec())
    })
    .expect("runs");
    (names, rows)
}

#[test]
fn rosenbrock_descent_follows_the_hand_derived_gradient_to_the_minimum() {
    let (names, rows) = trace("Rosenbrock", 3000);
    assert_eq!(names, ["x", "y", "f"]);
    let (lr, beta) = (0.001, 0.9);
    let (mut x, mut y, mut vx, mut vy) = (-1.2f64, 1.0f64, 0.0, 0.0);
    for (k, row) in rows.iter().enumerate() {
        let f = (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
        // The two computations differ only in how the gradient's expression rounds.
        assert!((row[0] - x).abs() < 1e-12, "step {k}: x {} vs {x}", row[0]);
        assert!((row[1] - y).abs() < 1e-12, "step {k}: y {} vs {y}", row[1]);
        assert!((row[2] - f).abs() <= 1e-12 * (1.0 + f), "step {k}: f");
        let gx = -2.0 * (1.0 - x) - 400.0 * x * (y - x * x);
        let gy = 200.0 * (y - x * x);
        vx = beta * vx - lr * gx;
        vy = beta * vy - lr * gy;
        x += vx;
        y += vy;
    }
    let last = rows.last().unwrap();
    assert!(
        (last[0] - 1.0).abs() < 3e-6 && (last[1] - 1.0).abs() < 3e-6,
        "{last:?}"
    );
    assert!(last[2] < 1e-11, "{last:?}");
}

#[test]
fn least_squares_descent_reaches_the_normal_equations_solution() {
    let (names, rows) = trace("LeastSquares", 1500);
    assert_eq!(names, ["w[0]", "w[1]", "w[2]", "loss"]);
    let x = [
        [1.0, 0.0, 0.5],
        [0.0, 1.0, -0.5],
        [1.0, 1.0, 0.0],
        [0.5, -1.0, 1.0],
        [1.0, 0.5, 1.0],
    ];
    let y = [1.52, -1.97, -0.49, 3.03, 2.01];
    // Normal equations XᵀX w = Xᵀy, by Gaussian elimination with partial pivoting.
    let mut m = [[0.0f64; 4]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..5).map(|k| x[k][i] * x[k][j]).sum();
        }
        m[i][3] = (0..5).map(|k| x[k][i] * y[k]).sum();
    }
    for i in 0..3 {
        let p = (i..3)
            .max_by(|a, b| m[*a][i].abs().total_cmp(&m[*b][i].abs()))
            .unwrap();
        m.swap(i, p);
        for r in 0..3 {
            if r != i {
                let f = m[r][i] / m[i][i];
                let pivot = m[i];
                for (x, p) in m[r].iter_mut().zip(pivot) {
                    *x -= f * p;
                }
            }
        }
    }
    let w: Vec<f64> = (0..3).map(|i| m[i][3] / m[i][i]).collect();
    let last = rows.last().unwrap();
    for i in 0..3 {
        assert!(
            (last[i] - w[i]).abs() < 1e-12,
            "w[{i}] {} vs {}",
            last[i],
            w[i]
        );
    }
    let mse: f64 = (0..5)
        .map(|k| {
            let r: f64 = (0..3).map(|i| x[k][i] * w[i]).sum::<f64>() - y[k];
            r * r
        })
        .sum::<f64>()
        / 5.0;
    assert!((last[3] - mse).abs() < 1e-14, "loss {} vs {mse}", last[3]);
    // The loss never increases (lr is below 2 / the Hessian's largest eigenvalue).
    for p in rows.windows(2) {
        assert!(p[1][3] <= p[0][3] + 1e-15);
    }
}
