//! Differential tests: random well-typed models (arithmetic, comparisons, `if`, math
//! functions, fns, nesting, box arrays with modular wiring, discrete and continuous time,
//! `when` events (under rk45 located by bisection), `randn()` noise)
//! must give the same trace — to the bit — under the JIT and the interpreter, including
//! where and how a state becomes non-finite.

use dyn_interp::run::{Method, RunError, RunSpec};
use proptest::prelude::*;
use std::path::Path;

/// A random expression over the names in `vars`.
fn expr(vars: Vec<&'static str>) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (-30i32..30).prop_map(|k| format!("{:.1}", k as f64 / 10.0)),
        proptest::sample::select(vars).prop_map(|v| v.to_string()),
        (1i32..5).prop_map(|k| format!("{k}")),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                proptest::sample::select(vec!["+", "-", "*", "/"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                proptest::sample::select(vec![
                    "sin", "cos", "tanh", "abs", "sqrt", "exp", "atan", "floor", "sigmoid"
                ]),
                inner.clone()
            )
                .prop_map(|(f, a)| format!("{f}({a})")),
            (
                proptest::sample::select(vec!["min", "max", "pow"]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(f, a, b)| format!("{f}({a}, {b})")),
            (
                inner.clone(),
                proptest::sample::select(vec!["<", ">=", "=="]),
                inner.clone(),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(a, c, b, t, e)| format!("(if {a} {c} {b} then {t} else {e})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.prop_map(|a| format!("squash({a})")),
        ]
    })
}

fn model(
    discrete: bool,
    n: usize,
    d1: &str,
    d2: &str,
    readout: &str,
    event: Option<&str>,
) -> String {
    let kw = if discrete { "next" } else { "der" };
    // Continuous models may have an event that jumps both states.
    let when = match (discrete, event) {
        (false, Some(cond)) => format!("when {cond} > 0.5 {{ a = 0.1 * a  b = b - 1.0 }}"),
        _ => String::new(),
    };
    format!(
        "fn squash(x: Real) -> Real = x / (1.0 + abs(x))
system Cell : {{ out y: Real  in u: Real }} {{
  param k: Real = 0.3
  state a: Real = 0.5
  state b: Real = -0.25
  let m = k * u
  out y = {readout}
  {kw} a = {d1}
  {kw} b = {d2}
  {when}
}}
system Pair : {{ out y: Real  in u: Real }} {{
  box c: Cell(k = 0.7)
  c.u <- u
  out y = c.y
}}
system Top : {{ out first: Real  out last: Real }} {{
  box cell[{n}]: Pair
  for i in 0..{n} {{
    cell[i].u <- cell[(i + 1) % {n}].y + 0.1 * real(i)
  }}
  out first = cell[0].y
  out last = cell[{last}].y
}}",
        last = n - 1
    )
}

/// Outcome and trace (time and values as bits) of one backend.
type Outcome = (Result<u64, RunError>, Vec<(u64, Vec<u64>)>);

fn traces(src: &str, spec: &RunSpec) -> (Outcome, Outcome) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let checked = dyn_check::check_source(
        "gen.dyn",
        None,
        src.to_string(),
        &dyn_check::modules::Stdlib::Dir(root.join("stdlib")),
    );
    if checked.has_errors() {
        let msgs: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{} {}", d.code.id, d.message))
            .collect();
        panic!("generated model does not check: {msgs:?}\n{src}");
    }
    let sig = checked
        .systems
        .iter()
        .find(|(_, s)| s.name == "Top")
        .expect("Top")
        .1
        .clone();
    let flat = dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .expect("lowers");
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
    let mut a = vec![];
    let ra = dyn_interp::run::run(&flat, spec, &mut |_| {}, &mut |t, v| {
        a.push((t.to_bits(), bits(v)))
    });
    let mut b = vec![];
    let rb = match dyn_jit::run(&flat, spec, &mut |_| {}, &mut |t, v| {
        b.push((t.to_bits(), bits(v)))
    }) {
        Ok(Ok((s, _))) => Ok(s),
        Ok(Err(why)) => panic!("the JIT refused a supported model: {why}"),
        Err(e) => Err(e),
    };
    ((ra, a), (rb, b))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn jit_equals_interpreter(
        discrete in any::<bool>(),
        method in 0u8..3,
        n in 1usize..5,
        d1 in expr(vec!["a", "b", "u", "k", "m"]),
        d2 in expr(vec!["a", "b", "u", "k", "m"]),
        readout in expr(vec!["a", "b", "k"]),
        event in proptest::option::of(expr(vec!["a", "b", "u"])),
        noise in any::<bool>(),
    ) {
        let rk4 = method == 1;
        let rk45 = method == 2 && !discrete;
        // Noise (Euler–Maruyama for continuous models): both backends draw the same sequence.
        let noisy = noise && (discrete || method == 0);
        // Under rk45 an event's crossing is located by bisection on the step length: the
        // generated driver repeats the interpreter's probes, so the traces agree to the bit.
        let d1 = if noisy { format!("{d1} + 0.3 * randn()") } else { d1 };
        // Under rk45 the derivatives are kept bounded (squash), so no random model makes the
        // adaptive step collapse and the run crawl.
        let (d1, d2) = if rk45 { (format!("squash({d1})"), format!("squash({d2})")) } else { (d1, d2) };
        let src = model(discrete, n, &d1, &d2, &readout, event.as_deref());
        let spec = if discrete {
            RunSpec { steps: Some(30), every: Some(3.0), ..RunSpec::default() }
        } else {
            let m = if rk45 { Method::Rk45 } else if rk4 { Method::Rk4 } else { Method::Euler };
            RunSpec { method: m, dt: 0.05, rtol: 1e-6, atol: 1e-8, until: Some(1.5), every: Some(0.1), ..RunSpec::default() }
        };
        let ((ra, a), (rb, b)) = traces(&src, &spec);
        prop_assert_eq!(&a, &b, "traces differ for\n{}", src);
        match (&ra, &rb) {
            (Ok(_), Ok(_)) => {}
            (Err(RunError::NotFinite { name: n1, time: t1, last: l1 }), Err(RunError::NotFinite { name: n2, time: t2, last: l2 })) => {
                prop_assert_eq!(n1, n2);
                prop_assert_eq!(t1.to_bits(), t2.to_bits());
                prop_assert_eq!(l1.to_bits(), l2.to_bits());
            }
            _ => prop_assert!(false, "outcomes differ: {:?} vs {:?}\n{}", ra, rb, src),
        }
    }
}

