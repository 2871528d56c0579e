//! Scripted sessions run in-process, with exact expected output.

use dyn_check::modules::Stdlib;
use dyn_repl::session::{Io, Session};

/// Runs a script; returns (exit code, stdout, stderr).
fn run(script: &str) -> (u8, String, String) {
    let stdlib = Stdlib::Dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib"));
    let mut s = Session::new(stdlib, false);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = {
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        dyn_repl::script(&mut s, script.as_bytes(), &mut io)
    };
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

const COUNTER: &str = "\
system Counter : { out count: Int  in inc: Int } {
  state n: Int = 0
  out count = n
  next n = n + inc
}
";

#[test]
fn expressions_print_value_and_type() {
    let (code, out, err) = run("1 + 2\n1.5 * 2\n[1.0, 2.0] * 2\n3 > 2 && false\nmax(2, 7)\n");
    assert_eq!(err, "");
    assert_eq!(
        out,
        "3 : Int\n3.0 : Real\n[2.0, 4.0] : Real[2]\nfalse : Bool\n7 : Int\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn definitions_accumulate_and_consts_are_values() {
    let (code, out, err) =
        run("const K = 4\nfn twice(x: Real) -> Real = 2.0 * x\ntwice(K)\n:type twice\n");
    assert_eq!(err, "");
    assert_eq!(
        out,
        "defined const K\ndefined fn twice\n8.0 : Real\nfn twice(x: Real) -> Real\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn multi_line_definition_and_run() {
    let script = format!(
        "{COUNTER}system Top : {{ out c: Int }} {{\n  box k: Counter\n  k.inc <- 2\n  out c = k.count\n}}\n:run Top 3\n"
    );
    let (code, out, err) = run(&script);
    assert_eq!(err, "");
    let expected = "\
defined system Counter
defined system Top
t  c
0  0
1  2
2  4
3  6
6 ┤                                                           *
  ┤
  ┤
  ┤                                       *
  ┤
  ┤
  ┤                    *
  ┤
  ┤
0 ┤*
  └────────────────────────────────────────────────────────────
   0                                                           3
   * c
";
    assert_eq!(out, expected);
    assert_eq!(code, 0);
}

#[test]
fn poly_normal_forms() {
    let (code, out, err) = run("interface P = y^2 + y\n:poly P <| P\n:poly P (*) P\n:poly P + 1\n");
    assert_eq!(err, "");
    assert_eq!(
        out,
        "defined interface P\nP <| P = y^4 + 2y^3 + 2y^2 + y\nP (*) P = y^4 + 2y^2 + y\nP + 1 = y^2 + y + 1\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn a_type_error_points_into_the_input_and_stops_the_script() {
    let (code, out, err) =
        run("const A = 1\nsystem Bad : { out x: Int } {\n  out x = 1.5\n}\nconst B = 2\n");
    assert_eq!(out, "defined const A\n");
    assert!(
        err.contains("[E0020] Error: expected Int, found Real"),
        "{err}"
    );
    assert!(err.contains("<repl:2>:2:11"), "{err}");
    assert!(err.contains(" 2 │   out x = 1.5"), "{err}");
    assert_eq!(code, 1);
}

#[test]
fn redefinition_lists_broken_dependents_and_replaces() {
    let script = format!(
        "{COUNTER}system Top : {{ out c: Int }} {{\n  box k: Counter\n  k.inc <- 1\n  out c = k.count\n}}\nsystem Counter : {{ out count: Int }} {{\n  state n: Int = 0\n  out count = n\n  next n = n + 1\n}}\n:check Counter\n"
    );
    let (code, out, err) = run(&script);
    assert_eq!(
        out,
        "defined system Counter\ndefined system Top\nredefined system Counter\nsystem Counter: ok\n"
    );
    assert!(
        err.starts_with("warning: `Top` no longer checks:\n"),
        "{err}"
    );
    assert!(err.contains("box `k` has no in port `inc`"), "{err}");
    assert!(err.contains("<repl:2>:3:5"), "{err}");
    assert_eq!(code, 0);
}

#[test]
fn a_fixed_dependent_checks_again() {
    let script = format!(
        "{COUNTER}system Top : {{ out c: Int }} {{\n  box k: Counter\n  k.inc <- 1\n  out c = k.count\n}}\nsystem Counter : {{ out count: Int }} {{\n  state n: Int = 0\n  out count = n\n  next n = n + 1\n}}\n{COUNTER}"
    );
    let (code, out, _) = run(&script);
    assert_eq!(
        out,
        "defined system Counter\ndefined system Top\nredefined system Counter\nredefined system Counter\n`Top` checks again\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn poly_error_points_at_the_command_line() {
    let (code, out, err) = run(":poly Q <| y\n");
    assert_eq!(out, "");
    assert!(err.contains("unknown type `Q`"), "{err}");
    assert!(err.contains("<repl:1>:1:7"), "{err}");
    assert_eq!(code, 1);
}

#[test]
fn stdlib_import_type_and_params() {
    let script = "use std.neurons.FHN\nsystem Cell : { out v: Real } {\n  box n: FHN(I = 0.5)\n  n.left <- 0.0\n  n.right <- 0.0\n  out v = n.v\n}\n:set n.eps=0.1\n:params Cell\n";
    let (code, out, err) = run(script);
    assert_eq!(err, "");
    assert_eq!(
        out,
        "imported std.neurons.FHN\ndefined system Cell\nn.eps = 0.1\nn.eps = 0.1  (set)\nn.a = 0.7\nn.b = 0.8\nn.I = 0.5\nn.k = 0.1\nn.v0 = 0.0\nn.w0 = 0.0\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn commands_report_errors_without_panicking() {
    for bad in [
        ":run\n",
        ":run Nope\n",
        ":ir\n",
        ":params\n",
        ":set x\n",
        ":set a=b\n",
        ":plot out.svg\n",
        ":load /nonexistent/file.dyn\n",
        ":reload\n",
        ":frobnicate\n",
        ":type 1 +\n",
        "1 +\n",
        "(\n",
        ":check Nope\n",
        "system {\n",
        "}\n",
        "[1, 2][5]\n",
    ] {
        let (code, _, err) = run(bad);
        assert_eq!(code, 1, "{bad:?}");
        assert!(!err.is_empty(), "{bad:?}");
    }
}

#[test]
fn save_and_load_round_trip() {
    let dir = std::env::temp_dir().join(format!("dyn-repl-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.dyn");
    let f = file.display();
    let script =
        format!("/// Doubles.\nfn twice(x: Real) -> Real = 2.0 * x\nconst K = 3\n:save {f}\n");
    let (code, out, err) = run(&script);
    assert_eq!(err, "");
    assert_eq!(code, 0);
    assert!(
        out.ends_with(&format!("saved 2 definitions to {f}\n")),
        "{out}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        "/// Doubles.\nfn twice(x: Real) -> Real = 2.0 * x\n\nconst K = 3\n"
    );
    let (code, out, err) = run(&format!(":load {f}\ntwice(K)\n:reload\n"));
    assert_eq!(err, "");
    assert_eq!(
        out,
        format!("loaded {f}: 2 definitions\n6.0 : Real\nloaded {f}: 2 definitions\n")
    );
    assert_eq!(code, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plot_writes_svg_of_the_last_run() {
    let dir = std::env::temp_dir().join(format!("dyn-repl-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.svg");
    let script = format!(
        "{COUNTER}system Top : {{ out c: Int }} {{\n  box k: Counter\n  k.inc <- 1\n  out c = k.count\n}}\n:run Top 4\n:plot {}\n",
        file.display()
    );
    let (code, out, err) = run(&script);
    assert_eq!(err, "");
    assert_eq!(code, 0);
    assert!(out.ends_with(&format!("wrote {}\n", file.display())));
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quit_ends_the_script() {
    let (code, out, _) = run("1\n:quit\n2\n");
    assert_eq!(out, "1 : Int\n");
    assert_eq!(code, 0);
}

#[test]
fn check_a_lens_and_describe_interfaces() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/analogy.dyn");
    let script = format!(
        ":load {}\n:check wire_as_nerve_cell\ninterface Q = 2 y^3 + y\n:type Q\n:type wire_as_nerve_cell\n",
        file.display()
    );
    let (code, out, err) = run(&script);
    assert_eq!(err, "");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("loaded "));
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [
            "lens wire_as_nerve_cell: the analogy type-checks",
            "defined interface Q",
            "interface Q : 2 y^3 + y = 2y^3 + y",
            "lens wire_as_nerve_cell : Wire -> NerveCell",
        ]
    );
    assert_eq!(code, 0);
}

#[test]
fn ir_of_a_system() {
    let (code, out, err) = run(&format!("{COUNTER}:ir Counter\n"));
    assert_eq!(err, "");
    assert!(out.contains("system #0 Counter (root): Discrete"), "{out}");
    assert!(out.contains("next n = "), "{out}");
    assert_eq!(code, 0);
}
