//! Generates the parser from the top-level `grammar/dyn.lalrpop`.
fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let grammar = std::path::Path::new(&manifest).join("../../grammar/dyn.lalrpop");
    lalrpop::Configuration::new()
        .set_out_dir(out)
        .emit_rerun_directives(true)
        .process_file(grammar)
        .expect("grammar/dyn.lalrpop must build");
}
