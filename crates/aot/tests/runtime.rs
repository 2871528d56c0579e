//! The C runtime against Rust: number formatting equals `f64`'s `Display` (and `dyn run`'s
//! time format), number parsing equals `str::parse::<f64>`, every math shim gives the bits of
//! the JIT's Rust shim, and the noise generator gives `dyn_ir::numeric::Noise`'s samples.

use std::io::Write;
use std::process::{Command, Stdio};

/// Compiles rt.c with the test driver rt_check.c and answers `requests` (one per line).
fn ask(requests: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("dyn-rt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("rt_check");
    if !exe.exists() {
        std::fs::write(dir.join("dyn_rt.h"), dyn_aot::RT_H).unwrap();
        std::fs::write(dir.join("rt.c"), dyn_aot::RT_C).unwrap();
        std::fs::write(dir.join("pow5.h"), dyn_aot::POW5_H).unwrap();
        let tmp = dir.join(format!("rt_check.{:?}", std::thread::current().id()));
        let o = dyn_aot::cc_command(&dyn_aot::c_compiler(None))
            .args(dyn_aot::CFLAGS)
            .arg("-I")
            .arg(&dir)
            .arg(dir.join("rt.c"))
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rt_check.c"))
            .arg("-lm")
            .arg("-o")
            .arg(&tmp)
            .output()
            .expect("a C compiler");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let _ = std::fs::rename(&tmp, &exe);
    }
    let mut child = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let req = requests.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(req.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A small deterministic generator for test values (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn values() -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        0.2,
        0.3,
        0.1 + 0.2,
        1.0 / 3.0,
        2.0 / 3.0,
        5e-324,
        -5e-324,
        2.2250738585072014e-308,
        f64::from_bits(0x000f_ffff_ffff_ffff), // the largest subnormal
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        9007199254740992.0,
        9007199254740994.0,
        18014398509481984.0,
        1e15,
        1e16,
        1e17,
        1e21,
        1e22,
        1e23,
        123456789012345680.0,
        0.5,
        2.5,
        -2.5,
        1.5e-7,
        5.934586555047577,
        8.251482756038284,
    ];
    for e in -1074..=1023 {
        v.push(2f64.powi(e));
    }
    for e in -320..=308 {
        v.push(format!("1e{e}").parse().unwrap());
        v.push(format!("9.87654321e{e}").parse().unwrap());
    }
    for k in 0..2000 {
        v.push(k as f64 * 0.001);
        v.push(k as f64 / 7.0);
        v.push(-(k as f64) * 1.1);
    }
    let mut r = Rng(42);
    // DYN_RT_TEST_VALUES=N checks N random bit patterns instead of 100,000.
    let n: usize = std::env::var("DYN_RT_TEST_VALUES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    for _ in 0..n {
        v.push(f64::from_bits(r.next()));
    }
    // Exact binary fractions: ties between two shortest decimals.
    for j in 0..64 {
        for m in [1u64, 3, 5, 7, 9, 11, 13, 15, 17, 123, 4097] {
            v.push(m as f64 / 2f64.powi(j));
            v.push(m as f64 * 2f64.powi(j + 40));
        }
    }
    for _ in 0..20_000 {
        // Values of everyday size, where traces live.
        let m = (r.next() >> 11) as f64 / (1u64 << 53) as f64;
        let e = (r.next() % 40) as i32 - 20;
        v.push(m * 10f64.powi(e));
    }
    v
}

#[test]
fn numbers_are_written_as_rust_writes_them() {
    let vals = values();
    let mut req = String::new();
    for v in &vals {
        req.push_str(&format!(
            "fmt {:016x}\ntime {:016x}\n",
            v.to_bits(),
            v.to_bits()
        ));
    }
    let got = ask(&req);
    assert_eq!(got.len(), 2 * vals.len());
    let mut bad = vec![];
    for (i, v) in vals.iter().enumerate() {
        let time = format!("{v:.12e}").parse::<f64>().unwrap_or(*v).to_string();
        if got[2 * i] != v.to_string() || got[2 * i + 1] != time {
            bad.push(format!(
                "{:016x}: {} / {} vs {} / {}",
                v.to_bits(),
                got[2 * i],
                got[2 * i + 1],
                v,
                time
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {}: {:#?}",
        bad.len(),
        vals.len(),
        &bad[..bad.len().min(10)]
    );
}

#[test]
fn numbers_are_read_as_rust_reads_them() {
    let texts = [
        "1",
        "-1",
        "+2.5",
        ".5",
        "5.",
        "1e3",
        "1E-3",
        "1e+3",
        "inf",
        "-inf",
        "Infinity",
        "NaN",
        "nan",
        "0x10",
        "1e",
        "e5",
        ".",
        "",
        "1.2.3",
        "1 ",
        " 1",
        "--1",
        "0.30000000000000004",
        "2.2250738585072011e-308",
        "1e400",
        "-1e-400",
        "123456789012345678901234567890",
        "1_000",
        "infinit",
        "+",
        "-.5e-2",
    ];
    let req: String = texts.iter().map(|t| format!("parse {t}\n")).collect();
    let got = ask(&req);
    for (t, g) in texts.iter().zip(&got) {
        // The driver splits on spaces: texts with spaces reach it trimmed, as dyn run trims.
        let want = match t.trim().parse::<f64>() {
            Ok(v) if v.is_nan() => "nan".to_string(),
            Ok(v) => format!("{:016x}", v.to_bits()),
            Err(_) => "err".to_string(),
        };
        let g = if g != "err" && f64::from_bits(u64::from_str_radix(g, 16).unwrap()).is_nan() {
            "nan".to_string()
        } else {
            g.clone()
        };
        if t.is_empty() {
            assert_eq!(g, "err");
        } else {
            assert_eq!(g, want, "`{t}`");
        }
    }
}

#[test]
fn math_shims_give_the_rust_shims_bits() {
    let mut xs = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        3.0,
        -7.0,
        7.0,
        10.0,
        0.1,
        1e-300,
        1e300,
        -1e300,
        700.0,
        -745.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        9.2e18,
        -9.3e18,
        63.0,
        64.0,
        -2.0,
        4294967296.0,
    ];
    let mut r = Rng(7);
    for _ in 0..60 {
        xs.push(((r.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 20.0);
    }
    let mut req = String::new();
    let mut want = vec![];
    for (name, arity, ptr) in dyn_jit::shims::SHIMS {
        for (i, a) in xs.iter().enumerate() {
            let bs: Vec<f64> = if *arity == 1 { vec![0.0] } else { xs.clone() };
            for b in bs {
                // SAFETY: the shim table lists extern "C" functions of `arity` f64 arguments
                // returning f64.
                let v = unsafe {
                    if *arity == 1 {
                        std::mem::transmute::<*const u8, extern "C" fn(f64) -> f64>(*ptr)(*a)
                    } else {
                        std::mem::transmute::<*const u8, extern "C" fn(f64, f64) -> f64>(*ptr)(
                            *a, b,
                        )
                    }
                };
                req.push_str(&format!(
                    "{name} {:016x} {:016x}\n",
                    a.to_bits(),
                    b.to_bits()
                ));
                want.push((format!("{name}({a:?}, {b:?}) #{i}"), v));
            }
        }
    }
    let got = ask(&req);
    assert_eq!(got.len(), want.len());
    let mut bad = vec![];
    for ((what, w), g) in want.iter().zip(&got) {
        let g = f64::from_bits(u64::from_str_radix(g, 16).unwrap());
        let same = (w.is_nan() && g.is_nan()) || w.to_bits() == g.to_bits();
        if !same {
            bad.push(format!("{what}: Rust {w:?}, C {g:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} differ: {:#?}",
        bad.len(),
        &bad[..bad.len().min(20)]
    );
}

#[test]
fn noise_gives_the_shared_generators_samples() {
    for seed in [0u64, 1, 3, 42, u64::MAX] {
        let got = ask(&format!("noise {seed} 2000\n"));
        let mut g = dyn_ir::numeric::Noise::new(seed);
        for (k, line) in got.iter().enumerate() {
            let v = f64::from_bits(u64::from_str_radix(line, 16).unwrap());
            assert_eq!(v.to_bits(), g.normal().to_bits(), "seed {seed}, sample {k}");
        }
        assert_eq!(got.len(), 2000);
    }
}
