//! Training on data streams: `examples/digits_mlp.dyn` trained on the handwritten digits
//! reaches the required test accuracy (with both backends, which agree to the bit), and the
//! stream options (`--bind`, `--epochs`, `--shuffle`, `--test`) and `uniform` initialisers
//! behave as documented.

use dyn_interp::run::Stream;
use std::process::Output;
mod common;
use common::{dyn_cmd, text};

/// The header and the last row of a successful run's trace.
fn last_row(o: &Output) -> (Vec<String>, Vec<f64>) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let last = lines
        .last()
        .unwrap()
        .split(',')
        .map(|x| x.parse::<f64>().unwrap())
        .collect();
    (header, last)
}

/// `dyn run FILE` on the digits stream: `epochs` shuffled epochs of the training file, then
/// the test file, on `backend`, with `extra` flags.
fn digits(file: &str, epochs: &str, backend: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        file,
        "--input",
        "examples/data/digits_train.csv",
        "--bind",
        "x=p",
        "--epochs",
        epochs,
        "--shuffle",
        "1",
        "--test",
        "examples/data/digits_test.csv",
        "--backend",
        backend,
    ];
    args.extend_from_slice(extra);
    dyn_cmd(&args)
}

fn train_digits(epochs: &str, backend: &str) -> (Vec<String>, Vec<f64>) {
    last_row(&digits("examples/digits_mlp.dyn", epochs, backend, &[]))
}

/// The full training run of the example (10 epochs of 1,437 samples, then the 360 test
/// samples with updates off) reaches at least 95 % test accuracy; the interpreter and the
/// JIT (when it supports the model) print the same figures.
#[test]
fn digits_mlp_reaches_95_percent() {
    let (header, row) = train_digits("10", "interp");
    assert_eq!(header, ["t", "acc", "test_loss", "train_loss"]);
    assert_eq!(row[0], 14730.0, "10 epochs of 1,437 rows and 360 test rows");
    let (acc, test_loss) = (row[1], row[2]);
    assert!(acc >= 0.95, "test accuracy {acc}");
    assert!(test_loss > 0.0 && test_loss < 0.3, "test loss {test_loss}");
    let (_, auto) = train_digits("10", "auto");
    assert_eq!(auto, row, "the default backend agrees with the interpreter");
}

/// One epoch is already well above chance; shuffling with another seed changes the result
/// (the order matters), the same seed reproduces it.
#[test]
fn shuffle_seed_decides_the_order() {
    let (_, a) = train_digits("1", "interp");
    assert!(a[1] > 0.85, "one epoch: accuracy {}", a[1]);
    let (_, b) = train_digits("1", "interp");
    assert_eq!(a, b);
    let o = dyn_cmd(&[
        "run",
        "examples/digits_mlp.dyn",
        "--input",
        "examples/data/digits_train.csv",
        "--bind",
        "x=p",
        "--epochs",
        "1",
        "--shuffle",
        "2",
        "--test",
        "examples/data/digits_test.csv",
        "--backend",
        "interp",
    ]);
    let (_, c) = last_row(&o);
    assert_ne!(a, c);
}

