//! The generated `init` (what ahead-of-time compiled models run instead of the interpreter's
//! `Sim::new`) gives the interpreter's params, initial states, initial signals, event flags
//! and generator state, to the bit, on every system of the examples and test models, with
//! and without `--param` overrides and input values.

use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;
use dyn_interp::run::{RunSpec, Sim, Stream};
use dyn_ir::flat::Flat;
use dyn_ir::numeric::Noise;
use std::path::{Path, PathBuf};

type Init =
    unsafe extern "C" fn(*mut f64, *mut f64, *mut f64, *mut f64, *const f64, *const f64, *mut f64);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every system of `src` that the code generator supports, flattened.
fn flats(name: &str, src: String) -> Vec<(String, Flat)> {
    let stdlib = dyn_check::modules::Stdlib::Dir(repo().join("stdlib"));
    let path = repo().join(name);
    let checked = dyn_check::check_source(name, Some(path), src, &stdlib);
    if checked.has_errors() {
        assert!(
            name.contains('/'),
            "{}",
            dyn_diag::render_all(&checked.sources, &checked.diagnostics, false)
        );
        return vec![];
    }
    let mut out = vec![];
    for (_, sig) in &checked.systems {
        let Ok(flat) = dyn_ir::lower(&checked, sig).and_then(dyn_ir::flat::flatten) else {
            continue;
        };
        if dyn_jit::supported(&flat).is_ok() {
            out.push((format!("{name}: {}", sig.name), flat));
        }
    }
    out
}

/// The names of the root's input columns (tensors expand to `u[i]`).
fn input_names(flat: &Flat) -> Vec<String> {
    let g = &flat.groups[0];
    let sys = &flat.program.systems[g.system as usize];
    let mut v = vec![];
    for p in &sys.inputs {
        let n = dyn_ir::system::slots(&p.shape);
        if p.shape.is_empty() {
            v.push(p.name.clone());
        } else {
            v.extend((0..n).map(|i| format!("{}[{i}]", p.name)));
        }
    }
    v
}

/// Runs the generated init and compares its buffers with `Sim::new`'s.
fn compare(label: &str, flat: &Flat, spec: &RunSpec, inputs: &[f64]) {
    let sim = match Sim::new(flat, spec) {
        Ok(s) => s,
        // An evaluation error at init time (not what this test is about).
        Err(_) => return,
    };
    let mut fb = settings::builder();
    fb.set("opt_level", "speed").unwrap();
    let isa = cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(fb))
        .unwrap();
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, _, ptr) in dyn_jit::shims::SHIMS {
        jb.symbol(*name, *ptr);
    }
    jb.symbol("dyn_randn", dyn_jit::shims::dyn_randn as *const u8);
    let mut module = JITModule::new(jb);
    let emitted = dyn_jit::emit_init(&mut module, flat, "init").expect("init emits");
    module.finalize_definitions().unwrap();
    let code = module.get_finalized_function(emitted.init);
    // SAFETY: `init` was just defined with seven pointer parameters and no result.
    let init: Init = unsafe { std::mem::transmute::<*const u8, Init>(code) };
    // Garbage in every output buffer: init must set every slot itself.
    let mut x = vec![7.5; flat.n_state.max(1)];
    let mut p = vec![-3.25; flat.n_param.max(1)];
    let mut s = vec![1e300; flat.n_signal.max(1)];
    let mut flags = vec![9.0; dyn_jit::n_events(flat).max(1)];
    let over = dyn_jit::override_words(flat, &spec.params).expect("known params");
    let mut rng = Noise::new(spec.seed);
    let mut scratch = vec![0.0f64; emitted.scratch.max(1)];
    let mut io = [0.0f64; dyn_jit::driver::io::WORDS];
    let word = |at: i32| at as usize / 8;
    io[word(dyn_jit::driver::io::RNG)] = f64::from_bits(&mut rng as *mut Noise as u64);
    io[word(dyn_jit::driver::io::SCALE)] = 1.0;
    io[word(dyn_jit::driver::io::SCRATCH)] = f64::from_bits(scratch.as_mut_ptr() as u64);
    let ins: Vec<f64> = if inputs.is_empty() {
        vec![0.0]
    } else {
        inputs.to_vec()
    };
    // SAFETY: every buffer has the length the generated code indexes (n_state, n_param,
    // n_signal, the event flags, two words per param slot, one per root input slot, the
    // io words), and the RNG word points at a live generator.
    unsafe {
        init(
            x.as_mut_ptr(),
            p.as_mut_ptr(),
            s.as_mut_ptr(),
            flags.as_mut_ptr(),
            over.as_ptr(),
            ins.as_ptr(),
            io.as_mut_ptr(),
        );
    }
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&x[..flat.n_state]), bits(&sim.x), "{label}: states");
    assert_eq!(
        bits(&p[..flat.n_param]),
        bits(&sim.m.params),
        "{label}: params"
    );
    assert_eq!(
        bits(&s[..flat.n_signal]),
        bits(&sim.m.sig),
        "{label}: signals"
    );
    let want: Vec<f64> = sim
        .event_flags()
        .iter()
        .map(|f| if *f { 1.0 } else { 0.0 })
        .collect();
    assert_eq!(&flags[..want.len()], &want[..], "{label}: event flags");
    let mut sim = sim;
    // SAFETY: the generator of the live `sim`, read once.
    let theirs = unsafe { *sim.m.rng_ptr() };
    assert_eq!(rng, theirs, "{label}: generator state");
}

