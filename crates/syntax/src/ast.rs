//! The abstract syntax tree. Every node carries the span of the source it came from.
//!
//! The parser recovers from errors, so a tree may contain `Error` nodes where the source
//! did not parse; later stages skip them silently (the parse error was already reported).

use dyn_diag::Span;

/// A name with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// A parsed file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct File {
    /// Top-level items in source order.
    pub items: Vec<Item>,
}

/// A top-level item with its doc comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The `///` lines before it, joined by newlines.
    pub doc: Option<String>,
    /// The whole item.
    pub span: Span,
    /// What it is.
    pub kind: ItemKind,
}

/// The kinds of top-level items.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// `use std.neurons.FHN`, `use std.neurons.*`, `use lib.foo`.
    Use(UseDecl),
    /// `const N = 1000`.
    Const(ConstDef),
    /// `type Point = { x: Real, y: Real }`.
    TypeAlias(TypeAlias),
    /// `enum Phase { Rest, Spike }`.
    Enum(EnumDef),
    /// `fn sigmoid(x: Real) -> Real = …`.
    Fn(FnDef),
    /// `interface P { … }` or `interface P = y^2 + y`.
    Interface(InterfaceDef),
    /// `system S : P { … }`.
    System(SystemDef),
    /// `lens f : P -> Q { … }`.
    Lens(LensDef),
    /// `run S { … }`.
    Run(RunDef),
    /// An item that did not parse.
    Error,
}

/// `use a.b.c` or `use a.b.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct UseDecl {
    /// The dotted path.
    pub path: Vec<Ident>,
    /// Ends in `.*`.
    pub glob: bool,
}

/// `const NAME (: Type)? = expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstDef {
    /// Name.
    pub name: Ident,
    /// Declared type, if any.
    pub ty: Option<TypeExpr>,
    /// Value.
    pub value: Expr,
}

/// `type NAME = Type`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeAlias {
    /// Name.
    pub name: Ident,
    /// The type it stands for.
    pub ty: TypeExpr,
}

/// `enum NAME { A, B }`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumDef {
    /// Name.
    pub name: Ident,
    /// Variants in order.
    pub variants: Vec<Ident>,
}

/// `fn name<sizes>(params) -> Type = expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct FnDef {
    /// Name.
    pub name: Ident,
    /// Size parameters `<n, m>`.
    pub sizes: Vec<Ident>,
    /// Parameters with types.
    pub params: Vec<(Ident, TypeExpr)>,
    /// Result type.
    pub ret: TypeExpr,
    /// Body.
    pub body: Expr,
}

/// `interface NAME<sizes> …`.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceDef {
    /// Name.
    pub name: Ident,
    /// Size parameters.
    pub sizes: Vec<Ident>,
    /// Its polynomial (a body `{ … }` is `Poly::Body`).
    pub poly: Poly,
}

/// An interface body: ports, or modes with ports.
#[derive(Debug, Clone, PartialEq)]
pub struct IfaceBody {
    /// Ports and modes in source order.
    pub entries: Vec<IfaceEntry>,
    /// The braces.
    pub span: Span,
}

/// One entry of an interface body.
#[derive(Debug, Clone, PartialEq)]
pub enum IfaceEntry {
    /// `out name: Type` / `in name: Type`.
    Port(PortDecl),
    /// `mode Name { ports }`.
    Mode {
        /// Doc comment.
        doc: Option<String>,
        /// Mode name.
        name: Ident,
        /// Its ports.
        ports: Vec<PortDecl>,
    },
    /// Did not parse.
    Error,
}

/// Direction of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// `out`: a position, what the box shows.
    Out,
    /// `in`: a direction, what the box can be told.
    In,
}

/// `out name: Type` or `in name: Type`.
#[derive(Debug, Clone, PartialEq)]
pub struct PortDecl {
    /// Doc comment.
    pub doc: Option<String>,
    /// Direction.
    pub dir: Dir,
    /// Name.
    pub name: Ident,
    /// Type.
    pub ty: TypeExpr,
    /// Whole declaration.
    pub span: Span,
}

