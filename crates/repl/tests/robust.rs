//! No input ends a session with a panic: every file of the diagnostics corpus and every
//! example, whole and line by line, as definitions, expressions and command arguments.

use dyn_check::modules::Stdlib;
use dyn_repl::session::{Io, Session, Status};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn session() -> Session {
    Session::new(Stdlib::Dir(root().join("stdlib")), false)
}

fn feed(s: &mut Session, text: &str) -> Status {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    s.process(text, &mut io)
}

fn files() -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for dir in ["tests/ui/fail", "tests/ui/pass", "examples"] {
        let Ok(rd) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "dyn") {
                v.push(e.path());
            }
        }
    }
    v.sort();
    assert!(v.len() > 20, "the corpus was not found");
    v
}

#[test]
fn corpus_files_as_inputs_never_panic() {
    let mut s = session();
    for f in files() {
        let text = std::fs::read_to_string(&f).unwrap();
        feed(&mut s, &text);
        // A session that received the file keeps working.
        assert_eq!(feed(&mut s, "1 + 1"), Status::Ok, "{}", f.display());
    }
}

#[test]
fn corpus_lines_as_expressions_and_commands_never_panic() {
    let mut s = session();
    for f in files().iter().step_by(3) {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()).take(12) {
            let l = line.trim();
            for input in [
                l.to_string(),
                format!(":type {l}"),
                format!(":poly {l}"),
                format!(":run {l}"),
                format!(":check {l}"),
            ] {
                feed(&mut s, &input);
            }
        }
    }
    assert_eq!(feed(&mut s, "2 * 3"), Status::Ok);
}

#[test]
fn examples_run_from_the_session() {
    for (file, system) in [
        ("examples/lotka_volterra.dyn", "LotkaVolterra"),
        ("examples/counter.dyn", ""),
    ] {
        let mut s = session();
        let path = root().join(file);
        assert_eq!(
            feed(&mut s, &format!(":load {}", path.display())),
            Status::Ok
        );
        if !system.is_empty() {
            assert_eq!(feed(&mut s, &format!(":run {system} until 1")), Status::Ok);
        }
    }
}

#[test]
fn completion_highlighting_and_validation_never_panic() {
    let s = session();
    for f in files().iter().step_by(4) {
        let text = std::fs::read_to_string(f).unwrap();
        let _ = dyn_repl::helper::input_complete(&text);
        for line in text.lines().take(30) {
            let _ = dyn_repl::highlight::highlight(line);
            let _ = dyn_repl::helper::input_complete(line);
            for pos in 0..=line.len() + 1 {
                let _ = s.index.borrow().complete(line, pos);
            }
        }
    }
}
