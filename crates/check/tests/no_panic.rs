//! No input makes the front end panic or hang: arbitrary bytes, and mutations of real
//! programs (the examples, the stdlib, the conformance suite), go through lexing, parsing,
//! module loading and every check. Each case must finish within a time bound.

use dyn_check::modules::Stdlib;
use proptest::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        "examples",
        "stdlib",
        "../shared/conformance/ok",
        "../shared/conformance/bad",
        "tests/ui/pass",
        "tests/ui/fail",
    ] {
        let Ok(rd) = std::fs::read_dir(repo().join(dir)) else {
            continue;
        };
        let mut files: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "dyn"))
            .collect();
        files.sort();
        for f in files {
            if let Ok(t) = std::fs::read_to_string(f) {
                out.push(t);
            }
        }
    }
    assert!(out.len() >= 10, "corpus of real programs found");
    out
}

fn check_quietly(src: String) -> Duration {
    let stdlib = Stdlib::Dir(repo().join("stdlib"));
    let start = Instant::now();
    let checked = dyn_check::check_source("<fuzz>", None, src, &stdlib);
    // Rendering must not panic either (spans inside the text, byte offsets on char boundaries).
    let _ = dyn_diag::render_all(&checked.sources, &checked.diagnostics, false);
    for d in &checked.diagnostics {
        let _ = dyn_diag::to_json(&checked.sources, d);
    }
    start.elapsed()
}

/// Tokens that make mutations syntactically interesting.
const PIECES: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<-",
    "->",
    "=>",
    "=",
    ".",
    "..",
    ",",
    ":",
    "⊗",
    "◁",
    "×",
    "y^",
    "^",
    "system ",
    "box ",
    "out ",
    "in ",
    "mode ",
    "match mode ",
    "next ",
    "der ",
    "when ",
    "for i in 0..3 ",
    "state s: Real = 0.0 ",
    "let ",
    "param ",
    "lens ",
    "interface ",
    "run ",
    "use std.",
    "use lib.x ",
    "9999999999999999999999",
    "1e400",
    "0",
    "-",
    "@",
    "Real[2, 3]",
    "Real[n]",
    "<n>",
    "/*",
    "*/",
    "///",
    "τ",
    "\u{0}",
    "\n",
    " ",
    "a.b",
    "c[1]",
    "if true then 1 else 2.0",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
    Insert(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 0usize..80, any::<usize>())
            .prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        (any::<usize>(), 0usize..PIECES.len()).prop_map(|(a, p)| Mutation::Insert(a, p)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(src: &str, m: &Mutation) -> String {
    let len = src.len().max(1);
    match *m {
        Mutation::Delete(a, n) => {
            let a = floor_char(src, a % len);
            let b = floor_char(src, a + n);
            format!("{}{}", &src[..a], &src[b..])
        }
        Mutation::Duplicate(a, n, at) => {
            let a = floor_char(src, a % len);
            let b = floor_char(src, a + n);
            let at = floor_char(src, at % len);
            format!("{}{}{}", &src[..at], &src[a..b], &src[at..])
        }
        Mutation::Insert(a, p) => {
            let a = floor_char(src, a % len);
            format!("{}{}{}", &src[..a], PIECES[p], &src[a..])
        }
        Mutation::Truncate(a) => src[..floor_char(src, a % len)].to_string(),
    }
}

const LIMIT: Duration = Duration::from_secs(5);

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let src = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(check_quietly(src) < LIMIT);
    }

    #[test]
    fn token_soup_never_panics(pieces in proptest::collection::vec(0usize..PIECES.len(), 0..120)) {
        let src: String = pieces.iter().map(|&i| PIECES[i]).collect();
        prop_assert!(check_quietly(src) < LIMIT);
    }

    #[test]
    fn mutated_programs_never_panic(which in any::<usize>(), ms in proptest::collection::vec(mutation(), 1..6)) {
        let corpus = corpus();
        let mut src = corpus[which % corpus.len()].clone();
        for m in &ms {
            src = apply(&src, m);
        }
        prop_assert!(check_quietly(src) < LIMIT);
    }
}

/// Pathological sizes and nesting are diagnostics, not hangs or aborts.
#[test]
fn pathological_inputs_are_bounded() {
    let cases = [
        "const N = 100000000000\nsystem S : { out y: Real } { box c[N]: S  out y = 1.0 }"
            .to_string(),
        "system A : { out y: Real } { state x: Real[100000000000] = 0.0 out y = 1.0 next x = x }"
            .to_string(),
        format!("const A = {}1{}", "(".repeat(3000), ")".repeat(3000)),
        format!("interface P = {}y", "y ◁ ".repeat(200)),
        "interface P = (y + 1)^1000000".to_string(),
        "const A = B\nconst B = A\nsystem S : { out y: Real } { out y = A }".to_string(),
        "system S : { out y: Int } { for i in 0..100000 { for j in 0..100000 { } } out y = 1 }"
            .to_string(),
    ];
    for c in cases {
        let t = check_quietly(c.clone());
        assert!(t < LIMIT, "took {t:?}: {}", &c[..c.len().min(80)]);
    }
}
