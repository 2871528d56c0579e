//! `dyn lsp` as a child process speaking JSON-RPC over stdio: initialize, diagnostics on
//! open and after a fixing edit, hover, definition across files, completion after `.`,
//! document symbols, shutdown and exit.

#[path = "../../lsp/tests/common/mod.rs"]
mod common;

use common::{Client, MAIN, Transport, pos, project, range, uri};
use lsp_server::Message;
use serde_json::{Value, json};
use std::io::BufReader;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

struct Stdio2 {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Transport for Stdio2 {
    fn send(&mut self, m: Message) {
        m.write(&mut self.stdin).expect("write to dyn lsp");
    }
    fn recv(&mut self) -> Option<Message> {
        Message::read(&mut self.stdout).ok().flatten()
    }
}

fn spawn(stdlib: &std::path::Path) -> (Client<Stdio2>, Child) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dyn"))
        .arg("lsp")
        .env("DYN_STDLIB", stdlib)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start dyn lsp");
    let t = Stdio2 {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
    };
    (Client::new(t), child)
}

#[test]
fn dyn_lsp_over_stdio() {
    let (dir, std) = project("stdio");
    let (mut c, mut child) = spawn(&std);
    let init = c.initialize(&dir);
    assert_eq!(init["capabilities"]["definitionProvider"], true);
    let main = uri(&dir.join("main.dyn"));

    // Open with an error: the checker's code, message and range.
    let bad = MAIN.replace("- rate * r", "- rte * r");
    c.open(&main, &bad);
    let d = c.diagnostics(&main);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["code"], "E0010");
    assert_eq!(d[0]["source"], "dyn");
    let (l, ch) = pos(&bad, "rte", 0);
    assert_eq!(d[0]["range"], range(l, ch, l, ch + 3));
    // Fix it: an empty list.
    c.edit(&main, 2, range(l, ch + 1, l, ch + 1), "a");
    assert_eq!(c.diagnostics(&main), Vec::<Value>::new());

    // Hover on a port read through a box: its type and doc comment.
    let (l, ch) = pos(MAIN, "rabbits.pop", 9);
    let hv = c.at("textDocument/hover", &main, l, ch);
    let text = hv["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("out pop: Real") && text.contains("The head count"),
        "{text}"
    );

    // Definition across files.
    let (l, ch) = pos(MAIN, ": Population", 3);
    let def = c.at("textDocument/definition", &main, l, ch);
    assert_eq!(def["uri"], uri(&dir.join("lib/pop.dyn")));
    assert_eq!(def["range"], range(1, 10, 1, 20));

    // Completion after `.`.
    let (l, _) = pos(MAIN, "  out total", 0);
    c.edit(&main, 3, range(l, 0, l, 0), "  out extra = spring.\n");
    let _ = c.diagnostics(&main);
    let items = c.at("textDocument/completion", &main, l, 21);
    let labels: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["x"]);
    c.edit(&main, 4, range(l, 0, l + 1, 0), "");
    assert_eq!(c.diagnostics(&main), Vec::<Value>::new());

    // Document symbols.
    let syms = c.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": main } }),
    );
    let rabbits = &syms[0];
    assert_eq!(rabbits["name"], "Rabbits");
    let kids: Vec<&str> = rabbits["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["a", "r", "growth"]);

    c.shutdown();
    let status = child.wait().expect("dyn lsp exits");
    assert!(status.success(), "{status}");
}
