//! `dyn build`: executables write `dyn run`'s CSV to the byte (every example the code
//! generator supports, flags, noise, input streams, errors), libraries work from C and from
//! Python, and a missing C compiler or an unsupported model is a clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
mod common;
use common::{repo, text};

/// A directory for this test process's builds, and a runtime cache shared by its tests.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("dyn-build-test-{}", std::process::id()));
        std::fs::create_dir_all(d.join("cache")).unwrap();
        d
    })
}

fn dyn_cmd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dyn"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env("DYN_CACHE_DIR", scratch().join("cache"))
        .output()
        .expect("the dyn binary runs")
}

/// Builds `file` (extra `dyn build` flags in `flags`) into the scratch directory as `name`.
fn build(file: &str, name: &str, flags: &[&str]) -> Result<PathBuf, Output> {
    let out = scratch().join(name);
    let mut args = vec!["build", file, "-o", out.to_str().unwrap()];
    args.extend_from_slice(flags);
    let o = dyn_cmd(&args);
    if o.status.success() {
        assert!(out.is_file(), "{name}: {}", text(&o));
        Ok(out)
    } else {
        Err(o)
    }
}

fn exe(path: &Path, args: &[&str]) -> Output {
    Command::new(path)
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the built program runs")
}

/// The program and `dyn run` agree: exit code, stdout to the byte, stderr.
fn same(path: &Path, file: &str, run_flags: &[&str], args: &[&str]) {
    let a = exe(path, args);
    let mut run = vec!["run", file];
    run.extend_from_slice(run_flags);
    run.extend_from_slice(args);
    let r = dyn_cmd(&run);
    assert_eq!(
        a.status.code(),
        r.status.code(),
        "{file} {args:?}: exit codes\naot: {}\nrun: {}",
        text(&a),
        text(&r)
    );
    assert!(
        a.stdout == r.stdout,
        "{file} {args:?}: the CSV differs\naot:\n{}\nrun:\n{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&r.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&r.stderr),
        "{file} {args:?}: stderr"
    );
}

