//! Checker scaling: a generated composite of N boxes of three kinds, chained and with
//! feedback through state, checked end to end (parse, resolve, type, wiring, causality).
//! Prints the time for N = 1,000 … 10,000 and the time per box, which must stay flat
//! (near-linear scaling). Run: `cargo bench -p dyn-check --bench check_scale`.

use dyn_check::modules::Stdlib;
use std::fmt::Write;
use std::time::{Duration, Instant};

fn program(n: usize) -> String {
    let mut s = String::from(
        "interface Link { out y: Real  in x: Real }\n\
         system Leaky : Link { param k: Real = 0.5  state v: Real = 0.0  out y = v  der v = -k * v + x }\n\
         system Gain : Link { param g: Real = 2.0  out y = g * x }\n\
         system Sat : Link { out y = if x > 1.0 then 1.0 else x }\n\
         system Big : { out last: Real } {\n",
    );
    let kinds = ["Leaky", "Gain", "Sat"];
    for i in 0..n {
        // Every third box is stateful, so the feed-through chain is broken regularly.
        writeln!(s, "  box b{i}: {}", kinds[i % 3]).unwrap();
    }
    for i in 0..n {
        let src = if i == 0 {
            format!("b{}.y", n - 1)
        } else {
            format!("b{}.y", i - 1)
        };
        writeln!(s, "  b{i}.x <- 0.5 * {src} + 0.1").unwrap();
    }
    writeln!(s, "  out last = b{}.y\n}}", n - 1).unwrap();
    s
}

fn time(n: usize) -> Duration {
    let src = program(n);
    let stdlib = Stdlib::locate();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let c = dyn_check::check_source("big.dyn", None, src.clone(), &stdlib);
        let e = t.elapsed();
        assert!(!c.has_errors(), "generated program must check clean");
        best = best.min(e);
    }
    best
}

fn main() {
    println!("{:>8} {:>12} {:>14}", "boxes", "check (ms)", "µs per box");
    let mut base = None;
    for n in [1_000, 2_000, 5_000, 10_000] {
        let t = time(n);
        let per = t.as_secs_f64() * 1e6 / n as f64;
        base.get_or_insert(per);
        println!("{n:>8} {:>12.1} {per:>14.2}", t.as_secs_f64() * 1e3);
    }
    let t1 = time(1_000).as_secs_f64();
    let t10 = time(10_000).as_secs_f64();
    println!(
        "scaling 1,000 → 10,000 boxes: time × {:.2} (linear would be × 10)",
        t10 / t1
    );
}
