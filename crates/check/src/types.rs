//! Value types of dyn and their rules (promotion, broadcasting, matrix product).

use std::fmt;
use std::rc::Rc;

/// A tensor dimension: a known natural or a size parameter of a generic `fn`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// Known at compile time.
    Known(u64),
    /// A size parameter `<n>`, bound at each call.
    Param(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Param(p) => write!(f, "{p}"),
        }
    }
}

/// Element types of tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    /// f64.
    Real,
    /// i64.
    Int,
    /// bool.
    Bool,
}

/// A value type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ty {
    /// f64.
    Real,
    /// i64.
    Int,
    /// bool.
    Bool,
    /// `()`.
    Unit,
    /// A numeral used as a type: the set {0, …, n-1}.
    Fin(u64),
    /// `Real[m, n]`.
    Tensor(Elem, Vec<Dim>),
    /// `{ x: Real, y: Real }` (fields in declared order).
    Record(Rc<Vec<(String, Ty)>>),
    /// An enum, by name and variants.
    Enum(Rc<EnumTy>),
    /// A value of a mode-dependent interface's positions: one of its modes with its outs.
    Modes(Rc<ModesTy>),
    /// The type of something that failed to check; compatible with everything, so one
    /// error is reported once.
    Error,
}

/// An enum type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnumTy {
    /// Name.
    pub name: String,
    /// Variants.
    pub variants: Vec<String>,
}

/// The position type of a mode-dependent interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModesTy {
    /// Interface name.
    pub name: String,
    /// Modes with their out ports.
    pub modes: Vec<(String, Vec<(String, Ty)>)>,
}

impl Elem {
    /// The scalar type of this element.
    pub fn scalar(self) -> Ty {
        match self {
            Elem::Real => Ty::Real,
            Elem::Int => Ty::Int,
            Elem::Bool => Ty::Bool,
        }
    }
}

impl Ty {
    /// True for `Real`, `Int` and numerals.
    pub fn is_numeric(&self) -> bool {
        matches!(self, Ty::Real | Ty::Int | Ty::Fin(_) | Ty::Error)
    }

    /// True for `Int` and numerals.
    pub fn is_int(&self) -> bool {
        matches!(self, Ty::Int | Ty::Fin(_) | Ty::Error)
    }

    /// The element type if this is a scalar that can be a tensor element.
    pub fn elem(&self) -> Option<Elem> {
        match self {
            Ty::Real => Some(Elem::Real),
            Ty::Int | Ty::Fin(_) => Some(Elem::Int),
            Ty::Bool => Some(Elem::Bool),
            _ => None,
        }
    }

    /// Can a value of type `self` be stored where `target` is expected? Equal types, Int
    /// into Real (promotion), numerals into Int, and Error either way.
    pub fn fits(&self, target: &Ty) -> bool {
        match (self, target) {
            (Ty::Error, _) | (_, Ty::Error) => true,
            (Ty::Int | Ty::Fin(_), Ty::Real) => true,
            (Ty::Fin(_), Ty::Int) => true,
            (Ty::Fin(a), Ty::Fin(b)) => a <= b,
            (Ty::Tensor(Elem::Int, d1), Ty::Tensor(Elem::Real, d2)) => d1 == d2,
            (Ty::Record(a), Ty::Record(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((n1, t1), (n2, t2))| n1 == n2 && t1.fits(t2))
            }
            _ => self == target,
        }
    }

    /// True if this type mentions `Error`.
    pub fn is_error(&self) -> bool {
        matches!(self, Ty::Error)
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Real => write!(f, "Real"),
            Ty::Int => write!(f, "Int"),
            Ty::Bool => write!(f, "Bool"),
            Ty::Unit => write!(f, "()"),
            Ty::Fin(n) => write!(f, "{n}"),
            Ty::Tensor(e, dims) => {
                let e = match e {
                    Elem::Real => "Real",
                    Elem::Int => "Int",
                    Elem::Bool => "Bool",
                };
                let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
                write!(f, "{e}[{}]", d.join(", "))
            }
            Ty::Record(fields) => {
                let fs: Vec<String> = fields.iter().map(|(n, t)| format!("{n}: {t}")).collect();
                write!(f, "{{ {} }}", fs.join(", "))
            }
            Ty::Enum(e) => write!(f, "{}", e.name),
            Ty::Modes(m) => write!(f, "a mode of {}", m.name),
            Ty::Error => write!(f, "?"),
        }
    }
}

/// Number of elements of a finite type, `None` when infinite (Real, Int) or unknown.
/// `Err` carries the infinite type's description for the diagnostic.
pub fn cardinality(t: &Ty) -> Result<Option<u128>, String> {
    Ok(match t {
        Ty::Real => return Err("Real".into()),
        Ty::Int => return Err("Int".into()),
        Ty::Bool => Some(2),
        Ty::Unit => Some(1),
        Ty::Fin(n) => Some(u128::from(*n)),
        Ty::Enum(e) => Some(e.variants.len() as u128),
        Ty::Record(fields) => {
            let mut acc: Option<u128> = Some(1);
            for (_, t) in fields.iter() {
                let c = cardinality(t)?;
                acc = match (acc, c) {
                    (Some(a), Some(c)) => a.checked_mul(c),
                    _ => None,
                };
            }
            acc
        }
        Ty::Tensor(e, dims) => {
            let base = cardinality(&e.scalar())?;
            let mut n: u64 = 1;
            for d in dims {
                match d {
                    Dim::Known(k) => n = n.saturating_mul(*k),
                    Dim::Param(_) => return Ok(None),
                }
            }
            base.and_then(|b| u32::try_from(n).ok().and_then(|n| b.checked_pow(n)))
        }
        Ty::Modes(m) => {
            let mut total: u128 = 0;
            for (_, outs) in &m.modes {
                let mut c: u128 = 1;
                for (_, t) in outs {
                    match cardinality(t)? {
                        Some(k) => c = c.saturating_mul(k),
                        None => return Ok(None),
                    }
                }
                total = total.saturating_add(c);
            }
            Some(total)
        }
        Ty::Error => None,
    })
}
