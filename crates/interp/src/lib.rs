//! The reference interpreter of dyn: runs a flattened step program (`dyn_ir::flat`) with
//! discrete stepping or the integrators (Euler, RK4, Dormand–Prince RK45 with event
//! location), and records traces. The JIT and AOT backends are tested against it.

pub mod machine;
pub mod run;
pub mod value;
