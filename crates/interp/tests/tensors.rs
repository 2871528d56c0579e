//! Tensor operations and `grad` on known values: softmax of [1, 2, 3], logsumexp with large
//! inputs, argmax ties, slices, one-hot, transposes and products, and exact gradients.

mod common;
use common::outputs;
use dyn_ir::numeric::reduce_sum;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn softmax_logsumexp_and_argmax_have_their_known_values() {
    let o = outputs(
        "system T : { out s: Real[3]  out big: Real  out small: Real  out huge: Real
                      out inf: Real  out shifted: Real[3]  out a: Int  out b: Int  out c: Int } {
           out s = softmax([1.0, 2.0, 3.0])
           out big = logsumexp([1000.0, 1000.0])
           out small = logsumexp([-1000.0, -1000.0, -1000.0])
           out huge = logsumexp([1.0e308, 1.0e308])
           out inf = logsumexp([-1.0 / 0.0, 2.0])
           out shifted = softmax([1001.0, 1002.0, 1003.0])
           out a = argmax([1.0, 3.0, 3.0, 2.0])
           out b = argmin([2.0, -1.0, 5.0, -1.0])
           out c = argmax([7.0])
         }",
        "T",
        0,
    )
    .unwrap();
    // softmax([1, 2, 3]) = e^i / (e + e^2 + e^3).
    let z = 1f64.exp() + 2f64.exp() + 3f64.exp();
    for (i, want) in [1f64.exp() / z, 2f64.exp() / z, 3f64.exp() / z]
        .iter()
        .enumerate()
    {
        assert!(close(o[&format!("s[{i}]")], *want, 1e-15), "{o:?}");
        // Subtracting the max first: shifted inputs give the same probabilities.
        assert!(close(o[&format!("shifted[{i}]")], *want, 1e-15), "{o:?}");
    }
    assert!((o["s[0]"] + o["s[1]"] + o["s[2]"] - 1.0).abs() < 1e-15);
    // exp(1000) overflows; logsumexp does not.
    assert_eq!(o["big"], 1000.0 + 2f64.ln());
    assert_eq!(o["small"], -1000.0 + 3f64.ln());
    assert_eq!(o["huge"], 1.0e308);
    assert!(close(o["inf"], 2.0, 1e-15), "{o:?}");
    // Ties go to the lowest index.
    assert_eq!(o["a"], 1.0);
    assert_eq!(o["b"], 1.0);
    assert_eq!(o["c"], 0.0);
}

