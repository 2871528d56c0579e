//! `grad` against central finite differences on random expressions.
//!
//! Each case is a random Real expression `f(a, b, v, m)` of two scalars, a `Real[3]` and a
//! `Real[2, 3]`, built from every differentiable operation (arithmetic, powers, the unary
//! functions, `min`/`max`/`abs`/`relu`, `if`, `@`, `dot`, `sum`, `mean`, `norm`, `max(x)`,
//! `transpose`, `outer`, `softmax`, `logsumexp`, indexing, slices, tensor literals and a call
//! of a fn), at a random point. The program computes the gradient with respect to each
//! variable twice — through the fn and through a `let` of the same expression — and the
//! central differences `(f(x + h e) - f(x - h e)) / 2h` for every coordinate, all in dyn.
//!
//! **Tolerance.** With `h = 1e-5` the central difference has a truncation error of about
//! `h² |f'''| / 6 ≈ 2e-11 |f'''|` and a rounding error of about `ε |f| / h ≈ 2e-11 |f|`; the
//! generated expressions keep `|f|` and its derivatives moderate (bounded functions, no
//! division by values near zero), so `|grad - fd| <= 1e-6 (1 + |grad|)` leaves a margin of
//! several orders of magnitude. Where the expression is not smooth near the point (a kink
//! of `min`, `max`, `abs`, `relu`, a jump of `if`, a tie in `max(x)`), differences with `h`
//! and with `2h` disagree, and the case is skipped: finite differences are no reference there.
//! (`GRAD_DEBUG=1` prints each expression and each skip: about 1 case in 1,000 is skipped.)

mod common;
use common::outputs;
use proptest::prelude::*;

