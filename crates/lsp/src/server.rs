//! The server loop: documents, notifications, requests, and the re-check of changed
//! documents once the queue of incoming messages is empty.

use crate::analysis::Analysis;
use crate::lines::LineIndex;
use crate::{diagnostics, features, uri};
use dyn_check::modules::Stdlib;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::{
    CompletionOptions, HoverProviderCapability, OneOf, PublishDiagnosticsParams, RenameOptions,
    ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind, Uri,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

/// Errors that end the server.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs the server on stdin/stdout until the client says `exit` or closes the stream.
pub fn run_stdio() -> Result<(), Error> {
    let (conn, io) = Connection::stdio();
    serve(conn, Stdlib::locate())?;
    // `serve` consumed and dropped the connection, so the writer thread can finish.
    io.join()?;
    Ok(())
}

/// What the server can do.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(
            TextDocumentSyncKind::INCREMENTAL,
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: Default::default(),
        })),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Serves one connection: the initialize handshake, then the main loop. Consumes the
/// connection, so that it is dropped before the caller joins the IO threads.
pub fn serve(conn: Connection, stdlib: Stdlib) -> Result<(), Error> {
    let caps = serde_json::to_value(capabilities())?;
    conn.initialize(caps)?;
    let mut server = Server {
        conn,
        stdlib,
        docs: HashMap::new(),
        shutdown: false,
    };
    server.main_loop();
    Ok(())
}

/// An open document.
struct Doc {
    text: String,
    version: i32,
    dirty: bool,
    analysis: Option<Rc<Analysis>>,
    /// The latest analysis without syntax errors (completion falls back on it).
    stable: Option<Rc<Analysis>>,
}

struct Server {
    conn: Connection,
    stdlib: Stdlib,
    docs: HashMap<Uri, Doc>,
    shutdown: bool,
}

/// A failed request: an LSP error code and a message.
type Failure = (i32, String);

fn params<P: DeserializeOwned>(v: Value) -> Result<P, Failure> {
    serde_json::from_value(v).map_err(|e| (ErrorCode::InvalidParams as i32, e.to_string()))
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError as i32, e.to_string()))
}

impl Server {
    fn main_loop(&mut self) {
        loop {
            let msg = match self.conn.receiver.try_recv() {
                Ok(m) => m,
                Err(e) if e.is_empty() => {
                    self.flush();
                    match self.conn.receiver.recv() {
                        Ok(m) => m,
                        Err(_) => return,
                    }
                }
                Err(_) => return,
            };
            match msg {
                Message::Request(req) => self.request(req),
                Message::Notification(n) if n.method == "exit" => return,
                Message::Notification(n) => self.notification(n),
                Message::Response(_) => {}
            }
        }
    }

    fn send(&self, m: Message) {
        // A closed channel means the client is gone; the loop ends on the next receive.
        let _ = self.conn.sender.send(m);
    }

