//! The cost of a gradient through time against a forward run of the same horizon (not a
//! test). Prints, per model: the model's own JIT run (`dyn run`'s code), the loss alone (the
//! step system's forward run), the gradient (forward with checkpoints, recomputed segments,
//! adjoint steps), and the ratio gradient / forward, at horizons of 10,000 and 100,000 steps.
//!
//!     cargo bench -p dyn-fit --bench gradient_cost

use dyn_fit::{Backend, Data, Problem};
use dyn_interp::run::{Method, RunSpec};
use dyn_ir::flat::Flat;
use std::path::Path;
use std::time::Instant;

fn flat(src: &str, system: &str) -> Flat {
    let stdlib =
        dyn_check::modules::Stdlib::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib"));
    let checked = dyn_check::check_source("bench.dyn", None, src.to_string(), &stdlib);
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

fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

const LV: &str = "
system LV : { out prey: Real  out predators: Real } {
  param a: Real = 1.5  param b: Real = 1.0  param c: Real = 3.0  param d: Real = 1.0
  state x: Real = 10.0  state y: Real = 5.0
  out prey = x  out predators = y
  der x = a * x - b * x * y
  der y = -c * y + d * x * y
}";

const CHAIN: &str = "
system Osc : { out q: Real  in pull: Real } {
  param k: Real = 1.0  param g: Real = 0.1
  state q: Real = 0.5  state v: Real = 0.0
  out q = q
  der q = v
  der v = -k * sin(q) - g * v + pull
}
system Chain : { out first: Real  out last: Real } {
  param c: Real = 0.2
  box o[8]: Osc
  for i in 0..8 { o[i].pull <- c * (o[(i + 1) % 8].q - o[i].q) }
  out first = o[0].q
  out last = o[7].q
}";

fn bench(name: &str, src: &str, sys: &str, cols: &[&str], until: f64, dt: f64) {
    let f = flat(src, sys);
    let spec = RunSpec {
        method: Method::Rk4,
        dt,
        until: Some(until),
        every: Some(until / 10.0),
        record: cols.iter().map(|c| c.to_string()).collect(),
        ..RunSpec::default()
    };
    let steps = (until / dt).round() as u64;
    // Ten observations over the horizon, from the model's own run.
    let mut rows = vec![];
    dyn_interp::run::run(&f, &spec, &mut |_| {}, &mut |t, v| {
        rows.push((t, v.to_vec()))
    })
    .expect("runs");
    let data = Data {
        columns: cols.iter().map(|c| c.to_string()).collect(),
        rows: rows
            .into_iter()
            .map(|(t, v)| (t, v.iter().map(|x| x * 1.01).collect()))
            .collect(),
    };
    let compiled = dyn_jit::compile(&f, &spec).expect("spec").expect("jit");
    let forward = best_of(5, || {
        let mut r = dyn_jit::Runner::new(&compiled, &f, &spec, None).expect("runner");
        r.advance(10, &mut |_, _| {}).expect("runs");
    });
    let mut p = Problem::new(&f, &spec, &data, Backend::Jit).expect("problem");
    assert_eq!(p.steps(), steps);
    let loss = best_of(5, || {
        p.loss(&p.params, &p.x0).expect("loss");
    });
    let grad = best_of(5, || {
        p.gradient(&p.params, &p.x0).expect("gradient");
    });
    let s = p.segment;
    p.segment = steps + 1;
    let one = best_of(5, || {
        p.gradient(&p.params, &p.x0).expect("gradient");
    });
    p.segment = s;
    println!(
        "{name}: {steps} RK4 steps, {} states, {} params, segments of {}\n  forward (model, JIT): {:.2} ms ({:.0} ns/step)\n  loss (step system):   {:.2} ms\n  gradient:             {:.2} ms\n  ratio gradient / forward = {:.1}  (gradient / loss = {:.1})\n  gradient in one segment (no checkpoints, O(N n) memory): {:.2} ms",
        p.x0.len(),
        p.params.len(),
        p.segment,
        forward * 1e3,
        forward * 1e9 / steps as f64,
        loss * 1e3,
        grad * 1e3,
        grad / forward,
        grad / loss,
        one * 1e3,
    );
}

fn main() {
    // Two horizons: the ratio must not depend on it.
    for until in [10.0, 100.0] {
        bench(
            "Lotka–Volterra",
            LV,
            "LV",
            &["prey", "predators"],
            until,
            0.001,
        );
        bench(
            "8 coupled pendulums",
            CHAIN,
            "Chain",
            &["first", "last"],
            until,
            0.001,
        );
    }
}
