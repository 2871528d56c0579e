//! Training throughput: `examples/digits_mlp.dyn` (64-32-10 tanh, softmax cross-entropy, SGD
//! one sample a step) trained by the JIT, against a hand-written Rust SGD loop of the same
//! network with the same initial weights and sample order, in one run. Prints samples per
//! second of both and their ratio, and checks that both reach the same test accuracy and
//! (nearly) the same test loss — the native loop sums in its own order, so the bits differ.
//!
//! Run: `cargo bench -p dyn-cli --bench learn_throughput` (`DYN_BENCH_EPOCHS=N`, default 10).

use dyn_interp::run::{RunSpec, Stream};
use std::f64::consts::TAU;
use std::path::Path;
use std::time::Instant;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A numeric CSV with a header.
fn read_csv(path: &Path) -> Stream {
    let text = std::fs::read_to_string(path).expect("data file");
    let mut lines = text.lines();
    let columns = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|c| c.trim().parse::<f64>().expect("number"))
                .collect()
        })
        .collect();
    Stream { columns, rows }
}

/// `uniform(lo, hi)` as the compiler lowers it: two `randn()` draws.
fn uniform(rng: &mut dyn_ir::numeric::Noise, lo: f64, hi: f64) -> f64 {
    let z1 = rng.normal();
    let z2 = rng.normal();
    lo + (hi - lo) * (z1.atan2(z2) / TAU + 0.5)
}

/// The same network trained by an idiomatic Rust loop; returns (test accuracy, test loss).
fn native(train: &[(Vec<f64>, usize)], test: &[(Vec<f64>, usize)], seed: u64) -> (f64, f64) {
    const I: usize = 64;
    const H: usize = 32;
    const O: usize = 10;
    let lr = 0.05;
    let mut rng = dyn_ir::numeric::Noise::new(seed);
    let a1 = (6.0f64 / (64.0 + 32.0)).sqrt();
    let a2 = (6.0f64 / (32.0 + 10.0)).sqrt();
    let mut w1: Vec<f64> = (0..H * I).map(|_| uniform(&mut rng, -a1, a1)).collect();
    let mut b1 = vec![0.0; H];
    let mut w2: Vec<f64> = (0..O * H).map(|_| uniform(&mut rng, -a2, a2)).collect();
    let mut b2 = vec![0.0; O];
    let (mut h, mut z, mut dz, mut dpre) = (vec![0.0; H], vec![0.0; O], vec![0.0; O], vec![0.0; H]);
    let forward = |x: &[f64],
                   w1: &[f64],
                   b1: &[f64],
                   w2: &[f64],
                   b2: &[f64],
                   h: &mut [f64],
                   z: &mut [f64]| {
        for j in 0..H {
            let row = &w1[j * I..(j + 1) * I];
            h[j] = (row.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b1[j]).tanh();
        }
        for k in 0..O {
            let row = &w2[k * H..(k + 1) * H];
            z[k] = row.iter().zip(h.iter()).map(|(w, h)| w * h).sum::<f64>() + b2[k];
        }
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
    };
    for (x, label) in train {
        let lse = forward(x, &w1, &b1, &w2, &b2, &mut h, &mut z);
        for k in 0..O {
            dz[k] = (z[k] - lse).exp() - if k == *label { 1.0 } else { 0.0 };
        }
        for j in 0..H {
            let back: f64 = (0..O).map(|k| w2[k * H + j] * dz[k]).sum();
            dpre[j] = back * (1.0 - h[j] * h[j]);
        }
        for k in 0..O {
            for j in 0..H {
                w2[k * H + j] -= lr * dz[k] * h[j];
            }
            b2[k] -= lr * dz[k];
        }
        for j in 0..H {
            for i in 0..I {
                w1[j * I + i] -= lr * dpre[j] * x[i];
            }
            b1[j] -= lr * dpre[j];
        }
    }
    let (mut correct, mut loss) = (0.0, 0.0);
    for (x, label) in test {
        let lse = forward(x, &w1, &b1, &w2, &b2, &mut h, &mut z);
        loss += lse - z[*label];
        let best = (0..O).fold(0, |b, k| if z[k] > z[b] { k } else { b });
        if best == *label {
            correct += 1.0;
        }
    }
    (correct / test.len() as f64, loss / test.len() as f64)
}

