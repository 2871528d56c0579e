//! Gradients through time against central finite differences, the synthesised step against
//! the interpreter's own run of the model, and the JIT against the interpreter.

use dyn_fit::{Backend, Data, Problem};
use dyn_interp::run::{Method, RunSpec};
use dyn_ir::flat::Flat;
use proptest::prelude::*;
use std::path::Path;

fn flat(src: &str, system: &str) -> Flat {
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
        .map(|(_, s)| s.clone())
        .expect("system");
    dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .expect("lowers")
}

fn spec(method: Method, dt: f64) -> RunSpec {
    RunSpec {
        method,
        dt,
        ..RunSpec::default()
    }
}

/// Lotka–Volterra as nested boxes wired together (the example's shape).
const LV: &str = "
interface Population { out pop: Real  in rate: Real }
interface Hunter { out pop: Real  in food: Real }
system Rabbits : Population {
  param a: Real = 1.5
  state r: Real = 10.0
  out pop = r
  der r = a * r - rate * r
}
system Foxes : Hunter {
  param c: Real = 3.0
  param d: Real = 1.0
  state f: Real = 5.0
  out pop = f
  der f = -c * f + d * food * f
}
system LV : { out prey: Real  out predators: Real } {
  param b: Real = 1.0
  box rabbits: Rabbits
  box foxes: Foxes
  rabbits.rate <- b * foxes.pop
  foxes.food <- rabbits.pop
  out prey = rabbits.pop
  out predators = foxes.pop
}
";

/// Observations of the model's own run with other params, every `every` steps.
fn data_of(flat: &Flat, spec: &RunSpec, params: &[(&str, f64)], steps: u64, every: u64) -> Data {
    let mut s = spec.clone();
    s.init = params
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("init:").map(|k| (k.to_string(), *v)))
        .collect();
    let params: Vec<(&str, f64)> = params
        .iter()
        .filter(|(k, _)| !k.starts_with("init:"))
        .copied()
        .collect();
    s.params = params.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    s.steps = Some(steps);
    s.every = Some(every as f64 * spec.dt);
    let mut names = vec![];
    let mut rows = vec![];
    dyn_interp::run::run(flat, &s, &mut |n| names = n.to_vec(), &mut |t, v| {
        rows.push((t, v.to_vec()))
    })
    .expect("runs");
    Data {
        columns: names,
        rows,
    }
}

/// Central differences of the loss along each param and initial-state slot.
fn finite_differences(p: &Problem, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let (params, x0) = (p.params.clone(), p.x0.clone());
    let mut gp = vec![];
    for i in 0..params.len() {
        let h = eps * params[i].abs().max(1.0);
        let (mut a, mut b) = (params.clone(), params.clone());
        a[i] += h;
        b[i] -= h;
        gp.push((p.loss(&a, &x0).unwrap() - p.loss(&b, &x0).unwrap()) / (2.0 * h));
    }
    let mut gx = vec![];
    for i in 0..x0.len() {
        let h = eps * x0[i].abs().max(1.0);
        let (mut a, mut b) = (x0.clone(), x0.clone());
        a[i] += h;
        b[i] -= h;
        gx.push((p.loss(&params, &a).unwrap() - p.loss(&params, &b).unwrap()) / (2.0 * h));
    }
    (gp, gx)
}

