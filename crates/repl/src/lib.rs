//! `dyn repl`: an interactive session for exploring interfaces and systems.
//!
//! Definitions accumulate in a [`session::Session`] (redefinitions replace, dependents are
//! re-checked); expressions are evaluated and printed with their type; commands (`:poly`,
//! `:run`, …) inspect and run what was defined. On a terminal the line editor is rustyline
//! (history, multi-line input, completion, highlighting); with piped standard input the
//! lines run as a script that stops at the first error.

#![warn(missing_docs)]

pub mod chart;
pub mod commands;
pub mod complete;
pub mod describe;
pub mod eval;
pub mod helper;
pub mod highlight;
pub mod runcmd;
pub mod session;
pub mod source;

use dyn_check::modules::Stdlib;
use helper::ReplHelper;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};
use session::{Io, Session, Status};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// The environment variable that names the history file (tests point it at a temp dir).
pub const HISTORY_ENV: &str = "DYN_REPL_HISTORY";

/// The history file: `$DYN_REPL_HISTORY`, else `$XDG_STATE_HOME/dyn/history`, else
/// `~/.local/state/dyn/history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(HISTORY_ENV) {
        return Some(PathBuf::from(p));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("dyn").join("history"))
}

/// Runs `dyn repl`: interactive on a terminal, a script otherwise. Returns the exit code:
/// 0, or 1 when a script failed.
pub fn main(files: &[PathBuf]) -> u8 {
    let interactive = std::io::stdin().is_terminal();
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut session = Session::new(Stdlib::locate(), color);
    session.interactive = interactive;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    for f in files {
        if session.load(&f.display().to_string(), &mut io) != Status::Ok && !interactive {
            return 1;
        }
    }
    if interactive {
        interactive_loop(&mut session, &mut io);
        0
    } else {
        script(&mut session, std::io::stdin().lock(), &mut io)
    }
}

/// Runs the lines of `input` as a script: each complete input in turn, stopping at the
/// first failure (exit code 1) or `:quit`.
pub fn script(session: &mut Session, input: impl BufRead, io: &mut Io) -> u8 {
    let mut buf = String::new();
    for line in input.lines() {
        let Ok(line) = line else {
            let _ = writeln!(io.err, "error: standard input is not text");
            return 1;
        };
        buf.push_str(&line);
        buf.push('\n');
        if !helper::input_complete(&buf) {
            continue;
        }
        let text = std::mem::take(&mut buf);
        match session.process(&text, io) {
            Status::Ok => {}
            Status::Failed => return 1,
            Status::Quit => return 0,
        }
    }
    if !buf.trim().is_empty() && session.process(&buf, io) != Status::Ok {
        return 1;
    }
    0
}

fn interactive_loop(session: &mut Session, io: &mut Io) {
    let flag = session.interrupt.clone();
    // Ctrl-C while a run goes on (the line editor reads Ctrl-C as a key by itself).
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .build();
    let mut rl: Editor<ReplHelper, FileHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(io.err, "error: cannot start the line editor: {e}");
            return;
        }
    };
    rl.set_helper(Some(ReplHelper {
        index: session.index.clone(),
        color: session.color,
    }));
    if session.index.borrow().stdlib.is_empty() {
        session.index.borrow_mut().stdlib = complete::stdlib_modules(&session.stdlib);
    }
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let _ = writeln!(io.out, "dyn repl — :help for commands, Ctrl-D to leave");
    loop {
        match rl.readline("dyn> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                    if let Some(h) = &history {
                        if let Some(dir) = h.parent() {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        let _ = rl.save_history(h);
                    }
                }
                let st = session.process(&line, io);
                let _ = io.out.flush();
                if st == Status::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                let _ = writeln!(io.err, "error: {e}");
                break;
            }
        }
    }
}