#[test]
fn slices_transposes_products_and_one_hot() {
    let o = outputs(
        "const K = 2
         system T : { out col: Real[2]  out row: Real[3]  out mid: Real[2]  out tail: Real[3]
                      out head: Real[2]  out block: Real[2, 2]  out t: Real[3, 2]  out o: Real[2, 3]
                      out oh: Real[4]  out mean: Real  out mx: Real  out mn: Real  out imx: Int
                      out cell: Real  out dyn: Real } {
           param m: Real[2, 3] = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
           param x: Real[4] = [10.0, 20.0, 30.0, 40.0]
           param i: Int = 1
           out col = m[.., 1]
           out row = m[1]
           out mid = x[1..3]
           out tail = x[1..]
           out head = x[..K]
           out block = m[0..2, 1..3]
           out t = transpose(m)
           out o = outer([1.0, 2.0], [1.0, 10.0, 100.0])
           out oh = one_hot(2, 4)
           out mean = mean(m)
           out mx = max(m)
           out mn = min(x)
           out imx = max([1, 5, 3])
           out cell = m[1, 0..2][1]
           out dyn = m[i, 1..][0]
         }",
        "T",
        0,
    )
    .unwrap();
    let v = |n: &str| o[n];
    assert_eq!((v("col[0]"), v("col[1]")), (2.0, 5.0));
    assert_eq!((v("row[0]"), v("row[1]"), v("row[2]")), (4.0, 5.0, 6.0));
    assert_eq!((v("mid[0]"), v("mid[1]")), (20.0, 30.0));
    assert_eq!((v("tail[0]"), v("tail[2]")), (20.0, 40.0));
    assert_eq!((v("head[0]"), v("head[1]")), (10.0, 20.0));
    let block: Vec<f64> = (0..4).map(|k| v(&format!("block[{k}]"))).collect();
    assert_eq!(block, [2.0, 3.0, 5.0, 6.0]);
    let t: Vec<f64> = (0..6).map(|k| v(&format!("t[{k}]"))).collect();
    assert_eq!(t, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let op: Vec<f64> = (0..6).map(|k| v(&format!("o[{k}]"))).collect();
    assert_eq!(op, [1.0, 10.0, 100.0, 2.0, 20.0, 200.0]);
    let oh: Vec<f64> = (0..4).map(|k| v(&format!("oh[{k}]"))).collect();
    assert_eq!(oh, [0.0, 0.0, 1.0, 0.0]);
    assert_eq!(v("mean"), 3.5);
    assert_eq!((v("mx"), v("mn"), v("imx")), (6.0, 10.0, 5.0));
    assert_eq!(v("cell"), 5.0);
    assert_eq!(v("dyn"), 5.0);
}

#[test]
fn reductions_add_in_the_shared_order() {
    // 19 terms of very different sizes: the result depends on the order of addition.
    let xs: Vec<f64> = (0..19)
        .map(|i| if i % 3 == 0 { 1e16 } else { 1.0 + i as f64 / 7.0 } * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let lit = xs
        .iter()
        .map(|x| format!("{x:e}"))
        .collect::<Vec<_>>()
        .join(", ");
    let src = format!(
        "system T : {{ out mean: Real  out lse: Real  out p: Real }} {{
           param x: Real[19] = [{lit}]
           out mean = mean(x)
           out lse = logsumexp(x / 1.0e16)
           out p = softmax(x / 1.0e16)[0]
         }}"
    );
    let o = outputs(&src, "T", 0).unwrap();
    assert_eq!(
        o["mean"].to_bits(),
        (reduce_sum(19, |i| xs[i]) / 19.0).to_bits()
    );
    let ys: Vec<f64> = xs.iter().map(|x| x / 1e16).collect();
    let m = ys.iter().copied().fold(f64::NAN, f64::max);
    let s = reduce_sum(19, |i| (ys[i] - m).exp());
    assert_eq!(o["lse"].to_bits(), (m + s.ln()).to_bits());
    assert_eq!(o["p"].to_bits(), ((ys[0] - m).exp() / s).to_bits());
}

#[test]
fn one_hot_out_of_range_is_a_run_time_error() {
    let e = outputs(
        "system T : { out v: Real[3] } {
           param k: Int = 3
           out v = one_hot(k, 3)
         }",
        "T",
        0,
    )
    .unwrap_err();
    assert!(e.contains("one_hot"), "{e}");
}

