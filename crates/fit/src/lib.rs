//! Gradients through time and fitting of dyn models to recorded data.
//!
//! - [`Problem`] (`gradient.rs`): the mean squared error between a model's recorded
//!   quantities and a [`Data`] table, and its gradient with respect to every param and every
//!   initial state slot, by reverse mode through the integrator's steps (Euler, RK4, or a
//!   discrete model's `next`), with checkpointing.
//! - `synth.rs`: the flattened model as one system ([`synth::Model`]), and the synthesised
//!   step and adjoint-step systems (the adjoint by `dyn_ir::ad::grad_many`), which the Cranelift
//!   JIT compiles like any model (the interpreter is the reference and the fallback).
//! - [`fit`] (`fit.rs`): the fitted variables by name ([`Var`]), Adam and L-BFGS.
//!
//! See `docs/fit.md` for the method, its costs and the command `dyn fit`.

pub mod data;
mod exec;
pub mod fit;
pub mod gradient;
pub mod synth;

pub use data::Data;
pub use exec::Backend;
pub use fit::{FitOptions, FitResult, Optimizer, Var, resolve_vars};
pub use gradient::{Gradient, Problem};

use dyn_diag::Diagnostic;
use dyn_interp::run::RunError;

/// Why a fit or gradient could not be computed.
#[derive(Debug, Clone)]
pub enum FitError {
    /// The model has something the gradient cannot go through (a diagnostic with a code).
    Model(Box<Diagnostic>),
    /// The data does not fit the model (columns, times).
    Data(String),
    /// A bad setting (method, step, variable names, options).
    Setting(String),
    /// A run failed (a non-finite state, an evaluation error).
    Run(RunError),
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitError::Model(d) => write!(f, "{}", d.message),
            FitError::Data(s) | FitError::Setting(s) => write!(f, "{s}"),
            FitError::Run(RunError::NotFinite { name, time, .. }) => write!(
                f,
                "the state `{name}` became NaN or infinite at step time {time}"
            ),
            FitError::Run(e) => write!(f, "{e:?}"),
        }
    }
}
