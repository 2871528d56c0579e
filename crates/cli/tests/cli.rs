//! End-to-end tests of the `dyn` binary: exit codes, formats, `--poly`, `explain`, and the
//! shared conformance suite, the examples and the stdlib.

use std::path::{Path, PathBuf};
use std::process::Output;
mod common;
use common::{dyn_cmd, repo, text};

fn dyn_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dyn"))
        .collect();
    v.sort();
    v
}

#[test]
fn conformance_ok_files_check_clean() {
    let files = dyn_files(&repo().join("../shared/conformance/ok"));
    assert!(
        files.len() >= 6,
        "conformance suite not found beside the repository"
    );
    for f in files {
        let o = dyn_cmd(&["check", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}:\n{}", f.display(), text(&o));
    }
}

#[test]
fn conformance_bad_files_fail_with_a_code() {
    let files = dyn_files(&repo().join("../shared/conformance/bad"));
    assert!(files.len() >= 6);
    for f in files {
        let o = dyn_cmd(&["check", "--format", "json", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}:\n{}", f.display(), text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let first: serde_json::Value =
            serde_json::from_str(out.lines().next().expect("one diagnostic")).unwrap();
        assert!(
            first["code"].as_str().unwrap().starts_with('E'),
            "{}",
            f.display()
        );
    }
}

/// The rule each shared `bad/` file names in its first line, and the code that rule has.
#[test]
fn conformance_bad_files_report_their_rule() {
    let expect = [
        ("lens_side.dyn", "E0041"),
        ("loop.dyn", "E0063"),
        ("mode_scope.dyn", "E0053"),
        ("shape.dyn", "E0021"),
        ("undefined_out.dyn", "E0051"),
        ("wire_twice.dyn", "E0060"),
    ];
    for (file, code) in expect {
        let p = repo().join("../shared/conformance/bad").join(file);
        let o = dyn_cmd(&["check", "--format", "json", p.to_str().unwrap()]);
        let codes: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["code"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(codes, vec![code.to_string()], "{file}");
    }
}

/// `// expect: dyn check --poly 'EXPR' → NF ; 'EXPR' → NF` lines of the conformance suite.
#[test]
fn conformance_poly_expectations() {
    let mut checked = 0;
    for f in dyn_files(&repo().join("../shared/conformance/ok")) {
        let src = std::fs::read_to_string(&f).unwrap();
        for line in src.lines().filter(|l| l.contains("--poly")) {
            let rest = &line[line.find("--poly").unwrap() + 6..];
            for part in rest.split(';') {
                let (expr, nf) = part.split_once('→').expect("EXPR → NF");
                let expr = expr.trim().trim_matches('\'');
                let o = dyn_cmd(&["check", "--poly", expr, f.to_str().unwrap()]);
                assert_eq!(o.status.code(), Some(0), "{}", text(&o));
                assert_eq!(
                    String::from_utf8_lossy(&o.stdout).trim(),
                    format!("{expr} = {}", nf.trim())
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2);
}

#[test]
fn examples_and_stdlib_check() {
    let mut files = dyn_files(&repo().join("examples"));
    files.extend(dyn_files(&repo().join("stdlib")));
    assert!(files.len() >= 8, "examples and stdlib present");
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let first = src.lines().next().unwrap_or("");
        let o = dyn_cmd(&["check", "--format", "json", f.to_str().unwrap()]);
        match first.strip_prefix("// expect-error:") {
            Some(code) => {
                assert_eq!(o.status.code(), Some(1), "{}", f.display());
                assert!(
                    String::from_utf8_lossy(&o.stdout)
                        .contains(&format!("\"code\":\"{}\"", code.trim())),
                    "{}: {}",
                    f.display(),
                    text(&o)
                );
            }
            None => assert_eq!(o.status.code(), Some(0), "{}:\n{}", f.display(), text(&o)),
        }
    }
}

#[test]
fn json_diagnostics_have_the_documented_fields() {
    let p = repo().join("../shared/conformance/bad/wire_twice.dyn");
    let o = dyn_cmd(&["check", "--format", "json", p.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["code"], "E0060");
    assert_eq!(v["severity"], "error");
    assert_eq!(v["message"], "input `a.x` is wired twice");
    assert_eq!(v["line_start"], 11);
    assert_eq!(v["col_start"], 3);
    assert_eq!(v["labels"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["labels"][1]["line_start"], 10,
        "secondary label at the first wire"
    );
    assert!(v["hint"].as_str().unwrap().contains("exactly one value"));
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(
        dyn_cmd(&["check", "no/such/file.dyn"]).status.code(),
        Some(2)
    );
    assert_eq!(
        dyn_cmd(&["check", "--frobnicate", "x.dyn"]).status.code(),
        Some(2)
    );
    assert_eq!(dyn_cmd(&["explain", "E9999"]).status.code(), Some(2));
    let o = dyn_cmd(&["check", "no/such/file.dyn"]);
    assert!(text(&o).contains("cannot read `no/such/file.dyn`"));
}

#[test]
fn explain_prints_the_long_text() {
    let o = dyn_cmd(&["explain", "E0060"]);
    assert_eq!(o.status.code(), Some(0));
    let t = text(&o);
    assert!(t.starts_with("# E0060: inner input wired twice"), "{t}");
    assert!(t.contains("## Wrong") && t.contains("## Fixed"));
}

/// Each explanation's wrong example yields its code and its fixed example checks clean,
/// so the texts cannot rot.
#[test]
fn explain_examples_are_true() {
    let tmp = std::env::temp_dir().join(format!("dyn-explain-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for code in dyn_diag::codes::ALL {
        let text = code.explain;
        assert!(
            text.starts_with(&format!("# {}: {}", code.id, code.title)),
            "{}: title line",
            code.id
        );
        let block = |heading: &str| -> Option<String> {
            let at = text.find(heading)?;
            let rest = &text[at..];
            if rest.lines().nth(1).is_some_and(|l| l.contains("no-test")) {
                return None;
            }
            let start = rest.find("```dyn\n")? + 7;
            let end = rest[start..].find("```")?;
            Some(rest[start..start + end].to_string())
        };
        assert!(
            text.contains("## Wrong") && text.contains("## Fixed"),
            "{}: sections",
            code.id
        );
        if let Some(wrong) = block("## Wrong") {
            let p = tmp.join(format!("{}_wrong.dyn", code.id));
            std::fs::write(&p, wrong).unwrap();
            // `<!-- poly: EXPR -->` after the heading: the rule shows under `--poly EXPR`.
            let heading = text.find("## Wrong").unwrap();
            let poly = text[heading..]
                .lines()
                .nth(1)
                .and_then(|l| l.trim().strip_prefix("<!-- poly:"))
                .map(|r| r.trim_end_matches("-->").trim().to_string());
            let mut args = vec!["check", "--format", "json"];
            if let Some(expr) = &poly {
                args.extend(["--poly", expr.as_str()]);
            }
            args.push(p.to_str().unwrap());
            let o = dyn_cmd(&args);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                out.contains(&format!("\"code\":\"{}\"", code.id)),
                "{}: wrong example does not report it:\n{}",
                code.id,
                text_of(&o)
            );
        }
        if let Some(fixed) = block("## Fixed") {
            let p = tmp.join(format!("{}_fixed.dyn", code.id));
            std::fs::write(&p, fixed).unwrap();
            let o = dyn_cmd(&["check", p.to_str().unwrap()]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}: fixed example has errors:\n{}",
                code.id,
                text_of(&o)
            );
            if code.id.starts_with('W') {
                assert!(
                    !text_of(&o).contains(&format!("[{}]", code.id)),
                    "{}: fixed example still warns",
                    code.id
                );
            }
        }
    }
}

fn text_of(o: &Output) -> String {
    text(o)
}

/// Every example with a run block runs (short horizon) and writes a finite CSV trace.
#[test]
fn examples_run() {
    let mut ran = 0;
    for f in dyn_files(&repo().join("examples")) {
        let src = std::fs::read_to_string(&f).unwrap();
        if !src.lines().any(|l| l.trim_start().starts_with("run "))
            || src.starts_with("// expect-error")
        {
            continue;
        }
        let horizon: &[&str] = if src.lines().any(|l| l.trim_start().starts_with("steps ")) {
            &["--steps", "5", "--every", "1"]
        } else {
            &["--until", "0.5", "--every", "0.1"]
        };
        let mut args = vec!["run", f.to_str().unwrap()];
        args.extend_from_slice(horizon);
        let o = dyn_cmd(&args);
        assert_eq!(o.status.code(), Some(0), "{}: {}", f.display(), text(&o));
        let csv = String::from_utf8_lossy(&o.stdout);
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("t,"), "{}: header {header}", f.display());
        let cols = header.split(',').count();
        let rows: Vec<&str> = lines.collect();
        assert!(rows.len() >= 2, "{}: {} rows", f.display(), rows.len());
        for r in &rows {
            let vals: Vec<f64> = r.split(',').map(|x| x.parse::<f64>().unwrap()).collect();
            assert_eq!(vals.len(), cols);
            assert!(vals.iter().all(|v| v.is_finite()), "{}: {r}", f.display());
        }
        ran += 1;
    }
    assert!(ran >= 5, "examples with run blocks: {ran}");
}

#[test]
fn lotka_volterra_example_starts_from_its_initial_state() {
    let o = dyn_cmd(&["run", "examples/lotka_volterra.dyn", "--until", "0.2"]);
    let csv = String::from_utf8_lossy(&o.stdout);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("t,prey,predators"));
    assert_eq!(lines.next(), Some("0,10,5"));
}

#[test]
fn run_errors_are_clear() {
    let o = dyn_cmd(&["run", "examples/lotka_volterra.dyn", "--param", "foxes.k=1"]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("E0082") && t.contains("foxes.c"), "{t}");
    let o = dyn_cmd(&["run", "examples/lotka_volterra.dyn", "--param", "foxes.c"]);
    assert_eq!(o.status.code(), Some(2));
    let o = dyn_cmd(&["run", "examples/lotka_volterra.dyn", "--method", "leapfrog"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn input_streams_feed_the_root_inputs() {
    let o = dyn_cmd(&[
        "run",
        "tests/data/accumulate.dyn",
        "--system",
        "Acc",
        "--steps",
        "3",
        "--input",
        "tests/data/u.csv",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "t,total\n0,0\n1,1\n2,3\n3,6.5\n"
    );
    let o = dyn_cmd(&[
        "run",
        "tests/data/accumulate.dyn",
        "--system",
        "Acc",
        "--steps",
        "4",
        "--input",
        "tests/data/u.csv",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("the input stream has 3 rows but the run takes 4 steps"),
        "{}",
        text(&o)
    );
    let o = dyn_cmd(&[
        "run",
        "tests/data/accumulate.dyn",
        "--system",
        "Acc",
        "--steps",
        "2",
        "--input",
        "tests/data/bad_number.csv",
    ]);
    assert!(
        text(&o).contains("row 2, column `u`: `x` is not a number"),
        "{}",
        text(&o)
    );
    let o = dyn_cmd(&[
        "run",
        "tests/data/accumulate.dyn",
        "--system",
        "Acc",
        "--steps",
        "1",
        "--input",
        "tests/data/no_column.csv",
    ]);
    assert!(
        text(&o).contains("no column `u` (its columns: v)"),
        "{}",
        text(&o)
    );
    let o = dyn_cmd(&[
        "run",
        "tests/data/accumulate.dyn",
        "--system",
        "Acc",
        "--steps",
        "1",
        "--input",
        "tests/data/missing.csv",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("cannot read"), "{}", text(&o));
}

/// Both backends read input streams the same way (discrete and continuous, short files).
#[test]
fn input_streams_agree_between_backends() {
    let cases: [&[&str]; 5] = [
        // An output reading the input, recorded every step (the JIT once showed the row
        // before at the end of each of its chunks).
        &[
            "run",
            "tests/data/echo.dyn",
            "--system",
            "Echo",
            "--steps",
            "3",
            "--input",
            "tests/data/u.csv",
        ],
        &[
            "run",
            "tests/data/accumulate.dyn",
            "--system",
            "Acc",
            "--steps",
            "3",
            "--input",
            "tests/data/u.csv",
        ],
        &[
            "run",
            "tests/data/accumulate.dyn",
            "--system",
            "Acc",
            "--steps",
            "4",
            "--input",
            "tests/data/u.csv",
        ],
        &[
            "run",
            "tests/data/leaky.dyn",
            "--system",
            "Leaky",
            "--until",
            "5",
            "--dt",
            "0.1",
            "--method",
            "rk4",
            "--every",
            "0.5",
            "--input",
            "tests/data/drive.csv",
        ],
        &[
            "run",
            "tests/data/leaky.dyn",
            "--system",
            "Leaky",
            "--until",
            "7",
            "--dt",
            "0.1",
            "--input",
            "tests/data/drive.csv",
        ],
    ];
    for args in cases {
        let run = |backend: &str| {
            let mut a = args.to_vec();
            a.extend(["--backend", backend]);
            dyn_cmd(&a)
        };
        let (i, j) = (run("interp"), run("jit"));
        assert_eq!(i.status.code(), j.status.code(), "{args:?}");
        assert_eq!(i.stdout, j.stdout, "{args:?}");
        assert_eq!(i.stderr, j.stderr, "{args:?}");
        assert!(
            String::from_utf8_lossy(&i.stdout).lines().count() >= 2,
            "{args:?}: {}",
            text(&i)
        );
    }
    // The record after step k shows row k's input; the last one (k = steps) the last row read.
    let o = dyn_cmd(&[
        "run",
        "tests/data/echo.dyn",
        "--system",
        "Echo",
        "--steps",
        "3",
        "--input",
        "tests/data/u.csv",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "t,y,total\n0,1,0\n1,2,1\n2,3.5,3\n3,3.5,6.5\n"
    );
}

#[test]
fn plots_are_written_as_svg_and_png() {
    let dir = std::env::temp_dir().join(format!("dyn-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for ext in ["svg", "png"] {
        let p = dir.join(format!("lv.{ext}"));
        let o = dyn_cmd(&[
            "run",
            "examples/lotka_volterra.dyn",
            "--until",
            "2",
            "--plot",
            p.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.len() > 1000, "{ext} plot is {} bytes", bytes.len());
        if ext == "svg" {
            let s = String::from_utf8_lossy(&bytes);
            assert!(s.contains("<svg") && s.contains("prey") && s.contains("predators"));
        } else {
            assert_eq!(&bytes[1..4], b"PNG");
        }
    }
    let o = dyn_cmd(&[
        "run",
        "examples/lotka_volterra.dyn",
        "--until",
        "1",
        "--plot",
        dir.join("x.gif").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// The JIT reproduces the interpreter's traces to the bit on every example and conformance
/// program it supports (the others must be reported as unsupported, not run wrongly).
#[test]
fn jit_traces_equal_interpreter_traces() {
    let mut files = dyn_files(&repo().join("examples"));
    files.extend(dyn_files(&repo().join("../shared/conformance/ok")));
    let mut compared = 0;
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        if !src.lines().any(|l| l.trim_start().starts_with("run ")) {
            continue;
        }
        let file = f.to_str().unwrap();
        // Short horizons keep the interpreter quick; the recording follows the run block.
        let horizon: &[&str] = if src.lines().any(|l| l.trim_start().starts_with("steps ")) {
            &["--steps", "20"]
        } else {
            &["--until", "3"]
        };
        let run = |backend: &str| {
            let mut args = vec!["run", file, "--backend", backend];
            args.extend_from_slice(horizon);
            dyn_cmd(&args)
        };
        let (interp, jit) = (run("interp"), run("jit"));
        if jit.status.code() == Some(2) && text(&jit).contains("does not support") {
            continue;
        }
        assert_eq!(
            jit.status.code(),
            interp.status.code(),
            "{file}: {}",
            text(&jit)
        );
        assert_eq!(
            String::from_utf8_lossy(&jit.stdout),
            String::from_utf8_lossy(&interp.stdout),
            "{file}: traces differ"
        );
        compared += 1;
    }
    assert!(compared >= 4, "compared {compared} programs");
    // A model the JIT does not support yet is refused with --backend jit and run by `auto`.
    let o = dyn_cmd(&["run", "tests/data/dynamic_index.dyn", "--backend", "jit"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("does not support an index computed from the model's values"));
    let o = dyn_cmd(&["run", "tests/data/dynamic_index.dyn"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("6,14\n"));
}

/// A NaN found by the JIT is reported like the interpreter reports it.
#[test]
fn jit_reports_non_finite_state_like_the_interpreter() {
    let dir = std::env::temp_dir().join(format!("dyn-nan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("blow.dyn");
    std::fs::write(&p, "system Blow : { out x: Real } {\n  state x: Real = 1.0\n  out x = x\n  der x = x * x\n}\nsystem Top : { out y: Real } {\n  box b: Blow\n  out y = b.x\n}\nrun Top {\n  until 10.0\n  method euler(dt = 0.1)\n  record y every 0.1\n}\n").unwrap();
    let i = dyn_cmd(&["run", p.to_str().unwrap(), "--backend", "interp"]);
    let j = dyn_cmd(&["run", p.to_str().unwrap(), "--backend", "jit"]);
    assert_eq!(i.status.code(), Some(1));
    assert_eq!(j.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&i.stderr),
        String::from_utf8_lossy(&j.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&i.stdout),
        String::from_utf8_lossy(&j.stdout),
        "the trace so far is the same"
    );
    assert!(String::from_utf8_lossy(&j.stderr).contains("state `b.x` became NaN or infinite"));
}

/// Every code block tagged `dyn` in README.md and docs/*.md is a whole program that checks
/// without errors (fragments are left untagged), so the documentation cannot rot.
#[test]
fn documentation_dyn_blocks_check() {
    let tmp = std::env::temp_dir().join(format!("dyn-docs-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("```dyn\n") {
            let body = &rest[at + 7..];
            let end = body.find("```").expect("a closed block");
            let p = tmp.join(format!("block{checked}.dyn"));
            std::fs::write(&p, &body[..end]).unwrap();
            let o = dyn_cmd(&["check", p.to_str().unwrap()]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}: block {}:\n{}\n{}",
                f.display(),
                checked,
                &body[..end],
                text_of(&o)
            );
            checked += 1;
            rest = &body[end + 3..];
        }
    }
    assert!(checked >= 3, "tagged blocks checked: {checked}");
}