/// A polynomial expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Poly {
    /// What it is.
    pub kind: PolyKind,
    /// Where.
    pub span: Span,
}

/// The forms of polynomial expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum PolyKind {
    /// The identity polynomial `y`.
    Y,
    /// A name or a type used as a polynomial: an interface name, or a constant `A` (= `A y^0`).
    Atom(TypeExpr),
    /// An inline interface `{ out … in … }`.
    Body(IfaceBody),
    /// `p ^ B`: only meaningful with `p = y`.
    Pow(Box<Poly>, TypeExpr),
    /// `A p`: a coefficient before a term.
    Coef(TypeExpr, Box<Poly>),
    /// `p + q`.
    Sum(Box<Poly>, Box<Poly>),
    /// `p × q`.
    Product(Box<Poly>, Box<Poly>),
    /// `p ⊗ q`.
    Tensor(Box<Poly>, Box<Poly>),
    /// `p ◁ q`.
    Compose(Box<Poly>, Box<Poly>),
    /// `name: p`, a named factor.
    Named(Ident, Box<Poly>),
    /// Did not parse.
    Error,
}

/// A type expression.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    /// What it is.
    pub kind: TypeKind,
    /// Where.
    pub span: Span,
}

/// Forms of type expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// `Real`, `Int`, `Bool`, a type alias, an enum, a size parameter, or `mod.Name`.
    Named(Vec<Ident>),
    /// `Real[m, n]`: element type name and sizes.
    Tensor(Vec<Ident>, Vec<Expr>),
    /// A numeral as a finite set: `3`.
    Numeral(String),
    /// `()`.
    Unit,
    /// `{ x: Real, y: Real }`.
    Record(Vec<(Ident, TypeExpr)>),
    /// Did not parse.
    Error,
}

/// A reference to an interface in a header: a name with optional size arguments, or a polynomial.
#[derive(Debug, Clone, PartialEq)]
pub struct IfaceRef {
    /// The polynomial (`Poly::Atom` for a plain name).
    pub poly: Poly,
    /// Size arguments `Name<3>`.
    pub sizes: Vec<Expr>,
}

/// `system NAME<sizes> : Iface { body }`.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemDef {
    /// Name.
    pub name: Ident,
    /// Size parameters.
    pub sizes: Vec<Ident>,
    /// Its interface.
    pub iface: IfaceRef,
    /// Body items in source order.
    pub body: Vec<SysItem>,
    /// For a `learner` (written with that keyword): the keyword's span. The checker's first
    /// step (`dyn_check::learner`) rewrites a learner into the system it stands for; this
    /// field stays set so later stages can still tell it was one.
    pub learner: Option<Span>,
}

/// One item of a system body.
#[derive(Debug, Clone, PartialEq)]
pub struct SysItem {
    /// Doc comment.
    pub doc: Option<String>,
    /// What it is.
    pub kind: SysItemKind,
    /// Whole item.
    pub span: Span,
}

