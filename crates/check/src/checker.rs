//! The checker's state: module scopes, caches of resolved items, and the diagnostics.
//!
//! Items are checked on demand and cached, so the order of definitions in a file does
//! not matter and each item is checked once. Cycles (a const defined by itself, a system
//! containing itself) are found by marking items "in progress".

use crate::consteval::{self, ConstEnv, NotConst, Value};
use crate::modules::{ModId, Module};
use crate::system::SystemSig;
use crate::types::{Dim, Elem, EnumTy, Ty};
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::{self, Ident, ItemKind, TypeExpr, TypeKind};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// An item: module and index in that module's item list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId {
    /// The module.
    pub module: ModId,
    /// Index into its items.
    pub index: usize,
}

/// What a module-level name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// An item of some module.
    Item(ItemId),
    /// A module imported as a namespace (`use lib.foo`).
    Module(ModId),
    /// A variant of an enum item.
    Variant(ItemId, usize),
}

/// A resolved function signature.
#[derive(Debug, Clone)]
pub struct FnSig {
    /// Size parameters.
    pub sizes: Vec<String>,
    /// Parameter names and types (dims may be size parameters).
    pub params: Vec<(String, Ty)>,
    /// Result type.
    pub ret: Ty,
}

/// A cache slot: being computed (a cycle if reached again) or done.
pub(crate) enum Slot<T> {
    /// Being computed.
    InProgress,
    /// Computed.
    Done(T),
}

/// Size parameters in scope while resolving types: bound to values (instantiation) or
/// left symbolic (generic fn bodies).
#[derive(Debug, Clone, Default)]
pub struct Sizes {
    /// Known sizes.
    pub bound: HashMap<String, u64>,
    /// Symbolic sizes.
    pub symbolic: HashSet<String>,
}

/// The largest tensor dimension or box-array length accepted.
pub const MAX_SIZE: i64 = 100_000_000;
/// The most elements one tensor type may have.
pub const MAX_ELEMENTS: u64 = 1_000_000_000;
/// The longest box array accepted (its wiring is enumerated at compile time).
pub const MAX_BOXES: u64 = 1_000_000;

/// An item instantiated with size arguments.
pub(crate) type Instance = (ItemId, Vec<u64>);

/// The checker.
pub struct Checker<'m> {
    /// Loaded modules.
    pub modules: &'m [Module],
    /// Diagnostics so far.
    pub diags: Vec<Diagnostic>,
    scopes: Vec<HashMap<String, (Binding, Span)>>,
    consts: HashMap<ItemId, Slot<(Ty, Option<Value>)>>,
    fns: HashMap<ItemId, Slot<Option<Rc<FnSig>>>>,
    enums: HashMap<ItemId, Rc<EnumTy>>,
    aliases: HashMap<ItemId, Slot<Ty>>,
    pub(crate) ifaces: HashMap<Instance, Slot<Option<Rc<crate::iface::Built>>>>,
    pub(crate) systems: HashMap<Instance, Slot<Option<Rc<SystemSig>>>>,
    /// Checked systems by item (non-generic instantiation), for later stages.
    pub checked_systems: Vec<(ItemId, Rc<SystemSig>)>,
    /// The module whose item is being checked.
    pub cur: ModId,
    /// The typing context being checked (see [`crate::typeck`]).
    pub ctx: u32,
    next_ctx: u32,
    /// The type of every expression, per context.
    pub typeck: crate::typeck::Typeck,
    /// Typing context of each checked fn body.
    pub fn_ctx: HashMap<ItemId, u32>,
    /// Names whose `use` failed (reported once): their uses are not reported again.
    pub poisoned: HashSet<(ModId, String)>,
}

impl<'m> Checker<'m> {
    /// A checker over loaded modules; builds each module's scope.
    pub fn new(modules: &'m [Module]) -> Self {
        let mut c = Checker {
            modules,
            diags: Vec::new(),
            scopes: Vec::new(),
            consts: HashMap::new(),
            fns: HashMap::new(),
            enums: HashMap::new(),
            aliases: HashMap::new(),
            ifaces: HashMap::new(),
            systems: HashMap::new(),
            checked_systems: Vec::new(),
            cur: 0,
            ctx: 0,
            next_ctx: 1,
            typeck: Default::default(),
            fn_ctx: HashMap::new(),
            poisoned: HashSet::new(),
        };
        for m in 0..modules.len() {
            let s = c.build_scope(m);
            c.scopes.push(s);
        }
        c
    }