fn main() {
    let epochs: u64 = std::env::var("DYN_BENCH_EPOCHS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let root = repo();
    let path = root.join("examples/digits_mlp.dyn");
    let src = std::fs::read_to_string(&path).expect("example");
    let checked = dyn_check::check_source(
        "digits_mlp.dyn",
        Some(path.clone()),
        src,
        &dyn_check::modules::Stdlib::Dir(root.join("stdlib")),
    );
    assert!(!checked.has_errors());
    let sig = checked
        .systems
        .iter()
        .find(|(_, s)| s.name == "DigitsMLP")
        .expect("system")
        .1
        .clone();
    let flat = dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .expect("lowers");

    let mut train = read_csv(&root.join("examples/data/digits_train.csv"));
    let mut test = read_csv(&root.join("examples/data/digits_test.csv"));
    train.bind_prefix("x", "p");
    test.bind_prefix("x", "p");
    let stream = train
        .epochs(epochs, Some(1))
        .then_test(&test)
        .expect("columns");
    let n_train = stream.rows.len() - test.rows.len();
    let steps = stream.rows.len() as u64;
    let rows_of = |st: &Stream| -> Vec<(Vec<f64>, usize)> {
        st.rows
            .iter()
            .map(|r| (r[..64].to_vec(), r[64] as usize))
            .collect()
    };
    let train_rows = rows_of(&Stream {
        columns: vec![],
        rows: stream.rows[..n_train]
            .iter()
            .map(|r| r[..65].to_vec())
            .collect(),
    });
    let test_rows = rows_of(&test);

    let spec = RunSpec {
        steps: Some(steps),
        every: Some(steps as f64),
        seed: 1,
        record: vec!["acc".into(), "test_loss".into()],
        stream: Some(stream),
        ..RunSpec::default()
    };
    let mut last = vec![];
    let t = Instant::now();
    let r = dyn_jit::run(&flat, &spec, &mut |_| {}, &mut |_, v| last = v.to_vec()).expect("runs");
    let total_s = t.elapsed().as_secs_f64();
    let timings = match r {
        Ok((_, timings)) => timings,
        Err(why) => {
            println!("the JIT does not support the model: {why}");
            return;
        }
    };
    let jit_s = timings.run.as_secs_f64();
    let t = Instant::now();
    let (acc, loss) = native(&train_rows, &test_rows, 1);
    let native_s = t.elapsed().as_secs_f64();
    let per = |s: f64| steps as f64 / s;
    println!(
        "digits 64-32-10 SGD, {epochs} epochs ({n_train} training + {} test samples)",
        test_rows.len()
    );
    println!(
        "  dyn JIT (run only):         {:>10.0} samples/s  acc {:.4}  test loss {:.6}",
        per(jit_s),
        last[0],
        last[1]
    );
    println!(
        "  native Rust loop:           {:>10.0} samples/s  acc {:.4}  test loss {:.6}",
        per(native_s),
        acc,
        loss
    );
    println!(
        "  dyn JIT with init and compile ({:.1} ms): {:.0} samples/s",
        timings.compile.as_secs_f64() * 1e3,
        per(total_s)
    );
    println!("  JIT / native: {:.2}", native_s / jit_s);
    assert!(
        (last[0] - acc).abs() <= 1.0 / 360.0 + 1e-12,
        "accuracy {} vs {acc}",
        last[0]
    );
    assert!(
        (last[1] - loss).abs() < 1e-3,
        "test loss {} vs {loss}",
        last[1]
    );
}
