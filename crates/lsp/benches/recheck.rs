//! Re-check latency after a one-character edit in a generated 5,000-line file: what the
//! server does between a `didChange` and its `publishDiagnostics` (apply the edit, check,
//! index, convert the diagnostics). Target: under 100 ms. Run with
//! `cargo bench -p dyn-lsp --bench recheck`.

use dyn_check::modules::Stdlib;
use dyn_lsp::analysis::Analysis;
use dyn_lsp::diagnostics;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// About `lines` lines: leaf systems (13 lines each) and one composite wiring them in a
/// chain (two lines per leaf).
fn generate(lines: usize) -> String {
    let n = lines / 15;
    let mut s = String::from(
        "/// Generated for the re-check benchmark.\ninterface Cell { out v: Real  in u: Real }\n\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "/// Cell number {i}.\nsystem C{i} : Cell {{\n  param k: Real = 0.{i}\n  param tau: Real = 10.0\n  state v0: Real = 0.0\n  state w: Real = 1.0\n  let drive = k * u - w\n  let leak = v0 / tau\n  out v = v0\n  der v0 = drive - leak\n  der w = 0.1 * (v0 - w)\n}}\n\n"
        ));
    }
    s.push_str("system Chain : { out y: Real } {\n");
    for i in 0..n {
        s.push_str(&format!("  box c{i}: C{i}\n"));
    }
    for i in 0..n {
        let prev = if i == 0 { n - 1 } else { i - 1 };
        s.push_str(&format!("  c{i}.u <- c{prev}.v\n"));
    }
    s.push_str("  out y = c0.v\n}\n");
    s
}

fn main() {
    let text = generate(5_000);
    let lines = text.lines().count();
    let uri = lsp_types::Uri::from_str("file:///tmp/bench.dyn").expect("a valid URI");
    let stdlib = Stdlib::locate();
    // The edit: `k * u` → `k * u` with `k` retyped as `K` and back, alternating, so every
    // run checks a changed text (one has an error, one does not).
    let at = text.find("k * u").expect("generated text has `k * u`");
    let mut times = Vec::new();
    let mut check_only = Vec::new();
    for i in 0..12 {
        let mut t = text.clone();
        let t0 = Instant::now();
        if i % 2 == 1 {
            t.replace_range(at..at + 1, "K");
        }
        let a = Analysis::new(&uri, t.clone(), &stdlib);
        let d = diagnostics::for_root(&a, &uri);
        let dt = t0.elapsed();
        assert_eq!(
            d.is_empty(),
            i % 2 == 0,
            "diagnostics only after the breaking edit"
        );
        times.push(dt);
        let t1 = Instant::now();
        let _ = dyn_check::check_source("bench.dyn", None, t, &stdlib);
        check_only.push(t1.elapsed());
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "re-check after a one-character edit, {lines} lines: median {:.1} ms (check alone {:.1} ms, index and conversion the rest)",
        med(&mut times).as_secs_f64() * 1e3,
        med(&mut check_only).as_secs_f64() * 1e3
    );
}