#[test]
fn exact_gradients() {
    let o = outputs(
        "fn sq(x: Real) -> Real = x * x
         system T : { out g: Real  out h: Real  out gw: Real[2, 3]  out gx: Real[3]
                      out gl: Real[3]  out gs: Real[3]  out gm: Real[3]  out gt: Real[2, 3]
                      out gi: Real[3]  out gsl: Real[4]  out gif: Real  out gmax: Real[3] } {
           param x: Real = 3.0
           param W: Real[2, 3] = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
           param v: Real[3] = [1.0, -2.0, 0.5]
           param u: Real[4] = [1.0, 2.0, 3.0, 4.0]
           let y = W @ v
           out g = grad(x ^ 2, x)
           out h = grad(sq(sq(x)), x)
           out gw = grad(sum(W @ v), W)
           out gx = grad(sum(y), v)
           out gl = grad(logsumexp(v), v)
           out gs = grad(softmax(v)[1], v)
           out gm = grad(mean(v * v), v)
           out gt = grad(sum(transpose(W)[.., 0]), W)
           out gi = grad(v[1] * v[2], v)
           out gsl = grad(sum(u[1..3] * u[2..]), u)
           out gif = grad(if x > 2.0 then x * x else log(x), x)
           out gmax = grad(max([v[0], 1.0, v[0]]) + max(v), v)
         }",
        "T",
        0,
    )
    .unwrap();
    let vec = |n: &str, k: usize| -> Vec<f64> { (0..k).map(|i| o[&format!("{n}[{i}]")]).collect() };
    assert_eq!(o["g"], 6.0); // d x^2 = 2x
    assert_eq!(o["h"], 108.0); // d x^4 = 4x^3
    // d sum(W v)/dW = outer(ones, v)
    assert_eq!(vec("gw", 6), [1.0, -2.0, 0.5, 1.0, -2.0, 0.5]);
    // d sum(W v)/dv = column sums of W
    assert_eq!(vec("gx", 3), [5.0, 7.0, 9.0]);
    // d logsumexp = softmax
    let z: f64 = [1.0f64, -2.0, 0.5].iter().map(|x| x.exp()).sum();
    let sm: Vec<f64> = [1.0f64, -2.0, 0.5].iter().map(|x| x.exp() / z).collect();
    for (g, s) in vec("gl", 3).iter().zip(&sm) {
        assert!(close(*g, *s, 1e-15));
    }
    // d softmax_1 / dv_j = s_1 (δ_1j - s_j)
    for (j, g) in vec("gs", 3).iter().enumerate() {
        let want = sm[1] * (if j == 1 { 1.0 } else { 0.0 } - sm[j]);
        assert!(close(*g, want, 1e-14), "{j}: {g} vs {want}");
    }
    assert_eq!(vec("gm", 3), [2.0 / 3.0, -4.0 / 3.0, 1.0 / 3.0]);
    // transpose(W)[.., 0] is the first row of W.
    assert_eq!(vec("gt", 6), [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(vec("gi", 3), [0.0, 0.5, -2.0]);
    // sum(u1 u2 + u2 u3)
    assert_eq!(vec("gsl", 4), [0.0, 3.0, 6.0, 3.0]);
    assert_eq!(o["gif"], 6.0);
    // max of [v0, 1, v0] = 1 (v0 = 1: a three-way tie shares 1/3 each); max(v) = v0.
    let gmax = vec("gmax", 3);
    assert!(close(gmax[0], 1.0 + 2.0 / 3.0, 1e-15), "{gmax:?}");
    assert_eq!((gmax[1], gmax[2]), (0.0, 0.0));
}

#[test]
fn grad_takes_the_branch_taken_and_does_not_leak_nan() {
    let o = outputs(
        "system T : { out a: Real  out b: Real  out c: Real  out d: Real } {
           param x: Real = -1.0
           out a = grad(if x > 0.0 then sqrt(x) else 2.0 * x, x)
           out b = grad(if x > 0.0 then log(x) * x else x ^ 3, x)
           out c = grad(relu(x) + abs(x), x)
           out d = grad(max(x, 0.0) + min(x, -1.0), x)
         }",
        "T",
        0,
    )
    .unwrap();
    assert_eq!(o["a"], 2.0);
    assert_eq!(o["b"], 3.0);
    assert_eq!(o["c"], -1.0);
    // min(x, -1) at the tie x = -1 goes to the first argument.
    assert_eq!(o["d"], 1.0);
}

#[test]
fn grad_goes_through_lets_states_and_inputs_and_is_zero_where_nothing_depends() {
    let o = outputs(
        "system T : { out g: Real[2]  out z: Real  out zt: Real[2]  out gl: Real  out gi: Real } {
           param w: Real[2] = [0.5, -1.0]
           param c: Real = 2.0
           state s: Real = 3.0
           let h = tanh(w * s)
           let loss = sum(h * h) + c * s
           out g = grad(loss, w)
           out z = grad(loss * 0.0 + c, s)
           out zt = grad(c * c, w)
           out gl = grad(loss, s)
           out gi = grad(loss, h)[0]
           next s = s
         }",
        "T",
        0,
    )
    .unwrap();
    let (w, s) = ([0.5f64, -1.0], 3.0f64);
    for i in 0..2 {
        let h = (w[i] * s).tanh();
        let want = 2.0 * h * (1.0 - h * h) * s;
        assert!(close(o[&format!("g[{i}]")], want, 1e-15));
    }
    assert_eq!(o["z"], 0.0);
    assert_eq!((o["zt[0]"], o["zt[1]"]), (0.0, 0.0));
    let gl: f64 = (0..2)
        .map(|i| {
            let h = (w[i] * s).tanh();
            2.0 * h * (1.0 - h * h) * w[i]
        })
        .sum::<f64>()
        + 2.0;
    assert!(close(o["gl"], gl, 1e-14), "{} vs {gl}", o["gl"]);
    // With respect to a let: the let is the variable.
    assert!(close(o["gi"], 2.0 * (0.5f64 * 3.0).tanh(), 1e-15));
}