fn check_file(name: &str, src: String) -> usize {
    let mut n = 0;
    for (label, flat) in flats(name, src) {
        if dyn_ir::linalg::used_in(&flat.program).is_some() {
            // `emit_init` serves `dyn build`, which refuses `solve` and `spectral_radius`;
            // compiling the reservoir's initial 500 × 500 `uniform` draw as one straight-line
            // function would also add a minute or more to this test.
            continue;
        }
        let names = input_names(&flat);
        let vals: Vec<f64> = (0..names.len()).map(|j| 0.25 * (j as f64 + 1.0)).collect();
        let stream = (!names.is_empty()).then(|| Stream {
            columns: names.clone(),
            rows: vec![vals.clone()],
        });
        let base = RunSpec {
            stream,
            seed: 11,
            ..RunSpec::default()
        };
        compare(&label, &flat, &base, &vals);
        // Every param overridden (the last path twice: the later value wins).
        let paths = dyn_jit::param_slots(&flat);
        let mut params: Vec<(String, f64)> = paths
            .iter()
            .enumerate()
            .map(|(i, (p, _, _))| (p.clone(), 0.5 + i as f64))
            .collect();
        if let Some((p, _, _)) = paths.last() {
            params.push((p.clone(), -2.0));
        }
        let spec = RunSpec { params, ..base };
        compare(&format!("{label} (overrides)"), &flat, &spec, &vals);
        n += 1;
    }
    n
}

#[test]
fn init_equals_the_interpreter_on_the_examples() {
    let mut n = 0;
    for dir in ["examples", "tests/data"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "dyn"))
            .collect();
        files.sort();
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap();
            let name = format!("{dir}/{}", f.file_name().unwrap().to_string_lossy());
            // The `dyn` binary runs on a 256 MB stack (crates/cli/src/main.rs); deep models
            // such as tests/data/flow_grad.dyn need more than a test thread's 2 MB.
            n += std::thread::Builder::new()
                .stack_size(256 << 20)
                .spawn(move || check_file(&name, src))
                .unwrap()
                .join()
                .unwrap();
        }
    }
    assert!(n >= 10, "systems compared: {n}");
}

/// Params that depend on params (defaults, box arguments, overrides seen by the boxes
/// inside), states that depend on params, events, lets and `randn()`
/// in initial values.
#[test]
fn init_follows_params_through_boxes_and_draws_noise_in_order() {
    let src = "
system Leaf : { out y: Real  in u: Real } {
  param a: Real = 2.0
  param b: Real = a * 3.0
  state s: Real = b + 1.0
  state t: Real = b * b + randn()
  let m = a * u + s
  out y = m + t
  der s = -a * s + u
  der t = b - t
  when s > 3.0 { t = 0.0 }
}
system Mid : { out y: Real  in u: Real } {
  param k: Real = 0.5
  box l: Leaf(a = k * 4.0)
  box r[3]: Leaf
  l.u <- u
  for i in 0..3 { r[i].u <- l.y * k }
  out y = l.y + r[2].y
}
system Top : { out y: Real  in u: Real } {
  param g: Real = 1.5
  box m: Mid(k = g)
  m.u <- u + g
  out y = m.y
}
";
    assert_eq!(check_file("inline.dyn", src.to_string()), 3);
}
