//! Interpreter throughput on the FitzHugh–Nagumo ring of `examples/fhn_ring.dyn`
//! (N = 1000 cells, Euler, dt = 0.01, 10,000 steps): state-updates per second, the figure
//! the JIT is measured against. Run: `cargo bench -p dyn-interp --bench interp_ring`.

use dyn_interp::run::{Method, RunSpec, run};
use std::path::Path;
use std::time::Instant;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src = std::fs::read_to_string(root.join("examples/fhn_ring.dyn")).expect("example");
    let stdlib = dyn_check::modules::Stdlib::Dir(root.join("stdlib"));
    let checked = dyn_check::check_source(
        "fhn_ring.dyn",
        Some(root.join("examples/fhn_ring.dyn")),
        src,
        &stdlib,
    );
    assert!(!checked.has_errors());
    let sig = checked
        .systems
        .iter()
        .find(|(_, s)| s.name == "Ring")
        .expect("Ring")
        .1
        .clone();
    let flat = dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .expect("lowers");
    let steps = 10_000u64;
    let spec = RunSpec {
        method: Method::Euler,
        dt: 0.01,
        steps: Some(steps),
        until: None,
        every: Some(100.0),
        ..RunSpec::default()
    };
    let t = Instant::now();
    let mut last = 0.0;
    run(&flat, &spec, &mut |_| {}, &mut |_, v| last = v[0]).expect("runs");
    let secs = t.elapsed().as_secs_f64();
    let updates = flat.n_state as f64 * steps as f64;
    println!(
        "FHN ring: {} state variables × {steps} Euler steps in {secs:.2} s",
        flat.n_state
    );
    println!(
        "  {:.3e} state-updates/s, {:.1} µs per step (v0 at the end: {last:.6})",
        updates / secs,
        secs * 1e6 / steps as f64
    );
}