/// Kinds of system body items.
#[derive(Debug, Clone, PartialEq)]
pub enum SysItemKind {
    /// `param name: Type (= default)?`.
    Param {
        /// Name.
        name: Ident,
        /// Type.
        ty: TypeExpr,
        /// Default value.
        default: Option<Expr>,
    },
    /// `state name: Type = init`.
    State {
        /// Name.
        name: Ident,
        /// Type.
        ty: TypeExpr,
        /// Initial value.
        init: Expr,
    },
    /// `let name (: Type)? = expr`.
    Let {
        /// Name.
        name: Ident,
        /// Declared type.
        ty: Option<TypeExpr>,
        /// Value.
        value: Expr,
    },
    /// `out name = expr`, or `out = expr` (mode-dependent readout) when `name` is `None`.
    Out {
        /// Port name.
        name: Option<Ident>,
        /// Value.
        value: Expr,
    },
    /// `next x = e` / `der x = e`.
    Update {
        /// `next` (discrete) or `der` (continuous).
        kind: UpdateKind,
        /// The keyword's span.
        kw: Span,
        /// State variable.
        target: Ident,
        /// New value or derivative.
        value: Expr,
    },
    /// `next match mode { Open => { … } … }`.
    UpdateMatch {
        /// `next` or `der`.
        kind: UpdateKind,
        /// The keyword's span.
        kw: Span,
        /// Arms.
        arms: Vec<ModeArm>,
    },
    /// `when cond { assignments }`.
    When {
        /// Condition.
        cond: Expr,
        /// Jumps.
        body: Vec<Assign>,
    },
    /// `box name[size]?: System<sizes>(args)`.
    Box {
        /// Name.
        name: Ident,
        /// Array size, for `box cell[N]`.
        count: Option<Expr>,
        /// The system's (possibly qualified) name.
        system: Vec<Ident>,
        /// Size arguments.
        sizes: Vec<Expr>,
        /// Parameter overrides.
        args: Vec<Arg>,
    },
    /// `box.port <- expr`.
    Wire {
        /// The inner input being wired.
        target: WireTarget,
        /// Its value.
        value: Expr,
    },
    /// `for i in lo..hi { items }`.
    For {
        /// Loop variable.
        var: Ident,
        /// Lower bound (inclusive).
        lo: Expr,
        /// Upper bound (exclusive).
        hi: Expr,
        /// Body.
        body: Vec<SysItem>,
    },
    /// `optimizer Adam(lr = 0.01)` in a learner: how its parameters are trained. `kw` is the
    /// contextual keyword as written (the checker reports anything but `optimizer`).
    Optimizer {
        /// The leading word (`optimizer`).
        kw: Ident,
        /// The optimizer (`SGD`, `Momentum`, `Adam`).
        name: Ident,
        /// Hyperparameters (`lr = 0.01`).
        args: Vec<Arg>,
    },
    /// Did not parse.
    Error,
}

/// `next` or `der`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateKind {
    /// Discrete update.
    Next,
    /// Time derivative.
    Der,
}

/// `Mode => { assignments }` in an update match.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeArm {
    /// The mode.
    pub mode: Ident,
    /// Assignments in this mode.
    pub body: Vec<Assign>,
    /// Whole arm.
    pub span: Span,
}

/// `name = expr` in a `when` or a mode arm.
#[derive(Debug, Clone, PartialEq)]
pub struct Assign {
    /// Target.
    pub target: Ident,
    /// Value.
    pub value: Expr,
    /// Whole assignment.
    pub span: Span,
}

/// `box.port` or `box[i].port` as a wire target.
#[derive(Debug, Clone, PartialEq)]
pub struct WireTarget {
    /// Box name.
    pub boxname: Ident,
    /// Index into a box array.
    pub index: Option<Expr>,
    /// Port.
    pub port: Ident,
    /// Whole target.
    pub span: Span,
}

/// A call or instantiation argument: positional or `name = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// Name, for `name = value`.
    pub name: Option<Ident>,
    /// Value.
    pub value: Expr,
}

/// `lens name : Src -> Tgt { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct LensDef {
    /// Name.
    pub name: Ident,
    /// Source interface.
    pub src: IfaceRef,
    /// Target interface.
    pub tgt: IfaceRef,
    /// Body.
    pub body: Vec<LensItem>,
}

/// One item of a lens body.
#[derive(Debug, Clone, PartialEq)]
pub struct LensItem {
    /// What it is.
    pub kind: LensItemKind,
    /// Whole item.
    pub span: Span,
}

