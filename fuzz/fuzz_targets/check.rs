//! Fuzz target: arbitrary bytes through lexing, parsing, module loading, every check and
//! both renderings. Any panic, abort or hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data).into_owned();
    let stdlib = dyn_check::modules::Stdlib::Embedded(dyn_check::modules::EMBEDDED_STDLIB);
    let checked = dyn_check::check_source("<fuzz>", None, src, &stdlib);
    let _ = dyn_diag::render_all(&checked.sources, &checked.diagnostics, false);
    for d in &checked.diagnostics {
        let _ = dyn_diag::to_json(&checked.sources, d);
    }
});