#[test]
fn stream_epochs_shuffle_and_test_rows() {
    let st = Stream {
        columns: vec!["a".into(), "b".into()],
        rows: (0..5).map(|i| vec![i as f64, 10.0 * i as f64]).collect(),
    };
    let plain = st.epochs(2, None);
    assert_eq!(plain.rows.len(), 10);
    assert_eq!(plain.rows[7], vec![2.0, 20.0]);
    let sh = st.epochs(3, Some(7));
    assert_eq!(sh.rows.len(), 15);
    for e in 0..3 {
        let mut firsts: Vec<f64> = sh.rows[5 * e..5 * e + 5].iter().map(|r| r[0]).collect();
        // Rows stay whole (b = 10 a) and each epoch is a permutation.
        assert!(
            sh.rows[5 * e..5 * e + 5]
                .iter()
                .all(|r| r[1] == 10.0 * r[0])
        );
        firsts.sort_by(f64::total_cmp);
        assert_eq!(firsts, [0.0, 1.0, 2.0, 3.0, 4.0]);
    }
    assert_eq!(sh.rows, st.epochs(3, Some(7)).rows, "the seed decides");
    assert_ne!(sh.rows, st.epochs(3, Some(8)).rows);
    assert_ne!(sh.rows[..5], sh.rows[5..10], "a fresh order every epoch");

    let test = Stream {
        columns: vec!["b".into(), "a".into()],
        rows: vec![vec![-1.0, -2.0]],
    };
    let both = st.then_test(&test).unwrap();
    assert_eq!(both.columns, ["a", "b", "train"]);
    assert_eq!(both.rows[0], vec![0.0, 0.0, 1.0]);
    assert_eq!(
        both.rows[5],
        vec![-2.0, -1.0, 0.0],
        "matched by name, train = 0"
    );
    let missing = Stream {
        columns: vec!["a".into()],
        rows: vec![],
    };
    assert!(st.then_test(&missing).unwrap_err().contains("`b`"));

    let mut bound = Stream {
        columns: vec!["p0".into(), "p1".into(), "label".into(), "px".into()],
        rows: vec![],
    };
    assert_eq!(bound.bind_prefix("x", "p"), 2);
    assert_eq!(bound.columns, ["x[0]", "x[1]", "label", "px"]);
}

