//! The rustyline helper: multi-line validation, completion, highlighting.

use crate::complete::Index;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

/// Whether a text is a whole input: a command, complete items, or a complete expression.
pub fn input_complete(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() || t.starts_with(':') {
        return true;
    }
    // A doc comment belongs to the item on the next line.
    if t.lines()
        .last()
        .is_some_and(|l| l.trim_start().starts_with("///"))
    {
        return false;
    }
    if crate::commands::is_definition(t) {
        dyn_syntax::is_complete(text)
    } else {
        dyn_syntax::is_complete(&format!("const __e = {text}"))
    }
}

/// The line editor's helper.
pub struct ReplHelper {
    /// What completion knows.
    pub index: Rc<RefCell<Index>>,
    /// Colour the input.
    pub color: bool,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = self.index.borrow().complete(line, pos);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.color {
            Cow::Owned(crate::highlight::highlight(line))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if input_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for ReplHelper {}
