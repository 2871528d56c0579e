//! Embeds the standard library (`stdlib/*.dyn`) into the binary as a fallback.
use std::fmt::Write;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(&manifest).join("../../stdlib");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.retain(|p| p.extension().is_some_and(|e| e == "dyn"));
    entries.sort();
    let mut out = String::from("[");
    for p in entries {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let abs = p.canonicalize().unwrap_or(p);
        write!(
            out,
            "({name:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .expect("write to string");
    }
    out.push(']');
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(std::path::Path::new(&out_dir).join("stdlib.rs"), out).expect("write stdlib.rs");
}