    /// Opens a new typing context and returns the previous one (restore it after).
    pub fn enter_ctx(&mut self) -> (u32, u32) {
        let new = self.next_ctx;
        self.next_ctx += 1;
        (std::mem::replace(&mut self.ctx, new), new)
    }

    /// The module scopes, for later stages that resolve names the same way.
    pub fn into_scopes(self) -> Vec<HashMap<String, Binding>> {
        self.scopes
            .into_iter()
            .map(|s| s.into_iter().map(|(k, (b, _))| (k, b)).collect())
            .collect()
    }

    /// `Some("const")` or `Some("fn")` when `name` is a module-level const or fn here.
    pub fn shadows_global(&self, name: &str) -> Option<&'static str> {
        match self.lookup(name)? {
            Binding::Item(i) => match self.item(i).kind {
                ItemKind::Const(_) => Some("const"),
                ItemKind::Fn(_) => Some("fn"),
                _ => None,
            },
            _ => None,
        }
    }

    /// Reports a diagnostic.
    pub fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The item's AST.
    pub fn item(&self, id: ItemId) -> &'m ast::Item {
        &self.modules[id.module].ast.items[id.index]
    }

    /// The defined name of an item, if it has one.
    pub fn item_name(item: &ast::Item) -> Option<&Ident> {
        Some(match &item.kind {
            ItemKind::Const(c) => &c.name,
            ItemKind::TypeAlias(t) => &t.name,
            ItemKind::Enum(e) => &e.name,
            ItemKind::Fn(f) => &f.name,
            ItemKind::Interface(i) => &i.name,
            ItemKind::System(s) => &s.name,
            ItemKind::Lens(l) => &l.name,
            _ => return None,
        })
    }

    fn build_scope(&mut self, m: ModId) -> HashMap<String, (Binding, Span)> {
        let module = &self.modules[m];
        let mut scope: HashMap<String, (Binding, Span)> = HashMap::new();
        let mut own: HashMap<String, Span> = HashMap::new();
        // Own items first: they win over imports, and duplicates are errors.
        for (index, item) in module.ast.items.iter().enumerate() {
            let id = ItemId { module: m, index };
            let Some(name) = Self::item_name(item) else {
                continue;
            };
            if let Some(prev) = own.get(&name.name) {
                self.diags.push(
                    Diagnostic::new(
                        codes::DUPLICATE,
                        name.span,
                        format!("`{}` is defined twice", name.name),
                    )
                    .label("second definition")
                    .with(*prev, "first defined here")
                    .hint("rename one of them; items of a module share one namespace"),
                );
                continue;
            }
            own.insert(name.name.clone(), name.span);
            scope.insert(name.name.clone(), (Binding::Item(id), name.span));
        }
        for (index, item) in module.ast.items.iter().enumerate() {
            if let ItemKind::Enum(e) = &item.kind {
                let id = ItemId { module: m, index };
                for (vi, v) in e.variants.iter().enumerate() {
                    scope
                        .entry(v.name.clone())
                        .or_insert((Binding::Variant(id, vi), v.span));
                }
            }
        }
        // Imports.
        for (index, item) in module.ast.items.iter().enumerate() {
            let ItemKind::Use(u) = &item.kind else {
                continue;
            };
            let Some(&target) = module.imports.get(&index) else {
                // The module was not found (reported): its names stay quiet where used.
                if let Some(last) = u.path.last() {
                    self.poisoned.insert((m, last.name.clone()));
                }
                continue;
            };
            let tmod = &self.modules[target];
            let last = u.path.last().expect("a use path has at least one segment");
            let whole_module = tmod.name
                == u.path
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(".");
            if u.glob {
                for (ti, titem) in tmod.ast.items.iter().enumerate() {
                    if let Some(n) = Self::item_name(titem) {
                        let b = Binding::Item(ItemId {
                            module: target,
                            index: ti,
                        });
                        if !own.contains_key(&n.name) {
                            scope.insert(n.name.clone(), (b, item.span));
                        }
                    }
                    if let ItemKind::Enum(e) = &titem.kind {
                        for (vi, v) in e.variants.iter().enumerate() {
                            scope.entry(v.name.clone()).or_insert((
                                Binding::Variant(
                                    ItemId {
                                        module: target,
                                        index: ti,
                                    },
                                    vi,
                                ),
                                item.span,
                            ));
                        }
                    }
                }
            } else if whole_module {
                scope.insert(last.name.clone(), (Binding::Module(target), last.span));
            } else {
                let found = tmod
                    .ast
                    .items
                    .iter()
                    .enumerate()
                    .find(|(_, it)| Self::item_name(it).is_some_and(|n| n.name == last.name));
                match found {
                    Some((ti, _)) => {
                        if let Some(prev) = own.get(&last.name) {
                            self.diags.push(
                                Diagnostic::new(codes::DUPLICATE, last.span, format!("`{}` is imported and also defined here", last.name))
                                    .label("imported here")
                                    .with(*prev, "defined here")
                                    .hint("rename the local definition, or import the module as a namespace"),
                            );
                        } else {
                            scope.insert(
                                last.name.clone(),
                                (
                                    Binding::Item(ItemId {
                                        module: target,
                                        index: ti,
                                    }),
                                    last.span,
                                ),
                            );
                        }
                    }
                    None => {
                        let names: Vec<String> = tmod
                            .ast
                            .items
                            .iter()
                            .filter_map(Self::item_name)
                            .map(|n| n.name.clone())
                            .collect();
                        let mut d = Diagnostic::new(
                            codes::UNKNOWN_NAME,
                            last.span,
                            format!("`{}` is not defined in `{}`", last.name, tmod.name),
                        )
                        .label("not found in that module");
                        if let Some(s) = suggest(&last.name, names.iter().map(String::as_str)) {
                            d = d.hint(format!("did you mean `{s}`?"));
                        } else if !names.is_empty() {
                            d = d.hint(format!("`{}` defines: {}", tmod.name, names.join(", ")));
                        }
                        self.diags.push(d);
                        self.poisoned.insert((m, last.name.clone()));
                    }
                }
            }
        }
        scope
    }

    /// Looks a name up in module `m`'s scope.
    pub fn lookup_in(&self, m: ModId, name: &str) -> Option<Binding> {
        self.scopes.get(m)?.get(name).map(|(b, _)| *b)
    }

    /// Looks a name up in the current module's scope.
    pub fn lookup(&self, name: &str) -> Option<Binding> {
        self.lookup_in(self.cur, name)
    }

    /// Every name in the current module's scope (for suggestions).
    pub fn scope_names(&self) -> Vec<String> {
        self.scopes
            .get(self.cur)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Resolves a dotted path to an item (`Name` or `module.Name`), reporting unknown names.
    pub fn resolve_path(&mut self, path: &[Ident], what: &str) -> Option<ItemId> {
        let mut module = self.cur;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            match self.lookup_in(module, &seg.name) {
                Some(Binding::Item(id)) if last => return Some(id),
                Some(Binding::Module(m)) if !last => module = m,
                Some(_) => {
                    self.report(
                        Diagnostic::new(
                            codes::WRONG_KIND,
                            seg.span,
                            format!("`{}` is not {what}", seg.name),
                        )
                        .label(format!("expected {what}")),
                    );
                    return None;
                }
                None if self.poisoned.contains(&(module, seg.name.clone())) => return None,
                None => {
                    let names: Vec<String> = self.scopes[module].keys().cloned().collect();
                    let mut d = Diagnostic::new(
                        codes::UNKNOWN_NAME,
                        seg.span,
                        format!("unknown {what} `{}`", seg.name),
                    )
                    .label("not defined or imported");
                    if let Some(s) = suggest(&seg.name, names.iter().map(String::as_str)) {
                        d = d.hint(format!("did you mean `{s}`?"));
                    } else {
                        d = d.hint(
                            "define it in this file, or import it with `use std.MODULE.NAME`",
                        );
                    }
                    self.report(d);
                    return None;
                }
            }
        }
        None
    }

    // ------------------------------------------------------------------ types

    /// Resolves a type expression.
    pub fn resolve_type(&mut self, t: &TypeExpr, sizes: &Sizes) -> Ty {
        match &t.kind {
            TypeKind::Unit => Ty::Unit,
            TypeKind::Error => Ty::Error,
            TypeKind::Numeral(n) => match n.replace('_', "").parse::<u64>() {
                Ok(k) => Ty::Fin(k),
                Err(_) => {
                    self.report(
                        Diagnostic::new(
                            codes::BAD_SIZE,
                            t.span,
                            format!("numeral type `{n}` is too large"),
                        )
                        .label("at most 2^64 - 1 elements"),
                    );
                    Ty::Error
                }
            },
            TypeKind::Record(fields) => {
                let mut seen: HashMap<&str, Span> = HashMap::new();
                let mut out = Vec::new();
                for (n, ft) in fields {
                    if let Some(prev) = seen.insert(&n.name, n.span) {
                        self.report(
                            Diagnostic::new(
                                codes::DUPLICATE,
                                n.span,
                                format!("field `{}` appears twice", n.name),
                            )
                            .with(prev, "first here"),
                        );
                    }
                    out.push((n.name.clone(), self.resolve_type(ft, sizes)));
                }
                Ty::Record(Rc::new(out))
            }
            TypeKind::Named(path) => self.named_type(path, t.span),
            TypeKind::Tensor(path, dims) => {
                let elem = match self.named_type(path, t.span) {
                    Ty::Real => Elem::Real,
                    Ty::Int => Elem::Int,
                    Ty::Bool => Elem::Bool,
                    Ty::Error => return Ty::Error,
                    other => {
                        self.report(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                path[0].span,
                                format!("tensors hold Real, Int or Bool, not {other}"),
                            )
                            .label("element type"),
                        );
                        return Ty::Error;
                    }
                };
                let mut ds = Vec::new();
                for d in dims {
                    match self.size(d, sizes) {
                        Some(d) => ds.push(d),
                        None => return Ty::Error,
                    }
                }
                let elems = ds.iter().try_fold(1u64, |acc, d| match d {
                    Dim::Known(n) => acc.checked_mul(*n),
                    Dim::Param(_) => Some(acc),
                });
                if elems.is_none_or(|n| n > MAX_ELEMENTS) {
                    self.report(
                        Diagnostic::new(
                            codes::BAD_SIZE,
                            t.span,
                            format!("tensor type has more than {MAX_ELEMENTS} elements"),
                        )
                        .label("too large to allocate")
                        .hint("a tensor holds at most 10^9 elements (8 GB of Real)"),
                    );
                    return Ty::Error;
                }
                Ty::Tensor(elem, ds)
            }
        }
    }

    fn named_type(&mut self, path: &[Ident], span: Span) -> Ty {
        if path.len() == 1 {
            match path[0].name.as_str() {
                "Real" => return Ty::Real,
                "Int" => return Ty::Int,
                "Bool" => return Ty::Bool,
                _ => {}
            }
        }
        let Some(id) = self.resolve_path(path, "type") else {
            return Ty::Error;
        };
        match &self.item(id).kind {
            ItemKind::Enum(_) => Ty::Enum(self.enum_ty(id)),
            ItemKind::TypeAlias(_) => self.alias(id),
            _ => {
                self.report(
                    Diagnostic::new(
                        codes::WRONG_KIND,
                        span,
                        format!(
                            "`{}` is not a type",
                            path.last().map(|i| i.name.as_str()).unwrap_or("")
                        ),
                    )
                    .label("used as a type here")
                    .with(
                        Self::item_name(self.item(id))
                            .map(|n| n.span)
                            .unwrap_or(span),
                        "defined here",
                    ),
                );
                Ty::Error
            }
        }
    }

    /// The type of an enum item.
    pub fn enum_ty(&mut self, id: ItemId) -> Rc<EnumTy> {
        if let Some(e) = self.enums.get(&id) {
            return e.clone();
        }
        let ItemKind::Enum(e) = &self.item(id).kind else {
            unreachable!("enum_ty on an enum item")
        };
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for v in &e.variants {
            if let Some(prev) = seen.insert(&v.name, v.span) {
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE,
                        v.span,
                        format!("variant `{}` appears twice", v.name),
                    )
                    .with(prev, "first here"),
                );
            }
        }
        let t = Rc::new(EnumTy {
            name: e.name.name.clone(),
            variants: e.variants.iter().map(|v| v.name.clone()).collect(),
        });
        self.enums.insert(id, t.clone());
        t
    }

    fn alias(&mut self, id: ItemId) -> Ty {
        match self.aliases.get(&id) {
            Some(Slot::Done(t)) => return t.clone(),
            Some(Slot::InProgress) => {
                let item = self.item(id);
                let name = Self::item_name(item).expect("alias has a name");
                self.report(
                    Diagnostic::new(
                        codes::RECURSIVE_SYSTEM,
                        name.span,
                        format!("type `{}` is defined in terms of itself", name.name),
                    )
                    .hint("types are finite: a record cannot contain itself"),
                );
                return Ty::Error;
            }
            None => {}
        }
        self.aliases.insert(id, Slot::InProgress);
        let ItemKind::TypeAlias(a) = &self.item(id).kind else {
            unreachable!()
        };
        let saved = self.cur;
        self.cur = id.module;
        let t = self.resolve_type(&a.ty, &Sizes::default());
        self.cur = saved;
        self.aliases.insert(id, Slot::Done(t.clone()));
        t
    }

    /// A tensor dimension from a size expression.
    pub fn size(&mut self, e: &ast::Expr, sizes: &Sizes) -> Option<Dim> {
        if let ast::ExprKind::Var(i) = &e.kind
            && sizes.symbolic.contains(&i.name)
        {
            return Some(Dim::Param(i.name.clone()));
        }
        self.const_nat(e, sizes, "a tensor size").map(Dim::Known)
    }

    /// Evaluates a compile-time natural number (sizes, counts), reporting failures.
    pub fn const_nat(&mut self, e: &ast::Expr, sizes: &Sizes, what: &str) -> Option<u64> {
        let v = {
            let mut env = GlobalConsts {
                cx: self,
                sizes,
                loop_vars: &HashMap::new(),
            };
            consteval::eval(&mut env, e)
        };
        match v {
            Ok(Value::Int(n)) if n > MAX_SIZE => {
                self.report(
                    Diagnostic::new(
                        codes::BAD_SIZE,
                        e.span,
                        format!("{what} {n} is larger than the limit {MAX_SIZE}"),
                    )
                    .label("too large")
                    .hint("sizes and box-array lengths are at most 10^8"),
                );
                None
            }
            Ok(Value::Int(n)) if n >= 0 => Some(n as u64),
            Ok(Value::Int(n)) => {
                self.report(
                    Diagnostic::new(
                        codes::BAD_SIZE,
                        e.span,
                        format!("{what} must be a natural number, not {n}"),
                    )
                    .label("negative"),
                );
                None
            }
            Ok(Value::Real(r)) => {
                self.report(
                    Diagnostic::new(
                        codes::BAD_SIZE,
                        e.span,
                        format!("{what} must be a natural number, not the Real {r}"),
                    )
                    .label("a Real")
                    .hint("sizes are Int: write an integer literal or an Int const"),
                );
                None
            }
            Ok(Value::Bool(_)) => {
                self.report(Diagnostic::new(
                    codes::BAD_SIZE,
                    e.span,
                    format!("{what} must be a natural number, not a Bool"),
                ));
                None
            }
            Err(nc) if nc.quiet => None,
            Err(nc) => {
                self.report(
                    Diagnostic::new(codes::NOT_CONST, nc.span, format!("{what} must be known at compile time"))
                        .label(format!("this {}", nc.why))
                        .hint("use an integer literal, a `const`, or a size parameter `<n>`; params are set per run, so they are not compile-time"),
                );
                None
            }
        }
    }

    /// Evaluates a compile-time expression with loop variables bound, reporting failures.
    pub fn const_int(
        &mut self,
        e: &ast::Expr,
        sizes: &Sizes,
        loop_vars: &HashMap<String, i64>,
        what: &str,
    ) -> Option<i64> {
        let v = {
            let mut env = GlobalConsts {
                cx: self,
                sizes,
                loop_vars,
            };
            consteval::eval(&mut env, e)
        };
        match v {
            Ok(Value::Int(n)) => Some(n),
            Ok(_) => {
                self.report(
                    Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        e.span,
                        format!("{what} must be an Int"),
                    )
                    .label("not an Int"),
                );
                None
            }
            Err(nc) if nc.quiet => None,
            Err(nc) => {
                self.report(
                    Diagnostic::new(codes::NOT_CONST, nc.span, format!("{what} must be known at compile time"))
                        .label(format!("this {}", nc.why))
                        .hint("loop bounds and box indices may use literals, consts and loop variables; params are set per run, so they are not compile-time"),
                );
                None
            }
        }
    }

    /// The type and (if computable) value of a const item.
    pub fn const_item(&mut self, id: ItemId) -> (Ty, Option<Value>) {
        match self.consts.get(&id) {
            Some(Slot::Done(v)) => return v.clone(),
            Some(Slot::InProgress) => {
                let name = Self::item_name(self.item(id)).expect("const has a name");
                self.report(
                    Diagnostic::new(
                        codes::RECURSIVE_SYSTEM,
                        name.span,
                        format!("const `{}` is defined in terms of itself", name.name),
                    )
                    .label("its value needs itself"),
                );
                return (Ty::Error, None);
            }
            None => {}
        }
        self.consts.insert(id, Slot::InProgress);
        let ItemKind::Const(c) = &self.item(id).kind else {
            unreachable!()
        };
        let saved_ctx = std::mem::replace(&mut self.ctx, 0);
        let saved = self.cur;
        self.cur = id.module;
        let declared =
            c.ty.as_ref()
                .map(|t| self.resolve_type(t, &Sizes::default()));
        let mut env = crate::expr::GlobalEnv;
        let ty = self.check_expr(&mut env, &c.value, declared.as_ref());
        let ty = match declared {
            Some(d) => {
                self.expect_fits(&ty, &d, c.value.span, c.ty.as_ref().map(|t| t.span));
                d
            }
            None => ty,
        };
        let value = {
            let mut env = GlobalConsts {
                cx: self,
                sizes: &Sizes::default(),
                loop_vars: &HashMap::new(),
            };
            consteval::eval(&mut env, &c.value)
        };
        let value = match value {
            Ok(v) => Some(v),
            Err(nc) if nc.arith && !ty.is_error() => {
                self.report(
                    Diagnostic::new(codes::NOT_CONST, nc.span, format!("const `{}` cannot be computed", c.name.name))
                        .label(format!("this {}", nc.why))
                        .hint("compile-time Int arithmetic is 64-bit and checked: no overflow, no division by zero"),
                );
                None
            }
            Err(_) => None,
        };
        let value = match (value, &ty) {
            (Some(Value::Int(i)), Ty::Real) => Some(Value::Real(i as f64)),
            (v, _) => v,
        };
        self.ctx = saved_ctx;
        self.cur = saved;
        self.consts.insert(id, Slot::Done((ty.clone(), value)));
        (ty, value)
    }

    /// The signature of a fn item (checking its body once).
    pub fn fn_sig(&mut self, id: ItemId) -> Option<Rc<FnSig>> {
        match self.fns.get(&id) {
            Some(Slot::Done(s)) => return s.clone(),
            Some(Slot::InProgress) => {
                let name = Self::item_name(self.item(id)).expect("fn has a name");
                self.report(
                    Diagnostic::new(codes::RECURSIVE_SYSTEM, name.span, format!("fn `{}` calls itself", name.name))
                        .label("recursive")
                        .hint("functions are total: dyn has no general recursion; use a system's state to iterate"),
                );
                return None;
            }
            None => {}
        }
        self.fns.insert(id, Slot::InProgress);
        let ItemKind::Fn(f) = &self.item(id).kind else {
            unreachable!()
        };
        let saved = self.cur;
        self.cur = id.module;
        let sizes = Sizes {
            bound: HashMap::new(),
            symbolic: f.sizes.iter().map(|s| s.name.clone()).collect(),
        };
        let mut params = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for (n, t) in &f.params {
            if let Some(prev) = seen.insert(&n.name, n.span) {
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE,
                        n.span,
                        format!("parameter `{}` appears twice", n.name),
                    )
                    .with(prev, "first here"),
                );
            }
            if let Some(kind) = self.shadows_global(&n.name) {
                self.report(
                    Diagnostic::new(codes::SHADOWING, n.span, format!("parameter `{}` shadows the {kind} `{}`", n.name, n.name))
                        .label("shadows a module-level name")
                        .hint("inside this fn the name means the parameter; rename one to avoid confusion"),
                );
            }
            params.push((n.name.clone(), self.resolve_type(t, &sizes)));
        }
        let ret = self.resolve_type(&f.ret, &sizes);
        // Provisional signature so that the body's own calls see it as recursion.
        let (saved_ctx, fctx) = self.enter_ctx();
        self.fn_ctx.insert(id, fctx);
        let mut env = crate::expr::FnEnv {
            params: &params,
            sizes: &sizes.symbolic,
        };
        let body = self.check_expr(&mut env, &f.body, Some(&ret));
        self.expect_fits(&body, &ret, f.body.span, Some(f.ret.span));
        self.ctx = saved_ctx;
        self.cur = saved;
        let sig = Rc::new(FnSig {
            sizes: f.sizes.iter().map(|s| s.name.clone()).collect(),
            params,
            ret,
        });
        self.fns.insert(id, Slot::Done(Some(sig.clone())));
        Some(sig)
    }

    /// Reports a mismatch when `actual` does not fit `expected`. `decl` points at the
    /// declaration that fixed the expected type.
    pub fn expect_fits(
        &mut self,
        actual: &Ty,
        expected: &Ty,
        at: Span,
        decl: Option<Span>,
    ) -> bool {
        if actual.fits(expected) {
            return true;
        }
        let shape = matches!((actual, expected), (Ty::Tensor(..), Ty::Tensor(..)));
        let code = if shape {
            codes::SHAPE_MISMATCH
        } else {
            codes::TYPE_MISMATCH
        };
        let mut d = Diagnostic::new(code, at, format!("expected {expected}, found {actual}"))
            .label(format!("this is {actual}"));
        if let Some(s) = decl {
            d = d.with(s, format!("{expected} declared here"));
        }
        let hint = match (actual, expected) {
            (Ty::Real, Ty::Int) => Some(
                "a Real does not fit an Int: convert with `int(x)`, `floor(x)` or `round(x)`"
                    .to_string(),
            ),
            (Ty::Bool, Ty::Real | Ty::Int) => {
                Some("a Bool is not a number: write `if b then 1.0 else 0.0`".to_string())
            }
            (Ty::Tensor(..), Ty::Tensor(..)) => {
                Some("tensor shapes must agree exactly".to_string())
            }
            _ => None,
        };
        if let Some(h) = hint {
            d = d.hint(h);
        }
        self.report(d);
        false
    }
}

