//! One input of the session: a command (`:run …`), definitions, or an expression.

use crate::session::{Io, Session, Status};
use dyn_syntax::lexer::{Token, lex};

/// The text of `:help`.
pub const HELP: &str = "\
Definitions (system, interface, lens, fn, const, type, enum, use, run) accumulate; a new
definition of a name replaces the old one. An expression is evaluated and printed with its
type. An input continues on the next line while it is incomplete (an open `{`).

  :help                 this text
  :load FILE            define everything in a .dyn file
  :reload               load the loaded files again
  :type EXPR            the type of an expression, or what a name is
  :poly EXPR            the normal form of a finite polynomial, e.g. :poly P <| Q
  :check [NAME]         check a definition and what it uses (a lens: does the analogy hold?)
  :ir NAME [flat]       the IR of a system (or its flattened step program)
  :run NAME [N] [record a b …]
                        run a system for N steps (discrete) or until t = N (continuous);
                        also steps N, until T, dt X, every E, method euler|rk4|rk45, seed S
  :plot FILE.svg        draw the last run's trace as an SVG file
  :params NAME          the params of a system and their values
  :set PATH=VALUE       override a param in later runs (:set alone lists them)
  :save FILE            write the session's definitions as a .dyn file
  :quit                 leave (also Ctrl-D); Ctrl-C stops a running :run
";

/// True when a text starts with an item keyword or a doc comment.
pub fn is_definition(text: &str) -> bool {
    let t = text.trim_start();
    if t.starts_with("///") {
        return true;
    }
    matches!(
        lex(t).tokens.first().map(|(_, tok, _)| tok),
        Some(
            Token::Use
                | Token::Const
                | Token::Type
                | Token::Enum
                | Token::Fn
                | Token::Interface
                | Token::System
                | Token::Lens
                | Token::Learner
                | Token::Run
        )
    )
}

impl Session {
    /// Handles one whole input.
    pub fn process(&mut self, text: &str, io: &mut Io) -> Status {
        let trimmed = text.trim();
        if trimmed.is_empty() || (trimmed.starts_with("//") && !trimmed.contains('\n')) {
            return Status::Ok;
        }
        let input = self.add_typed(text);
        if trimmed.starts_with(':') {
            return self.command(input, io);
        }
        if is_definition(trimmed) {
            return self.define(input, io, false);
        }
        let lo = text.len() - text.trim_start().len();
        let hi = text.trim_end().len();
        self.eval(input, lo, hi, io)
    }

    fn command(&mut self, input: usize, io: &mut Io) -> Status {
        let text = self.inputs[input].text.clone();
        let lead = text.len() - text.trim_start().len();
        let body = &text[lead..];
        let cmd_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let cmd = &body[..cmd_end];
        let arg_lo = lead + cmd_end + (body[cmd_end..].len() - body[cmd_end..].trim_start().len());
        let arg_hi = text.trim_end().len().max(arg_lo);
        let arg = text[arg_lo..arg_hi].to_string();
        let need = |io: &mut Io, what: &str| {
            let _ = writeln!(io.err, "error: {cmd} needs {what}");
            Status::Failed
        };
        match cmd {
            ":help" | ":h" | ":?" => {
                let _ = write!(io.out, "{HELP}");
                Status::Ok
            }
            ":quit" | ":q" | ":exit" => Status::Quit,
            ":load" | ":l" if arg.is_empty() => need(io, "a file"),
            ":load" | ":l" => self.load(&arg, io),
            ":reload" | ":r" => self.reload(io),
            ":type" | ":t" if arg.is_empty() => need(io, "an expression"),
            ":type" | ":t" => self.type_of(input, arg_lo, arg_hi, io),
            ":poly" | ":p" => self.poly(input, arg_lo, arg_hi, io),
            ":check" | ":c" => self.check_cmd(&arg, io),
            ":ir" if arg.is_empty() => need(io, "a system"),
            ":ir" => self.ir(&arg, io),
            ":run" => self.run(&arg, io),
            ":params" if arg.is_empty() => need(io, "a system"),
            ":params" => self.params(&arg, io),
            ":set" => self.set(&arg, io),
            ":save" if arg.is_empty() => need(io, "a file"),
            ":save" => self.save(&arg, io),
            ":plot" => self.plot(&arg, io),
            _ => {
                let _ = writeln!(io.err, "error: unknown command `{cmd}` (:help lists them)");
                Status::Failed
            }
        }
    }

    /// `:plot FILE`: the last run's trace as SVG.
    fn plot(&mut self, arg: &str, io: &mut Io) -> Status {
        let Some(t) = &self.last_trace else {
            let _ = writeln!(io.err, "error: nothing to plot: :run a system first");
            return Status::Failed;
        };
        if arg.is_empty() {
            let _ = writeln!(io.err, "error: :plot needs a file, e.g. :plot trace.svg");
            return Status::Failed;
        }
        if !arg.to_ascii_lowercase().ends_with(".svg") {
            let _ = writeln!(
                io.err,
                "error: :plot writes SVG (name the file FILE.svg); for PNG use `dyn run --plot FILE.png`"
            );
            return Status::Failed;
        }
        match std::fs::write(arg, t.svg()) {
            Ok(()) => {
                let _ = writeln!(io.out, "wrote {arg}");
                Status::Ok
            }
            Err(e) => {
                let _ = writeln!(io.err, "error: cannot write `{arg}`: {e}");
                Status::Failed
            }
        }
    }
}
