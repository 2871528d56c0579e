//! Runs small programs and reads their outputs.

use dyn_interp::run::{RunSpec, run};
use std::collections::HashMap;
use std::path::Path;

/// The recorded values of the root's out ports (tensor elements as `name[i]`) after
/// `steps` steps of system `system` of `src`, or the error text of whichever stage failed.
pub fn outputs(src: &str, system: &str, steps: u64) -> Result<HashMap<String, f64>, String> {
    let stdlib =
        dyn_check::modules::Stdlib::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib"));
    let checked = dyn_check::check_source("test.dyn", None, src.to_string(), &stdlib);
    if checked.has_errors() {
        return Err(dyn_diag::render_all(
            &checked.sources,
            &checked.diagnostics,
            false,
        ));
    }
    let sig = checked
        .systems
        .iter()
        .find(|(_, s)| s.name == system)
        .ok_or("no such system")?
        .1
        .clone();
    let flat = dyn_ir::lower(&checked, &sig)
        .and_then(dyn_ir::flat::flatten)
        .map_err(|d| d.message.clone())?;
    let spec = RunSpec {
        steps: Some(steps),
        every: Some(steps.max(1) as f64),
        ..RunSpec::default()
    };
    let mut names = vec![];
    let mut last = vec![];
    run(&flat, &spec, &mut |n| names = n.to_vec(), &mut |_, v| {
        last = v.to_vec()
    })
    .map_err(|e| format!("{e:?}"))?;
    Ok(names.into_iter().zip(last).collect())
}
