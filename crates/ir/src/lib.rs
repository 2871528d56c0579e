//! The IR shared by every backend: the tree of nested systems with resolved, typed
//! expressions (`system`, `expr`), built from the checker's output by `lower`, and its
//! flattening into one step program over a state vector (`flat`).

pub mod ad;
pub mod expr;
pub mod flat;
pub mod linalg;
pub mod lower;
pub mod numeric;
pub mod print;
pub mod system;

pub use lower::lower;
