//! JIT benchmark: each workload timed three ways in one run — dyn JIT, dyn interpreter and a
//! hand-written idiomatic Rust loop of the same model — with the results checked against
//! each other, and the ratios printed. `DYN_BENCH_SHORT=1` runs small step counts and only
//! checks agreement (CI). Run: `cargo bench -p dyn-jit --bench ratios`; `DYN_BENCH_ONLY=W3`
//! runs one workload.
//!
//! W1 Lotka–Volterra, RK4, dt = 1e-3 (per-step overhead); W2 FitzHugh–Nagumo ring,
//! N = 1000, Euler, dt = 0.01; W3 echo-state network, N = 500, x ← tanh(W x + w_in u) with a
//! dense W and u_t = sin(0.1 t), 2,000 steps (matrix–vector bound).

use dyn_interp::run::{Method, RunSpec};
use std::path::Path;
use std::time::Instant;

fn load(path: &Path, system: &str) -> dyn_ir::flat::Flat {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src = std::fs::read_to_string(path).expect("model");
    let checked = dyn_check::check_source(
        &path.display().to_string(),
        Some(path.to_path_buf()),
        src,
        &dyn_check::modules::Stdlib::Dir(root.join("stdlib")),
    );
    assert!(!checked.has_errors(), "{}", dyn_diag_render(&checked));
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

fn dyn_diag_render(c: &dyn_check::Checked) -> String {
    c.diagnostics
        .iter()
        .map(|d| d.message.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs with a backend; returns the last recorded row and the seconds of the run (for the JIT,
/// without compiling).
fn timed(flat: &dyn_ir::flat::Flat, spec: &RunSpec, jit: bool) -> (Vec<f64>, f64) {
    let mut last = vec![];
    let t = Instant::now();
    if jit {
        // The run itself: compiling (milliseconds, once per model) is reported by
        // `dyn run --timings`, not counted per step.
        let (_, timings) = dyn_jit::run(flat, spec, &mut |_| {}, &mut |_, v| last = v.to_vec())
            .expect("runs")
            .expect("supported");
        return (last, timings.run.as_secs_f64());
    } else {
        dyn_interp::run::run(flat, spec, &mut |_| {}, &mut |_, v| last = v.to_vec()).expect("runs");
    }
    (last, t.elapsed().as_secs_f64())
}

fn lv_native(steps: u64, dt: f64) -> [f64; 2] {
    let (a, c, d) = (1.5, 3.0, 1.0);
    let f = |x: [f64; 2]| [a * x[0] - (1.0 * x[1]) * x[0], -c * x[1] + d * x[0] * x[1]];
    let mut x = [10.0, 5.0];
    for _ in 0..steps {
        let k1 = f(x);
        let k2 = f([x[0] + 0.5 * dt * k1[0], x[1] + 0.5 * dt * k1[1]]);
        let k3 = f([x[0] + 0.5 * dt * k2[0], x[1] + 0.5 * dt * k2[1]]);
        let k4 = f([x[0] + dt * k3[0], x[1] + dt * k3[1]]);
        for i in 0..2 {
            x[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
    }
    x
}

fn ring_native(n: usize, steps: u64, dt: f64) -> f64 {
    let (eps, a, b, i_ext, k) = (0.08, 0.7, 0.8, 0.5, 0.1);
    let mut v = vec![-1.0; n];
    let mut w = vec![0.0; n];
    let mut dv = vec![0.0; n];
    let mut dw = vec![0.0; n];
    for _ in 0..steps {
        for i in 0..n {
            let (l, r) = (v[(i + n - 1) % n], v[(i + 1) % n]);
            dv[i] =
                v[i] - v[i] * v[i] * v[i] / 3.0 - w[i] + i_ext + k * (l - v[i]) + k * (r - v[i]);
            dw[i] = eps * (v[i] + a - b * w[i]);
        }
        for i in 0..n {
            v[i] += dt * dv[i];
            w[i] += dt * dw[i];
        }
    }
    v[0]
}

/// The W3 reservoir: a dense N×N matrix with spectral radius about 0.9 (uniform entries of
/// variance 0.81/N) and input weights, from a fixed linear congruential sequence.
fn esn_weights(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut uniform = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let a = 0.9 * (3.0 / n as f64).sqrt();
    let w: Vec<f64> = (0..n * n).map(|_| a * uniform()).collect();
    let win: Vec<f64> = (0..n).map(|_| 0.5 * uniform()).collect();
    (w, win)
}

/// The W3 model in dyn, with the weights written out as literals (17 significant digits, so
/// the parsed values are exactly the native loop's).
fn esn_source(n: usize, w: &[f64], win: &[f64]) -> String {
    let row = |xs: &[f64]| {
        let items: Vec<String> = xs.iter().map(|x| format!("{x:.17e}")).collect();
        format!("[{}]", items.join(", "))
    };
    let rows: Vec<String> = w.chunks(n).map(row).collect();
    format!(
        "system ESN : {{ out y: Real }} {{
  param W: Real[{n}, {n}] = [{rows}]
  param win: Real[{n}] = {win}
  state x: Real[{n}] = {x0}
  state k: Int = 0
  out y = x[0]
  next x = tanh(W @ x + win * sin(0.1 * real(k)))
  next k = k + 1
}}
",
        rows = rows.join(",\n"),
        win = row(win),
        x0 = row(&vec![0.0; n]),
    )
}

fn esn_native(n: usize, steps: u64, w: &[f64], win: &[f64]) -> Vec<f64> {
    let mut x = vec![0.0; n];
    let mut next = vec![0.0; n];
    for k in 0..steps {
        let u = (0.1 * k as f64).sin();
        for (i, out) in next.iter_mut().enumerate() {
            let s: f64 = w[i * n..(i + 1) * n]
                .iter()
                .zip(&x)
                .map(|(a, b)| a * b)
                .sum();
            *out = (s + win[i] * u).tanh();
        }
        std::mem::swap(&mut x, &mut next);
    }
    x
}

/// The JIT and the hand-written loop, interleaved, best of [`REPS`] each (the machine may be
/// shared, and the ratio is what matters): the JIT's last row and seconds, the loop's result
/// and seconds.
fn best_of<T>(
    flat: &dyn_ir::flat::Flat,
    spec: &RunSpec,
    native: impl Fn() -> T,
) -> (Vec<f64>, f64, T, f64) {
    let (mut jit, mut tj) = (vec![], f64::INFINITY);
    let mut best_native = None;
    let mut tn = f64::INFINITY;
    for _ in 0..REPS {
        let (j, t1) = timed(flat, spec, true);
        let t = Instant::now();
        let nat = native();
        let t2 = t.elapsed().as_secs_f64();
        tj = tj.min(t1);
        tn = tn.min(t2);
        jit = j;
        best_native = Some(nat);
    }
    (jit, tj, best_native.expect("REPS > 0"), tn)
}

/// Runs `spec` with the interpreter and the JIT, checks they agree to the bit, and returns
/// the interpreter's seconds.
fn interp_agrees(flat: &dyn_ir::flat::Flat, spec: &RunSpec, name: &str) -> f64 {
    let (interp_small, ti) = timed(flat, spec, false);
    let (jit_small, _) = timed(flat, spec, true);
    assert_eq!(
        interp_small, jit_small,
        "{name}: JIT and interpreter agree to the bit"
    );
    ti
}

/// Timed runs of the JIT and the hand-written loop, interleaved; the best of each counts.
const REPS: usize = 3;

fn main() {
    let short = std::env::var_os("DYN_BENCH_SHORT").is_some();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    println!(
        "machine: {} cores; {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        if short {
            "short mode (agreement only)"
        } else {
            "full mode"
        }
    );

    // `DYN_BENCH_ONLY=W2` runs one workload.
    let only = std::env::var("DYN_BENCH_ONLY").ok();
    let wanted = |w: &str| only.as_deref().is_none_or(|o| o == w);

    // W1
    if wanted("W1") {
        let lv = load(
            &root.join("../shared/conformance/ok/predator_prey.dyn"),
            "LotkaVolterra",
        );
        let steps: u64 = if short { 20_000 } else { 10_000_000 };
        let dt = 1e-3;
        let spec = RunSpec {
            method: Method::Rk4,
            dt,
            until: Some(steps as f64 * dt),
            every: Some(steps as f64 * dt),
            ..RunSpec::default()
        };
        let (jit, tj, native, tn) = best_of(&lv, &spec, || {
            std::hint::black_box(lv_native(std::hint::black_box(steps), dt))
        });
        let isteps = if short { steps } else { steps / 100 };
        let ispec = RunSpec {
            until: Some(isteps as f64 * dt),
            every: Some(isteps as f64 * dt),
            ..spec.clone()
        };
        let ti = interp_agrees(&lv, &ispec, "W1");
        // The loops agree to rounding per step; dyn's steps end exactly on the record times (the
        // last step of an interval may be shorter by an ulp), so over 10^7 steps (~2,000 periods)
        // the phase drifts by ~1e-6 relative.
        for (a, b) in jit.iter().zip(native) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "W1: JIT {a} vs native {b}"
            );
        }
        let ti_full = ti * (steps as f64 / isteps as f64);
        println!(
            "W1 Lotka–Volterra rk4, {steps} steps: native {:.1} ns/step, JIT {:.1} ns/step (JIT/native {:.2}), interpreter {:.1} ns/step (interp/JIT {:.0}×)",
            tn * 1e9 / steps as f64,
            tj * 1e9 / steps as f64,
            tj / tn,
            ti_full * 1e9 / steps as f64,
            ti_full / tj
        );
    }

    // W2
    if wanted("W2") {
        let ring = load(&root.join("crates/jit/benches/w2_ring.dyn"), "Ring");
        let steps: u64 = if short { 50 } else { 10_000 };
        let dt = 0.01;
        let spec = RunSpec {
            method: Method::Euler,
            dt,
            until: Some(steps as f64 * dt),
            every: Some(steps as f64 * dt),
            ..RunSpec::default()
        };
        let (jit, tj, native, tn) = best_of(&ring, &spec, || {
            std::hint::black_box(ring_native(1000, std::hint::black_box(steps), dt))
        });
        let isteps = if short { steps } else { steps / 20 };
        let ispec = RunSpec {
            until: Some(isteps as f64 * dt),
            every: Some(isteps as f64 * dt),
            ..spec.clone()
        };
        let ti = interp_agrees(&ring, &ispec, "W2");
        assert!(
            (jit[0] - native).abs() <= 1e-9 * native.abs().max(1.0),
            "W2: JIT {} vs native {native}",
            jit[0]
        );
        let ti_full = ti * (steps as f64 / isteps as f64);
        println!(
            "W2 FHN ring N=1000 Euler, {steps} steps: native {:.2} µs/step, JIT {:.2} µs/step (JIT/native {:.2}), interpreter {:.1} µs/step (interp/JIT {:.0}×)",
            tn * 1e6 / steps as f64,
            tj * 1e6 / steps as f64,
            tj / tn,
            ti_full * 1e6 / steps as f64,
            ti_full / tj
        );
    }

    // W3
    if wanted("W3") {
        let n = 500;
        let (w, win) = esn_weights(n);
        let path = std::env::temp_dir().join(format!("dyn-w3-{}.dyn", std::process::id()));
        std::fs::write(&path, esn_source(n, &w, &win)).expect("writes the W3 model");
        let t = Instant::now();
        let esn = load(&path, "ESN");
        let load_time = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&path);
        let steps: u64 = if short { 20 } else { 2_000 };
        let spec = RunSpec {
            steps: Some(steps),
            every: Some(steps as f64),
            record: vec!["x".into()],
            ..RunSpec::default()
        };
        let (jit, tj, native, tn) = best_of(&esn, &spec, || {
            std::hint::black_box(esn_native(n, std::hint::black_box(steps), &w, &win))
        });
        let isteps = if short { steps } else { steps / 10 };
        let ispec = RunSpec {
            steps: Some(isteps),
            every: Some(isteps as f64),
            ..spec.clone()
        };
        let ti = interp_agrees(&esn, &ispec, "W3");
        // The native loop sums each row left to right, dyn in eight lanes: the states differ by
        // rounding (~1e-16 per sum), and the reservoir is contracting (spectral radius 0.9).
        assert_eq!(jit.len(), n);
        for (a, b) in jit.iter().zip(&native) {
            assert!((a - b).abs() <= 1e-12, "W3: JIT {a} vs native {b}");
        }
        let ti_full = ti * (steps as f64 / isteps as f64);
        println!(
            "W3 echo-state network N=500, {steps} steps: native {:.1} µs/step, JIT {:.1} µs/step (JIT/native {:.2}), interpreter {:.1} µs/step (interp/JIT {:.0}×); check + lower of the 250,000-literal model {:.0} ms",
            tn * 1e6 / steps as f64,
            tj * 1e6 / steps as f64,
            tj / tn,
            ti_full * 1e6 / steps as f64,
            ti_full / tj,
            load_time * 1e3
        );
    }
}