/// Kinds of lens body items.
#[derive(Debug, Clone, PartialEq)]
pub enum LensItemKind {
    /// `out p = e` (forward) or `in p = e` (backward).
    Def {
        /// Which side is defined.
        dir: Dir,
        /// The keyword's span.
        kw: Span,
        /// Port defined.
        port: Ident,
        /// Value.
        value: Expr,
    },
    /// `let x = e`.
    Let {
        /// Name.
        name: Ident,
        /// Value.
        value: Expr,
    },
    /// `match mode { SrcMode => TgtMode? { items } }`.
    Match(Vec<LensArm>),
    /// Did not parse.
    Error,
}

/// `SrcMode => TgtMode { items }` in a lens.
#[derive(Debug, Clone, PartialEq)]
pub struct LensArm {
    /// Source mode matched.
    pub src_mode: Ident,
    /// Target mode chosen, if the target has modes.
    pub tgt_mode: Option<Ident>,
    /// Definitions in this arm.
    pub body: Vec<LensItem>,
    /// Whole arm.
    pub span: Span,
}

/// `run System { key values … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDef {
    /// The system to run.
    pub system: Ident,
    /// Settings in order.
    pub items: Vec<RunItem>,
}

/// A run-block line: `until 10.0`, `method rk4(dt = 0.001)`, `record a, b`, `every 0.1`,
/// or `param box.p = v`.
#[derive(Debug, Clone, PartialEq)]
pub enum RunItem {
    /// A contextual keyword with its values.
    Setting {
        /// The key (`until`, `steps`, `method`, `record`, `every`, `seed`, …).
        key: Ident,
        /// Its values.
        values: Vec<Expr>,
        /// Whole line.
        span: Span,
    },
    /// `param path = value`.
    Param {
        /// Dotted parameter path.
        path: Vec<Ident>,
        /// Value.
        value: Expr,
        /// Whole line.
        span: Span,
    },
    /// Did not parse.
    Error,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `@`
    MatMul,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    And,
    /// `||`
    Or,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-`
    Neg,
    /// `!`
    Not,
}

/// Forms of expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// Integer literal (text, checked later).
    Int(String),
    /// Real literal (text).
    Real(String),
    /// `true` / `false`.
    Bool(bool),
    /// `()`.
    Unit,
    /// A name.
    Var(Ident),
    /// `e.field` (also `box.port`, `module.item`).
    Field(Box<Expr>, Ident),
    /// `e[i, j]`; an item may be a [`ExprKind::Range`] (a slice `x[2..5]`, `m[.., j]`).
    Index(Box<Expr>, Vec<Expr>),
    /// `lo..hi` with either bound optional: only inside the brackets of an index.
    Range(Option<Box<Expr>>, Option<Box<Expr>>),
    /// `f(args)`.
    Call(Box<Expr>, Vec<Arg>),
    /// Unary operation.
    Unary(UnOp, Box<Expr>),
    /// Binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `if c then a else b`.
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `match e { pat => e, … }`.
    Match(Box<Expr>, Vec<MatchArm>),
    /// `[a, b, c]`.
    Array(Vec<Expr>),
    /// `Name { f = e, … }` (a mode or record literal) or `{ f = e }` (name `None`).
    Record(Option<Ident>, Vec<(Ident, Expr)>),
    /// Did not parse.
    Error,
}

/// `pattern => expr` in an expression `match`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchArm {
    /// The pattern.
    pub pat: Pattern,
    /// The value.
    pub value: Expr,
}

/// Patterns of expression `match`.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// `_`.
    Wild(Span),
    /// A variant or mode name.
    Name(Ident),
    /// An integer.
    Int(String, Span),
    /// `true`/`false`.
    Bool(bool, Span),
}

impl Pattern {
    /// Where the pattern is written.
    pub fn span(&self) -> Span {
        match self {
            Pattern::Wild(s) | Pattern::Int(_, s) | Pattern::Bool(_, s) => *s,
            Pattern::Name(i) => i.span,
        }
    }
}
