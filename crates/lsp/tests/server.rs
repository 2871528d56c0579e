//! The server in-process over `Connection::memory()`: every feature, and robustness
//! against bad input and out-of-order requests.

mod common;

use common::{Client, MAIN, Transport, pos, project, range, uri};
use dyn_check::modules::Stdlib;
use lsp_server::{Connection, Message};
use serde_json::{Value, json};
use std::thread::JoinHandle;

struct Memory(Connection);

impl Transport for Memory {
    fn send(&mut self, m: Message) {
        self.0.sender.send(m).unwrap();
    }
    fn recv(&mut self) -> Option<Message> {
        self.0
            .receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .ok()
    }
}

fn start(stdlib: std::path::PathBuf) -> (Client<Memory>, JoinHandle<()>) {
    let (server, client) = Connection::memory();
    let h = std::thread::spawn(move || {
        dyn_lsp::serve(server, Stdlib::Dir(stdlib)).unwrap();
    });
    (Client::new(Memory(client)), h)
}

fn labels(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn diagnostics_hover_definition_completion_symbols_rename() {
    let (dir, std) = project("inproc");
    let (mut c, h) = start(std.clone());
    let caps = c.initialize(&dir);
    assert!(caps["capabilities"]["hoverProvider"].as_bool().unwrap());
    let main = uri(&dir.join("main.dyn"));

    // An error: `rate` misspelt.
    let bad = MAIN.replace("- rate * r", "- rte * r");
    c.open(&main, &bad);
    let d = c.diagnostics(&main);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["code"], "E0010");
    assert!(d[0]["message"].as_str().unwrap().contains("rte"), "{d:#?}");
    let (l, ch) = pos(&bad, "rte", 0);
    assert_eq!(d[0]["range"], range(l, ch, l, ch + 3));

    // Fix it with a one-character edit: the list empties.
    c.edit(&main, 2, range(l, ch + 1, l, ch + 1), "a");
    assert_eq!(c.diagnostics(&main), Vec::<Value>::new());

    // Hover: a let's type, a port with its doc, an interface with its polynomial.
    let (l, ch) = pos(MAIN, "growth - rate", 1);
    let hv = c.at("textDocument/hover", &main, l, ch);
    let text = hv["contents"]["value"].as_str().unwrap();
    assert!(text.contains("let growth: Real"), "{text}");
    let (l, ch) = pos(MAIN, "rabbits.pop", 9);
    let text = c.at("textDocument/hover", &main, l, ch)["contents"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("out pop: Real") && text.contains("The head count"),
        "{text}"
    );
    let (l, ch) = pos(MAIN, "Rabbits : Population", 11);
    let text = c.at("textDocument/hover", &main, l, ch)["contents"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("interface Population") && text.contains("per-capita"),
        "{text}"
    );

    // Definition across files: the interface in lib/pop.dyn, the stdlib system.
    let def = c.at("textDocument/definition", &main, l, ch);
    assert_eq!(def["uri"], uri(&dir.join("lib/pop.dyn")));
    assert_eq!(def["range"], range(1, 10, 1, 20));
    let (l, ch) = pos(MAIN, "spring: Spring", 9);
    let def = c.at("textDocument/definition", &main, l, ch);
    assert_eq!(def["uri"], uri(&std.join("toy.dyn")));
    assert_eq!(def["range"], range(1, 7, 1, 13));
    // A port through a box: `spring.x` → the port declaration in the stdlib.
    let (l, ch) = pos(MAIN, "spring.x", 7);
    let def = c.at("textDocument/definition", &main, l, ch);
    assert_eq!(def["range"], range(1, 22, 1, 23));

    // References of a box within the file.
    let (l, ch) = pos(MAIN, "box rabbits", 5);
    let refs = c.at("textDocument/references", &main, l, ch);
    assert_eq!(refs.as_array().unwrap().len(), 3, "{refs:#}");

    // Completion after `box.`: the ports of the box's system.
    let (l, _) = pos(MAIN, "  out total", 0);
    c.edit(&main, 3, range(l, 0, l, 0), "  out extra = rabbits.\n");
    let _ = c.diagnostics(&main);
    let items = c.at("textDocument/completion", &main, l, 22);
    let got = labels(&items);
    assert!(
        got.contains(&"pop".to_string()) && got.contains(&"rate".to_string()),
        "{got:?}"
    );
    // Names in scope and keywords elsewhere.
    let items = c.at("textDocument/completion", &main, l, 14);
    let got = labels(&items);
    for want in ["rabbits", "spring", "Rabbits", "Population", "state", "exp"] {
        assert!(
            got.contains(&want.to_string()),
            "{want} missing from {got:?}"
        );
    }
    c.edit(&main, 4, range(l, 0, l + 1, 0), "");
    let _ = c.diagnostics(&main);

    // Stdlib modules after `use std.`.
    c.edit(&main, 5, range(0, 0, 0, 0), "use std.\n");
    let _ = c.diagnostics(&main);
    let got = labels(&c.at("textDocument/completion", &main, 0, 8));
    assert_eq!(got, vec!["toy".to_string()]);
    c.edit(&main, 6, range(0, 0, 1, 0), "");
    assert_eq!(c.diagnostics(&main), Vec::<Value>::new());

    // The outline: systems with their boxes nested.
    let syms = c.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": main } }),
    );
    let syms = syms.as_array().unwrap();
    let names: Vec<&str> = syms.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Rabbits", "Pair"]);
    let pair: Vec<&str> = syms[1]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(pair, ["total", "rabbits", "spring"]);

    // Rename a state: its definition and every use.
    let (l, ch) = pos(MAIN, "state r", 6);
    let edit = c.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": main }, "position": { "line": l, "character": ch }, "newName": "n" }),
    );
    let edits = edit["changes"][&main].as_array().unwrap();
    assert_eq!(edits.len(), 5, "{edits:#?}");
    // A name defined in another file is not renamed.
    let (l, ch) = pos(MAIN, ": Population", 3);
    let r = c.request_raw(
        "textDocument/rename",
        json!({ "textDocument": { "uri": main }, "position": { "line": l, "character": ch }, "newName": "P" }),
    );
    assert!(r.response_result.is_err());

    c.shutdown();
    h.join().unwrap();
}