/// Compile-time environment over module consts and bound sizes and loop variables.
pub struct GlobalConsts<'c, 'm> {
    /// The checker.
    pub cx: &'c mut Checker<'m>,
    /// Size parameters.
    pub sizes: &'c Sizes,
    /// Loop variables.
    pub loop_vars: &'c HashMap<String, i64>,
}

impl ConstEnv for GlobalConsts<'_, '_> {
    fn value(&mut self, name: &str, span: Span) -> Result<Value, NotConst> {
        if let Some(v) = self.loop_vars.get(name) {
            return Ok(Value::Int(*v));
        }
        if let Some(v) = self.sizes.bound.get(name) {
            return Ok(Value::Int(*v as i64));
        }
        if self.sizes.symbolic.contains(name) {
            return Err(NotConst {
                span,
                why: format!("is the size parameter `{name}`, not known here"),
                quiet: false,
                arith: false,
            });
        }
        match self.cx.lookup(name) {
            Some(Binding::Item(id)) if matches!(self.cx.item(id).kind, ItemKind::Const(_)) => {
                match self.cx.const_item(id) {
                    (_, Some(v)) => Ok(v),
                    (Ty::Error, None) => Err(NotConst {
                        span,
                        why: String::new(),
                        quiet: true,
                        arith: false,
                    }),
                    (t, None) => Err(NotConst {
                        span,
                        why: format!(
                            "names const `{name}`, whose value ({t}) is not a compile-time scalar"
                        ),
                        quiet: false,
                        arith: false,
                    }),
                }
            }
            Some(_) => Err(NotConst {
                span,
                why: format!("names `{name}`, which is not a constant"),
                quiet: false,
                arith: false,
            }),
            None => Err(NotConst {
                span,
                why: format!("names `{name}`, which is not a compile-time constant"),
                quiet: false,
                arith: false,
            }),
        }
    }
}

/// The closest name by edit distance, if close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(name, c);
        let limit = (name.chars().count().max(3)) / 3;
        if d <= limit && d > 0 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 3 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