#[test]
fn stream_options_report_errors() {
    let o = dyn_cmd(&["run", "examples/digits_mlp.dyn", "--epochs", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("need `--input FILE`"), "{}", text(&o));
    let o = dyn_cmd(&[
        "run",
        "examples/digits_mlp.dyn",
        "--input",
        "examples/data/digits_train.csv",
        "--bind",
        "x=q",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no columns `q0`"), "{}", text(&o));
    let o = dyn_cmd(&[
        "run",
        "examples/digits_mlp.dyn",
        "--input",
        "examples/data/digits_train.csv",
        "--bind",
        "x=p",
        "--epochs",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // Without --bind the tensor input finds no columns.
    let o = dyn_cmd(&[
        "run",
        "examples/digits_mlp.dyn",
        "--input",
        "examples/data/digits_train.csv",
        "--epochs",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no column `x[0]`"), "{}", text(&o));
}

/// `uniform(lo, hi, m, n)` draws each element in [lo, hi] from the run's seed: the same seed
/// gives the same weights, another seed others, and the sample looks uniform.
#[test]
fn uniform_initialisers_are_seeded() {
    let dir = std::env::temp_dir().join(format!("dyn_uniform_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("u.dyn");
    std::fs::write(
        &f,
        "system U : { out lo: Real  out hi: Real  out m: Real  out s: Real } {\n\
         state w: Real[40, 50] = uniform(-2.0, 3.0, 40, 50)\n\
         state c: Real = uniform(0, 1)\n\
         state z: Real[2, 3] = zeros(2, 3) + ones(2, 3)\n\
         out lo = min(w)\n out hi = max(w)\n out m = mean(w)\n out s = c + sum(z) - 6.0\n\
         next w = w\n next c = c\n next z = z\n}\nrun U { steps 1 }\n",
    )
    .unwrap();
    let run = |seed: &str, backend: &str| {
        let o = dyn_cmd(&[
            "run",
            f.to_str().unwrap(),
            "--steps",
            "1",
            "--seed",
            seed,
            "--backend",
            backend,
        ]);
        last_row(&o).1
    };
    let a = run("5", "interp");
    assert!(a[1] >= -2.0 && a[1] < -1.9, "min {}", a[1]);
    assert!(a[2] <= 3.0 && a[2] > 2.9, "max {}", a[2]);
    // 2,000 uniform draws on [-2, 3]: mean 0.5, standard error 5/sqrt(12 * 2000) ≈ 0.032.
    assert!((a[3] - 0.5).abs() < 0.15, "mean {}", a[3]);
    assert!(a[4] >= 0.0 && a[4] <= 1.0);
    assert_eq!(a, run("5", "interp"));
    assert_eq!(a, run("5", "auto"), "every backend draws the same weights");
    assert_ne!(a, run("6", "interp"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs an example with its run block and extra flags; the header and the last row.
fn run_example(file: &str, extra: &[&str]) -> (Vec<String>, Vec<f64>) {
    let mut args = vec!["run", file];
    args.extend_from_slice(extra);
    last_row(&dyn_cmd(&args))
}

/// XOR with std.learn's Adam and MSE boxes: every case on the right side of 1/2.
#[test]
fn xor_is_learned() {
    let (header, row) = run_example("examples/xor.dyn", &[]);
    assert_eq!(header, ["t", "loss", "p00", "p01", "p10", "p11"]);
    assert_eq!(row[0], 500.0);
    assert!(row[1] < 0.01, "loss {}", row[1]);
    assert!(row[2] < 0.1 && row[5] < 0.1, "{row:?}");
    assert!(row[3] > 0.9 && row[4] > 0.9, "{row:?}");
    let (_, interp) = run_example("examples/xor.dyn", &["--backend", "interp"]);
    assert_eq!(interp, row);
}

/// Sine regression with Momentum boxes: the grid error falls below 1e-3.
#[test]
fn sine_is_fitted() {
    let (_, first) = run_example("examples/sine.dyn", &["--steps", "1"]);
    let (_, row) = run_example("examples/sine.dyn", &[]);
    assert_eq!(row[0], 20000.0);
    assert!(first[2] > 0.1, "initial grid error {}", first[2]);
    assert!(row[2] < 1e-3, "grid error {}", row[2]);
    let a = run_example(
        "examples/sine.dyn",
        &["--steps", "300", "--backend", "interp"],
    );
    let b = run_example("examples/sine.dyn", &["--steps", "300"]);
    assert_eq!(a, b);
}

/// The residual network as an Euler-discretised ODE: layers wired forward and backward by
/// `for` loops learn the rotation.
#[test]
fn resnet_ode_learns_the_rotation() {
    let (_, row) = run_example("examples/resnet_ode.dyn", &[]);
    assert_eq!(row[0], 20000.0);
    assert!(row[2] < 5e-4, "average loss {}", row[2]);
    let a = run_example(
        "examples/resnet_ode.dyn",
        &["--steps", "500", "--backend", "interp"],
    );
    let b = run_example("examples/resnet_ode.dyn", &["--steps", "500"]);
    assert_eq!(a, b);
    assert!(a.1[2] < 0.01, "after 500 steps: {}", a.1[2]);
}

/// Every row of a successful run's trace.
fn all_rows(o: &Output) -> Vec<Vec<f64>> {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse::<f64>().unwrap()).collect())
        .collect()
}

/// The neuron-by-neuron form (`digits_neurons.dyn`: a box per neuron, forward and backward
/// ports wired by `for` loops) gives the same per-sample losses as the matrix form
/// (`digits_mlp.dyn`) over one epoch and the test rows, within 1e-9 (in fact to the bit).
#[test]
fn neuron_form_equals_matrix_form() {
    let run = |file: &str, backend: &str| {
        all_rows(&digits(
            file,
            "1",
            backend,
            &["--record", "loss,acc", "--every", "1"],
        ))
    };
    let matrix = run("examples/digits_mlp.dyn", "interp");
    assert_eq!(matrix.len(), 1 + 1437 + 360);
    // The neuron-by-neuron form and the learner form (derived backward ports and updates).
    for other in [
        "examples/digits_neurons.dyn",
        "examples/digits_learners.dyn",
    ] {
        let rows = run(other, "interp");
        assert_eq!(rows.len(), matrix.len(), "{other}");
        let mut worst = 0.0f64;
        for (a, b) in matrix.iter().zip(&rows) {
            assert_eq!(a[0], b[0]);
            worst = worst.max((a[1] - b[1]).abs());
            assert_eq!(a[2], b[2], "{other}: accuracy at t = {}", a[0]);
        }
        assert!(
            worst <= 1e-9,
            "{other}: largest per-sample loss difference {worst}"
        );
    }
    assert!(
        matrix[1437][1] < matrix[1][1],
        "the loss fell over the epoch"
    );
    // The compiled runs end with the same figures as the interpreter's.
    let fin = |file: &str, backend: &str| last_row(&digits(file, "1", backend, &[]));
    let reference = fin("examples/digits_neurons.dyn", "interp");
    assert_eq!(fin("examples/digits_neurons.dyn", "auto"), reference);
    assert_eq!(fin("examples/digits_mlp.dyn", "auto"), reference);
    assert_eq!(fin("examples/digits_learners.dyn", "auto"), reference);
}

/// A learner's derived update is its optimizer's rule from std.learn: learners trained by
/// Momentum and Adam give the trace of the same models written with `Momentum<2>` and
/// `Adam<2>` boxes and `grad`, to the bit, under both backends; and they learn.
#[test]
fn learner_optimizers_equal_explicit_boxes() {
    let run = |file: &str, backend: &str| all_rows(&dyn_cmd(&["run", file, "--backend", backend]));
    let derived = run("tests/data/learner_optimizers.dyn", "interp");
    assert_eq!(derived.len(), 401);
    assert_eq!(run("tests/data/learner_optimizers.dyn", "auto"), derived);
    assert_eq!(
        run("tests/data/learner_optimizers_explicit.dyn", "interp"),
        derived
    );
    assert_eq!(
        run("tests/data/learner_optimizers_explicit.dyn", "auto"),
        derived
    );
    for col in [1, 2] {
        let mean = |rows: &[Vec<f64>]| rows.iter().map(|r| r[col]).sum::<f64>() / rows.len() as f64;
        let (early, late) = (mean(&derived[1..51]), mean(&derived[351..401]));
        assert!(late < 0.5 * early, "column {col}: loss {early} -> {late}");
    }
}

/// `--save` writes the trained weights, `--load` starts from them: evaluating the saved
/// weights alone (`--epochs 0 --test`) gives the trained run's test figures to the bit, in
/// both backends; a file naming no state of the model is refused.
#[test]
fn trained_weights_save_and_load() {
    let dir = std::env::temp_dir().join(format!("dyn_save_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = dir.join("weights.csv");
    let w = w.to_str().unwrap();
    let base = [
        "run",
        "examples/digits_mlp.dyn",
        "--input",
        "examples/data/digits_train.csv",
        "--bind",
        "x=p",
        "--test",
        "examples/data/digits_test.csv",
    ];
    let mut train = base.to_vec();
    train.extend(["--epochs", "2", "--shuffle", "1", "--save", w]);
    train.extend(["--save-states", "W1,b1,W2,b2"]);
    let (_, trained) = last_row(&dyn_cmd(&train));
    let saved = std::fs::read_to_string(w).unwrap();
    let header: Vec<&str> = saved.lines().next().unwrap().split(',').collect();
    assert_eq!(header.len(), 32 * 64 + 32 + 10 * 32 + 10);
    assert_eq!((header[0], header[2048]), ("W1[0]", "b1[0]"));
    for backend in ["interp", "auto"] {
        let mut eval = base.to_vec();
        eval.extend(["--epochs", "0", "--load", w, "--backend", backend]);
        let (_, row) = last_row(&dyn_cmd(&eval));
        assert_eq!(row[0], 360.0, "only the test rows run");
        assert_eq!(
            row[1..3],
            trained[1..3],
            "{backend}: accuracy and test loss"
        );
    }
    std::fs::write(dir.join("bad.csv"), "nope\n1.0\n").unwrap();
    let mut bad = base.to_vec();
    let bad_path = dir.join("bad.csv");
    bad.extend(["--epochs", "0", "--load", bad_path.to_str().unwrap()]);
    let o = dyn_cmd(&bad);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("`nope` is not a state"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `flow` takes the integrators' steps: one RK4 (Euler) step a tick equals, to the bit, the
/// continuous system run by `rk4` (`euler`) with the same dt, on both backends.
#[test]
fn flow_steps_are_the_integrators_steps() {
    let cols = |rows: &[Vec<f64>], a: usize| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r[a], r[a + 1])).collect()
    };
    let disc = all_rows(&dyn_cmd(&[
        "run",
        "tests/data/flow_disc.dyn",
        "--backend",
        "interp",
    ]));
    assert_eq!(disc.len(), 41);
    assert_eq!(
        all_rows(&dyn_cmd(&["run", "tests/data/flow_disc.dyn"])),
        disc
    );
    for (method, col) in [("rk4", 1), ("euler", 3)] {
        for backend in ["interp", "auto"] {
            let cont = all_rows(&dyn_cmd(&[
                "run",
                "tests/data/flow_cont.dyn",
                "--method",
                method,
                "--backend",
                backend,
            ]));
            assert_eq!(cols(&cont, 1), cols(&disc, col), "{method} {backend}");
        }
    }
}

/// `grad` through `flow`: 100 RK4 steps of Van der Pol, with respect to a parameter and the
/// initial state, agree with central finite differences to 1e-6 relative.
#[test]
fn gradients_through_flow_match_finite_differences() {
    let rows = all_rows(&dyn_cmd(&[
        "run",
        "tests/data/flow_grad.dyn",
        "--backend",
        "interp",
    ]));
    let r = &rows[1];
    for k in [1, 3, 5] {
        let (ad, fd) = (r[k], r[k + 1]);
        assert!(ad.abs() > 0.1, "a gradient worth checking: {ad}");
        assert!(
            ((ad - fd) / fd).abs() < 1e-6,
            "column {k}: AD {ad} vs FD {fd}"
        );
    }
}

/// std.learn's `NeuralODE` learner, wired to an MSE box like any learner, learns the
/// time-0.5 flow map of a linear spiral: the mean loss of the last 100 samples is below a
/// twentieth of the first 100's; the compiled run equals the interpreter's over 200 steps.
#[test]
fn neural_ode_block_learns_a_flow_map() {
    let rows = all_rows(&dyn_cmd(&["run", "tests/data/neural_ode_block.dyn"]));
    assert_eq!(rows.len(), 3001);
    let mean = |rs: &[Vec<f64>]| rs.iter().map(|r| r[1]).sum::<f64>() / rs.len() as f64;
    let (early, late) = (mean(&rows[1..101]), mean(&rows[2901..3001]));
    assert!(late < early / 20.0, "loss {early} -> {late}");
    let short = |backend: &str| {
        all_rows(&dyn_cmd(&[
            "run",
            "tests/data/neural_ode_block.dyn",
            "--steps",
            "200",
            "--backend",
            backend,
        ]))
    };
    assert_eq!(short("auto"), short("interp"));
}

/// examples/neural_ode_spiral.dyn as documented: the free-running trajectory error after
/// training is at least 10× lower than before (for the example's seeds; see its header for
/// how the figure varies with them).
#[test]
fn neural_ode_spiral_error_falls_tenfold() {
    let o = dyn_cmd(&[
        "run",
        "examples/neural_ode_spiral.dyn",
        "--input",
        "examples/data/spiral_segments.csv",
        "--bind",
        "s=s",
        "--epochs",
        "20",
        "--shuffle",
        "1",
        "--test",
        "examples/data/spiral_trajectory.csv",
    ]);
    let (names, last) = last_row(&o);
    let col = |n: &str| last[names.iter().position(|x| x == n).unwrap()];
    let (before, after) = (col("err_before"), col("err_after"));
    assert!(before > 0.5, "the untrained field is far off: {before}");
    assert!(after * 10.0 <= before, "{before} -> {after}");
}

/// `normal(mean, std, m, n)` draws mean + std z per element from the seeded generator: the
/// sample mean and deviation of 5,000 draws are within four standard errors of 1 and 0.5
/// (0.028 and 0.02), the same under both backends, and another seed gives other draws.
#[test]
fn normal_initialiser_has_its_moments() {
    let run = |backend: &str, seed: &str| {
        all_rows(&dyn_cmd(&[
            "run",
            "tests/data/normal_init.dyn",
            "--backend",
            backend,
            "--seed",
            seed,
        ]))
    };
    let r = run("interp", "7");
    assert_eq!(run("auto", "7"), r);
    let (m, sd) = (r[0][1], r[0][2]);
    assert!((m - 1.0).abs() < 0.028, "mean {m}");
    assert!((sd - 0.5).abs() < 0.02, "sd {sd}");
    assert_ne!(run("interp", "8")[0][1], m);
}
