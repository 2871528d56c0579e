//! `dyn repl` end to end: piped scripts (exact output, exit codes) and interactive sessions
//! through a pseudo-terminal (rexpect).

use rexpect::session::{PtySession, spawn_command};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dyn");
/// Generous: a debug binary on a loaded 2-core machine.
const TIMEOUT_MS: u64 = 30_000;

const COUNTER: &[&str] = &[
    "system Counter : { out count: Int  in inc: Int } {",
    "  state n: Int = 0",
    "  out count = n",
    "  next n = n + inc",
    "}",
];

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dyn-repl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn piped(script: &str) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn piped_script_exact_output() {
    let script = format!(
        "{}\nsystem Top : {{ out c: Int }} {{\n  box k: Counter\n  k.inc <- 1\n  out c = k.count\n}}\n:type Top\ninterface P = y^2 + y\n:poly P <| P\n2 * 21\n:run Top 2\n",
        COUNTER.join("\n")
    );
    let (code, out, err) = piped(&script);
    assert_eq!(err, "");
    let expected = "\
defined system Counter
defined system Top
system Top : { out c: Int } (discrete)
  box k: Counter
defined interface P
P <| P = y^4 + 2y^3 + 2y^2 + y
42 : Int
t  c
0  0
1  1
2  2
2 ┤                                                           *
  ┤
  ┤
  ┤
  ┤                              *
  ┤
  ┤
  ┤
  ┤
0 ┤*
  └────────────────────────────────────────────────────────────
   0                                                           2
   * c
";
    assert_eq!(out, expected);
    assert_eq!(code, 0);
}

#[test]
fn piped_script_exits_nonzero_on_error() {
    let (code, out, err) = piped("1 + 1\nconst B: Int = 1.5\n2 + 2\n");
    assert_eq!(out, "2 : Int\n");
    assert!(
        err.contains("[E0020] Error: expected Int, found Real"),
        "{err}"
    );
    assert!(err.contains("<repl:2>:1:16"), "{err}");
    assert_eq!(code, 1);
}

#[test]
fn repl_loads_files_given_on_the_command_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/counter.dyn");
    let mut child = Command::new(BIN)
        .arg("repl")
        .arg(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b":check\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("counter.dyn: "), "{stdout}");
    assert!(stdout.ends_with("session: ok\n"), "{stdout}");
    assert_eq!(out.status.code(), Some(0));
}

/// A terminal session of `dyn repl` with its own history file.
fn spawn(history: &Path) -> PtySession {
    let mut cmd = Command::new(BIN);
    cmd.arg("repl")
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env("DYN_REPL_HISTORY", history);
    let mut p = spawn_command(cmd, Some(TIMEOUT_MS)).unwrap();
    p.exp_string("dyn> ").unwrap();
    p
}

fn define_counter(p: &mut PtySession) {
    for l in COUNTER {
        p.send_line(l).unwrap();
    }
    p.exp_string("defined system Counter").unwrap();
}

fn define_top(p: &mut PtySession) {
    for l in [
        "system Top : { out c: Int } {",
        "  box k: Counter",
        "  k.inc <- 1",
        "  out c = k.count",
        "}",
    ] {
        p.send_line(l).unwrap();
    }
    p.exp_string("defined system Top").unwrap();
}

fn quit(mut p: PtySession) {
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn pty_multi_line_definition_then_type_error_then_fix() {
    let d = temp_dir("multiline");
    let mut p = spawn(&d.join("history"));
    define_counter(&mut p);
    p.send_line("const B: Int = 1.5").unwrap();
    p.exp_string("expected Int, found Real").unwrap();
    p.exp_string("<repl:2>:1:16").unwrap();
    p.send_line("const B: Int = 2").unwrap();
    p.exp_string("defined const B").unwrap();
    p.send_line("B * 21").unwrap();
    p.exp_string("42 : Int").unwrap();
    quit(p);
}

#[test]
fn pty_completes_a_port_after_a_dot() {
    let d = temp_dir("complete");
    let mut p = spawn(&d.join("history"));
    define_counter(&mut p);
    p.send_line("system W : { out c: Int } {").unwrap();
    p.send_line("  box k: Counter").unwrap();
    // `k.in` + Tab completes to `k.inc`, the only in port; the definition then checks.
    p.send("  k.in\t").unwrap();
    p.flush().unwrap();
    p.exp_string("k.inc").unwrap();
    p.send_line(" <- 1").unwrap();
    p.send_line("  out c = k.count").unwrap();
    p.send_line("}").unwrap();
    p.exp_string("defined system W").unwrap();
    quit(p);
}

#[test]
fn pty_poly_and_run() {
    let d = temp_dir("polyrun");
    let mut p = spawn(&d.join("history"));
    p.send_line("interface P = y^2 + y").unwrap();
    p.exp_string("defined interface P").unwrap();
    p.send_line(":poly P <| P").unwrap();
    p.exp_string("P <| P = y^4 + 2y^3 + 2y^2 + y").unwrap();
    define_counter(&mut p);
    define_top(&mut p);
    p.send_line(":run Top 3").unwrap();
    p.exp_string("t  c").unwrap();
    p.exp_string("3  3").unwrap();
    p.exp_string("* c").unwrap();
    quit(p);
}

#[test]
fn pty_ctrl_c_interrupts_a_long_run() {
    let d = temp_dir("ctrlc");
    let mut p = spawn(&d.join("history"));
    define_counter(&mut p);
    define_top(&mut p);
    p.send_line(":run Top 1000000000000").unwrap();
    p.exp_string("Ctrl-C stops it").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    p.send_control('c').unwrap();
    p.exp_string("interrupted at t = ").unwrap();
    p.exp_string("dyn> ").unwrap();
    p.send_line("1 + 1").unwrap();
    p.exp_string("2 : Int").unwrap();
    quit(p);
}

#[test]
fn pty_typed_ahead_lines_are_all_read() {
    let d = temp_dir("typeahead");
    let mut p = spawn(&d.join("history"));
    // Two inputs in one burst: the second arrives while the first is being checked.
    p.send("20 + 1\r30 + 3\r").unwrap();
    p.flush().unwrap();
    p.exp_string("21 : Int").unwrap();
    p.exp_string("33 : Int").unwrap();
    quit(p);
}

#[test]
fn pty_history_is_kept_across_sessions_and_ctrl_d_exits() {
    let d = temp_dir("history");
    let h = d.join("state/history");
    let mut p = spawn(&h);
    p.send_line("20 + 22").unwrap();
    p.exp_string("42 : Int").unwrap();
    // Ctrl-D only once the next prompt is up, so it is read as end of input by the editor.
    p.exp_string("dyn> ").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    let saved = std::fs::read_to_string(&h).unwrap();
    assert!(saved.contains("20 + 22"), "{saved}");
    let mut p = spawn(&h);
    // Up arrow recalls the last line of the previous session.
    p.send("\x1b[A").unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    p.exp_string("42 : Int").unwrap();
    quit(p);
}
