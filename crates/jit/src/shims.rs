//! Math the generated code calls: `extern "C"` wrappers around Rust's own functions, so the
//! JIT computes exactly what the interpreter computes.

/// The shims by symbol name, with their arity.
pub const SHIMS: &[(&str, usize, *const u8)] = &[
    ("dyn_exp", 1, dyn_exp as *const u8),
    ("dyn_log", 1, dyn_log as *const u8),
    ("dyn_sin", 1, dyn_sin as *const u8),
    ("dyn_cos", 1, dyn_cos as *const u8),
    ("dyn_tan", 1, dyn_tan as *const u8),
    ("dyn_tanh", 1, dyn_tanh as *const u8),
    ("dyn_sinh", 1, dyn_sinh as *const u8),
    ("dyn_cosh", 1, dyn_cosh as *const u8),
    ("dyn_atan", 1, dyn_atan as *const u8),
    ("dyn_round", 1, dyn_round as *const u8),
    ("dyn_powf", 2, dyn_powf as *const u8),
    ("dyn_atan2", 2, dyn_atan2 as *const u8),
    ("dyn_remf", 2, dyn_remf as *const u8),
    ("dyn_min", 2, dyn_min as *const u8),
    ("dyn_max", 2, dyn_max as *const u8),
    ("dyn_idiv", 2, dyn_idiv as *const u8),
    ("dyn_irem", 2, dyn_irem as *const u8),
    ("dyn_ipow", 2, dyn_ipow as *const u8),
];

/// `randn()`: a standard normal sample times the noise scale, from the run's generator
/// (the interpreter's). `cell` holds the generator's address and the scale's bits.
///
/// # Safety
/// `cell` must point at two words: the address of a live [`dyn_ir::numeric::Noise`] that
/// nothing else uses during the call, and the bits of the scale.
pub unsafe extern "C" fn dyn_randn(cell: *const u64) -> f64 {
    // SAFETY: `cell` points at the io words RNG and SCALE, filled by `run` with the address
    // of the live generator of the `Sim` being run (which outlives the call) and the scale.
    let (rng, scale) = unsafe {
        (
            &mut *(*cell as *mut dyn_ir::numeric::Noise),
            f64::from_bits(*cell.add(1)),
        )
    };
    rng.normal() * scale
}

extern "C" fn dyn_exp(x: f64) -> f64 {
    x.exp()
}
extern "C" fn dyn_log(x: f64) -> f64 {
    x.ln()
}
extern "C" fn dyn_sin(x: f64) -> f64 {
    x.sin()
}
extern "C" fn dyn_cos(x: f64) -> f64 {
    x.cos()
}
extern "C" fn dyn_tan(x: f64) -> f64 {
    x.tan()
}
extern "C" fn dyn_tanh(x: f64) -> f64 {
    x.tanh()
}
extern "C" fn dyn_sinh(x: f64) -> f64 {
    x.sinh()
}
extern "C" fn dyn_cosh(x: f64) -> f64 {
    x.cosh()
}
extern "C" fn dyn_atan(x: f64) -> f64 {
    x.atan()
}
extern "C" fn dyn_round(x: f64) -> f64 {
    x.round()
}
extern "C" fn dyn_powf(x: f64, y: f64) -> f64 {
    x.powf(y)
}
extern "C" fn dyn_atan2(x: f64, y: f64) -> f64 {
    x.atan2(y)
}
/// Rust's `min`: a NaN argument yields the other one (Cranelift's `fmin` propagates NaN).
extern "C" fn dyn_min(x: f64, y: f64) -> f64 {
    x.min(y)
}
extern "C" fn dyn_max(x: f64, y: f64) -> f64 {
    x.max(y)
}
extern "C" fn dyn_remf(x: f64, y: f64) -> f64 {
    x.rem_euclid(y)
}
/// Int division; NaN (caught as a non-finite state) where the interpreter reports an error.
extern "C" fn dyn_idiv(x: f64, y: f64) -> f64 {
    (x as i64)
        .checked_div(y as i64)
        .map(|v| v as f64)
        .unwrap_or(f64::NAN)
}
extern "C" fn dyn_irem(x: f64, y: f64) -> f64 {
    (x as i64)
        .checked_rem_euclid(y as i64)
        .map(|v| v as f64)
        .unwrap_or(f64::NAN)
}
extern "C" fn dyn_ipow(x: f64, y: f64) -> f64 {
    u32::try_from(y as i64)
        .ok()
        .and_then(|e| (x as i64).checked_pow(e))
        .map(|v| v as f64)
        .unwrap_or(f64::NAN)
}