fn examples() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dyn"))
        .map(|p| {
            (
                format!("examples/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .filter(|(_, src)| src.lines().any(|l| l.trim_start().starts_with("run ")))
        .collect();
    v.sort();
    v
}

/// Every example with a run block is built; those the code generator supports give
/// `dyn run`'s trace to the byte (the run block, and a short run with overridden flags),
/// the others a clear error.
#[test]
fn every_example_builds_and_matches_dyn_run() {
    let mut built = 0;
    for (file, src) in examples() {
        let name = Path::new(&file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        match build(&file, &name, &[]) {
            Ok(path) => {
                same(&path, &file, &[], &[]);
                let short: &[&str] = if src.lines().any(|l| l.trim_start().starts_with("steps ")) {
                    &["--steps", "7", "--every", "2"]
                } else {
                    &["--until", "0.75", "--every", "0.05"]
                };
                same(&path, &file, &[], short);
                built += 1;
            }
            Err(o) => {
                let t = text(&o);
                assert_eq!(o.status.code(), Some(2), "{file}: {t}");
                assert!(
                    t.contains("does not support") || t.contains("error["),
                    "{file}: a clear error, not {t}"
                );
            }
        }
    }
    assert!(built >= 5, "examples built: {built}");
}

/// `--param`, `--seed` (Euler–Maruyama and discrete noise), `--dt`, `--steps`, `--out`.
#[test]
fn flags_and_noise_match_dyn_run() {
    let ou = build("tests/aot/noisy.dyn", "ou", &[]).unwrap();
    let f = "tests/aot/noisy.dyn";
    same(&ou, f, &[], &[]);
    same(&ou, f, &[], &["--seed", "7"]);
    same(
        &ou,
        f,
        &[],
        &[
            "--seed", "7", "--param", "sigma=2", "--until", "5", "--dt", "0.001",
        ],
    );
    same(
        &ou,
        f,
        &[],
        &["--param", "x0=3", "--param", "theta=0.1", "--steps", "50"],
    );
    // Two runs with different seeds differ (the noise is real).
    assert_ne!(
        exe(&ou, &["--seed", "1"]).stdout,
        exe(&ou, &["--seed", "2"]).stdout
    );
    let walk = build(f, "walk", &["--system", "Walk", "--steps", "20"]).unwrap();
    same(
        &walk,
        f,
        &["--system", "Walk"],
        &["--steps", "20", "--seed", "5"],
    );
    // --out writes the same CSV into a file, and nothing to stdout.
    let file = scratch().join("ou.csv");
    let o = exe(&ou, &["--out", file.to_str().unwrap(), "--seed", "9"]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", text(&o));
    let r = dyn_cmd(&["run", f, "--seed", "9"]);
    assert_eq!(std::fs::read(&file).unwrap(), r.stdout);
    // An unknown param: the header, then E0082, as dyn run.
    same(&ou, f, &[], &["--param", "nope=1"]);
}

/// Input streams, discrete and continuous (rk4 with a recording interval), and their errors.
#[test]
fn input_streams_match_dyn_run() {
    let acc = build("tests/data/accumulate.dyn", "acc", &["--system", "Acc"]).unwrap();
    let f = "tests/data/accumulate.dyn";
    let sys = ["--system", "Acc"];
    same(
        &acc,
        f,
        &sys,
        &["--steps", "3", "--input", "tests/data/u.csv"],
    );
    // Too short, a bad cell, a missing column, a missing file.
    same(
        &acc,
        f,
        &sys,
        &["--steps", "4", "--input", "tests/data/u.csv"],
    );
    same(
        &acc,
        f,
        &sys,
        &["--steps", "2", "--input", "tests/data/bad_number.csv"],
    );
    same(
        &acc,
        f,
        &sys,
        &["--steps", "1", "--input", "tests/data/no_column.csv"],
    );
    same(
        &acc,
        f,
        &sys,
        &["--steps", "1", "--input", "tests/data/missing.csv"],
    );
    // Without a stream the inputs are 0.
    same(&acc, f, &sys, &["--steps", "3"]);
    let leaky = build(
        "tests/data/leaky.dyn",
        "leaky",
        &["--system", "Leaky", "--method", "rk4"],
    )
    .unwrap();
    let f = "tests/data/leaky.dyn";
    let sys = ["--system", "Leaky", "--method", "rk4"];
    for args in [
        &[
            "--until",
            "5",
            "--dt",
            "0.1",
            "--every",
            "0.5",
            "--input",
            "tests/data/drive.csv",
        ][..],
        &[
            "--until",
            "7",
            "--dt",
            "0.1",
            "--input",
            "tests/data/drive.csv",
        ][..],
        &["--until", "3", "--dt", "0.1", "--param", "tau=0.1"][..],
        &["--until", "3", "--dt=-1"][..],
        &["--until", "3", "--every", "0"][..],
    ] {
        same(&leaky, f, &sys, args);
    }
}

/// A state that becomes infinite stops the program as it stops dyn run: the rows so far,
/// then the error naming the hierarchical state, exit code 1.
#[test]
fn non_finite_states_are_reported_like_dyn_run() {
    let p = scratch().join("blow.dyn");
    std::fs::write(
        &p,
        "system Blow : { out x: Real } {\n  state x: Real = 1.0\n  out x = x\n  der x = x * x\n}\n\
         system Top : { out y: Real } {\n  box b: Blow\n  out y = b.x\n}\n\
         run Top {\n  until 10.0\n  method euler(dt = 0.1)\n  record y every 0.1\n}\n",
    )
    .unwrap();
    let file = p.to_str().unwrap();
    let blow = build(file, "blow", &[]).unwrap();
    same(&blow, file, &[], &[]);
    let o = exe(&blow, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("state `b.x` became NaN or infinite"),
        "{}",
        text(&o)
    );
}

/// Bad flags are usage errors (exit 2) with a message; --help describes the program.
#[test]
fn bad_flags_are_usage_errors() {
    let lv = build("examples/lotka_volterra.dyn", "lv_flags", &[]).unwrap();
    for args in [
        &["--bogus"][..],
        &["--until", "abc"][..],
        &["--steps", "-3"][..],
        &["--param", "foxes.c"][..],
        &["--param", "foxes.c=x"][..],
        &["--until"][..],
        &["--method", "euler"][..],
        &["--method", "leapfrog"][..],
    ] {
        let o = exe(&lv, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("error: "),
            "{args:?}: {}",
            text(&o)
        );
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // The method it was compiled with is accepted.
    same(
        &lv,
        "examples/lotka_volterra.dyn",
        &[],
        &["--method", "rk4", "--until", "1"],
    );
    let o = exe(&lv, &["--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("--param <PATH=VALUE>"));
    // An output file that cannot be written: exit 2, as dyn run.
    let o = exe(&lv, &["--out", "/nonexistent/dir/x.csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot write"), "{}", text(&o));
}

/// No C compiler: a clear error naming the compiler and the CC variable, exit 2, no panic.
#[test]
fn a_missing_c_compiler_is_a_clear_error() {
    let out = scratch().join("never");
    let o = Command::new(env!("CARGO_BIN_EXE_dyn"))
        .args(["build", "examples/counter.dyn", "-o", out.to_str().unwrap()])
        .current_dir(repo())
        .env("CC", "/nonexistent/cc")
        .env("DYN_CACHE_DIR", scratch().join("cache"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("no C compiler found") && t.contains("/nonexistent/cc") && t.contains("CC"),
        "{t}"
    );
    assert!(!out.exists());
}

/// What the code generator does not support is reported, not crashed on.
#[test]
fn unsupported_models_are_a_clear_error() {
    let p = scratch().join("randn_in_if.dyn");
    std::fs::write(
        &p,
        "system Walk : { out x: Real } {\n  state x: Real = 0.0\n  out x = x\n  der x = if x > 0.0 then randn() else 1.0\n}\nrun Walk {\n  until 1.0\n  method euler(dt = 0.01)\n}\n",
    )
    .unwrap();
    let o = dyn_cmd(&["build", p.to_str().unwrap(), "-o", "/tmp/never-built"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("does not support `randn()` inside `if`"),
        "{}",
        text(&o)
    );
    // A record name that does not exist is refused at build time.
    let o = dyn_cmd(&[
        "build",
        "examples/lotka_volterra.dyn",
        "--record",
        "zebras",
        "-o",
        "/tmp/never-built",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot record `zebras`"), "{}", text(&o));
}

/// A library of the predator–prey model, used from C (tests/aot/use_lib.c) and from Python
/// through ctypes (tests/aot/use_lib.py): both check it against dyn run's trace to the bit.
#[test]
fn the_library_works_from_c_and_python() {
    let dir = scratch().join("lib");
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("libmodel.so");
    let o = dyn_cmd(&[
        "build",
        "--lib",
        "examples/lotka_volterra.dyn",
        "-o",
        lib.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let header = std::fs::read_to_string(dir.join("libmodel.h")).unwrap();
    assert!(header.contains("dyn_model *dyn_model_new(void);"));
    assert!(header.contains("foxes.c"), "the header lists the params");
    let expect = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "examples/lotka_volterra.dyn",
            "--until",
            "1",
            "--every",
            "0.001",
        ];
        args.extend_from_slice(extra);
        let r = dyn_cmd(&args);
        assert!(r.status.success());
        let p = dir.join(name);
        std::fs::write(&p, &r.stdout).unwrap();
        p
    };
    let plain = expect("expected.csv", &[]);
    let c25 = expect("expected_c25.csv", &["--param", "foxes.c=2.5"]);
    // C
    let prog = dir.join("use_lib");
    let cc = dyn_aot::c_compiler(None);
    let o = dyn_aot::cc_command(&cc)
        .arg(repo().join("tests/aot/use_lib.c"))
        .arg("-I")
        .arg(&dir)
        .arg("-L")
        .arg(&dir)
        .arg("-lmodel")
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .arg("-lm")
        .arg("-o")
        .arg(&prog)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(&prog).arg(&plain).output().unwrap();
    assert!(o.status.success(), "use_lib.c: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("all checks passed"));
    // Python
    let o = Command::new("python3")
        .arg(repo().join("tests/aot/use_lib.py"))
        .arg(&lib)
        .arg(&plain)
        .arg(&c25)
        .output()
        .expect("python3 runs");
    assert!(o.status.success(), "use_lib.py: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("all checks passed"));
}

/// The library example (examples/library): the same sweep from C and from Python.
#[test]
fn the_library_example_runs_from_c_and_python() {
    let dir = scratch().join("example");
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("libmodel.so");
    let o = dyn_cmd(&[
        "build",
        "--lib",
        "examples/lotka_volterra.dyn",
        "-o",
        lib.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let prog = dir.join("sweep");
    let o = dyn_aot::cc_command(&dyn_aot::c_compiler(None))
        .arg(repo().join("examples/library/sweep.c"))
        .arg("-I")
        .arg(&dir)
        .arg("-L")
        .arg(&dir)
        .arg("-lmodel")
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .arg("-o")
        .arg(&prog)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let c = Command::new(&prog).output().unwrap();
    assert!(c.status.success(), "{}", text(&c));
    let py = Command::new("python3")
        .arg(repo().join("examples/library/sweep.py"))
        .arg(&lib)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", text(&py));
    let table = String::from_utf8_lossy(&c.stdout);
    assert_eq!(table, String::from_utf8_lossy(&py.stdout));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "c,min_prey,max_prey");
    assert_eq!(lines.len(), 6);
    // The rabbits' low point rises with the foxes' mortality.
    let lows: Vec<f64> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(lows.windows(2).all(|w| w[0] < w[1]), "{lows:?}");
}

/// Tensor params, states, inputs (from a stream) and outputs, matrix products and sums.
#[test]
fn tensor_models_match_dyn_run() {
    let f = "tests/aot/tensors.dyn";
    let net = build(f, "net", &[]).unwrap();
    same(&net, f, &[], &[]);
    same(
        &net,
        f,
        &[],
        &[
            "--steps",
            "5",
            "--input",
            "tests/aot/u2.csv",
            "--param",
            "w=0.5",
        ],
    );
}
