//! Dense linear algebra in generated code: `solve(A, b)`, `spectral_radius(A)` and `eye(n)`.
//!
//! `solve` and `spectral_radius` call `extern "C"` shims around the interpreter's own
//! functions ([`dyn_ir::linalg`], nalgebra), so the JIT gets the same bits. A failure
//! (singular matrix, non-finite entry, no convergence) fills the result with NaN and keeps
//! the message in a thread-local; the run then stops on the non-finite state it causes and
//! [`take_error`] turns that into the interpreter's evaluation error.
//!
//! An `if` with a scalar condition whose branches hold one of these operations is compiled
//! as a branch ([`Gen::branch_into`]), not as the element-wise select of other tensor `if`s:
//! a ridge readout's `if fit then solve(…) else w` then solves only in the step that fits,
//! as the interpreter does.

use crate::codegen::{Ctx, Frame, Gen};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{AbiParam, InstBuilder, Value, types};
use cranelift_frontend::FunctionBuilder;
use cranelift_jit::JITBuilder;
use cranelift_module::{FuncId, Linkage, Module};
use dyn_ir::expr::Expr;
use dyn_ir::system::slots;
use std::cell::RefCell;
use std::collections::HashMap;

const F64: types::Type = types::F64;
const I64: types::Type = types::I64;

thread_local! {
    /// The message of the last failed linear-algebra call on this thread.
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The message of a linear-algebra call that failed since the last call (and clears it).
pub fn take_error() -> Option<String> {
    LAST_ERROR.with(|e| e.borrow_mut().take())
}

fn fail(msg: String) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        if e.is_none() {
            *e = Some(msg);
        }
    });
}

/// `solve`: `out` (`n × k`, row-major) gets `x` with `A x = b`; NaN and a recorded message
/// if that fails. Returns 0.
///
/// # Safety
/// `a` must point at `n × n` readable `f64`s, `b` at `n × k`, `out` at `n × k` writable ones
/// that overlap neither.
unsafe extern "C" fn dyn_solve(a: *const f64, b: *const f64, out: *mut f64, n: i64, k: i64) -> f64 {
    let (n, k) = (n.max(0) as usize, k.max(0) as usize);
    // SAFETY: the generated code passes the addresses and sizes of the operands' buffers
    // (state, params, signals or scratch), which hold at least these many elements.
    let (a, b, out) = unsafe {
        (
            std::slice::from_raw_parts(a, n * n),
            std::slice::from_raw_parts(b, n * k),
            std::slice::from_raw_parts_mut(out, n * k),
        )
    };
    match dyn_ir::linalg::solve(a, n, b, k) {
        Ok(x) => out.copy_from_slice(&x),
        Err(e) => {
            out.fill(f64::NAN);
            fail(e);
        }
    }
    0.0
}

/// `spectral_radius` of the `n × n` matrix at `a`; NaN and a recorded message on failure.
///
/// # Safety
/// `a` must point at `n × n` readable `f64`s.
unsafe extern "C" fn dyn_spectral_radius(a: *const f64, n: i64) -> f64 {
    let n = n.max(0) as usize;
    // SAFETY: as in `dyn_solve`.
    let a = unsafe { std::slice::from_raw_parts(a, n * n) };
    dyn_ir::linalg::spectral_radius(a, n).unwrap_or_else(|e| {
        fail(e);
        f64::NAN
    })
}

/// The shims: name, number of i64 (address or size) parameters then f64 result.
const LINALG: &[(&str, usize, *const u8)] = &[
    ("dyn_solve", 5, dyn_solve as *const u8),
    ("dyn_spectral_radius", 2, dyn_spectral_radius as *const u8),
];

/// Declares the shims in `module` (imports), into the table of math shims.
pub(crate) fn declare<M: Module>(
    module: &mut M,
    shims: &mut HashMap<&'static str, FuncId>,
) -> Result<(), String> {
    for (name, arity, _) in LINALG {
        let mut sig = module.make_signature();
        for _ in 0..*arity {
            sig.params.push(AbiParam::new(I64));
        }
        sig.returns.push(AbiParam::new(F64));
        let id = module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| e.to_string())?;
        shims.insert(*name, id);
    }
    Ok(())
}

