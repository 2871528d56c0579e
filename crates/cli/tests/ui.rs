//! UI tests: every `tests/ui/{fail,pass}/*.dyn` is checked and its rendered diagnostics are
//! compared with the `.stderr` file beside it (codes, messages, spans, labels, hints).
//! A `fail/` file's first line `// expect: E0060, E0061` lists exactly the error codes it
//! must produce (a code listed twice must be reported twice); a `pass/` file must produce no error.
//!
//! Regenerate the expected files with `DYN_BLESS=1 cargo test -p dyn-cli --test ui`, then
//! review the diff.

use datatest_stable::Utf8Path;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn ui(path: &Utf8Path, contents: String) -> datatest_stable::Result<()> {
    let rel = path.as_str().trim_start_matches("../../").to_string();
    let stdlib = dyn_check::modules::Stdlib::Dir(repo().join("stdlib"));
    let checked = dyn_check::check_source(
        &rel,
        Some(path.as_std_path().to_path_buf()),
        contents.clone(),
        &stdlib,
    );
    let rendered = dyn_diag::render_all(&checked.sources, &checked.diagnostics, false);
    let mut codes: Vec<&str> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code.id)
        .collect();
    codes.sort();

    let first = contents.lines().next().unwrap_or("");
    if rel.contains("/fail/") {
        let Some(list) = first.strip_prefix("// expect:") else {
            return Err(format!("{rel}: first line must be `// expect: E00xx, …`").into());
        };
        let mut expected: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        expected.sort();
        if expected != codes {
            return Err(format!(
                "{rel}: expected error codes {expected:?}, got {codes:?}\n{rendered}"
            )
            .into());
        }
    } else if !codes.is_empty() {
        return Err(format!("{rel}: expected no errors, got {codes:?}\n{rendered}").into());
    }

    let expected_path = path.with_extension("stderr");
    if std::env::var_os("DYN_BLESS").is_some() {
        std::fs::write(&expected_path, &rendered)?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path)
        .map_err(|e| format!("{expected_path}: {e} (run with DYN_BLESS=1 to create it)"))?;
    if expected != rendered {
        return Err(format!("{rel}: diagnostics differ from {expected_path}\n--- expected\n{expected}\n--- actual\n{rendered}").into());
    }
    Ok(())
}

datatest_stable::harness! {
    { test = ui, root = "../../tests/ui", pattern = r"^(fail|pass)/[^/]+\.dyn$" },
}
