//! Code generation: the signal schedule, the updates and the whole integration loop of a
//! flattened program, as Cranelift functions.
//!
//! Buffers are the interpreter's (`x` state, `p` params, `s` signals), so the JIT starts
//! from the same initial values and every operation mirrors the interpreter's, in the same
//! order: traces agree to the bit.

pub(crate) use crate::emit::mem;
use crate::inline::{Sig, Virtual, regular_wire};
use crate::shims::SHIMS;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{
    AbiParam, FuncRef, InstBuilder, MemFlagsData, Signature, Value, types,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{DataDescription, FuncId, Linkage, Module};
use dyn_ir::expr::{Bin, Expr, Num, Un};
use dyn_ir::flat::{Flat, OpKind, eval_index};
use dyn_ir::system::Readout;
use dyn_ir::system::Shape;
use std::cell::Cell;
use std::collections::HashMap;

const F64: types::Type = types::F64;
const I64: types::Type = types::I64;

/// Why a program is not compiled (the interpreter runs it instead).
pub type Unsupported = String;

/// Checks that every construct of the program is one the code generator handles.
pub fn supported(flat: &Flat) -> Result<(), Unsupported> {
    fn ok(x: &Expr) -> Result<(), Unsupported> {
        match x {
            Expr::Randn => Ok(()),
            Expr::Time => Err("the current time".into()),
            Expr::Index(_, is) if !is.iter().all(crate::tensor::static_index) => {
                Err("an index computed from the model's values".into())
            }
            Expr::Index(a, is) => ok(a).and(is.iter().try_for_each(ok)),
            Expr::Array(xs) => xs.iter().try_for_each(ok),
            Expr::Reduce(_, a) => ok(a),
            Expr::Dot(a, b) => ok(a).and(ok(b)),
            Expr::Mode(..) => Err("mode values".into()),
            Expr::Tensor(op, args) if !crate::tensor_ops::static_sels(op, args) => {
                Err("an index computed from the model's values".into())
            }
            Expr::Tensor(_, args) => args.iter().try_for_each(ok),
            Expr::Un(_, a) => ok(a),
            Expr::Bin(_, _, a, b) => ok(a).and(ok(b)),
            // Both branches are computed and one selected: a `randn()` there would draw twice.
            Expr::If(_, b, c) if b.has_randn() || c.has_randn() => {
                Err("`randn()` inside `if`".into())
            }
            Expr::If(a, b, c) => ok(a).and(ok(b)).and(ok(c)),
            Expr::Call(_, xs) => xs.iter().try_for_each(ok),
            Expr::BoxOut { index: Some(i), .. } => ok(i),
            _ => Ok(()),
        }
    }
    for s in &flat.program.systems {
        let slots = s
            .params
            .iter()
            .map(|p| &p.0)
            .chain(s.states.iter().map(|x| &x.0))
            .chain(&s.inputs)
            .chain(&s.outputs)
            .chain(s.lets.iter().map(|l| &l.0));
        if matches!(s.readout, Readout::Mode(..)) {
            for sl in slots {
                if !sl.shape.is_empty() {
                    return Err(format!(
                        "the tensor `{}` in a mode-dependent system",
                        sl.name
                    ));
                }
            }
        }
        for ev in &s.events {
            ok(&ev.cond)?;
            ev.assigns.iter().try_for_each(|a| ok(&a.value))?;
        }
        if let Readout::Mode(x, _, _) = &s.readout {
            fn mode_ok(
                x: &Expr,
                ok: &dyn Fn(&Expr) -> Result<(), Unsupported>,
            ) -> Result<(), Unsupported> {
                match x {
                    Expr::Mode(_, xs) => xs.iter().try_for_each(ok),
                    Expr::If(c, a, b) => ok(c).and(mode_ok(a, ok)).and(mode_ok(b, ok)),
                    _ => Err("this form of mode readout".into()),
                }
            }
            mode_ok(x, &ok)?;
        }
        for (_, arm) in &s.mode_updates {
            arm.iter().try_for_each(|a| ok(&a.value))?;
        }
        let exprs = s
            .lets
            .iter()
            .map(|l| &l.1)
            .chain(s.updates.iter().map(|a| &a.value))
            .chain(s.wires.iter().map(|w| &w.value));
        for x in exprs {
            ok(x)?;
        }
        if let Readout::Ports(xs) = &s.readout {
            xs.iter().try_for_each(ok)?;
        }
    }
    for f in &flat.program.fns {
        ok(&f.body)?;
    }
    Ok(())
}

/// An op over every element of group `g` (updates and events run on all of them).
fn every_element(g: u32, count: u64) -> dyn_ir::flat::Op {
    dyn_ir::flat::Op {
        kind: OpKind::Let(g, 0),
        items: (0..count)
            .map(|e| dyn_ir::flat::Item {
                elem: e,
                loops: vec![],
                target: 0,
            })
            .collect(),
    }
}

/// A value in generated code: a scalar, or the address of a tensor's elements.
#[derive(Clone, Copy)]
pub(crate) enum V {
    /// A scalar.
    S(Value),
    /// A tensor: the address of its first element (row-major, contiguous).
    T(Value),
}

/// Pointers and loop values of the element being computed.
#[derive(Clone)]
pub(crate) struct Frame {
    /// The group.
    pub g: u32,
    /// The element (i64).
    pub e: Value,
    /// Loop variable values (i64).
    pub loops: Vec<Value>,
    /// Arguments of the fn being inlined.
    pub args: Vec<V>,
    /// Their shapes.
    pub arg_shapes: Vec<Shape>,
    /// Known bounds (inclusive) of the loop values, where known.
    pub ranges: Vec<Option<(i64, i64)>>,
}

impl Frame {
    fn new(g: u32, e: Value, loops: Vec<Value>) -> Frame {
        Frame {
            g,
            e,
            ranges: vec![None; loops.len()],
            loops,
            args: vec![],
            arg_shapes: vec![],
        }
    }

    /// The bounds of an integer expression of constants and loop values, if known.
    fn range(&self, x: &Expr) -> Option<(i64, i64)> {
        match x {
            Expr::Const(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some((*v as i64, *v as i64)),
            Expr::Loop(d) => self.ranges.get(*d as usize).copied().flatten(),
            Expr::Bin(op @ (Bin::Add | Bin::Sub | Bin::Mul), Num::Int, l, r) => {
                let ((a, b), (c, d)) = (self.range(l)?, self.range(r)?);
                match op {
                    Bin::Add => Some((a.checked_add(c)?, b.checked_add(d)?)),
                    Bin::Sub => Some((a.checked_sub(d)?, b.checked_sub(c)?)),
                    _ => {
                        let ps = [
                            a.checked_mul(c)?,
                            a.checked_mul(d)?,
                            b.checked_mul(c)?,
                            b.checked_mul(d)?,
                        ];
                        Some((*ps.iter().min()?, *ps.iter().max()?))
                    }
                }
            }
            _ => None,
        }
    }
}

/// Builds the functions of one program inside a JIT module.
pub struct Gen<'a> {
    /// The program.
    pub flat: &'a Flat,
    shims: HashMap<&'static str, FuncId>,
    randn: FuncId,
    /// Scratch slots used so far by tensor temporaries (the io word `SCRATCH` must point at
    /// at least this many).
    pub scratch: Cell<usize>,
    /// Signals computed where they are read.
    virt: Virtual,
    /// While emitting a register-held step: the state values by slot.
    regs: std::cell::RefCell<Option<Vec<Value>>>,
    /// While emitting register-held updates: their variables by slot.
    outv: std::cell::RefCell<Option<Vec<cranelift_frontend::Variable>>>,
}

/// Function refs and buffer pointers inside one function being built.
pub(crate) struct Ctx {
    pub x: Value,
    pub p: Value,
    pub s: Value,
    pub io: Value,
    /// Scratch memory for tensor temporaries.
    pub scratch: Value,
    refs: HashMap<&'static str, FuncRef>,
    /// The state held in registers (small models inside a step), by slot: reads of the
    /// state take these values instead of loading from `x`.
    pub xregs: Option<Vec<Value>>,
    /// Variables receiving the updates by slot, instead of stores into `out`.
    pub outv: Option<Vec<cranelift_frontend::Variable>>,
    /// The params do not change while this code runs (everywhere but in the initial-value
    /// code, which sets them): their loads may be hoisted out of loops.
    pub params_fixed: bool,
}

/// The constant an i64 value was made from, if it is one.
pub(crate) fn const_of(b: &FunctionBuilder, v: Value) -> Option<i64> {
    use cranelift_codegen::ir::{InstructionData, Opcode, ValueDef};
    match b.func.dfg.value_def(v) {
        ValueDef::Result(inst, 0) => match b.func.dfg.insts[inst] {
            InstructionData::UnaryImm {
                opcode: Opcode::Iconst,
                imm,
            } => Some(imm.bits()),
            _ => None,
        },
        _ => None,
    }
}

impl<'a> Gen<'a> {
    /// Declares the math shims in `module`.
    pub fn new<M: Module>(flat: &'a Flat, module: &mut M) -> Result<Self, String> {
        let mut shims = HashMap::new();
        for (name, arity, _) in SHIMS {
            let mut sig = module.make_signature();
            for _ in 0..*arity {
                sig.params.push(AbiParam::new(F64));
            }
            sig.returns.push(AbiParam::new(F64));
            let id = module
                .declare_function(name, Linkage::Import, &sig)
                .map_err(|e| e.to_string())?;
            shims.insert(*name, id);
        }
        if dyn_ir::linalg::used_in(&flat.program).is_some() {
            // Only then: an object file (`dyn build`) must not import what no one links.
            crate::linalg::declare(module, &mut shims)?;
        }
        let mut sig = module.make_signature();
        sig.params.push(AbiParam::new(I64));
        sig.returns.push(AbiParam::new(F64));
        let randn = module
            .declare_function("dyn_randn", Linkage::Import, &sig)
            .map_err(|e| e.to_string())?;
        Ok(Gen {
            flat,
            shims,
            randn,
            scratch: Cell::new(0),
            virt: Virtual::new(flat),
            regs: Default::default(),
            outv: Default::default(),
        })
    }

    /// The buffers and shim references of a function being built (the state and update
    /// registers when a register-held step is being emitted).
    pub(crate) fn ctx<M: Module>(
        &self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [x, p, s, io]: [Value; 4],
    ) -> Ctx {
        Ctx {
            x,
            p,
            s,
            io,
            scratch: b.ins().load(I64, mem(), io, crate::driver::io::SCRATCH),
            refs: self.refs(module, b),
            xregs: self.regs.borrow().clone(),
            outv: self.outv.borrow().clone(),
            params_fixed: true,
        }
    }

    fn refs<M: Module>(
        &self,
        module: &mut M,
        b: &mut FunctionBuilder,
    ) -> HashMap<&'static str, FuncRef> {
        let mut m: HashMap<&'static str, FuncRef> = self
            .shims
            .iter()
            .map(|(n, id)| (*n, module.declare_func_in_func(*id, b.func)))
            .collect();
        m.insert("dyn_randn", module.declare_func_in_func(self.randn, b.func));
        m
    }

    /// A math shim by name, declared in the function being built.
    pub fn shim_ref<M: Module>(
        &self,
        module: &mut M,
        b: &mut FunctionBuilder,
        name: &str,
    ) -> FuncRef {
        module.declare_func_in_func(self.shims[name], b.func)
    }

    /// Signature `(x, p, s, out, io) -> ()` of the signal and update functions.
    pub fn buffers_sig<M: Module>(module: &M) -> Signature {
        let ptr = module.target_config().pointer_type();
        let mut sig = Signature::new(CallConv::SystemV);
        sig.call_conv = module.isa().default_call_conv();
        for _ in 0..5 {
            sig.params.push(AbiParam::new(ptr));
        }
        sig
    }

    fn load(b: &mut FunctionBuilder, base: Value, slot: Value) -> Value {
        let off = b.ins().imul_imm_s(slot, 8);
        let addr = b.ins().iadd(base, off);
        b.ins().load(F64, mem(), addr, 0)
    }

    fn store(b: &mut FunctionBuilder, base: Value, slot: Value, v: Value) {
        let off = b.ins().imul_imm_s(slot, 8);
        let addr = b.ins().iadd(base, off);
        b.ins().store(mem(), v, addr, 0);
    }

    /// `base + e * stride + off` as an i64 value.
    pub(crate) fn slot(
        b: &mut FunctionBuilder,
        base: usize,
        e: Value,
        stride: usize,
        off: usize,
    ) -> Value {
        if let Some(k) = const_of(b, e) {
            // Folded, so that a constant element gives a constant slot (register-held state).
            return b.ins().iconst(I64, k * stride as i64 + (base + off) as i64);
        }
        let m = b.ins().imul_imm_s(e, stride as i64);
        b.ins().iadd_imm_s(m, (base + off) as i64)
    }

    pub(crate) fn call(b: &mut FunctionBuilder, c: &Ctx, name: &str, args: &[Value]) -> Value {
        let inst = b.ins().call(c.refs[name], args);
        b.inst_results(inst)[0]
    }

    fn bool_f(b: &mut FunctionBuilder, cond: Value) -> Value {
        let one = b.ins().f64const(1.0);
        let zero = b.ins().f64const(0.0);
        b.ins().select(cond, one, zero)
    }

    /// An integer-valued expression computed as i64 where it can be (loop variables and
    /// constant arithmetic in indices), else through f64.
    pub(crate) fn iexpr(&self, b: &mut FunctionBuilder, c: &Ctx, f: &Frame, x: &Expr) -> Value {
        match x {
            Expr::Const(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => {
                b.ins().iconst(I64, *v as i64)
            }
            Expr::Loop(d) => f.loops[*d as usize],
            Expr::Bin(op @ (Bin::Add | Bin::Sub | Bin::Mul), Num::Int, l, r) => {
                let (a, y) = (self.iexpr(b, c, f, l), self.iexpr(b, c, f, r));
                match op {
                    Bin::Add => b.ins().iadd(a, y),
                    Bin::Sub => b.ins().isub(a, y),
                    _ => b.ins().imul(a, y),
                }
            }
            Expr::Bin(op @ (Bin::Div | Bin::Rem), Num::Int, l, r) if matches!(**r, Expr::Const(k) if k != 0.0 && k != -1.0 && k.fract() == 0.0) =>
            {
                let Expr::Const(k) = **r else { unreachable!() };
                // A dividend known to lie in [0, 2k) needs no division (ring neighbours).
                if let Some((_, hi)) = f
                    .range(l)
                    .filter(|(lo, hi)| k > 0.0 && *lo >= 0 && *hi < 2 * k as i64)
                {
                    let k = k as i64;
                    let a = self.iexpr(b, c, f, l);
                    if hi < k {
                        return if *op == Bin::Div {
                            b.ins().iconst(I64, 0)
                        } else {
                            a
                        };
                    }
                    let over = b.ins().icmp_imm_s(
                        cranelift_codegen::ir::condcodes::IntCC::SignedGreaterThanOrEqual,
                        a,
                        k,
                    );
                    return if *op == Bin::Div {
                        let one = b.ins().iconst(I64, 1);
                        let zero = b.ins().iconst(I64, 0);
                        b.ins().select(over, one, zero)
                    } else {
                        let less = b.ins().iadd_imm_s(a, -k);
                        b.ins().select(over, less, a)
                    };
                }
                let a = self.iexpr(b, c, f, l);
                let ik = b.ins().iconst(I64, k as i64);
                if *op == Bin::Div {
                    b.ins().sdiv(a, ik)
                } else {
                    let rr = b.ins().srem(a, ik);
                    let adj = b.ins().iadd_imm_s(rr, (k as i64).abs());
                    let neg = b.ins().icmp_imm_s(
                        cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
                        rr,
                        0,
                    );
                    b.ins().select(neg, adj, rr)
                }
            }
            other => {
                let v = self.expr(b, c, f, other);
                b.ins().fcvt_to_sint_sat(I64, v)
            }
        }
    }

    /// A mode readout: the chosen mode's index and, per out port, its new value (`None` where
    /// no mode that can be chosen shows it; a port the chosen mode lacks keeps its old value,
    /// as in the interpreter).
    fn mode_val(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
        ports: &[Vec<u32>],
        n_out: usize,
    ) -> (Value, Vec<Option<Value>>) {
        match x {
            Expr::Mode(m, xs) => {
                let idx = b.ins().f64const(*m as f64);
                let mut vals = vec![None; n_out];
                for (j, p) in ports[*m as usize].iter().enumerate() {
                    vals[*p as usize] = Some(self.expr(b, c, f, &xs[j]));
                }
                (idx, vals)
            }
            Expr::If(cnd, t, e) => {
                let cv = self.expr(b, c, f, cnd);
                let zero = b.ins().f64const(0.0);
                let cond = b.ins().fcmp(FloatCC::NotEqual, cv, zero);
                let (it, vt) = self.mode_val(b, c, f, t, ports, n_out);
                let (ie, ve) = self.mode_val(b, c, f, e, ports, n_out);
                let idx = b.ins().select(cond, it, ie);
                let grp = &self.flat.groups[f.g as usize];
                let vals = vt
                    .into_iter()
                    .zip(ve)
                    .enumerate()
                    .map(|(p, pair)| {
                        let mut old = || {
                            let sl =
                                Self::slot(b, grp.sig_base, f.e, grp.sig_stride, grp.out_off[p]);
                            Self::load(b, c.s, sl)
                        };
                        match pair {
                            (None, None) => None,
                            (Some(a), Some(y)) => Some(b.ins().select(cond, a, y)),
                            (Some(a), None) => {
                                let o = old();
                                Some(b.ins().select(cond, a, o))
                            }
                            (None, Some(y)) => {
                                let o = old();
                                Some(b.ins().select(cond, o, y))
                            }
                        }
                    })
                    .collect();
                (idx, vals)
            }
            _ => unreachable!("rejected by `supported`"),
        }
    }

    /// A unary operation on a scalar value.
    pub(crate) fn un_val(&self, b: &mut FunctionBuilder, c: &Ctx, op: Un, v: Value) -> Value {
        match op {
            Un::Neg => b.ins().fneg(v),
            Un::Not => {
                let zero = b.ins().f64const(0.0);
                let z = b.ins().fcmp(FloatCC::Equal, v, zero);
                Self::bool_f(b, z)
            }
            Un::ToReal => v,
            Un::ToInt => b.ins().trunc(v),
            Un::Sqrt => b.ins().sqrt(v),
            Un::Abs => b.ins().fabs(v),
            Un::Floor => b.ins().floor(v),
            Un::Ceil => b.ins().ceil(v),
            Un::Relu => {
                let zero = b.ins().f64const(0.0);
                Self::call(b, c, "dyn_max", &[v, zero])
            }
            Un::Sigmoid => {
                let n = b.ins().fneg(v);
                let e = Self::call(b, c, "dyn_exp", &[n]);
                let one = b.ins().f64const(1.0);
                let d = b.ins().fadd(one, e);
                b.ins().fdiv(one, d)
            }
            Un::Exp => Self::call(b, c, "dyn_exp", &[v]),
            Un::Log => Self::call(b, c, "dyn_log", &[v]),
            Un::Sin => Self::call(b, c, "dyn_sin", &[v]),
            Un::Cos => Self::call(b, c, "dyn_cos", &[v]),
            Un::Tan => Self::call(b, c, "dyn_tan", &[v]),
            Un::Tanh => Self::call(b, c, "dyn_tanh", &[v]),
            Un::Sinh => Self::call(b, c, "dyn_sinh", &[v]),
            Un::Cosh => Self::call(b, c, "dyn_cosh", &[v]),
            Un::Atan => Self::call(b, c, "dyn_atan", &[v]),
            Un::Round => Self::call(b, c, "dyn_round", &[v]),
        }
    }

    /// A binary operation on scalar values (`r` is the right operand's expression: a
    /// constant divisor is inlined).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bin_val(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        op: Bin,
        num: Num,
        a: Value,
        y: Value,
        r: &Expr,
    ) -> Value {
        let cmp = |b: &mut FunctionBuilder, cc: FloatCC| {
            let t = b.ins().fcmp(cc, a, y);
            Self::bool_f(b, t)
        };
        match (op, num) {
            (Bin::Add, Num::Int) | (Bin::Sub, Num::Int) | (Bin::Mul, Num::Int) => {
                let (ia, iy) = (
                    b.ins().fcvt_to_sint_sat(I64, a),
                    b.ins().fcvt_to_sint_sat(I64, y),
                );
                let v = match op {
                    Bin::Add => b.ins().iadd(ia, iy),
                    Bin::Sub => b.ins().isub(ia, iy),
                    _ => b.ins().imul(ia, iy),
                };
                b.ins().fcvt_from_sint(F64, v)
            }
            // By a constant other than 0 and -1 division cannot trap: inline it.
            (Bin::Div | Bin::Rem, Num::Int) if matches!(*r, Expr::Const(k) if k != 0.0 && k != -1.0 && k.fract() == 0.0) =>
            {
                let Expr::Const(k) = *r else { unreachable!() };
                let ia = b.ins().fcvt_to_sint_sat(I64, a);
                let ik = b.ins().iconst(I64, k as i64);
                let v = if op == Bin::Div {
                    b.ins().sdiv(ia, ik)
                } else {
                    // Euclidean remainder: r + |k| when r < 0.
                    let rr = b.ins().srem(ia, ik);
                    let adj = b.ins().iadd_imm_s(rr, (k as i64).abs());
                    let neg = b.ins().icmp_imm_s(
                        cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
                        rr,
                        0,
                    );
                    b.ins().select(neg, adj, rr)
                };
                b.ins().fcvt_from_sint(F64, v)
            }
            (Bin::Div, Num::Int) => Self::call(b, c, "dyn_idiv", &[a, y]),
            (Bin::Rem, Num::Int) => Self::call(b, c, "dyn_irem", &[a, y]),
            (Bin::Pow, Num::Int) => Self::call(b, c, "dyn_ipow", &[a, y]),
            (Bin::Add, _) => b.ins().fadd(a, y),
            (Bin::Sub, _) => b.ins().fsub(a, y),
            (Bin::Mul, _) | (Bin::MatMul, _) => b.ins().fmul(a, y),
            (Bin::Div, _) => b.ins().fdiv(a, y),
            (Bin::Rem, _) => Self::call(b, c, "dyn_remf", &[a, y]),
            (Bin::Pow, _) => Self::call(b, c, "dyn_powf", &[a, y]),
            (Bin::Atan2, _) => Self::call(b, c, "dyn_atan2", &[a, y]),
            (Bin::Min | Bin::Max, Num::Int) => {
                // As the interpreter: compare as i64 (so -0 and 0 are both 0).
                let (ia, iy) = (
                    b.ins().fcvt_to_sint_sat(I64, a),
                    b.ins().fcvt_to_sint_sat(I64, y),
                );
                let v = if op == Bin::Min {
                    b.ins().smin(ia, iy)
                } else {
                    b.ins().smax(ia, iy)
                };
                b.ins().fcvt_from_sint(F64, v)
            }
            (Bin::Min, _) => Self::call(b, c, "dyn_min", &[a, y]),
            (Bin::Max, _) => Self::call(b, c, "dyn_max", &[a, y]),
            (Bin::Eq, _) => cmp(b, FloatCC::Equal),
            (Bin::Ne, _) => cmp(b, FloatCC::NotEqual),
            (Bin::Lt, _) => cmp(b, FloatCC::LessThan),
            (Bin::Le, _) => cmp(b, FloatCC::LessThanOrEqual),
            (Bin::Gt, _) => cmp(b, FloatCC::GreaterThan),
            (Bin::Ge, _) => cmp(b, FloatCC::GreaterThanOrEqual),
            (Bin::And, _) | (Bin::Or, _) => {
                let zero = b.ins().f64const(0.0);
                let ta = b.ins().fcmp(FloatCC::NotEqual, a, zero);
                let ty = b.ins().fcmp(FloatCC::NotEqual, y, zero);
                let t = if op == Bin::And {
                    b.ins().band(ta, ty)
                } else {
                    b.ins().bor(ta, ty)
                };
                Self::bool_f(b, t)
            }
        }
    }

    /// The signal slot (i64) of an inner box's out port read by `x` (a `BoxOut`).
    pub(crate) fn box_out_slot(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
    ) -> Value {
        let Expr::BoxOut { b: bi, index, port } = x else {
            unreachable!("a box output")
        };
        let flat = self.flat;
        let grp = &flat.groups[f.g as usize];
        let sys = &flat.program.systems[grp.system as usize];
        let n = sys.boxes[*bi as usize].count.unwrap_or(1) as i64;
        let child = &flat.groups[grp.children[*bi as usize] as usize];
        let k = match index {
            Some(i) => self.iexpr(b, c, f, i),
            None => b.ins().iconst(I64, 0),
        };
        let ce = match (const_of(b, f.e), const_of(b, k)) {
            (Some(e), Some(k)) => b.ins().iconst(I64, e * n + k),
            _ => {
                let en = b.ins().imul_imm_s(f.e, n);
                b.ins().iadd(en, k)
            }
        };
        Self::slot(
            b,
            child.sig_base,
            ce,
            child.sig_stride,
            child.out_off[*port as usize],
        )
    }

    /// A scalar expression (tensor subexpressions are computed as needed).
    pub(crate) fn expr(&self, b: &mut FunctionBuilder, c: &Ctx, f: &Frame, x: &Expr) -> Value {
        let flat = self.flat;
        let grp = &flat.groups[f.g as usize];
        match x {
            Expr::Const(v) => b.ins().f64const(*v),
            Expr::Time => b.ins().f64const(0.0),
            Expr::Loop(d) => b.ins().fcvt_from_sint(F64, f.loops[*d as usize]),
            Expr::Arg(i) => match f.args[*i as usize] {
                V::S(v) => v,
                // As the interpreter's `Val::s`: a tensor read as a scalar is its first element.
                V::T(p) => b.ins().load(F64, mem(), p, 0),
            },
            Expr::Param(i) => {
                let at = ((grp.param_base + grp.param_off[*i as usize]) * 8) as i32;
                // A param the code cannot change is a constant of the run: its load may move
                // (out of a loop over elements).
                let flags = if c.params_fixed {
                    mem().with_readonly().with_can_move()
                } else {
                    mem()
                };
                b.ins().load(F64, flags, c.p, at)
            }
            Expr::State(i) => {
                let s = Self::slot(
                    b,
                    grp.state_base,
                    f.e,
                    grp.state_stride,
                    grp.state_off[*i as usize],
                );
                match (&c.xregs, const_of(b, s)) {
                    (Some(r), Some(k)) => r[k as usize],
                    _ => Self::load(b, c.x, s),
                }
            }
            Expr::Input(i) if self.virt.is(f.g, Sig::In(*i)) => {
                // Computed in place: the wire's value in the parent's frame.
                let (pg, bi) = grp.parent.expect("an inlined input has a parent");
                let w = regular_wire(flat, pg, bi, *i).expect("an inlined input has its wire");
                let psys = &flat.program.systems[flat.groups[pg as usize].system as usize];
                let inner = match psys.boxes[bi as usize].count {
                    None => Frame::new(pg, f.e, vec![]),
                    // One parent element: the input's element is the loop value.
                    Some(_) if flat.groups[pg as usize].count == 1 => {
                        let zero = b.ins().iconst(I64, 0);
                        let mut fr = Frame::new(pg, zero, vec![f.e]);
                        fr.ranges = vec![Some((0, grp.count as i64 - 1))];
                        fr
                    }
                    Some(n) => {
                        let pe = b.ins().sdiv_imm_s(f.e, n as i64);
                        let base = b.ins().imul_imm_s(pe, n as i64);
                        let k = b.ins().isub(f.e, base);
                        let mut fr = Frame::new(pg, pe, vec![k]);
                        fr.ranges = vec![Some((0, n as i64 - 1))];
                        fr
                    }
                };
                self.expr(b, c, &inner, &psys.wires[w].value)
            }
            Expr::Input(i) => {
                let s = Self::slot(
                    b,
                    grp.sig_base,
                    f.e,
                    grp.sig_stride,
                    grp.in_off[*i as usize],
                );
                Self::load(b, c.s, s)
            }
            Expr::Let(i) if self.virt.is(f.g, Sig::Let(*i)) => {
                let sys = &flat.program.systems[grp.system as usize];
                self.expr(
                    b,
                    c,
                    &Frame::new(f.g, f.e, vec![]),
                    &sys.lets[*i as usize].1,
                )
            }
            Expr::Let(i) => {
                let s = Self::slot(
                    b,
                    grp.sig_base,
                    f.e,
                    grp.sig_stride,
                    grp.let_off[*i as usize],
                );
                Self::load(b, c.s, s)
            }
            Expr::BoxOut { b: bi, index, port }
                if self.virt.is(grp.children[*bi as usize], Sig::Out(*port)) =>
            {
                // Computed in place: the inner box's readout in its own frame.
                let sys = &flat.program.systems[grp.system as usize];
                let n = sys.boxes[*bi as usize].count.unwrap_or(1) as i64;
                let cg = grp.children[*bi as usize];
                let k = match index {
                    Some(i) => self.iexpr(b, c, f, i),
                    None => b.ins().iconst(I64, 0),
                };
                let ce = match (const_of(b, f.e), const_of(b, k)) {
                    (Some(e), Some(k)) => b.ins().iconst(I64, e * n + k),
                    _ => {
                        let en = b.ins().imul_imm_s(f.e, n);
                        b.ins().iadd(en, k)
                    }
                };
                let csys = &flat.program.systems[flat.groups[cg as usize].system as usize];
                let Readout::Ports(xs) = &csys.readout else {
                    unreachable!("inlined outputs have port readouts")
                };
                self.expr(b, c, &Frame::new(cg, ce, vec![]), &xs[*port as usize])
            }
            Expr::BoxOut { .. } => {
                let sl = self.box_out_slot(b, c, f, x);
                Self::load(b, c.s, sl)
            }
            Expr::Un(op, a) => {
                let v = self.expr(b, c, f, a);
                self.un_val(b, c, *op, v)
            }
            Expr::Bin(Bin::MatMul, ..) if self.shape(f, x).is_empty() => {
                self.tensor_scalar(b, c, f, x)
            }
            Expr::Bin(op, num, l, r) => {
                let a = self.expr(b, c, f, l);
                let y = self.expr(b, c, f, r);
                self.bin_val(b, c, *op, *num, a, y, r)
            }
            Expr::If(cnd, t, e) => {
                let cv = self.expr(b, c, f, cnd);
                let zero = b.ins().f64const(0.0);
                let cond = b.ins().fcmp(FloatCC::NotEqual, cv, zero);
                let tv = self.expr(b, c, f, t);
                let ev = self.expr(b, c, f, e);
                b.ins().select(cond, tv, ev)
            }
            Expr::Call(fi, xs) => {
                let inner = self.call_frame(b, c, f, xs);
                self.expr(b, c, &inner, &flat.program.fns[*fi as usize].body)
            }
            Expr::Randn => {
                let cell = b.ins().iadd_imm_s(c.io, crate::driver::io::RNG as i64);
                Self::call(b, c, "dyn_randn", &[cell])
            }
            Expr::Reduce(..) | Expr::Dot(..) | Expr::Index(..) => self.tensor_scalar(b, c, f, x),
            // A tensor where a scalar is read: its first element, as the interpreter's `Val::s`.
            Expr::Array(_) => {
                let p = self.ptr_of(b, c, f, x);
                b.ins().load(F64, mem(), p, 0)
            }
            Expr::Tensor(op, args) => self.tensor_op_scalar(b, c, f, op, args),
            Expr::Mode(..) => unreachable!("rejected by `supported`"),
        }
    }

    /// Stores `x` at `slot` of `buf`: a scalar, or the elements of a tensor slot of `shape`
    /// (a scalar value fills it).
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
        buf: Value,
        slot: Value,
        shape: &Shape,
    ) {
        if shape.is_empty() {
            let v = self.expr(b, c, f, x);
            Self::store(b, buf, slot, v);
        } else {
            let off = b.ins().imul_imm_s(slot, 8);
            let dst = b.ins().iadd(buf, off);
            self.fill(b, c, f, x, dst, dyn_ir::system::slots(shape));
        }
    }

    /// Stores an update of a state slot: into `out`, or into its variable when updates are
    /// kept in registers.
    fn store_state(&self, b: &mut FunctionBuilder, c: &Ctx, out: Value, slot: Value, v: Value) {
        match (&c.outv, const_of(b, slot)) {
            (Some(vars), Some(k)) => b.def_var(vars[k as usize], v),
            _ => Self::store(b, out, slot, v),
        }
    }

    /// [`Gen::put`] for a state update (see [`Gen::store_state`]).
    #[allow(clippy::too_many_arguments)]
    fn put_state(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        f: &Frame,
        x: &Expr,
        out: Value,
        slot: Value,
        shape: &Shape,
    ) {
        if c.outv.is_some() && shape.is_empty() {
            let v = self.expr(b, c, f, x);
            self.store_state(b, c, out, slot, v);
        } else {
            self.put(b, c, f, x, out, slot, shape);
        }
    }

    /// Can an Euler step be fused with the updates? Every state slot is a scalar with one
    /// `der` (no mode-dependent updates, no states changed only by events).
    pub fn fused_euler_ok(&self) -> bool {
        let flat = self.flat;
        let covered: usize = flat
            .groups
            .iter()
            .map(|g| {
                let s = &flat.program.systems[g.system as usize];
                if s.time == flat.time {
                    s.updates.len() * g.count as usize
                } else {
                    0
                }
            })
            .sum();
        covered == flat.n_state
            && flat.program.systems.iter().all(|s| {
                s.mode_updates.is_empty() && s.states.iter().all(|(sl, _)| sl.shape.is_empty())
            })
    }

    /// Body of `euler_step(x, p, s, out, io)`: for every state, `x + h · der` into `out`
    /// (the driver's arithmetic, fused into the update loop), with the finite-check flags
    /// OR-ed into the io word `FLAGS`.
    pub fn euler_step<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [x, p, s, out, io]: [Value; 5],
    ) {
        use crate::driver::io as iow;
        let c = self.ctx(module, b, [x, p, s, io]);
        let h = b.ins().load(F64, mem(), io, iow::HSTEP);
        // The finite-check flags (see `driver::emit`) of the new values, OR-ed. (Packing two
        // values into a vector for the check costs fewer instructions but runs slower: the
        // lane moves lengthen the loop's critical path.)
        let acc = b.declare_var(I64);
        let zero = b.ins().iconst(I64, 0);
        b.def_var(acc, zero);
        let flat = self.flat;
        for (gi, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            if sys.updates.is_empty() || sys.time != flat.time {
                continue;
            }
            let op = every_element(gi as u32, grp.count);
            self.for_items(module, b, &c, gi as u32, &op, &mut |cg, b, c, f, _| {
                let grp = &cg.flat.groups[gi];
                for a in &sys.updates {
                    let d = cg.expr(b, c, f, &a.value);
                    let sl = Self::slot(
                        b,
                        grp.state_base,
                        f.e,
                        grp.state_stride,
                        grp.state_off[a.state as usize],
                    );
                    let xv = Self::load(b, c.x, sl);
                    let m = b.ins().fmul(h, d);
                    let v = b.ins().fadd(xv, m);
                    Self::store(b, out, sl, v);
                    let bits = b.ins().bitcast(I64, MemFlagsData::new(), v);
                    let e = b.ins().band_imm_u(bits, 0x7ff0_0000_0000_0000u64 as i64);
                    let fl = b.ins().iadd_imm_u(e, 0x0010_0000_0000_0000u64 as i64);
                    let cur = b.use_var(acc);
                    let nx = b.ins().bor(cur, fl);
                    b.def_var(acc, nx);
                }
            });
        }
        let fl = b.use_var(acc);
        b.ins().store(mem(), fl, io, iow::FLAGS);
    }

    /// Does every state slot of this program get a value from an update of every element
    /// (one update per state, none mode-dependent)? Then a discrete step writes the whole
    /// new state and need not start from a copy of the old one.
    pub fn next_all(&self) -> bool {
        let flat = self.flat;
        flat.groups.iter().all(|g| {
            let s = &flat.program.systems[g.system as usize];
            let mut seen = vec![false; s.states.len()];
            for a in &s.updates {
                if let Some(m) = seen.get_mut(a.state as usize) {
                    *m = true;
                }
            }
            s.mode_updates.is_empty()
                && (s.states.is_empty() || s.time == flat.time)
                && seen.iter().all(|m| *m)
        })
    }

    /// Can the state of this program be held in registers within a step? Every group has
    /// one element and every slot is a scalar, so every state read is of a constant slot.
    pub fn regs_ok(&self) -> bool {
        let flat = self.flat;
        flat.n_state <= 16
            && flat.groups.iter().all(|g| g.count == 1)
            && flat
                .schedule
                .iter()
                .all(|o| o.items.iter().all(|it| it.loops.is_empty()))
            && flat.program.systems.iter().all(|s| {
                s.states.iter().all(|(sl, _)| sl.shape.is_empty())
                    && s.params.iter().all(|(sl, _)| sl.shape.is_empty())
                    && s.inputs
                        .iter()
                        .chain(&s.outputs)
                        .all(|sl| sl.shape.is_empty())
                    && s.lets.iter().all(|(sl, _)| sl.shape.is_empty())
            })
    }

    /// The signal pass (lean or full) reading the state from registers `xs`.
    pub fn signals_regs<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [x, p, s, io]: [Value; 4],
        xs: &[Value],
        lean: bool,
    ) {
        self.regs.replace(Some(xs.to_vec()));
        self.signal_pass(module, b, [x, p, s, io], lean);
        self.regs.replace(None);
    }

    /// The updates (derivatives; 0 for slots without one) of the state in registers `xs`,
    /// as values by slot.
    pub fn updates_regs<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [x, p, s, io]: [Value; 4],
        xs: &[Value],
    ) -> Vec<Value> {
        let zero = b.ins().f64const(0.0);
        let vars: Vec<_> = (0..xs.len())
            .map(|_| {
                let v = b.declare_var(F64);
                b.def_var(v, zero);
                v
            })
            .collect();
        self.regs.replace(Some(xs.to_vec()));
        self.outv.replace(Some(vars.clone()));
        self.updates(module, b, [x, p, s, x, io]);
        self.regs.replace(None);
        self.outv.replace(None);
        vars.iter().map(|v| b.use_var(*v)).collect()
    }

    /// Emits `for each item of the op: body(frame)`: a counted loop over a contiguous range of
    /// elements, or a loop over a table of (element, loop values…, target) rows.
    fn for_items<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        c: &Ctx,
        g: u32,
        op: &dyn_ir::flat::Op,
        body: &mut dyn FnMut(&Self, &mut FunctionBuilder, &Ctx, &Frame, Value),
    ) {
        let items = &op.items;
        let depth = items.first().map(|i| i.loops.len()).unwrap_or(0);
        let contiguous = depth == 0
            && items
                .iter()
                .enumerate()
                .all(|(k, it)| it.elem == items[0].elem + k as u64);
        let (lo, hi, table) = if contiguous {
            (
                items[0].elem as i64,
                items[0].elem as i64 + items.len() as i64,
                None,
            )
        } else {
            // The table is a read-only data object of the module (no absolute address is
            // baked into the code, so the same code can be written to an object file).
            let mut t = Vec::with_capacity(items.len() * (depth + 2) * 8);
            for it in items {
                t.extend((it.elem as i64).to_le_bytes());
                for l in &it.loops {
                    t.extend(l.to_le_bytes());
                }
                t.extend((it.target as i64).to_le_bytes());
            }
            let id = module
                .declare_anonymous_data(false, false)
                .expect("anonymous data declares");
            let mut desc = DataDescription::new();
            desc.define(t.into_boxed_slice());
            desc.set_align(8);
            module.define_data(id, &desc).expect("fresh data defines");
            let gv = module.declare_data_in_func(id, b.func);
            (0, items.len() as i64, Some(gv))
        };
        if table.is_none() && hi - lo <= 4 {
            // A few elements: straight-line code with the element as a constant.
            for e in lo..hi {
                let ev = b.ins().iconst(I64, e);
                let frame = Frame::new(g, ev, vec![]);
                body(self, b, c, &frame, ev);
            }
            return;
        }
        let i = b.declare_var(I64);
        let start = b.ins().iconst(I64, lo);
        b.def_var(i, start);
        let head = b.create_block();
        let body_blk = b.create_block();
        let exit = b.create_block();
        b.ins().jump(head, &[]);
        b.switch_to_block(head);
        let iv = b.use_var(i);
        let done = b.ins().icmp_imm_s(
            cranelift_codegen::ir::condcodes::IntCC::SignedGreaterThanOrEqual,
            iv,
            hi,
        );
        b.ins().brif(done, exit, &[], body_blk, &[]);
        b.switch_to_block(body_blk);
        let iv = b.use_var(i);
        let (frame, target) = match table {
            None => (Frame::new(g, iv, vec![]), iv),
            Some(gv) => {
                let row = b.ins().imul_imm_s(iv, ((depth + 2) * 8) as i64);
                let base = b.ins().symbol_value(I64, gv);
                let addr = b.ins().iadd(base, row);
                let e = b.ins().load(I64, mem(), addr, 0);
                let loops: Vec<Value> = (0..depth)
                    .map(|d| b.ins().load(I64, mem(), addr, ((d + 1) * 8) as i32))
                    .collect();
                let target = b.ins().load(I64, mem(), addr, ((depth + 1) * 8) as i32);
                (Frame::new(g, e, loops), target)
            }
        };
        body(self, b, c, &frame, target);
        let iv = b.use_var(i);
        let next = b.ins().iadd_imm_s(iv, 1);
        b.def_var(i, next);
        b.ins().jump(head, &[]);
        b.seal_block(body_blk);
        b.seal_block(head);
        b.switch_to_block(exit);
        b.seal_block(exit);
    }

    /// Body of `signals(x, p, s, _, io)`: every op of the schedule, in order (the full
    /// pass, before a record).
    pub fn signals<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        bufs: [Value; 4],
    ) {
        self.signal_pass(module, b, bufs, false)
    }

    /// Body of the lean signal pass inside the integration loop: the ops of signals that
    /// are not computed where they are read ([`crate::inline`]).
    pub fn signals_lean<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        bufs: [Value; 4],
    ) {
        self.signal_pass(module, b, bufs, true)
    }

    fn signal_pass<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [x, p, s, io]: [Value; 4],
        lean: bool,
    ) {
        let c = self.ctx(module, b, [x, p, s, io]);
        let flat = self.flat;
        for op in &flat.schedule {
            if lean {
                let skip = match op.kind {
                    OpKind::Let(g, l) => self.virt.is(g, Sig::Let(l)),
                    OpKind::Out(g, p) => self.virt.is(g, Sig::Out(p)),
                    OpKind::Wire(g, w) => {
                        let grp = &flat.groups[g as usize];
                        let wire = &flat.program.systems[grp.system as usize].wires[w as usize];
                        self.virt
                            .is(grp.children[wire.b as usize], Sig::In(wire.port))
                    }
                    OpKind::Mode(_) => false,
                };
                if skip {
                    continue;
                }
            }
            match op.kind {
                OpKind::Let(g, l) => {
                    let grp = &flat.groups[g as usize];
                    let xexpr = &flat.program.systems[grp.system as usize].lets[l as usize].1;
                    let off = grp.let_off[l as usize];
                    let shape = &flat.program.systems[grp.system as usize].lets[l as usize]
                        .0
                        .shape;
                    self.for_items(module, b, &c, g, op, &mut |cg, b, c, f, _| {
                        let grp = &cg.flat.groups[g as usize];
                        let sl = Self::slot(b, grp.sig_base, f.e, grp.sig_stride, off);
                        cg.put(b, c, f, xexpr, c.s, sl, shape);
                    });
                }
                OpKind::Out(g, port) => {
                    let grp = &flat.groups[g as usize];
                    let Readout::Ports(xs) = &flat.program.systems[grp.system as usize].readout
                    else {
                        continue;
                    };
                    let xexpr = &xs[port as usize];
                    let off = grp.out_off[port as usize];
                    let shape =
                        &flat.program.systems[grp.system as usize].outputs[port as usize].shape;
                    self.for_items(module, b, &c, g, op, &mut |cg, b, c, f, _| {
                        let grp = &cg.flat.groups[g as usize];
                        let sl = Self::slot(b, grp.sig_base, f.e, grp.sig_stride, off);
                        cg.put(b, c, f, xexpr, c.s, sl, shape);
                    });
                }
                OpKind::Mode(g) => {
                    let grp = &flat.groups[g as usize];
                    let Readout::Mode(xexpr, _, ports) =
                        &flat.program.systems[grp.system as usize].readout
                    else {
                        continue;
                    };
                    let n_out = grp.out_off.len();
                    self.for_items(module, b, &c, g, op, &mut |cg, b, c, f, _| {
                        let grp = &cg.flat.groups[g as usize];
                        let (idx, vals) = cg.mode_val(b, c, f, xexpr, ports, n_out);
                        let ms = Self::slot(
                            b,
                            grp.sig_base,
                            f.e,
                            grp.sig_stride,
                            grp.mode_off.expect("mode slot"),
                        );
                        Self::store(b, c.s, ms, idx);
                        for (p, v) in vals.into_iter().enumerate() {
                            if let Some(v) = v {
                                let sl = Self::slot(
                                    b,
                                    grp.sig_base,
                                    f.e,
                                    grp.sig_stride,
                                    grp.out_off[p],
                                );
                                Self::store(b, c.s, sl, v);
                            }
                        }
                    });
                }
                OpKind::Wire(g, w) => {
                    let grp = &flat.groups[g as usize];
                    let sys = &flat.program.systems[grp.system as usize];
                    let wire = &sys.wires[w as usize];
                    let child = &flat.groups[grp.children[wire.b as usize] as usize];
                    let n = sys.boxes[wire.b as usize].count.unwrap_or(1) as i64;
                    let k0 = wire
                        .index
                        .as_ref()
                        .map(|i| eval_index(i, &[]).unwrap_or(0))
                        .unwrap_or(0);
                    let (cbase, cstride, coff) = (
                        child.sig_base,
                        child.sig_stride,
                        child.in_off[wire.port as usize],
                    );
                    let depth = op.items.first().map(|i| i.loops.len()).unwrap_or(0);
                    let shape = &flat.program.systems[child.system as usize].inputs
                        [wire.port as usize]
                        .shape;
                    self.for_items(module, b, &c, g, op, &mut |cg, b, c, f, target| {
                        let ce = if depth == 0
                            && op
                                .items
                                .iter()
                                .enumerate()
                                .all(|(k, it)| it.elem == op.items[0].elem + k as u64)
                        {
                            let en = b.ins().imul_imm_s(f.e, n);
                            b.ins().iadd_imm_s(en, k0)
                        } else {
                            target
                        };
                        let sl = Self::slot(b, cbase, ce, cstride, coff);
                        cg.put(b, c, f, &wire.value, c.s, sl, shape);
                    });
                }
            }
        }
    }

    /// Body of the update function: derivatives (`der`, zero elsewhere) or next values
    /// (`next`) of every element, into `out`.
    pub fn updates<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [x, p, s, out, io]: [Value; 5],
    ) {
        let c = self.ctx(module, b, [x, p, s, io]);
        let flat = self.flat;
        // Slots without an update stay as the caller zeroed (derivatives) or copied (next).
        for (gi, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            if (sys.updates.is_empty() && sys.mode_updates.is_empty()) || sys.time != flat.time {
                continue;
            }
            let op = every_element(gi as u32, grp.count);
            self.for_items(module, b, &c, gi as u32, &op, &mut |cg, b, c, f, _| {
                let grp = &cg.flat.groups[gi];
                for a in &sys.updates {
                    let sl = Self::slot(
                        b,
                        grp.state_base,
                        f.e,
                        grp.state_stride,
                        grp.state_off[a.state as usize],
                    );
                    let shape = &sys.states[a.state as usize].0.shape;
                    cg.put_state(b, c, f, &a.value, out, sl, shape);
                }
                // The arm of the element's current mode. A derivative that another mode's arm
                // sets is 0 in this mode (the interpreter zeroes every derivative first).
                if grp.mode_off.is_some() && cg.flat.time == dyn_ir::system::TimeKind::Continuous {
                    let mut seen = Vec::new();
                    for (_, arm) in &sys.mode_updates {
                        for a in arm {
                            if !seen.contains(&a.state) {
                                seen.push(a.state);
                                let zero = b.ins().f64const(0.0);
                                let sl = Self::slot(
                                    b,
                                    grp.state_base,
                                    f.e,
                                    grp.state_stride,
                                    grp.state_off[a.state as usize],
                                );
                                cg.store_state(b, c, out, sl, zero);
                            }
                        }
                    }
                }
                if let Some(mo) = grp.mode_off {
                    for (mi, arm) in &sys.mode_updates {
                        let ms = Self::slot(b, grp.sig_base, f.e, grp.sig_stride, mo);
                        let m = Self::load(b, c.s, ms);
                        let want = b.ins().f64const(*mi as f64);
                        let here = b.ins().fcmp(FloatCC::Equal, m, want);
                        let yes = b.create_block();
                        let after = b.create_block();
                        b.ins().brif(here, yes, &[], after, &[]);
                        b.switch_to_block(yes);
                        b.seal_block(yes);
                        for a in arm {
                            let sl = Self::slot(
                                b,
                                grp.state_base,
                                f.e,
                                grp.state_stride,
                                grp.state_off[a.state as usize],
                            );
                            let shape = &sys.states[a.state as usize].0.shape;
                            cg.put_state(b, c, f, &a.value, out, sl, shape);
                        }
                        b.ins().jump(after, &[]);
                        b.switch_to_block(after);
                        b.seal_block(after);
                    }
                }
            });
        }
    }

    /// Whether, for some element and event, the condition computed from the state `x` is
    /// true where its last value in `flags` is false (an i8 value; `flags` is not changed):
    /// the interpreter's test during rk45's event location.
    pub fn rising<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [x, p, s, flags, io]: [Value; 5],
    ) -> Value {
        let c = self.ctx(module, b, [x, p, s, io]);
        let flat = self.flat;
        let any = b.declare_var(types::I8);
        let no = b.ins().iconst(types::I8, 0);
        b.def_var(any, no);
        let mut base = 0usize;
        for (gi, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            let nev = sys.events.len();
            if nev == 0 {
                continue;
            }
            let op = every_element(gi as u32, grp.count);
            let group_base = base;
            self.for_items(module, b, &c, gi as u32, &op, &mut |cg, b, c, f, _| {
                for (k, ev) in sys.events.iter().enumerate() {
                    let cond = cg.expr(b, c, f, &ev.cond);
                    let row = b.ins().imul_imm_s(f.e, nev as i64);
                    let idx = b.ins().iadd_imm_s(row, (group_base + k) as i64);
                    let prev = Self::load(b, flags, idx);
                    let zero = b.ins().f64const(0.0);
                    let now = b.ins().fcmp(FloatCC::NotEqual, cond, zero);
                    let was = b.ins().fcmp(FloatCC::NotEqual, prev, zero);
                    let r = b.ins().band_not(now, was);
                    let cur = b.use_var(any);
                    let nx = b.ins().bor(cur, r);
                    b.def_var(any, nx);
                }
            });
            base += grp.count as usize * nev;
        }
        b.use_var(any)
    }

    /// Body of `events(before, p, s, x, flags, io)`: for every element and event, in the
    /// interpreter's order, the condition on the state `before`; an event fires when its
    /// condition became true since the last call (`flags` holds the last values); a firing
    /// event's jumps are computed from `before` and written into `x`.
    pub fn events<M: Module>(
        &mut self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [before, p, s, x, flags, io]: [Value; 6],
    ) {
        let c = self.ctx(module, b, [before, p, s, io]);
        let flat = self.flat;
        let mut base = 0usize;
        for (gi, grp) in flat.groups.iter().enumerate() {
            let sys = &flat.program.systems[grp.system as usize];
            let nev = sys.events.len();
            if nev == 0 {
                continue;
            }
            let op = every_element(gi as u32, grp.count);
            let group_base = base;
            self.for_items(module, b, &c, gi as u32, &op, &mut |cg, b, c, f, _| {
                let grp = &cg.flat.groups[gi];
                for (k, ev) in sys.events.iter().enumerate() {
                    let cond = cg.expr(b, c, f, &ev.cond);
                    let row = b.ins().imul_imm_s(f.e, nev as i64);
                    let idx = b.ins().iadd_imm_s(row, (group_base + k) as i64);
                    let prev = Self::load(b, flags, idx);
                    Self::store(b, flags, idx, cond);
                    let zero = b.ins().f64const(0.0);
                    let now = b.ins().fcmp(FloatCC::NotEqual, cond, zero);
                    let was = b.ins().fcmp(FloatCC::NotEqual, prev, zero);
                    let rising = b.ins().band_not(now, was);
                    let fire = b.create_block();
                    let after = b.create_block();
                    b.ins().brif(rising, fire, &[], after, &[]);
                    b.switch_to_block(fire);
                    b.seal_block(fire);
                    for a in &ev.assigns {
                        let sl = Self::slot(
                            b,
                            grp.state_base,
                            f.e,
                            grp.state_stride,
                            grp.state_off[a.state as usize],
                        );
                        let shape = &sys.states[a.state as usize].0.shape;
                        cg.put(b, c, f, &a.value, x, sl, shape);
                    }
                    b.ins().jump(after, &[]);
                    b.switch_to_block(after);
                    b.seal_block(after);
                }
            });
            base += grp.count as usize * nev;
        }
    }

    /// Buffers and shim references for code outside the schedule (the initial values that
    /// `crate::init` computes).
    pub(crate) fn init_ctx<M: Module>(
        &self,
        module: &mut M,
        b: &mut FunctionBuilder,
        [x, p, s, io]: [Value; 4],
    ) -> Ctx {
        Ctx {
            params_fixed: false,
            ..self.ctx(module, b, [x, p, s, io])
        }
    }

    /// Stores the value of `x`, evaluated in element `e` of group `g`, at `slot` of `buf`
    /// (`shape` slots; a scalar fills a tensor), as the interpreter's `eval_init` and
    /// `to_slots` do.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put_init(
        &self,
        b: &mut FunctionBuilder,
        c: &Ctx,
        g: u32,
        e: Value,
        x: &Expr,
        buf: Value,
        slot: Value,
        shape: &Shape,
    ) {
        self.put(b, c, &Frame::new(g, e, vec![]), x, buf, slot, shape);
    }
}
