//! Dense linear algebra shared by every backend: `solve(A, b)` and `spectral_radius(A)`,
//! computed by nalgebra on row-major `f64` slices.
//!
//! The interpreter calls these functions directly and the JIT calls them through
//! `extern "C"` shims (`crates/jit/src/linalg.rs`), so both get the same bits. Inputs are
//! checked: a non-finite entry, a singular matrix or an eigenvalue iteration that does not
//! converge is an error with a message, never a panic or a hang.

use crate::expr::{Expr, TensorOp};
use crate::system::{Program, Readout};
use nalgebra::DMatrix;
use nalgebra::linalg::Schur;

/// The most QR sweeps the Schur decomposition of an `n × n` matrix may take, per row
/// (LAPACK's `dhseqr` allows 30 per eigenvalue; a matrix that needs more is refused rather
/// than iterated forever).
const SWEEPS_PER_ROW: usize = 30;

/// Is every entry finite? Names the argument in the error otherwise.
fn finite(what: &str, xs: &[f64]) -> Result<(), String> {
    match xs.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what} has a non-finite entry ({} at flat index {i})",
            xs[i]
        )),
    }
}

/// `x` with `A x = b`: `a` is the row-major `n × n` matrix, `b` the row-major `n × k`
/// right-hand side (`k = 1` for a vector); the solution is row-major `n × k`.
///
/// LU decomposition with partial (row) pivoting. The matrix is singular when a pivot is
/// exactly zero; a matrix so close to singular that the solution is not finite is refused
/// too. Both are errors: `solve: the matrix is singular`.
pub fn solve(a: &[f64], n: usize, b: &[f64], k: usize) -> Result<Vec<f64>, String> {
    if a.len() != n * n || b.len() != n * k || n == 0 {
        return Err(format!(
            "solve: a {n}×{n} matrix needs {} entries and a right-hand side of {} (found {} and {})",
            n * n,
            n * k,
            a.len(),
            b.len()
        ));
    }
    finite("solve: the matrix", a)?;
    finite("solve: the right-hand side", b)?;
    let m = DMatrix::from_row_slice(n, n, a);
    let rhs = DMatrix::from_row_slice(n, k, b);
    let singular =
        || format!("solve: the {n}×{n} matrix is singular (a zero pivot in its LU decomposition)");
    let x = m.lu().solve(&rhs).ok_or_else(singular)?;
    let mut out = Vec::with_capacity(n * k);
    for i in 0..n {
        for j in 0..k {
            out.push(x[(i, j)]);
        }
    }
    if out.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "solve: the {n}×{n} matrix is numerically singular (the solution is not finite)"
        ));
    }
    Ok(out)
}

/// The spectral radius `max |λ|` over the eigenvalues `λ` of the row-major `n × n` matrix
/// `a`: the eigenvalues come from nalgebra's real Schur decomposition (Hessenberg reduction,
/// then shifted QR sweeps), at most [`SWEEPS_PER_ROW`]` × n` of them.
pub fn spectral_radius(a: &[f64], n: usize) -> Result<f64, String> {
    if a.len() != n * n || n == 0 {
        return Err(format!(
            "spectral_radius: a {n}×{n} matrix needs {} entries (found {})",
            n * n,
            a.len()
        ));
    }
    finite("spectral_radius: the matrix", a)?;
    if n == 1 {
        return Ok(a[0].abs());
    }
    let m = DMatrix::from_row_slice(n, n, a);
    let schur = Schur::try_new(m, f64::EPSILON, SWEEPS_PER_ROW * n).ok_or_else(|| {
        format!("spectral_radius: the eigenvalues of the {n}×{n} matrix did not converge")
    })?;
    Ok(schur
        .complex_eigenvalues()
        .iter()
        .fold(0.0f64, |r, c| r.max(c.re.hypot(c.im))))
}

/// Is this evaluation error a failure of [`solve`] or [`spectral_radius`] (E0084)?
pub fn is_failure(msg: &str) -> bool {
    msg.starts_with("solve: ") || msg.starts_with("spectral_radius: ")
}