#[test]
fn second_derivatives_fn_bodies_and_wires() {
    let o = outputs(
        "fn d(x: Real) -> Real = grad(x * x * x, x)
         system Inner : { out y: Real  in u: Real } {
           state s: Real = 0.0
           out y = s
           next s = u
         }
         system Outer : { out a: Real  out b: Real  out c: Real  out w: Real  out e: Real[2] } {
           param x: Real = 2.0
           param v: Real[2] = [1.0, 2.0]
           state k: Real = 1.5
           box i: Inner
           i.u <- grad(k * k * x, k)
           let g1 = grad(x ^ 3, x)
           out a = grad(g1, x)
           out b = grad(grad(sin(x) * x, x), x)
           out c = grad(d(x), x)
           out w = i.y
           out e = grad(grad(sum(v * v * v), v)[0], v)
           next k = k
         }",
        "Outer",
        1,
    )
    .unwrap();
    assert_eq!(o["a"], 12.0); // (x^3)'' = 6x
    let x = 2.0f64;
    assert!(close(o["b"], 2.0 * x.cos() - x * x.sin(), 1e-15));
    assert_eq!(o["c"], 12.0);
    assert_eq!(o["w"], 6.0); // 2 k x, through the wire
    assert_eq!((o["e[0]"], o["e[1]"]), (6.0, 0.0));
}

#[test]
fn noise_on_the_way_to_the_variable_is_refused_and_noise_in_a_let_is_a_constant() {
    let e = outputs(
        "system T : { out g: Real } {
           param x: Real = 2.0
           out g = grad(x * randn(), x)
         }",
        "T",
        0,
    )
    .unwrap_err();
    assert!(e.contains("randn()"), "{e}");
    let o = outputs(
        "system T : { out g: Real  out h: Real } {
           param x: Real = 2.0
           let n = randn()
           out g = grad(x * n, x) - n
           out h = grad(x * x + randn(), x)
         }",
        "T",
        0,
    )
    .unwrap();
    assert_eq!((o["g"], o["h"]), (0.0, 4.0));
}

/// A system whose lets are `a0 = x * x` and then `a_k = step(k)`, with `out g = grad(a_last, x)`.
fn chain(n: usize, step: impl Fn(usize) -> String) -> String {
    let lets: String = (1..n)
        .map(|k| format!("  let a{k} = {}\n", step(k)))
        .collect();
    format!(
        "system T : {{ out g: Real }} {{\n  param x: Real = 1.0\n  let a0 = x * x\n{lets}  out g = grad(a{}, x)\n}}",
        n - 1
    )
}

#[test]
fn shared_subexpressions_are_computed_once() {
    // a_k = a_{k-1} * a_{k-1}: as a tree the gradient would have 2^30 terms; with sharing it
    // is a few operations per let.
    let src = chain(30, |k| format!("a{} * a{}", k - 1, k - 1));
    let o = outputs(&src, "T", 0).unwrap();
    // d/dx x^(2^30) at x = 1.
    assert_eq!(o["g"], 2f64.powi(30));
    let stdlib = dyn_check::modules::Stdlib::Dir(std::path::PathBuf::from("../../stdlib"));
    let checked = dyn_check::check_source("t.dyn", None, src, &stdlib);
    let program = dyn_ir::lower(&checked, &checked.systems[0].1).unwrap();
    // The whole program, the generated fns' bodies included.
    let text = dyn_ir::print::program(&program);
    assert!(text.len() < 6000, "{} bytes:\n{text}", text.len());
}

#[test]
fn long_let_chains_are_differentiated_or_refused_without_crashing() {
    let step = |k: usize| format!("a{} * 1.0001", k - 1);
    // 480 lets deep: within the limit (and within a test thread's 2 MiB stack).
    let o = outputs(&chain(480, step), "T", 0).unwrap();
    assert!(
        close(o["g"], 2.0 * 1.0001f64.powi(479), 1e-13),
        "{}",
        o["g"]
    );
    // Beyond the limit: a diagnostic.
    let e = outputs(&chain(1200, step), "T", 0).unwrap_err();
    assert!(e.contains("too deep"), "{e}");
}

#[test]
fn grad_in_a_system_that_reads_its_mode() {
    // `match mode` adds a let before the user's; grad must still find the user's lets.
    let o = outputs(
        "interface Switch { mode On { out a: Real } mode Off { out a: Real } }
         system S : Switch {
           state w: Real = 3.0
           state g: Real = 0.0
           let gain = match mode { On => 1.0, Off => 2.0 }
           let h = w * w * gain
           let l = h * w
           out = if w > 0.0 then On { a = g } else Off { a = g }
           next g = grad(l, w)
           next w = w
         }
         system Top : { out a: Real } {
           box s: S
           out a = s.a
         }",
        "Top",
        1,
    )
    .unwrap();
    // l = gain w^3 with gain = 1 (mode On): dl/dw = 3 w^2.
    assert_eq!(o["a"], 27.0);
}