/// A small deterministic generator of expression shapes.
struct Gen {
    s: u64,
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.s ^= self.s << 13;
        self.s ^= self.s >> 7;
        self.s ^= self.s << 17;
        self.s
    }
    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn konst(&mut self) -> String {
        format!("{:.2}", (self.pick(400) as f64 - 200.0) / 100.0)
    }

    /// A Real scalar.
    fn s(&mut self, d: u32) -> String {
        if d == 0 {
            return match self.pick(4) {
                0 => "a".into(),
                1 => "b".into(),
                2 => format!("v[{}]", self.pick(3)),
                _ => format!("m[{}, {}]", self.pick(2), self.pick(3)),
            };
        }
        let d1 = d - 1;
        match self.pick(34) {
            0 => format!("({} + {})", self.s(d1), self.s(d1)),
            1 => format!("({} - {})", self.s(d1), self.s(d1)),
            2 => format!("({} * {})", self.s(d1), self.s(d1)),
            3 => format!("({} / (1.5 + {} * {}))", self.s(d1), self.s(0), self.s(0)),
            4 => format!("sin({})", self.s(d1)),
            5 => format!("cos({})", self.s(d1)),
            6 => format!("tanh({})", self.s(d1)),
            7 => format!("exp(tanh({}))", self.s(d1)),
            8 => {
                let x = self.s(d1);
                format!("log(1.0 + {x} * {x})")
            }
            9 => {
                let x = self.s(d1);
                format!("sqrt(1.0 + {x} * {x})")
            }
            10 => format!("sigmoid({})", self.s(d1)),
            11 => format!("atan({})", self.s(d1)),
            12 => format!("({} ^ {})", self.s(d1), 2 + self.pick(2)),
            13 => format!("pow(1.5 + tanh({}), {})", self.s(d1), self.s(d1)),
            14 => format!("min({}, {})", self.s(d1), self.s(d1)),
            15 => format!("max({}, {})", self.s(d1), self.s(d1)),
            16 => format!("abs({})", self.s(d1)),
            17 => format!("relu({})", self.s(d1)),
            18 => format!(
                "(if {} > {} then {} else {})",
                self.s(d1),
                self.konst(),
                self.s(d1),
                self.s(d1)
            ),
            19 => format!("sum({})", self.v3(d1)),
            20 => format!("dot({}, {})", self.v3(d1), self.v3(d1)),
            21 => format!("norm({} + 0.1)", self.v3(d1)),
            22 => format!("mean({})", self.m(d1)),
            23 => format!("max({})", self.v3(d1)),
            24 => format!("logsumexp({})", self.v3(d1)),
            25 => format!("{}[{}]", self.v3(d1), self.pick(3)),
            26 => format!("sum({})", self.m(d1)),
            27 => format!("({} @ {})", self.v2(d1), self.v2(d1)),
            28 => format!("softmax({})[{}]", self.v3(d1), self.pick(3)),
            29 => format!("atan2({}, 1.5 + {} * {})", self.s(d1), self.s(0), self.s(0)),
            30 => format!(
                "sum(outer({}, {}) * {})",
                self.v2(d1),
                self.v3(d1),
                self.m(d1)
            ),
            31 => format!("h({}, {})", self.s(d1), self.v3(d1)),
            32 => format!("({} * {})", self.konst(), self.s(d1)),
            _ => format!("(-{})", self.s(d1)),
        }
    }

    /// A `Real[3]`.
    fn v3(&mut self, d: u32) -> String {
        if d == 0 {
            return match self.pick(3) {
                0 => "v".into(),
                1 => format!("m[{}]", self.pick(2)),
                _ => format!("[{}, {}, {}]", self.s(0), self.s(0), self.s(0)),
            };
        }
        let d1 = d - 1;
        match self.pick(19) {
            12 => format!("relu({})", self.v3(d1)),
            13 => format!("abs({})", self.v3(d1)),
            14 => format!("max({}, {})", self.v3(d1), self.s(d1)),
            15 => format!("min({}, {})", self.v3(d1), self.v3(d1)),
            16 => format!("({} ^ 2)", self.v3(d1)),
            17 => format!("pow(1.5 + tanh({}), {})", self.v3(d1), self.s(d1)),
            18 => format!("pow(1.5 + tanh({}), {})", self.s(d1), self.v3(d1)),
            0 => format!("({} + {})", self.v3(d1), self.v3(d1)),
            1 => format!("({} * {})", self.s(d1), self.v3(d1)),
            2 => format!("({} * {})", self.v3(d1), self.v3(d1)),
            3 => format!("tanh({})", self.v3(d1)),
            4 => format!("sin({})", self.v3(d1)),
            5 => format!("(transpose({}) @ {})", self.m(d1), self.v2(d1)),
            6 => format!("({} @ {})", self.v2(d1), self.m(d1)),
            7 => format!("softmax({})", self.v3(d1)),
            8 => format!("[{}, {}, {}]", self.s(d1), self.s(d1), self.s(d1)),
            9 => format!("{}[{}]", self.m(d1), self.pick(2)),
            10 => format!("({} - {})", self.v3(d1), self.s(d1)),
            _ => format!("({} / (2.0 + {}))", self.v3(d1), self.s(0)),
        }
    }

    /// A `Real[2]`.
    fn v2(&mut self, d: u32) -> String {
        if d == 0 {
            return match self.pick(3) {
                0 => format!("v[{}]", ["0..2", "1.."][self.pick(2) as usize]),
                1 => format!("m[.., {}]", self.pick(3)),
                _ => format!("[{}, {}]", self.s(0), self.s(0)),
            };
        }
        let d1 = d - 1;
        match self.pick(5) {
            0 => format!("({} @ {})", self.m(d1), self.v3(d1)),
            1 => format!("({} + {})", self.v2(d1), self.v2(d1)),
            2 => format!("exp(tanh({}))", self.v2(d1)),
            3 => format!("{}[1..3]", self.v3(d1)),
            _ => format!("({} * {})", self.s(d1), self.v2(d1)),
        }
    }

    /// A `Real[2, 3]`.
    fn m(&mut self, d: u32) -> String {
        if d == 0 {
            return match self.pick(2) {
                0 => "m".into(),
                _ => "transpose(transpose(m))".into(),
            };
        }
        let d1 = d - 1;
        match self.pick(5) {
            0 => format!("({} + {})", self.m(d1), self.m(d1)),
            1 => format!("({} * {})", self.s(d1), self.m(d1)),
            2 => format!("outer({}, {})", self.v2(d1), self.v3(d1)),
            3 => format!("tanh({})", self.m(d1)),
            _ => format!("[{}, {}]", self.v3(d1), self.v3(d1)),
        }
    }
}

/// The coordinates of the variables, as dyn expressions perturbing them by `h`.
fn coordinates() -> Vec<(String, [String; 4])> {
    let mut out = Vec::new();
    let base = ["a".to_string(), "b".into(), "v".into(), "m".into()];
    for (k, name) in ["a", "b"].iter().enumerate() {
        let mut p = base.clone();
        p[k] = format!("{name} + H");
        out.push((name.to_string(), p));
    }
    for i in 0..3 {
        let mut p = base.clone();
        p[2] = format!("v + H * one_hot({i}, 3)");
        out.push((format!("v[{i}]"), p));
    }
    for i in 0..2 {
        for j in 0..3 {
            let mut p = base.clone();
            p[3] = format!("m + H * outer(one_hot({i}, 2), one_hot({j}, 3))");
            out.push((format!("m[{}]", i * 3 + j), p));
        }
    }
    out
}

