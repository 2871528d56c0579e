//! Known values: Van der Pol's unstable origin, Lorenz's fixed points and largest Lyapunov
//! exponent, the logistic map's first period doublings; the dual-number Jacobian against
//! the interpreter's right-hand side and central differences; both backends agreeing.

use dyn_analyze::model::{Backend, Model};
use dyn_analyze::{Silent, fixed, lyapunov, sweep};
use dyn_interp::run::{Method, RunSpec};
use dyn_ir::flat::Flat;
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
        .expect("system")
        .1
        .clone();
    dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .expect("lowers")
}

const VDP: &str = "use std.oscillators.VanDerPol\nsystem V : { out x: Real } {\n  param mu: Real = 1.0\n  box o: VanDerPol(mu = mu)\n  o.force <- 0.0\n  out x = o.x\n}";

const LORENZ: &str =
    "use std.oscillators.Lorenz\nsystem L : { out x: Real } {\n  box l: Lorenz\n  out x = l.x\n}";

const LOGISTIC: &str = "system Logistic : { out x: Real } {\n  param r: Real = 3.2\n  state x: Real = 0.4\n  out x = x\n  next x = r * x * (1.0 - x)\n}";

fn rk4(dt: f64) -> RunSpec {
    RunSpec {
        method: Method::Rk4,
        dt,
        ..RunSpec::default()
    }
}

fn origin(report: &fixed::Report) -> &fixed::FixedPoint {
    report
        .points
        .iter()
        .find(|p| p.values.iter().all(|v| v.abs() < 1e-9))
        .expect("the origin is found")
}

#[test]
fn van_der_pol_origin_is_unstable_for_positive_mu() {
    let f = flat(VDP, "V");
    let model = Model::new(&f, rk4(0.01), Backend::Auto).unwrap();
    for (mu, class) in [
        (0.5, fixed::Class::UnstableFocus),
        (1.0, fixed::Class::UnstableFocus),
        (3.0, fixed::Class::UnstableNode),
        (-1.0, fixed::Class::StableFocus),
    ] {
        let opts = fixed::Options {
            params: vec![("mu".into(), mu)],
            ..fixed::Options::default()
        };
        let r = fixed::find(&model, &opts).unwrap();
        assert_eq!(r.points.len(), 1, "mu = {mu}: one fixed point");
        let o = origin(&r);
        assert_eq!(o.class, class, "mu = {mu}: {:?}", o.eigenvalues);
        // J = [[0, 1], [-1, mu]]: eigenvalues (mu ± sqrt(mu² - 4)) / 2, exactly.
        assert_eq!(o.jacobian, vec![vec![0.0, 1.0], vec![-1.0, mu]]);
        let re_sum: f64 = o.eigenvalues.iter().map(|e| e.0).sum();
        assert!((re_sum - mu).abs() < 1e-12, "trace = mu");
    }
}

#[test]
fn lorenz_fixed_points_are_the_origin_and_the_two_saddle_foci() {
    let f = flat(LORENZ, "L");
    let model = Model::new(&f, rk4(0.01), Backend::Auto).unwrap();
    let r = fixed::find(&model, &fixed::Options::default()).unwrap();
    assert_eq!(r.names, ["l.x", "l.y", "l.z"]);
    assert_eq!(
        r.points.len(),
        3,
        "{:?}",
        r.points.iter().map(|p| &p.values).collect::<Vec<_>>()
    );
    let c = (8.0f64 / 3.0 * 27.0).sqrt();
    for p in &r.points {
        assert_eq!(p.class, fixed::Class::Saddle);
        let v = &p.values;
        if v[0].abs() > 1.0 {
            assert!((v[0].abs() - c).abs() < 1e-9 && (v[1] - v[0]).abs() < 1e-9);
            assert!((v[2] - 27.0).abs() < 1e-9);
            // One real negative eigenvalue and an unstable complex pair.
            assert!(p.eigenvalues[0].0 > 0.0 && p.eigenvalues[0].1.abs() > 1.0);
        }
    }
}

#[test]
fn lorenz_largest_lyapunov_exponent() {
    let f = flat(LORENZ, "L");
    let model = Model::new(&f, rk4(0.01), Backend::Jit).unwrap();
    let opts = lyapunov::Options {
        params: vec![],
        x0: None,
        interval: 1.0,
        transient: 50.0,
        time: 2000.0,
        d0: 0.0,
    };
    let r = lyapunov::largest(&model, &opts, &Silent).unwrap();
    assert!(
        (r.exponent - 0.9056).abs() < 0.02,
        "largest exponent {}",
        r.exponent
    );
    assert_eq!(r.backend, "jit");
}

#[test]
fn both_backends_give_the_same_exponent() {
    let f = flat(LORENZ, "L");
    let opts = lyapunov::Options {
        params: vec![],
        x0: None,
        interval: 0.5,
        transient: 1.0,
        time: 5.0,
        d0: 1e-7,
    };
    let jit = Model::new(&f, rk4(0.01), Backend::Jit).unwrap();
    let interp = Model::new(&f, rk4(0.01), Backend::Interp).unwrap();
    let a = lyapunov::largest(&jit, &opts, &Silent).unwrap();
    let b = lyapunov::largest(&interp, &opts, &Silent).unwrap();
    assert_eq!(a.exponent.to_bits(), b.exponent.to_bits());
    assert_eq!(a.series, b.series);
}

