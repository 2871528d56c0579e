//! Small builders every part of the code generator uses: memory flags, slot addresses and
//! counted loops.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;

const I64: types::Type = types::I64;

/// Flags of every load and store: the buffers are aligned and never trap.
pub(crate) fn mem() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Flags of a two-lane (`f64x2`) load or store: never traps, but the address may be only
/// 8-byte aligned (so the load is not folded into an instruction that needs 16).
pub(crate) fn mem_v() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The address of f64 slot `i` (an i64 value) of `base`.
pub(crate) fn at(b: &mut FunctionBuilder, base: Value, i: Value) -> Value {
    let off = b.ins().imul_imm_s(i, 8);
    b.ins().iadd(base, off)
}

/// `for i in 0..n { body(i) }` in generated code: straight-line (with constant `i`) when
/// `n <= unroll`, else a loop.
pub(crate) fn counted(
    b: &mut FunctionBuilder,
    n: usize,
    unroll: usize,
    body: &mut dyn FnMut(&mut FunctionBuilder, Value),
) {
    if n <= unroll {
        for k in 0..n {
            let i = b.ins().iconst(I64, k as i64);
            body(b, i);
        }
        return;
    }
    let i = b.declare_var(I64);
    let z = b.ins().iconst(I64, 0);
    b.def_var(i, z);
    let head = b.create_block();
    let blk = b.create_block();
    let exit = b.create_block();
    b.ins().jump(head, &[]);
    b.switch_to_block(head);
    let iv = b.use_var(i);
    let done = b
        .ins()
        .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, iv, n as i64);
    b.ins().brif(done, exit, &[], blk, &[]);
    b.switch_to_block(blk);
    let iv = b.use_var(i);
    body(b, iv);
    let iv = b.use_var(i);
    let nx = b.ins().iadd_imm_s(iv, 1);
    b.def_var(i, nx);
    b.ins().jump(head, &[]);
    b.seal_block(blk);
    b.seal_block(head);
    b.switch_to_block(exit);
    b.seal_block(exit);
}

/// `for i in 0..n { body(i) }` with the loop body repeated `u` times per iteration (`i`,
/// `i + 1`, …), then the remaining `n mod u` in straight-line code.
pub(crate) fn counted_unrolled(
    b: &mut FunctionBuilder,
    n: usize,
    u: usize,
    body: &mut dyn FnMut(&mut FunctionBuilder, Value),
) {
    let u = u.max(1);
    counted(b, n / u, 1, &mut |b, k| {
        let base = b.ins().imul_imm_s(k, u as i64);
        for j in 0..u {
            let i = b.ins().iadd_imm_s(base, j as i64);
            body(b, i);
        }
    });
    for i in n / u * u..n {
        let iv = b.ins().iconst(I64, i as i64);
        body(b, iv);
    }
}