fn program(expr: &str, vals: &[f64]) -> String {
    let lit = |x: f64| format!("{x:?}");
    let mut outs = vec![];
    let mut body = vec![];
    for (var, ty) in [
        ("a", "Real"),
        ("b", "Real"),
        ("v", "Real[3]"),
        ("m", "Real[2, 3]"),
    ] {
        outs.push(format!("out g_{var}: {ty}  out l_{var}: {ty}"));
        body.push(format!("out g_{var} = grad(f(a, b, v, m), {var})"));
        body.push(format!("out l_{var} = grad(y, {var})"));
    }
    for (k, (_, p)) in coordinates().iter().enumerate() {
        for (tag, h) in [("fd", "1.0e-5"), ("fe", "2.0e-5")] {
            let plus = p.iter().map(|x| x.replace('H', h)).collect::<Vec<_>>();
            let minus = p
                .iter()
                .map(|x| x.replace("+ H", &format!("- {h}")))
                .collect::<Vec<_>>();
            outs.push(format!("out {tag}{k}: Real"));
            body.push(format!(
                "out {tag}{k} = (f({}) - f({})) / (2.0 * {h})",
                plus.join(", "),
                minus.join(", ")
            ));
        }
    }
    // `y` is the expression over the system's own params (not through the fn).
    format!(
        "fn h(x: Real, w: Real[3]) -> Real = tanh(x) * sum(w * w) / 3.0
         fn f(a: Real, b: Real, v: Real[3], m: Real[2, 3]) -> Real = {expr}
         system G : {{ {} }} {{
           param a: Real = {}
           param b: Real = {}
           param v: Real[3] = [{}, {}, {}]
           param m: Real[2, 3] = [[{}, {}, {}], [{}, {}, {}]]
           let y = {expr}
           {}
         }}",
        outs.join("  "),
        lit(vals[0]),
        lit(vals[1]),
        lit(vals[2]),
        lit(vals[3]),
        lit(vals[4]),
        lit(vals[5]),
        lit(vals[6]),
        lit(vals[7]),
        lit(vals[8]),
        lit(vals[9]),
        lit(vals[10]),
        body.join("\n           ")
    )
}

/// The gradient output names in coordinate order.
fn grad_names(prefix: &str) -> Vec<String> {
    let mut v = vec![format!("{prefix}_a"), format!("{prefix}_b")];
    v.extend((0..3).map(|i| format!("{prefix}_v[{i}]")));
    v.extend((0..6).map(|i| format!("{prefix}_m[{i}]")));
    v
}

fn check(seed: u64, vals: &[f64]) -> Result<(), TestCaseError> {
    let mut g = Gen { s: seed | 1 };
    let depth = 1 + g.pick(4) as u32;
    let expr = g.s(depth);
    let src = program(&expr, vals);
    if std::env::var_os("GRAD_DEBUG").is_some() {
        eprintln!("CASE {expr}");
    }
    let o = outputs(&src, "G", 0).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
    let (gs, ls) = (grad_names("g"), grad_names("l"));
    for k in 0..coordinates().len() {
        let (ad, adl) = (o[&gs[k]], o[&ls[k]]);
        let (fd, fe) = (o[&format!("fd{k}")], o[&format!("fe{k}")]);
        // Through a fn or through a let: the same expansion, to the bit.
        prop_assert_eq!(
            ad.to_bits(),
            adl.to_bits(),
            "fn and let paths differ: {}",
            expr
        );
        if std::env::var_os("GRAD_DEBUG").is_some() && (fd - fe).abs() > 1e-7 * (1.0 + fd.abs()) {
            eprintln!("SKIP {k} {fd} {fe} {ad}");
        }
        prop_assume!(fd.is_finite() && fe.is_finite() && ad.is_finite());
        // Not smooth here: finite differences are no reference.
        prop_assume!((fd - fe).abs() <= 1e-7 * (1.0 + fd.abs()));
        prop_assert!(
            (ad - fd).abs() <= 1e-6 * (1.0 + ad.abs()),
            "coordinate {}: grad {} vs finite difference {} for f = {}",
            gs[k],
            ad,
            fd,
            expr
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_global_rejects: 4096,
        .. ProptestConfig::default()
    })]

    #[test]
    fn grad_matches_central_differences(
        seed in any::<u64>(),
        vals in prop::collection::vec(-1.5f64..1.5, 11),
    ) {
        check(seed, &vals)?;
    }
}