/// Every component within `tol` of the finite difference, relative to the gradient's
/// largest component.
fn agree(ad: &[f64], fd: &[f64], tol: f64) -> Result<(), String> {
    let scale = ad
        .iter()
        .chain(fd)
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    for (i, (a, f)) in ad.iter().zip(fd).enumerate() {
        if (a - f).abs() > tol * scale {
            return Err(format!(
                "component {i}: AD {a} vs FD {f} (scale {scale}); AD {ad:?} FD {fd:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn lotka_volterra_rk4_gradient_matches_finite_differences() {
    let f = flat(LV, "LV");
    let sp = spec(Method::Rk4, 0.01);
    let data = data_of(&f, &sp, &[("b", 1.1), ("rabbits.a", 1.4)], 100, 10);
    for backend in [Backend::Interp, Backend::Auto] {
        let p = Problem::new(&f, &sp, &data, backend).unwrap();
        assert_eq!(p.steps(), 100);
        let g = p.gradient(&p.params, &p.x0).unwrap();
        assert!(g.loss > 0.0);
        let (gp, gx) = finite_differences(&p, 1e-5);
        agree(&g.params, &gp, 1e-6).unwrap();
        agree(&g.x0, &gx, 1e-6).unwrap();
    }
}

#[test]
fn jit_equals_interpreter_and_the_model_run() {
    let f = flat(LV, "LV");
    for (m, dt) in [(Method::Rk4, 0.01), (Method::Euler, 0.005)] {
        let sp = spec(m, dt);
        let data = data_of(&f, &sp, &[("b", 1.1)], 120, 7);
        let pi = Problem::new(&f, &sp, &data, Backend::Interp).unwrap();
        let pj = Problem::new(&f, &sp, &data, Backend::Jit).unwrap();
        assert!(pj.uses_jit());
        let gi = pi.gradient(&pi.params, &pi.x0).unwrap();
        let gj = pj.gradient(&pj.params, &pj.x0).unwrap();
        assert_eq!(gi, gj, "JIT and interpreter gradients differ");
        // The loss of the data made with the model's own params is zero to rounding (the
        // step system computes the interpreter's RK4 and Euler steps).
        let own = data_of(&f, &sp, &[], 120, 7);
        let p0 = Problem::new(&f, &sp, &own, Backend::Jit).unwrap();
        let l0 = p0.loss(&p0.params, &p0.x0).unwrap();
        assert!(l0 < 1e-24, "{l0}");
    }
}

#[test]
fn checkpoint_segments_do_not_change_the_gradient() {
    let f = flat(LV, "LV");
    let sp = spec(Method::Rk4, 0.01);
    let data = data_of(&f, &sp, &[("foxes.c", 2.9)], 100, 9);
    let mut p = Problem::new(&f, &sp, &data, Backend::Auto).unwrap();
    let g = p.gradient(&p.params, &p.x0).unwrap();
    for s in [1, 3, 100, 1000] {
        p.segment = s;
        let gs = p.gradient(&p.params, &p.x0).unwrap();
        assert_eq!(g, gs, "segment {s}");
    }
}

/// A random term of a right-hand side over states `x0..x{n-1}` and params `p0..p2`.
fn term(n: usize) -> impl Strategy<Value = String> {
    let s = move || (0..n).prop_map(|i| format!("x{i}"));
    let c = (-5i32..=5)
        .prop_filter("nonzero", |c| *c != 0)
        .prop_map(|c| format!("{:.1}", c as f64 / 10.0));
    prop_oneof![
        (c.clone(), 0..3usize, s()).prop_map(|(c, p, x)| format!("{c} * p{p} * {x}")),
        (c.clone(), s()).prop_map(|(c, x)| format!("{c} * sin({x})")),
        (c.clone(), 0..3usize, s()).prop_map(|(c, p, x)| format!("{c} * tanh(p{p} * {x})")),
        (c.clone(), s(), s()).prop_map(|(c, x, y)| format!("{c} * {x} * tanh({y})")),
        (c.clone(), 0..3usize, s()).prop_map(|(c, p, x)| format!("{c} * exp(-p{p} * {x} * {x})")),
        (c, s()).prop_map(|(c, x)| format!("{c} * cos({x}) * {x}")),
    ]
}

/// A random small nonlinear system: 2 or 3 states, 3 params, each update a damped sum of
/// random terms that grow at most linearly (so no run blows up in finite time); continuous (`der`) or discrete (`next x = x + 0.05 · (…)`).
fn system() -> impl Strategy<Value = (String, bool)> {
    (2usize..=3, any::<bool>())
        .prop_flat_map(|(n, discrete)| {
            (
                proptest::collection::vec(proptest::collection::vec(term(n), 1..=3), n),
                proptest::collection::vec(-8i32..=8, n),
                proptest::collection::vec(5i32..=15, 3),
                Just(discrete),
            )
        })
        .prop_map(|(rhs, x0, p, discrete)| {
            let mut s = String::from("system R : { out y: Real } {\n");
            for (i, v) in p.iter().enumerate() {
                s += &format!("  param p{i}: Real = {:.1}\n", *v as f64 / 10.0);
            }
            for (i, v) in x0.iter().enumerate() {
                s += &format!("  state x{i}: Real = {:.2}\n", *v as f64 / 8.0);
            }
            s += "  out y = x0\n";
            for (i, ts) in rhs.iter().enumerate() {
                let f = format!("-0.3 * x{i} + {}", ts.join(" + "));
                if discrete {
                    s += &format!("  next x{i} = x{i} + 0.05 * ({f})\n");
                } else {
                    s += &format!("  der x{i} = {f}\n");
                }
            }
            s += "}\n";
            (s, discrete)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Through 100 steps (RK4, Euler or discrete) of a random nonlinear system, the reverse
    /// mode gradient agrees with central differences to 1e-6 (relative to its largest
    /// component), for the params and the initial state.
    #[test]
    fn random_systems_gradients_match_finite_differences((src, discrete) in system(), rk4 in any::<bool>()) {
        let f = flat(&src, "R");
        let sp = spec(if rk4 { Method::Rk4 } else { Method::Euler }, 0.02);
        let every = 10;
        let mut s = sp.clone();
        if discrete {
            s.dt = 1.0;
        }
        let data = data_of(&f, &s, &[("p0", 0.7), ("p2", 1.3), ("init:x0", 0.8)], 100, every);
        let p = Problem::new(&f, &s, &data, Backend::Auto).unwrap();
        prop_assert_eq!(p.steps(), 100);
        let g = p.gradient(&p.params, &p.x0).unwrap();
        let (gp, gx) = finite_differences(&p, 1e-5);
        let mut ad = g.params.clone();
        ad.extend(&g.x0);
        let mut fd = gp;
        fd.extend(gx);
        if let Err(e) = agree(&ad, &fd, 1e-6) {
            prop_assert!(false, "{}\n{}", e, src);
        }
    }
}

/// A neural vector field (an MLP 2-4-2 with tanh, matrix and vector params): the gradient
/// with respect to every weight agrees with finite differences — what a neural ODE fit needs.
#[test]
fn mlp_vector_field_weights() {
    let src = "
system N : { out y0: Real  out y1: Real } {
  param W1: Real[4, 2] = [[0.5, -0.3], [0.2, 0.8], [-0.6, 0.1], [0.3, 0.4]]
  param b1: Real[4] = [0.1, -0.2, 0.05, 0.0]
  param W2: Real[2, 4] = [[0.4, -0.5, 0.3, 0.2], [-0.3, 0.2, 0.6, -0.4]]
  state y: Real[2] = [2.0, 0.0]
  out y0 = y[0]
  out y1 = y[1]
  der y = W2 @ tanh(W1 @ y + b1)
}";
    let f = flat(src, "N");
    let sp = spec(Method::Rk4, 0.05);
    let data = data_of(&f, &sp, &[("init:y[0]", 1.5)], 100, 10);
    for backend in [Backend::Interp, Backend::Auto] {
        let p = Problem::new(&f, &sp, &data, backend).unwrap();
        assert_eq!(p.params.len(), 8 + 4 + 8);
        assert_eq!(p.uses_jit(), backend == Backend::Auto);
        let g = p.gradient(&p.params, &p.x0).unwrap();
        let (gp, gx) = finite_differences(&p, 1e-5);
        agree(&g.params, &gp, 1e-6).unwrap();
        agree(&g.x0, &gx, 1e-6).unwrap();
    }
}

/// An observed output that reads a param, observed at t = 0 too: the first row is computed
/// with the params of the call on both backends.
#[test]
fn first_row_reads_the_params() {
    let src = "
system Z : { out z: Real } {
  param a: Real = 2.0
  state x: Real = 1.0
  out z = a * x
  der x = -0.5 * x
}";
    let f = flat(src, "Z");
    let sp = spec(Method::Rk4, 0.1);
    let data = Data {
        columns: vec!["z".into()],
        rows: vec![(0.0, vec![1.0]), (1.0, vec![0.5])],
    };
    let pi = Problem::new(&f, &sp, &data, Backend::Interp).unwrap();
    let pj = Problem::new(&f, &sp, &data, Backend::Jit).unwrap();
    let li = pi.loss(&pi.params, &pi.x0).unwrap();
    let lj = pj.loss(&pj.params, &pj.x0).unwrap();
    // z(0) = 2, z(1) = 2 e^{-1/2}: the loss in closed form (RK4's error is ~1e-7 here).
    let z1 = 2.0 * (-0.5f64).exp();
    let exact = ((2.0 - 1.0f64).powi(2) + (z1 - 0.5).powi(2)) / 2.0;
    assert!((li - exact).abs() < 1e-6, "{li} vs {exact}");
    assert_eq!(li, lj);
    assert_eq!(
        pi.gradient(&pi.params, &pi.x0).unwrap(),
        pj.gradient(&pj.params, &pj.x0).unwrap()
    );
}