/// The name of the first linear-algebra built-in (`solve`, `spectral_radius`) anywhere in
/// the program — params, initial values, lets, readouts, updates, events, wires and fns —
/// for backends that cannot call the library (`dyn build`).
pub fn used_in(p: &Program) -> Option<&'static str> {
    let name = |op: &TensorOp| match op {
        TensorOp::SpectralRadius => "spectral_radius",
        _ => "solve",
    };
    let mut exprs: Vec<&Expr> = p.fns.iter().map(|f| &f.body).collect();
    for s in &p.systems {
        exprs.extend(s.params.iter().filter_map(|(_, d)| d.as_ref()));
        exprs.extend(s.states.iter().map(|(_, x)| x));
        exprs.extend(s.lets.iter().map(|(_, x)| x));
        match &s.readout {
            Readout::Ports(xs) => exprs.extend(xs),
            Readout::Mode(x, _, _) => exprs.push(x),
        }
        exprs.extend(s.updates.iter().map(|a| &a.value));
        for (_, arm) in &s.mode_updates {
            exprs.extend(arm.iter().map(|a| &a.value));
        }
        for ev in &s.events {
            exprs.push(&ev.cond);
            exprs.extend(ev.assigns.iter().map(|a| &a.value));
        }
        exprs.extend(s.boxes.iter().flat_map(|b| b.args.iter().flatten()));
        exprs.extend(s.wires.iter().map(|w| &w.value));
    }
    exprs.into_iter().find_map(Expr::linalg_op).map(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_known_system() {
        // [[4, 1], [2, 3]] x = [1, 2] has x = [1/10, 3/5].
        let x = solve(&[4.0, 1.0, 2.0, 3.0], 2, &[1.0, 2.0], 1).unwrap();
        assert!(
            (x[0] - 0.1).abs() < 1e-15 && (x[1] - 0.6).abs() < 1e-15,
            "{x:?}"
        );
        // Two right-hand sides at once: the columns of the identity give the inverse.
        let inv = solve(&[4.0, 1.0, 2.0, 3.0], 2, &[1.0, 0.0, 0.0, 1.0], 2).unwrap();
        let want = [0.3, -0.1, -0.2, 0.4];
        for (g, w) in inv.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{inv:?}");
        }
    }

    #[test]
    fn needs_pivoting() {
        // A zero in the top-left corner: LU without row exchanges would divide by it.
        let x = solve(&[0.0, 1.0, 1.0, 0.0], 2, &[2.0, 3.0], 1).unwrap();
        assert_eq!(x, vec![3.0, 2.0]);
    }

    #[test]
    fn refuses_singular_and_non_finite() {
        let e = solve(&[1.0, 2.0, 2.0, 4.0], 2, &[1.0, 1.0], 1).unwrap_err();
        assert!(e.contains("singular"), "{e}");
        let e = solve(&[0.0; 4], 2, &[1.0, 1.0], 1).unwrap_err();
        assert!(e.contains("singular"), "{e}");
        let e = solve(&[f64::NAN, 0.0, 0.0, 1.0], 2, &[1.0, 1.0], 1).unwrap_err();
        assert!(e.contains("non-finite"), "{e}");
        let e = spectral_radius(&[f64::INFINITY, 0.0, 0.0, 1.0], 2).unwrap_err();
        assert!(e.contains("non-finite"), "{e}");
        assert!(solve(&[1.0], 2, &[1.0], 1).is_err());
    }

    #[test]
    fn spectral_radius_of_known_matrices() {
        // A rotation by 0.3 scaled by 2: eigenvalues 2 e^{±0.3 i}, modulus 2.
        let (c, s) = (2.0 * 0.3f64.cos(), 2.0 * 0.3f64.sin());
        let r = spectral_radius(&[c, -s, s, c], 2).unwrap();
        assert!((r - 2.0).abs() < 1e-14, "{r}");
        // A diagonal matrix: the largest |entry|.
        let r = spectral_radius(&[0.5, 0.0, 0.0, 0.0, -3.0, 0.0, 0.0, 0.0, 1.0], 3).unwrap();
        assert!((r - 3.0).abs() < 1e-14, "{r}");
        // A nilpotent matrix: every eigenvalue is 0.
        let r = spectral_radius(&[0.0, 1.0, 0.0, 0.0], 2).unwrap();
        assert!(r.abs() < 1e-14, "{r}");
        assert_eq!(spectral_radius(&[-0.7], 1).unwrap(), 0.7);
    }

    #[test]
    fn solve_residual_on_a_random_system() {
        // A diagonally dominant 40 × 40 system from a fixed generator: A x ≈ b to 1e-12.
        let n = 40;
        let mut rng = crate::numeric::Noise::new(3);
        let mut a: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        for i in 0..n {
            a[i * n + i] += 2.0 * n as f64;
        }
        let b: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let x = solve(&a, n, &b, 1).unwrap();
        for i in 0..n {
            let ax: f64 = (0..n).map(|j| a[i * n + j] * x[j]).sum();
            assert!((ax - b[i]).abs() < 1e-12, "row {i}: {ax} vs {}", b[i]);
        }
    }
}