/// Registers the shims' addresses with a JIT builder (as `dyn_jit::run` does; a module
/// that runs code emitted for a program using `solve` or `spectral_radius` needs them).
pub fn register(jb: &mut JITBuilder) {
    for (name, _, ptr) in LINALG {
        jb.symbol(*name, *ptr);
    }
}

impl Gen<'_> {
    /// `solve(a, rhs)` into `dst`.
    pub(crate) fn solve_into(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        a: &Expr,
        rhs: &Expr,
        dst: Value,
    ) {
        let n = self.shape(f, a).first().copied().unwrap_or(0) as i64;
        let k = self.shape(f, rhs).get(1).copied().unwrap_or(1) as i64;
        let pa = self.ptr_of(b, c, f, a);
        let pb = self.ptr_of(b, c, f, rhs);
        let (n, k) = (b.ins().iconst(I64, n), b.ins().iconst(I64, k));
        Self::call(b, c, "dyn_solve", &[pa, pb, dst, n, k]);
    }

    /// `spectral_radius(a)`.
    pub(crate) fn spectral_radius(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        a: &Expr,
    ) -> Value {
        let n = self.shape(f, a).first().copied().unwrap_or(0) as i64;
        let pa = self.ptr_of(b, c, f, a);
        let n = b.ins().iconst(I64, n);
        Self::call(b, c, "dyn_spectral_radius", &[pa, n])
    }

    /// Element `i` of `eye(n)`: 1 on the diagonal (`i = r n + r`), else 0.
    pub(crate) fn eye_elem(b: &mut FunctionBuilder, i: Value, n: u64) -> Value {
        let n = n.max(1) as i64;
        let r = b.ins().udiv_imm_u(i, n);
        let col = b.ins().imul_imm_s(r, n);
        let col = b.ins().isub(i, col);
        let diag = b.ins().icmp(IntCC::Equal, r, col);
        let one = b.ins().f64const(1.0);
        let zero = b.ins().f64const(0.0);
        b.ins().select(diag, one, zero)
    }

    /// Is `x` an `if` on a scalar condition with a linear-algebra operation in a branch?
    pub(crate) fn branches(&self, f: &Frame, x: &Expr) -> bool {
        matches!(x, Expr::If(cnd, t, e)
            if self.shape(f, cnd).is_empty()
                && (t.linalg_op().is_some() || e.linalg_op().is_some()))
    }

    /// The tensor `if cnd then t else e` into fresh scratch, computing only the branch
    /// taken (a scalar branch fills the tensor); its address.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn branch_into(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        cnd: &Expr,
        t: &Expr,
        e: &Expr,
        n: usize,
    ) -> Value {
        let off = self.scratch.get();
        self.scratch.set(off + n);
        let dst = b.ins().iadd_imm_s(c.scratch, (off * 8) as i64);
        let cv = self.expr(b, c, f, cnd);
        let zero = b.ins().f64const(0.0);
        let cond = b.ins().fcmp(FloatCC::NotEqual, cv, zero);
        let (yes, no, join) = (b.create_block(), b.create_block(), b.create_block());
        b.ins().brif(cond, yes, &[], no, &[]);
        for (block, branch) in [(yes, t), (no, e)] {
            b.switch_to_block(block);
            b.seal_block(block);
            self.fill(b, c, f, branch, dst, n);
            b.ins().jump(join, &[]);
        }
        b.switch_to_block(join);
        b.seal_block(join);
        dst
    }

    /// The number of elements of `x`'s shape (at least 1).
    pub(crate) fn elems_of(&self, f: &Frame, x: &Expr) -> usize {
        slots(&self.shape(f, x)).max(1)
    }
}
