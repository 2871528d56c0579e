//! The types the checker gave to expressions, kept for the stages after it.
//!
//! Each system instantiation, fn body and the module level is a typing *context*; within
//! one, an expression is identified by the address of its AST node. The ASTs never move
//! after loading (they live in the heap buffers of `Checked::modules`), so the address is a
//! stable identity for as long as the `Checked` value lives.

use crate::types::Ty;
use dyn_syntax::ast::Expr;
use std::collections::HashMap;

/// Expression types per context.
#[derive(Debug, Default)]
pub struct Typeck {
    types: HashMap<(u32, usize), Ty>,
}

impl Typeck {
    /// Records the type of `e` in context `ctx` (the last check wins).
    pub fn record(&mut self, ctx: u32, e: &Expr, t: &Ty) {
        self.types
            .insert((ctx, e as *const Expr as usize), t.clone());
    }

    /// The type of `e` in context `ctx`, if it was checked there.
    pub fn get(&self, ctx: u32, e: &Expr) -> Option<&Ty> {
        self.types.get(&(ctx, e as *const Expr as usize))
    }
}
