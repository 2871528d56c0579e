//! Every example, stdlib module and UI test program: the index answers hover, definition,
//! references, completion and rename at every byte without panicking, and finds the
//! definitions of the names used in the examples. Also checks the editor files parse.

use dyn_check::modules::Stdlib;
use dyn_lsp::analysis::Analysis;
use dyn_lsp::{features, uri};
use std::path::{Path, PathBuf};

fn dyn_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            dyn_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "dyn") {
            out.push(p);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_position_of_every_program() {
    let stdlib = Stdlib::locate();
    let mut files = Vec::new();
    for d in ["examples", "stdlib", "tests/ui"] {
        dyn_files(&root().join(d), &mut files);
    }
    assert!(!files.is_empty());
    let mut resolved = 0usize;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let u = uri::from_path(&f.canonicalize().unwrap()).unwrap();
        let a = Analysis::new(&u, text.clone(), &stdlib);
        let _ = features::symbols(&a);
        let mut line = 0u32;
        let mut col = 0u32;
        for c in text.chars() {
            let p = lsp_types::Position::new(line, col);
            if features::hover(&a, p).is_some() {
                resolved += 1;
            }
            let _ = features::definition(&a, &u, p);
            if c == '.' || c == ' ' {
                let _ = features::completion(&a, None, &text, p, &stdlib);
                let _ = features::references(&a, &u, p, true);
                let _ = features::rename(&a, &u, p, "renamed");
            }
            if c == '\n' {
                line += 1;
                col = 0;
            } else {
                col += c.len_utf16() as u32;
            }
        }
    }
    assert!(resolved > 1000, "only {resolved} positions had a hover");
}

#[test]
fn interface_hover_shows_the_normal_form() {
    let text =
        "/// Two coins.\ninterface Coin = 2 y^3 + y\nsystem S : { out x: Real } { out x = 1.0 }\n";
    let u = uri::from_path(Path::new("/tmp/nf.dyn")).unwrap();
    let a = Analysis::new(&u, text.to_string(), &Stdlib::locate());
    let h = features::hover(&a, lsp_types::Position::new(1, 11)).unwrap();
    let lsp_types::HoverContents::Markup(m) = h.contents else {
        panic!("markdown expected")
    };
    assert!(
        m.value.contains("interface Coin = 2 y^3 + y"),
        "{}",
        m.value
    );
    assert!(m.value.contains("normal form: 2y^3 + y"), "{}", m.value);
    assert!(m.value.contains("Two coins."), "{}", m.value);
}

#[test]
fn editor_files_are_valid() {
    let grammar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("grammar/dyn.tmLanguage.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(grammar["scopeName"], "source.dyn");
    let pkg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("editors/vscode/package.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pkg["contributes"]["grammars"][0]["scopeName"], "source.dyn");
    assert!(
        pkg["scripts"]["sync-grammar"]
            .as_str()
            .unwrap()
            .contains("grammar/dyn.tmLanguage.json")
    );
}

#[test]
fn into_the_stdlib_from_an_example() {
    let path = root().join("examples/fhn_ring.dyn").canonicalize().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let u = uri::from_path(&path).unwrap();
    let a = Analysis::new(&u, text.clone(), &Stdlib::locate());
    let at = |needle: &str, plus: usize| {
        let off = text.find(needle).unwrap() + plus;
        let line = text[..off].matches('\n').count() as u32;
        let col = (off - text[..off].rfind('\n').map_or(0, |i| i + 1)) as u32;
        lsp_types::Position::new(line, col)
    };
    // The box's system and a parameter override resolve into stdlib/neurons.dyn.
    for (needle, plus) in [
        (": FHN(k", 3),
        ("FHN(k = k)", 4),
        ("use std.neurons.FHN", 17),
    ] {
        let d = features::definition(&a, &u, at(needle, plus)).expect(needle);
        assert!(
            d.uri.as_str().ends_with("stdlib/neurons.dyn"),
            "{needle}: {d:?}"
        );
    }
    // A port of a box in an array: type on hover, definition in the stdlib.
    let h = features::hover(&a, at("cell[500].v", 10)).unwrap();
    let lsp_types::HoverContents::Markup(m) = h.contents else {
        panic!("markdown expected")
    };
    assert!(m.value.contains("out v: Real"), "{}", m.value);
    // The run block's recorded names are the system's out ports.
    let d = features::definition(&a, &u, at("record v0", 8)).unwrap();
    assert_eq!(d.range.start.line, at("out v0: Real", 4).line);
}