#[test]
fn survives_bad_input_and_out_of_order_requests() {
    let (dir, std) = project("robust");
    let (mut c, h) = start(std);
    c.initialize(&dir);
    let main = uri(&dir.join("main.dyn"));
    let ghost = uri(&dir.join("nothing-here.dyn"));
    // Requests about documents never opened, with nonsense positions.
    assert_eq!(c.at("textDocument/hover", &ghost, 99, 99), Value::Null);
    let _ = c.at("textDocument/completion", &ghost, 0, 0);
    // Bad params and unknown methods are errors, not crashes.
    assert!(
        c.request_raw("textDocument/hover", json!({"x": 1}))
            .response_result
            .is_err()
    );
    assert!(
        c.request_raw("dyn/unknown", Value::Null)
            .response_result
            .is_err()
    );
    // Garbage text, edits with ranges out of bounds, a change to a closed document.
    c.open(&main, "system ⊗ { box . <- ]] \u{0}");
    let _ = c.diagnostics(&main);
    c.edit(&main, 2, range(40, 3, 2, 1), "τ");
    let _ = c.diagnostics(&main);
    for line in 0..3 {
        for ch in [0, 1, 5, 100] {
            for m in [
                "textDocument/hover",
                "textDocument/definition",
                "textDocument/completion",
                "textDocument/references",
            ] {
                let _ = c.at(m, &main, line, ch);
            }
        }
    }
    c.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": main } }),
    );
    assert_eq!(c.diagnostics(&main), Vec::<Value>::new());
    c.edit(&main, 3, range(0, 0, 0, 0), "x");
    // Every prefix of a real program.
    for cut in (0..MAIN.len()).step_by(7) {
        if !MAIN.is_char_boundary(cut) {
            continue;
        }
        c.open(&main, &MAIN[..cut]);
        let _ = c.diagnostics(&main);
        let _ = c.at("textDocument/hover", &main, 8, 10);
        let _ = c.request(
            "textDocument/documentSymbol",
            json!({ "textDocument": { "uri": main } }),
        );
    }
    c.shutdown();
    // After shutdown, requests fail instead of being answered.
    h.join().unwrap();
}

/// Learners in the editor: no diagnostics for a correct one, hover shows the keyword, and a
/// box of a learner completes and hovers its derived backward ports.
#[test]
fn learners_hover_and_derived_ports() {
    let (dir, std) = project("learner");
    let (mut c, h) = start(std);
    c.initialize(&dir);
    let main = uri(&dir.join("learn.dyn"));
    let text = "learner Scale : { in x: Real  out y: Real } {\n  param w: Real = 1.0\n  out y = w * x\n}\n\nsystem Net : { in u: Real  out v: Real } {\n  box a: Scale\n  box b: Scale\n  a.x <- u\n  b.x <- a.y\n  b.dy <- b.y - u\n  out v = a.dx\n}\n";
    c.open(&main, text);
    assert_eq!(c.diagnostics(&main), Vec::<Value>::new());
    let (l, ch) = pos(text, "Scale\n  box b", 1);
    let hv = c.at("textDocument/hover", &main, l, ch);
    let s = hv["contents"]["value"].as_str().unwrap();
    assert!(s.contains("learner Scale"), "{s}");
    let (l, ch) = pos(text, "dx\n}", 0);
    let hv = c.at("textDocument/hover", &main, l, ch);
    let s = hv["contents"]["value"].as_str().unwrap();
    assert!(
        s.contains("dx") && s.contains("derived backward port"),
        "{s}"
    );
    c.shutdown();
    h.join().unwrap();
}