#[test]
fn logistic_map_period_doublings() {
    let f = flat(LOGISTIC, "Logistic");
    let model = Model::new(&f, RunSpec::default(), Backend::Auto).unwrap();
    let opts = sweep::Options {
        param: "r".into(),
        values: dyn_analyze::linspace(2.9, 3.5, 601),
        params: vec![],
        quantity: "x".into(),
        every: 1.0,
        transient: 30_000,
        samples: 64,
        ensemble: 1,
        seed: 0,
        max_period: 16,
        tol: 1e-6,
    };
    let pts = sweep::run(&model, &opts, &Silent).unwrap();
    let first = |p: usize| {
        pts.iter()
            .find(|q| q.period.is_some_and(|k| k >= p))
            .map(|q| q.param)
            .unwrap()
    };
    let (r1, r2) = (first(2), first(4));
    assert!((r1 - 3.0).abs() <= 0.0015, "first doubling at r = {r1}");
    assert!(
        (r2 - (1.0 + 6f64.sqrt())).abs() <= 0.0015,
        "second doubling at r = {r2}"
    );
    // Period 1 below the first doubling, with the fixed point 1 - 1/r.
    let p = pts.iter().find(|q| (q.param - 2.95).abs() < 1e-9).unwrap();
    assert_eq!(p.period, Some(1));
    assert!((p.values[0] - (1.0 - 1.0 / 2.95)).abs() < 1e-5);
}

/// The dual evaluation's values are the interpreter's right-hand side to the bit, and its
/// derivatives agree with central differences.
#[test]
fn dual_jacobian_matches_the_interpreter_and_differences() {
    let src = "use std.neurons.FHN\nconst N = 4\nsystem Ring : { out v0: Real } {\n  param k: Real = 0.3\n  state s: Real = 0.5\n  der s = -s * cell[1].v\n  box cell[N]: FHN(k = k)\n  for i in 0..N { cell[i].right <- cell[(i + 1) % N].v }\n  for i in 1..N { cell[i].left <- cell[(i + N - 1) % N].v }\n  cell[0].left <- cell[N - 1].v + tanh(s) * exp(-s * s)\n  out v0 = cell[0].v\n}";
    let f = flat(src, "Ring");
    let spec = rk4(0.01);
    let sim = dyn_interp::run::Sim::new(&f, &spec).unwrap();
    let (params, inputs) = (sim.m.params.clone(), sim.inputs.clone());
    let mut x = sim.x.clone();
    for (i, v) in x.iter_mut().enumerate() {
        *v = 0.3 * (i as f64 + 1.0).sin();
    }
    let vars: Vec<usize> = (0..x.len()).collect();
    let (g, j) = dyn_analyze::dual::residual_jacobian(&f, &params, &inputs, &x, &vars).unwrap();
    let mut m = dyn_interp::run::Sim::new(&f, &spec).unwrap();
    let mut dx = vec![0.0; x.len()];
    m.m.signals(&x, &inputs).unwrap();
    m.m.derivatives(&x, &mut dx).unwrap();
    assert_eq!(g, dx, "values equal the interpreter's");
    let h = 1e-6;
    for c in 0..x.len() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[c] += h;
        xm[c] -= h;
        let (gp, _) =
            dyn_analyze::dual::residual_jacobian(&f, &params, &inputs, &xp, &vars).unwrap();
        let (gm, _) =
            dyn_analyze::dual::residual_jacobian(&f, &params, &inputs, &xm, &vars).unwrap();
        for r in 0..x.len() {
            let fd = (gp[r] - gm[r]) / (2.0 * h);
            assert!(
                (fd - j[r][c]).abs() < 1e-6 * (1.0 + fd.abs()),
                "∂G{r}/∂x{c}: dual {} vs difference {fd}",
                j[r][c]
            );
        }
    }
}

/// A run started by an engine (JIT or interpreter), moved and advanced piece by piece,
/// reproduces `dyn run`'s trace to the bit — also with noise (each seed its own sample path).
#[test]
fn engine_runs_reproduce_dyn_run_with_noise() {
    let src = "system OU : { out x: Real } {\n  param theta: Real = 1.0\n  state x: Real = 1.0\n  out x = x\n  der x = -theta * x + 0.5 * randn()\n}";
    let f = flat(src, "OU");
    for backend in [Backend::Jit, Backend::Interp] {
        for seed in [3u64, 4] {
            let spec = RunSpec {
                method: Method::Euler,
                dt: 0.01,
                until: Some(2.0),
                every: Some(0.1),
                seed,
                ..RunSpec::default()
            };
            let mut want = vec![];
            dyn_interp::run::run(&f, &spec, &mut |_| {}, &mut |t, v| {
                want.push((t, v.to_vec()))
            })
            .unwrap();
            let model = Model::new(&f, spec.clone(), backend).unwrap();
            let engine = model.engine().unwrap();
            let runs: Vec<Box<dyn dyn_analyze::model::Run + '_>> =
                vec![engine.start(&spec, None).unwrap()];
            let mut run = runs.into_iter().next().unwrap();
            let mut got = vec![];
            for k in [1, 4, 15] {
                run.advance(k, &mut |t, v| got.push((t, v.to_vec())))
                    .unwrap();
            }
            assert_eq!(got, want, "{backend:?}, seed {seed}");
        }
    }
}