    fn request(&mut self, req: Request) {
        let id = req.id.clone();
        if self.shutdown {
            let r = Response::new_err(
                id,
                ErrorCode::InvalidRequest as i32,
                "the server is shutting down".into(),
            );
            return self.send(r.into());
        }
        if req.method == "shutdown" {
            self.shutdown = true;
            return self.send(Response::new_ok(id, Value::Null).into());
        }
        self.flush();
        let result = catch_unwind(AssertUnwindSafe(|| self.dispatch(&req.method, req.params)));
        let resp = match result {
            Ok(Ok(v)) => Response::new_ok(id, v),
            Ok(Err((code, msg))) => Response::new_err(id, code, msg),
            Err(_) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                format!("internal error while answering {}", req.method),
            ),
        };
        self.send(resp.into());
    }

    /// The analysis of a document: the open one, or the file read from disk.
    fn analysis(&self, doc: &Uri) -> Option<Rc<Analysis>> {
        if let Some(d) = self.docs.get(doc) {
            return d.analysis.clone();
        }
        let text = std::fs::read_to_string(uri::to_path(doc)?).ok()?;
        Some(Rc::new(Analysis::new(doc, text, &self.stdlib)))
    }

    fn dispatch(&mut self, method: &str, p: Value) -> Result<Value, Failure> {
        use lsp_types::*;
        match method {
            "textDocument/hover" => {
                let p: HoverParams = params(p)?;
                let pos = p.text_document_position_params;
                let r = self
                    .analysis(&pos.text_document.uri)
                    .and_then(|a| features::hover(&a, pos.position));
                to_value(r)
            }
            "textDocument/definition" => {
                let p: GotoDefinitionParams = params(p)?;
                let pos = p.text_document_position_params;
                let uri = pos.text_document.uri;
                let r = self
                    .analysis(&uri)
                    .and_then(|a| features::definition(&a, &uri, pos.position))
                    .map(GotoDefinitionResponse::Scalar);
                to_value(r)
            }
            "textDocument/references" => {
                let p: ReferenceParams = params(p)?;
                let pos = p.text_document_position;
                let uri = pos.text_document.uri;
                let r = self
                    .analysis(&uri)
                    .map(|a| {
                        features::references(&a, &uri, pos.position, p.context.include_declaration)
                    })
                    .unwrap_or_default();
                to_value(r)
            }
            "textDocument/documentSymbol" => {
                let p: DocumentSymbolParams = params(p)?;
                let r = self
                    .analysis(&p.text_document.uri)
                    .map(|a| DocumentSymbolResponse::Nested(features::symbols(&a)));
                to_value(r)
            }
            "textDocument/completion" => {
                let p: CompletionParams = params(p)?;
                let pos = p.text_document_position;
                let uri = pos.text_document.uri;
                let Some(a) = self.analysis(&uri) else {
                    return Ok(Value::Null);
                };
                let (text, stable) = match self.docs.get(&uri) {
                    Some(d) => (d.text.clone(), d.stable.clone()),
                    None => (a.text(a.root_file()).to_string(), None),
                };
                let items =
                    features::completion(&a, stable.as_deref(), &text, pos.position, &self.stdlib);
                to_value(CompletionResponse::Array(items))
            }
            "textDocument/prepareRename" => {
                let p: TextDocumentPositionParams = params(p)?;
                let Some(a) = self.analysis(&p.text_document.uri) else {
                    return Ok(Value::Null);
                };
                match features::prepare_rename(&a, p.position) {
                    Ok(r) => to_value(PrepareRenameResponse::Range(r)),
                    Err(_) => Ok(Value::Null),
                }
            }
            "textDocument/rename" => {
                let p: RenameParams = params(p)?;
                let pos = p.text_document_position;
                let uri = pos.text_document.uri;
                let Some(a) = self.analysis(&uri) else {
                    return Ok(Value::Null);
                };
                features::rename(&a, &uri, pos.position, &p.new_name)
                    .map_err(|m| (ErrorCode::InvalidRequest as i32, m))
                    .and_then(to_value)
            }
            _ => Err((
                ErrorCode::MethodNotFound as i32,
                format!("unsupported request {method}"),
            )),
        }
    }

    fn notification(&mut self, n: Notification) {
        use lsp_types::*;
        let r = catch_unwind(AssertUnwindSafe(|| -> Result<(), Failure> {
            match n.method.as_str() {
                "textDocument/didOpen" => {
                    let p: DidOpenTextDocumentParams = params(n.params)?;
                    let d = p.text_document;
                    self.docs.insert(
                        d.uri,
                        Doc {
                            text: d.text,
                            version: d.version,
                            dirty: true,
                            analysis: None,
                            stable: None,
                        },
                    );
                }
                "textDocument/didChange" => {
                    let p: DidChangeTextDocumentParams = params(n.params)?;
                    if let Some(doc) = self.docs.get_mut(&p.text_document.uri) {
                        for c in p.content_changes {
                            apply_change(&mut doc.text, c);
                        }
                        doc.version = p.text_document.version;
                        doc.dirty = true;
                    }
                }
                "textDocument/didSave" => {
                    // Other documents may import the saved file: check them all again.
                    for d in self.docs.values_mut() {
                        d.dirty = true;
                    }
                }
                "textDocument/didClose" => {
                    let p: DidCloseTextDocumentParams = params(n.params)?;
                    self.docs.remove(&p.text_document.uri);
                    self.publish(p.text_document.uri, Vec::new(), None);
                }
                _ => {}
            }
            Ok(())
        }));
        if !matches!(r, Ok(Ok(()))) {
            eprintln!("dyn lsp: could not handle {}", n.method);
        }
    }

    fn publish(&self, uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) {
        let p = PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        };
        self.send(Notification::new("textDocument/publishDiagnostics".into(), p).into());
    }

    /// Checks every changed document and publishes its diagnostics.
    fn flush(&mut self) {
        let dirty: Vec<Uri> = self
            .docs
            .iter()
            .filter(|(_, d)| d.dirty)
            .map(|(u, _)| u.clone())
            .collect();
        for uri in dirty {
            let Some(doc) = self.docs.get_mut(&uri) else {
                continue;
            };
            doc.dirty = false;
            let text = doc.text.clone();
            let stdlib = &self.stdlib;
            let analysed = catch_unwind(AssertUnwindSafe(|| Analysis::new(&uri, text, stdlib)));
            let Ok(a) = analysed else {
                eprintln!("dyn lsp: the checker failed on {}", uri.as_str());
                continue;
            };
            let a = Rc::new(a);
            let diags = diagnostics::for_root(&a, &uri);
            let version = doc.version;
            if !a.has_parse_errors() {
                doc.stable = Some(a.clone());
            }
            doc.analysis = Some(a);
            self.publish(uri, diags, Some(version));
        }
    }
}

/// Applies one content change (a range edit, or the whole text) to a document.
fn apply_change(text: &mut String, c: lsp_types::TextDocumentContentChangeEvent) {
    match c.range {
        Some(r) => {
            let ix = LineIndex::new(text);
            let a = ix.offset(text, r.start);
            let b = ix.offset(text, r.end);
            let (a, b) = (a.min(b), a.max(b));
            text.replace_range(a..b, &c.text);
        }
        None => *text = c.text,
    }
}
