//! A small LSP client for tests: JSON-RPC over any pair of channels, with helpers for the
//! requests the tests make and a fixture project on disk.

#![allow(dead_code)]

use lsp_server::{Message, Notification, Request, RequestId, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Sends and receives messages.
pub trait Transport {
    /// Sends one message.
    fn send(&mut self, m: Message);
    /// Receives one message (None when the server is gone).
    fn recv(&mut self) -> Option<Message>;
}

/// An LSP client.
pub struct Client<T: Transport> {
    /// The transport.
    pub t: T,
    next: i32,
    /// Notifications received while waiting for responses.
    pub pending: VecDeque<Notification>,
}

impl<T: Transport> Client<T> {
    /// A client over `t` (not yet initialized).
    pub fn new(t: T) -> Self {
        Client {
            t,
            next: 1,
            pending: VecDeque::new(),
        }
    }

    /// Sends a request and waits for its response.
    pub fn request_raw(&mut self, method: &str, params: Value) -> Response {
        let id = self.next;
        self.next += 1;
        self.t
            .send(Request::new(RequestId::from(id), method.into(), params).into());
        loop {
            match self.t.recv().expect("server closed the connection") {
                Message::Response(r) if r.id == RequestId::from(id) => return r,
                Message::Notification(n) => self.pending.push_back(n),
                _ => {}
            }
        }
    }

    /// Sends a request and returns its result (panics on an error response).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let r = self.request_raw(method, params);
        match r.response_result {
            Ok(v) => v,
            Err(e) => panic!("{method} failed: {}", e.message),
        }
    }

    /// Sends a notification.
    pub fn notify(&mut self, method: &str, params: Value) {
        self.t.send(Notification::new(method.into(), params).into());
    }

    /// The initialize handshake.
    pub fn initialize(&mut self, root: &Path) -> Value {
        let r = self.request(
            "initialize",
            json!({ "processId": null, "rootUri": uri(root), "capabilities": {} }),
        );
        self.notify("initialized", json!({}));
        r
    }

    /// Waits for the next diagnostics published for `u`.
    pub fn diagnostics(&mut self, u: &str) -> Vec<Value> {
        loop {
            let n = match self.pending.pop_front() {
                Some(n) => n,
                None => match self.t.recv().expect("server closed the connection") {
                    Message::Notification(n) => n,
                    _ => continue,
                },
            };
            if n.method == "textDocument/publishDiagnostics" && n.params["uri"] == u {
                return n.params["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }

    /// Opens a document.
    pub fn open(&mut self, u: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": u, "languageId": "dyn", "version": 1, "text": text } }),
        );
    }

    /// Replaces a range of a document.
    pub fn edit(&mut self, u: &str, version: i32, range: Value, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": u, "version": version },
                    "contentChanges": [{ "range": range, "text": text }] }),
        );
    }

    /// A position request (`hover`, `definition`, `completion`, …).
    pub fn at(&mut self, method: &str, u: &str, line: u32, character: u32) -> Value {
        let mut p = json!({ "textDocument": { "uri": u },
                            "position": { "line": line, "character": character } });
        if method == "textDocument/references" {
            p["context"] = json!({ "includeDeclaration": true });
        }
        self.request(method, p)
    }

    /// shutdown, then exit.
    pub fn shutdown(&mut self) {
        assert_eq!(self.request("shutdown", Value::Null), Value::Null);
        self.notify("exit", Value::Null);
    }
}

/// A `file:` URI for a path.
pub fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// A range literal.
pub fn range(l0: u32, c0: u32, l1: u32, c1: u32) -> Value {
    json!({ "start": { "line": l0, "character": c0 }, "end": { "line": l1, "character": c1 } })
}

/// The line and character of the first `needle` in `text` (ASCII text), plus `plus` columns.
pub fn pos(text: &str, needle: &str, plus: u32) -> (u32, u32) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the text"));
    let line = text[..at].matches('\n').count() as u32;
    let col = (at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0)) as u32;
    (line, col + plus)
}

/// The main file of the fixture project.
pub const MAIN: &str = "use lib.pop.Population
use std.toy.Spring

/// Rabbits grow and are eaten.
system Rabbits : Population {
  param a: Real = 1.5
  state r: Real = 10.0
  let growth = a * r
  out pop = r
  der r = growth - rate * r
}

system Pair : { out total: Real } {
  box rabbits: Rabbits
  box spring: Spring
  rabbits.rate <- spring.x
  out total = rabbits.pop
}
";

/// A fixture project: `main.dyn`, `lib/pop.dyn`, and a stdlib directory with `toy.dyn`.
/// Returns (project dir, stdlib dir).
pub fn project(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("dyn-lsp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::create_dir_all(dir.join("std")).unwrap();
    std::fs::write(
        dir.join("lib/pop.dyn"),
        "/// A population shows its size and is told a per-capita loss rate.
interface Population {
  /// The head count.
  out pop: Real
  in  rate: Real
}
",
    )
    .unwrap();
    std::fs::write(
        dir.join("std/toy.dyn"),
        "/// A spring.
system Spring : { out x: Real } {
  state x0: Real = 1.0
  out x = x0
  der x0 = -x0
}
interface Coin = 2 y^3 + y
",
    )
    .unwrap();
    std::fs::write(dir.join("main.dyn"), MAIN).unwrap();
    (dir.clone(), dir.join("std"))
}
