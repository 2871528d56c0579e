//! The dyn language server: `dyn lsp` speaks the Language Server Protocol over stdio.
//!
//! Every open document is checked with [`dyn_check::check_source`] on open and after each
//! change (changes that arrive together are checked once); the result, with an
//! [`index::Index`] of its names, answers hover, go to definition, references, completion,
//! document symbols and rename. Only this crate knows LSP; positions are converted from the
//! checker's byte offsets to UTF-16 columns in [`lines`].

pub mod analysis;
pub mod diagnostics;
pub mod features;
pub mod index;
pub mod lines;
pub mod server;
pub mod uri;

pub use server::{run_stdio, serve};
