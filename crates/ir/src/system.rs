//! The IR of nested systems: the tree of systems as the checker understood it, with
//! resolved, typed expressions and spans back to the source.

use crate::expr::Expr;
use dyn_diag::Span;

/// A whole program ready to run: its systems (one per instantiation), fns and the root.
#[derive(Debug, Clone)]
pub struct Program {
    /// Systems; boxes refer to them by index.
    pub systems: Vec<System>,
    /// User fns; calls refer to them by index.
    pub fns: Vec<Function>,
    /// The system being run.
    pub root: u32,
}

/// A user fn.
#[derive(Debug, Clone)]
pub struct Function {
    /// Name.
    pub name: String,
    /// Number of arguments (size parameters follow the declared ones).
    pub arity: u32,
    /// Body over `Expr::Arg`.
    pub body: Expr,
}

/// The shape of a value: empty for a scalar.
pub type Shape = Vec<u64>;

/// Number of `f64` slots a value of this shape takes.
pub fn slots(shape: &Shape) -> usize {
    shape.iter().product::<u64>() as usize
}

/// Kind of scalar stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// f64.
    Real,
    /// An integer (Int, numerals, enums).
    Int,
    /// A Bool.
    Bool,
}

/// A named value slot: a param, state, port or let.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Shape,
    /// Scalar kind.
    pub kind: Kind,
    /// Declaration.
    pub span: Span,
}

/// Time domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// No state.
    Stateless,
    /// `next`.
    Discrete,
    /// `der`.
    Continuous,
}

/// How out ports are computed.
#[derive(Debug, Clone)]
pub enum Readout {
    /// One expression per out port (in `System::outputs` order).
    Ports(Vec<Expr>),
    /// A mode value (`Expr::Mode` or a choice of them); mode names in order.
    Mode(Expr, Vec<String>, Vec<Vec<u32>>),
}

/// An update of one state variable.
#[derive(Debug, Clone)]
pub struct Assign {
    /// State index.
    pub state: u32,
    /// New value (`next`), derivative (`der`) or jump target (`when`).
    pub value: Expr,
}

/// A `when` event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Condition; the event fires when it becomes true.
    pub cond: Expr,
    /// Jumps.
    pub assigns: Vec<Assign>,
    /// Where.
    pub span: Span,
}

/// An inner box.
#[derive(Debug, Clone)]
pub struct BoxInst {
    /// Name.
    pub name: String,
    /// Array length.
    pub count: Option<u64>,
    /// Its system.
    pub system: u32,
    /// For each param of the inner system: the override (evaluated in this system).
    pub args: Vec<Option<Expr>>,
    /// Declaration.
    pub span: Span,
}

/// A wire, possibly inside `for` loops.
#[derive(Debug, Clone)]
pub struct Wire {
    /// Enclosing loops, outermost first: (variable, lo, hi) with bounds as expressions over
    /// outer loop variables.
    pub loops: Vec<(String, Expr, Expr)>,
    /// The box.
    pub b: u32,
    /// Array element.
    pub index: Option<Expr>,
    /// Input port of the box's system.
    pub port: u32,
    /// Value.
    pub value: Expr,
    /// Where.
    pub span: Span,
}

/// One system (one instantiation of a `system` item).
#[derive(Debug, Clone)]
pub struct System {
    /// Name.
    pub name: String,
    /// Where it is defined.
    pub span: Span,
    /// Parameters with defaults.
    pub params: Vec<(Slot, Option<Expr>)>,
    /// Input ports (union over modes).
    pub inputs: Vec<Slot>,
    /// Output ports (union over modes).
    pub outputs: Vec<Slot>,
    /// State variables with initial values.
    pub states: Vec<(Slot, Expr)>,
    /// Lets in order.
    pub lets: Vec<(Slot, Expr)>,
    /// Readout.
    pub readout: Readout,
    /// Time domain of this system itself (not its boxes).
    pub time: TimeKind,
    /// Updates outside a mode match.
    pub updates: Vec<Assign>,
    /// Updates per mode (mode index, assignments).
    pub mode_updates: Vec<(u32, Vec<Assign>)>,
    /// Events.
    pub events: Vec<Event>,
    /// Inner boxes.
    pub boxes: Vec<BoxInst>,
    /// Wires.
    pub wires: Vec<Wire>,
}
