//! Run-time values of the interpreter: scalars, tensors (ndarray) and mode values.

use ndarray::{ArrayD, IxDyn};

/// A value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A scalar (Int and Bool are exact integers in the f64).
    S(f64),
    /// A tensor.
    T(ArrayD<f64>),
    /// A mode value: mode index and its out ports' values.
    M(u32, Vec<Val>),
}

impl Val {
    /// The scalar, or the first element of a tensor (callers check types beforehand).
    pub fn s(&self) -> f64 {
        match self {
            Val::S(x) => *x,
            Val::T(a) => a.iter().next().copied().unwrap_or(f64::NAN),
            Val::M(m, _) => *m as f64,
        }
    }

    /// A tensor of `shape` from slots.
    pub fn from_slots(shape: &[u64], data: &[f64]) -> Val {
        if shape.is_empty() {
            Val::S(data[0])
        } else {
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            Val::T(
                ArrayD::from_shape_vec(IxDyn(&dims), data.to_vec()).expect("slots match the shape"),
            )
        }
    }

    /// Writes the value into slots (a scalar broadcasts).
    pub fn to_slots(&self, out: &mut [f64]) {
        match self {
            Val::S(x) => out.iter_mut().for_each(|o| *o = *x),
            Val::T(a) => {
                for (o, v) in out.iter_mut().zip(a.iter()) {
                    *o = *v;
                }
            }
            Val::M(m, _) => out.iter_mut().for_each(|o| *o = *m as f64),
        }
    }

    /// The value with its tensor in standard (row-major, contiguous) layout.
    pub fn standard(self) -> Val {
        match self {
            Val::T(a) if !a.is_standard_layout() => Val::T(a.as_standard_layout().into_owned()),
            v => v,
        }
    }

    /// Applies `f` element-wise.
    pub fn map(self, f: impl Fn(f64) -> f64) -> Val {
        match self {
            Val::S(x) => Val::S(f(x)),
            Val::T(a) => Val::T(a.mapv(f)),
            m => m,
        }
    }
}