fn moded(c: &str, r1: &str, r2: &str, r3: &str, d1: &str, d2: &str, d3: &str) -> String {
    format!(
        "fn squash(x: Real) -> Real = x / (1.0 + abs(x))
interface G {{
  mode Up {{ out y: Real  in u: Real }}
  mode Down {{ out y: Real  out z: Real }}
}}
system Top : G {{
  state a: Real = 0.5
  state b: Real = -0.25
  out = if {c} > 0.0 then Up {{ y = {r1} }} else Down {{ y = {r2}, z = {r3} }}
  der match mode {{
    Up => {{ a = {d1}  b = {d2} }}
    Down => {{ a = {d3} }}
  }}
}}"
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Mode-dependent readouts (ports kept from the last mode that showed them) and updates.
    #[test]
    fn jit_equals_interpreter_with_modes(
        c in expr(vec!["a", "b"]),
        r1 in expr(vec!["a", "b"]),
        r2 in expr(vec!["a", "b"]),
        r3 in expr(vec!["a", "b"]),
        d1 in expr(vec!["a", "b", "u"]),
        d2 in expr(vec!["a", "b", "u"]),
        d3 in expr(vec!["a", "b"]),
    ) {
        let src = moded(&c, &r1, &r2, &r3, &d1, &d2, &d3);
        let spec = RunSpec { method: Method::Rk4, dt: 0.05, until: Some(1.5), every: Some(0.1), record: vec!["y".into(), "z".into(), "a".into()], ..RunSpec::default() };
        let ((ra, a), (rb, b)) = traces(&src, &spec);
        prop_assert_eq!(&a, &b, "traces differ for\n{}", src);
        prop_assert_eq!(format!("{ra:?}"), format!("{rb:?}"));
    }
}

/// A random vector expression (shape `[n]`) over the vector states `v`, `w`, the matrix
/// param `W`, the vector param `win` and the scalars `k` and `s`.
fn vexpr() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        (-30i32..30).prop_map(|k| format!("{:.1}", k as f64 / 10.0)),
        Just("k".to_string()),
        Just("sum(v)".to_string()),
        Just("norm(w)".to_string()),
        Just("dot(v, win)".to_string()),
        Just("v[1]".to_string()),
        Just("(W @ w)[0]".to_string()),
        Just("sum(W @ v) / 10.0".to_string()),
        Just("mean(w)".to_string()),
        Just("max(v)".to_string()),
        Just("min(w)".to_string()),
        Just("logsumexp(v)".to_string()),
        Just("real(argmax(w))".to_string()),
        Just("sum(v[1..3])".to_string()),
        Just("W[1, 2]".to_string()),
        Just("spectral_radius(W)".to_string()),
    ];
    let leaf = prop_oneof![
        Just("v".to_string()),
        Just("w".to_string()),
        Just("win".to_string()),
        Just("(W @ v)".to_string()),
        Just("softmax(v)".to_string()),
        Just("(transpose(W) @ w)".to_string()),
        Just("(outer(v, win) @ w)".to_string()),
        Just("one_hot(argmax(v), N)".to_string()),
        Just("grad(sum(tanh(W @ v)) + logsumexp(w * v), v)".to_string()),
        Just("W[.., 1]".to_string()),
        Just("grad(dot(v, softmax(w)) + max(w) * v[0], w)".to_string()),
        // Diagonally dominant (|W[i, j]| < 0.55) and symmetric positive definite systems.
        Just("solve(W + N * eye(N), v)".to_string()),
        Just("(transpose(W) @ solve(eye(N) + outer(v, v), w))".to_string()),
        Just("grad(dot(w, solve(W + N * eye(N), tanh(v))), v)".to_string()),
        Just("solve(W + N * eye(N), outer(v, w))[.., 0]".to_string()),
    ];
    leaf.prop_recursive(4, 20, 3, move |inner| {
        prop_oneof![
            (
                inner.clone(),
                proptest::sample::select(vec!["+", "-", "*"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                inner.clone(),
                proptest::sample::select(vec!["+", "*", "/"]),
                scalar.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (scalar.clone(), inner.clone()).prop_map(|(s, a)| format!("({s} * {a})")),
            (
                proptest::sample::select(vec!["tanh", "sin", "abs", "sigmoid", "exp"]),
                inner.clone()
            )
                .prop_map(|(f, a)| format!("{f}({a})")),
            inner.clone().prop_map(|a| format!("(W @ {a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("affine(W, {a}, {b})")),
            (scalar.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("(if {c} > 0.0 then {a} else {b})")),
            (scalar.clone(), inner.clone()).prop_map(|(c, a)| format!("max({a}, {c})")),
        ]
    })
}

fn tensor_model(discrete: bool, n: usize, cols: usize, dv: &str, dw: &str, wire: &str) -> String {
    let (dv, dw, wire) = (
        dv.replace('N', &n.to_string()),
        dw.replace('N', &n.to_string()),
        wire.replace('N', &n.to_string()),
    );
    let kw = if discrete { "next" } else { "der" };
    let vec_of = |f: &dyn Fn(usize) -> f64| {
        let xs: Vec<String> = (0..n).map(|i| format!("{:.3}", f(i))).collect();
        format!("[{}]", xs.join(", "))
    };
    let rows: Vec<String> = (0..n)
        .map(|i| vec_of(&|j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.45))
        .collect();
    format!(
        "fn affine(m: Real[{n}, {n}], x: Real[{n}], b: Real[{n}]) -> Real[{n}] = m @ x + b
system Leak : {{ out y: Real[{n}]  in u: Real[{n}] }} {{
  state h: Real[{n}] = {h0}
  out y = h
  {kw} h = 0.5 * h + 0.1 * tanh(u)
}}
system Top : {{ out y: Real  out z: Real }} {{
  param W: Real[{n}, {n}] = [{rows}]
  param win: Real[{n}] = {win}
  param k: Real = 0.3
  param c: Real[{cols}] = {c}
  state M: Real[{n}, {cols}] = {m0}
  state v: Real[{n}] = {v0}
  state w: Real[{n}] = {w0}
  box leak: Leak
  leak.u <- {wire}
  let q = tanh(v + leak.y)
  out y = sum(q) + v[0] + sum(M @ c)
  out z = norm(w)
  {kw} M = 0.5 * M - k * outer(tanh(v), c) + outer(w, -c) / 3.0 - M * M
  {kw} v = tanh({dv})
  {kw} w = tanh({dw}) - 0.5 * w
}}",
        rows = rows.join(", "),
        win = vec_of(&|i| (i as f64 * 0.37).sin()),
        v0 = vec_of(&|i| (i as f64).sin()),
        w0 = vec_of(&|i| (i as f64 * 0.5).cos() * 0.3),
        h0 = vec_of(&|i| 0.1 * i as f64),
        c = {
            let xs: Vec<String> = (0..cols)
                .map(|j| format!("{:.3}", 0.3 + 0.2 * j as f64))
                .collect();
            format!("[{}]", xs.join(", "))
        },
        m0 = {
            let rows: Vec<String> = (0..n)
                .map(|i| {
                    let xs: Vec<String> = (0..cols)
                        .map(|j| format!("{:.3}", ((i + 2 * j) % 5) as f64 / 10.0))
                        .collect();
                    format!("[{}]", xs.join(", "))
                })
                .collect();
            format!("[{}]", rows.join(", "))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Tensors: element-wise expressions with broadcasting, matrix products, reductions,
    /// indexing, fns with tensor arguments, tensor wires into a box. Sizes 3, 8 and 19
    /// exercise the SIMD reduction's remainder, one full round, and both; a matrix state
    /// updated through outer products with rows of 1, 2, 3 or 6 columns exercises the
    /// two-lane fused loops (over rows, over pairs, and the odd last element).
    #[test]
    fn jit_equals_interpreter_with_tensors(
        discrete in any::<bool>(),
        euler in any::<bool>(),
        n in proptest::sample::select(vec![3usize, 8, 19]),
        cols in proptest::sample::select(vec![1usize, 2, 3, 6]),
        dv in vexpr(),
        dw in vexpr(),
        wire in vexpr(),
    ) {
        let src = tensor_model(discrete, n, cols, &dv, &dw, &wire);
        let spec = if discrete {
            RunSpec { steps: Some(20), every: Some(2.0), record: vec!["y".into(), "z".into(), "v".into(), "leak.y".into()], ..RunSpec::default() }
        } else {
            let method = if euler { Method::Euler } else { Method::Rk4 };
            RunSpec { method, dt: 0.05, until: Some(1.0), every: Some(0.1), record: vec!["y".into(), "z".into(), "v".into(), "leak.y".into()], ..RunSpec::default() }
        };
        let ((ra, a), (rb, b)) = traces(&src, &spec);
        prop_assert!(!a.is_empty());
        prop_assert_eq!(&a, &b, "traces differ for\n{}", src);
        prop_assert_eq!(format!("{ra:?}"), format!("{rb:?}"));
    }
}

/// A bouncing ball under rk45: every bounce is located by bisection, in the JIT as in the
/// interpreter, and the traces agree to the bit (two groups with events, one of two
/// elements, bouncing at different times: every element's event flags are tested during the
/// bisection).
#[test]
fn rk45_events_are_located_as_the_interpreter_does() {
    let src = "system Ball : { out h: Real } {
  param g: Real = 9.81
  state h: Real = 1.0
  state v: Real = 0.0
  out h = h
  der h = v
  der v = -g
  when h < 0.0 { v = -0.9 * v  h = 0.0 }
}
system Top : { out h0: Real  out h2: Real } {
  box ball[2]: Ball
  box moon: Ball(g = 1.62)
  out h0 = ball[0].h
  out h2 = moon.h
}";
    let spec = RunSpec {
        method: Method::Rk45,
        dt: 0.01,
        rtol: 1e-6,
        atol: 1e-8,
        until: Some(3.0),
        every: Some(0.05),
        ..RunSpec::default()
    };
    let ((ra, a), (rb, b)) = traces(src, &spec);
    assert_eq!(a, b, "traces differ");
    // (The step counts differ: the JIT reports the nominal `until / dt` under rk45.)
    assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}");
    // The ball bounced: it stays above the floor (to the bisection's precision) and comes
    // back up after the first bounce at t = sqrt(2 / 9.81) ≈ 0.45.
    let h0: Vec<f64> = b.iter().map(|(_, v)| f64::from_bits(v[0])).collect();
    assert!(h0.iter().all(|h| *h > -1e-6), "{h0:?}");
    assert!(h0[12] > h0[10], "no bounce: {h0:?}");
}
