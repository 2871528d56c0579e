//! Interfaces: polynomial expressions resolved to ports and modes, and the normal form of
//! finite polynomials.
//!
//! An interface `Σ_modes (Π outs) y^(Π ins)` is kept as its modes with typed ports. Forms
//! without a port structure (`p × q`, `p ◁ q`, unnamed sums) are still polynomials: they
//! have a normal form when finite, but a system or lens cannot implement them (E0032).

use crate::checker::{Binding, Checker, ItemId, Sizes};
use crate::poly::FinPoly;
use crate::types::{ModesTy, Ty, cardinality};
use dyn_diag::{Diagnostic, Span, codes};
use dyn_syntax::ast::{
    Dir, IfaceBody, IfaceEntry, IfaceRef, ItemKind, Poly, PolyKind, PortDecl, TypeExpr, TypeKind,
};
use std::collections::HashMap;
use std::rc::Rc;

/// A typed port.
#[derive(Debug, Clone, PartialEq)]
pub struct PortSig {
    /// Name (`pop`, or `a.pop` in a named factor).
    pub name: String,
    /// Type.
    pub ty: Ty,
    /// Declaration.
    pub span: Span,
    /// Doc comment.
    pub doc: Option<String>,
}

/// One mode (a summand of the polynomial) with its ports.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeSig {
    /// Name; empty for an interface without modes.
    pub name: String,
    /// Declaration.
    pub span: Span,
    /// Out ports (positions).
    pub outs: Vec<PortSig>,
    /// In ports (directions).
    pub ins: Vec<PortSig>,
}

/// An interface with a port structure.
#[derive(Debug, Clone, PartialEq)]
pub struct Iface {
    /// Name (or the written polynomial).
    pub name: String,
    /// Its modes; exactly one (unnamed) when `moded` is false.
    pub modes: Vec<ModeSig>,
    /// Declared with modes.
    pub moded: bool,
    /// Where it is defined.
    pub span: Span,
}

impl Iface {
    /// The out port `name` if it exists in every mode.
    pub fn common_out(&self, name: &str) -> Option<&PortSig> {
        let first = self.modes.first()?.outs.iter().find(|p| p.name == name)?;
        self.modes
            .iter()
            .all(|m| m.outs.iter().any(|p| p.name == name && p.ty == first.ty))
            .then_some(first)
    }

    /// All distinct in ports over all modes, with the modes that have each.
    pub fn all_ins(&self) -> Vec<(&PortSig, Vec<usize>)> {
        let mut out: Vec<(&PortSig, Vec<usize>)> = Vec::new();
        for (mi, m) in self.modes.iter().enumerate() {
            for p in &m.ins {
                match out.iter_mut().find(|(q, _)| q.name == p.name) {
                    Some((_, ms)) => ms.push(mi),
                    None => out.push((p, vec![mi])),
                }
            }
        }
        out
    }

    /// All distinct out ports over all modes, with the modes that have each.
    pub fn all_outs(&self) -> Vec<(&PortSig, Vec<usize>)> {
        let mut out: Vec<(&PortSig, Vec<usize>)> = Vec::new();
        for (mi, m) in self.modes.iter().enumerate() {
            for p in &m.outs {
                match out.iter_mut().find(|(q, _)| q.name == p.name) {
                    Some((_, ms)) => ms.push(mi),
                    None => out.push((p, vec![mi])),
                }
            }
        }
        out
    }

    /// The type of a mode value (`Open { flow = … }`).
    pub fn modes_ty(&self) -> Rc<ModesTy> {
        Rc::new(ModesTy {
            name: self.name.clone(),
            modes: self
                .modes
                .iter()
                .map(|m| {
                    (
                        m.name.clone(),
                        m.outs
                            .iter()
                            .map(|p| (p.name.clone(), p.ty.clone()))
                            .collect(),
                    )
                })
                .collect(),
        })
    }

    /// The polynomial written out: `Real y^Real`, `{ out pop: Real  in rate: Real }`.
    pub fn describe(&self) -> String {
        let mode = |m: &ModeSig| {
            let mut parts: Vec<String> = m
                .outs
                .iter()
                .map(|p| format!("out {}: {}", p.name, p.ty))
                .collect();
            parts.extend(m.ins.iter().map(|p| format!("in {}: {}", p.name, p.ty)));
            format!("{{ {} }}", parts.join("  "))
        };
        if self.moded {
            self.modes
                .iter()
                .map(|m| format!("{} {}", m.name, mode(m)))
                .collect::<Vec<_>>()
                .join(" + ")
        } else {
            self.modes.first().map(mode).unwrap_or_default()
        }
    }
}

/// Why a polynomial has no port structure.
#[derive(Debug, Clone, PartialEq)]
pub struct NoPorts {
    /// The part that has none.
    pub span: Span,
    /// The ports of two unnamed ⊗ factors clash (an error even where it is not used).
    pub clash: bool,
    /// Why, as a sentence.
    pub why: String,
}

/// What building a polynomial's port structure gives.
pub type Built = Result<Iface, NoPorts>;

struct Part {
    modes: Vec<ModeSig>,
    moded: bool,
    label: Option<String>,
}

impl Checker<'_> {
    /// The interface of a header (`system S : Header`), reporting why it has no ports.
    pub fn header_iface(&mut self, r: &IfaceRef, sizes: &Sizes) -> Option<Rc<Iface>> {
        let built = if let (
            PolyKind::Atom(TypeExpr {
                kind: TypeKind::Named(path),
                ..
            }),
            false,
        ) = (&r.poly.kind, r.sizes.is_empty())
        {
            // `Name<3>`: a generic interface instantiated with sizes.
            let id = self.resolve_path(path, "interface")?;
            let mut vals = Vec::new();
            for s in &r.sizes {
                vals.push(self.const_nat(s, sizes, "a size argument")?);
            }
            self.iface_item(id, vals, r.poly.span)?
        } else {
            Rc::new(self.build_poly(&r.poly, sizes)?)
        };
        match built.as_ref() {
            Ok(i) => Some(Rc::new(i.clone())),
            Err(np) => {
                let mut d = Diagnostic::new(
                    codes::NO_PORTS,
                    r.poly.span,
                    "this interface has no port structure",
                )
                .label("used as a system's or lens's interface")
                .hint(format!(
                    "{} Declare an interface with `out`/`in` ports, modes, ⊗ or named sums",
                    np.why
                ));
                if np.span != r.poly.span {
                    d = d.with(np.span, "this part has none");
                }
                self.report(d);
                None
            }
        }
    }

    /// The port structure of an interface item instantiated with sizes (cached).
    /// `None` when the item failed with a diagnostic already reported.
    pub fn iface_item(&mut self, id: ItemId, sizes: Vec<u64>, used_at: Span) -> Option<Rc<Built>> {
        let key = (id, sizes.clone());
        match self.ifaces.get(&key) {
            Some(crate::checker::Slot::Done(b)) => return b.clone(),
            Some(crate::checker::Slot::InProgress) => {
                let name = Checker::item_name(self.item(id)).expect("interface has a name");
                self.report(
                    Diagnostic::new(
                        codes::RECURSIVE_SYSTEM,
                        used_at,
                        format!("interface `{}` is defined in terms of itself", name.name),
                    )
                    .label("refers back to the interface being defined")
                    .with(name.span, "defined here")
                    .hint("polynomials are finite expressions: an interface cannot contain itself"),
                );
                return None;
            }
            None => {}
        }
        let ItemKind::Interface(def) = &self.item(id).kind else {
            let name = Checker::item_name(self.item(id))
                .map(|n| n.name.clone())
                .unwrap_or_default();
            self.report(
                Diagnostic::new(
                    codes::WRONG_KIND,
                    used_at,
                    format!("`{name}` is not an interface"),
                )
                .label("an interface is expected here"),
            );
            return None;
        };
        if def.sizes.len() != sizes.len() {
            self.report(
                Diagnostic::new(
                    codes::BAD_SIZE,
                    used_at,
                    format!(
                        "interface `{}` takes {} size argument(s), {} given",
                        def.name.name,
                        def.sizes.len(),
                        sizes.len()
                    ),
                )
                .label("size arguments")
                .with(def.name.span, "declared here"),
            );
            return None;
        }
        self.ifaces
            .insert(key.clone(), crate::checker::Slot::InProgress);
        let saved = self.cur;
        self.cur = id.module;
        let szs = Sizes {
            bound: def
                .sizes
                .iter()
                .map(|s| s.name.clone())
                .zip(sizes)
                .collect(),
            symbolic: Default::default(),
        };
        let built = self.build_poly(&def.poly, &szs).map(|mut b| {
            if let Ok(i) = &mut b
                && (!i.moded || matches!(def.poly.kind, PolyKind::Body(_)))
            {
                i.name = def.name.name.clone();
            }
            Rc::new(b)
        });
        self.cur = saved;
        self.ifaces
            .insert(key, crate::checker::Slot::Done(built.clone()));
        built
    }

    /// Builds the port structure of a polynomial. `None` when a diagnostic was reported;
    /// `Some(Err)` when it is a valid polynomial without ports.
    pub fn build_poly(&mut self, p: &Poly, sizes: &Sizes) -> Option<Built> {
        let part = match self.part(p, sizes)? {
            Ok(part) => part,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(Iface {
            // An interface named in the header keeps its name; inline ones are anonymous.
            name: match &p.kind {
                PolyKind::Atom(TypeExpr {
                    kind: TypeKind::Named(path),
                    ..
                }) => path
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
                _ => "an inline interface".to_string(),
            },
            modes: part.modes,
            moded: part.moded,
            span: p.span,
        }))
    }

    fn part(&mut self, p: &Poly, sizes: &Sizes) -> Option<Result<Part, NoPorts>> {
        let one = |outs: Vec<PortSig>, ins: Vec<PortSig>, span: Span| Part {
            modes: vec![ModeSig {
                name: String::new(),
                span,
                outs,
                ins,
            }],
            moded: false,
            label: None,
        };
        Some(Ok(match &p.kind {
            PolyKind::Error => return None,
            PolyKind::Y => one(vec![], vec![], p.span),
            PolyKind::Body(b) => return self.body(b, sizes).map(Ok),
            PolyKind::Atom(t) => {
                if is_y(t) {
                    one(vec![], vec![], p.span)
                } else if let Some(id) = self.atom_iface(t) {
                    let built = self.iface_item(id, vec![], t.span)?;
                    match built.as_ref() {
                        Ok(i) => Part {
                            modes: i.modes.clone(),
                            moded: i.moded,
                            label: Some(Checker::item_name(self.item(id)).map(|n| n.name.clone()).unwrap_or_default()),
                        },
                        Err(e) => return Some(Err(e.clone())),
                    }
                } else {
                    let ty = self.resolve_type(t, sizes);
                    if ty.is_error() {
                        return None;
                    }
                    let pos = PortSig { name: "pos".into(), ty, span: t.span, doc: None };
                    let dir = PortSig { name: "dir".into(), ty: Ty::Fin(0), span: t.span, doc: None };
                    one(vec![pos], vec![dir], p.span)
                }
            }
            PolyKind::Pow(base, e) => {
                let PolyKind::Atom(bt) = &base.kind else {
                    return Some(Err(NoPorts { clash: false, span: p.span, why: "A power of a polynomial other than `y` is a product, which has no ports.".into() }));
                };
                if !is_y(bt) {
                    return Some(Err(NoPorts { clash: false, span: p.span, why: "A power of a polynomial other than `y` is a product, which has no ports.".into() }));
                }
                let ty = self.resolve_type(e, sizes);
                if ty.is_error() {
                    return None;
                }
                one(vec![], vec![PortSig { name: "dir".into(), ty, span: e.span, doc: None }], p.span)
            }
            PolyKind::Coef(c, inner) => {
                let ty = self.resolve_type(c, sizes);
                if ty.is_error() {
                    return None;
                }
                let mut part = match self.part(inner, sizes)? {
                    Ok(x) => x,
                    Err(e) => return Some(Err(e)),
                };
                for m in &mut part.modes {
                    if m.outs.iter().any(|o| o.name == "pos") {
                        return Some(Err(NoPorts { clash: false, span: p.span, why: "A coefficient adds an out port `pos`, which this term already has.".into() }));
                    }
                    m.outs.insert(0, PortSig { name: "pos".into(), ty: ty.clone(), span: c.span, doc: None });
                }
                part
            }
            PolyKind::Named(n, inner) => {
                let mut part = match self.part(inner, sizes)? {
                    Ok(x) => x,
                    Err(e) => return Some(Err(e)),
                };
                for m in &mut part.modes {
                    for port in m.outs.iter_mut().chain(m.ins.iter_mut()) {
                        port.name = format!("{}.{}", n.name, port.name);
                    }
                }
                part.label = Some(n.name.clone());
                part
            }
            PolyKind::Tensor(a, b) => {
                let (pa, pb) = (self.part(a, sizes)?, self.part(b, sizes)?);
                let (pa, pb) = match (pa, pb) {
                    (Ok(x), Ok(y)) => (x, y),
                    (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
                };
                if pa.moded && pb.moded {
                    return Some(Err(NoPorts { clash: false, span: p.span, why: "Both factors of this ⊗ have modes; only one may.".into() }));
                }
                let mut modes = Vec::new();
                for ma in &pa.modes {
                    for mb in &pb.modes {
                        let mut outs = ma.outs.clone();
                        let mut ins = ma.ins.clone();
                        for q in &mb.outs {
                            if outs.iter().any(|o| o.name == q.name) {
                                return Some(Err(NoPorts { clash: true, span: p.span, why: format!("Both factors have an out port `{}`: name the factors (`a: P ⊗ b: Q`).", q.name) }));
                            }
                            outs.push(q.clone());
                        }
                        for q in &mb.ins {
                            if ins.iter().any(|o| o.name == q.name) {
                                return Some(Err(NoPorts { clash: true, span: p.span, why: format!("Both factors have an in port `{}`: name the factors (`a: P ⊗ b: Q`).", q.name) }));
                            }
                            ins.push(q.clone());
                        }
                        let name = if pa.moded { ma.name.clone() } else { mb.name.clone() };
                        modes.push(ModeSig { name, span: p.span, outs, ins });
                    }
                }
                Part { modes, moded: pa.moded || pb.moded, label: None }
            }
            PolyKind::Sum(a, b) => {
                let mut modes = Vec::new();
                for side in [a, b] {
                    // `a: P + b: Q`: the factor name names the mode; the ports keep their names.
                    let (inner, label) = match &side.kind {
                        PolyKind::Named(n, inner) => (&**inner, Some(n.name.clone())),
                        _ => (&**side, None),
                    };
                    let part = match self.part(inner, sizes)? {
                        Ok(x) => x,
                        Err(e) => return Some(Err(e)),
                    };
                    if part.moded {
                        modes.extend(part.modes);
                    } else {
                        let Some(label) = label.or(part.label) else {
                            return Some(Err(NoPorts { clash: false, span: side.span, why: "A summand needs a mode name: write `a: P + b: Q`.".into() }));
                        };
                        let mut m = part.modes.into_iter().next().expect("an unmoded part has one mode");
                        m.name = label;
                        modes.push(m);
                    }
                }
                for (i, m) in modes.iter().enumerate() {
                    if modes[..i].iter().any(|n| n.name == m.name) {
                        return Some(Err(NoPorts { clash: false, span: p.span, why: format!("Two summands are both named `{}`.", m.name) }));
                    }
                }
                Part { modes, moded: true, label: None }
            }
            PolyKind::Product(..) => return Some(Err(NoPorts { clash: false, span: p.span, why: "A product p × q shows both positions but is told only one direction, which ports cannot express.".into() })),
            PolyKind::Compose(..) => return Some(Err(NoPorts { clash: false, span: p.span, why: "A composite p ◁ q has positions that are functions, which ports cannot express.".into() })),
        }))
    }

    fn atom_iface(&mut self, t: &TypeExpr) -> Option<ItemId> {
        let TypeKind::Named(path) = &t.kind else {
            return None;
        };
        let mut module = self.cur;
        for (i, seg) in path.iter().enumerate() {
            match self.lookup_in(module, &seg.name)? {
                Binding::Module(m) if i + 1 < path.len() => module = m,
                Binding::Item(id) if i + 1 == path.len() => {
                    return matches!(self.item(id).kind, ItemKind::Interface(_)).then_some(id);
                }
                _ => return None,
            }
        }
        None
    }

    fn ports(
        &mut self,
        ports: &[PortDecl],
        sizes: &Sizes,
        seen: &mut HashMap<String, Span>,
    ) -> (Vec<PortSig>, Vec<PortSig>) {
        let (mut outs, mut ins) = (Vec::new(), Vec::new());
        for p in ports {
            if let Some(prev) = seen.insert(p.name.name.clone(), p.name.span) {
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE,
                        p.name.span,
                        format!("port `{}` is declared twice", p.name.name),
                    )
                    .label("second declaration")
                    .with(prev, "first declared here")
                    .hint("ports of one interface (or one mode) need distinct names"),
                );
                continue;
            }
            let ty = self.resolve_type(&p.ty, sizes);
            let sig = PortSig {
                name: p.name.name.clone(),
                ty,
                span: p.span,
                doc: p.doc.clone(),
            };
            match p.dir {
                Dir::Out => outs.push(sig),
                Dir::In => ins.push(sig),
            }
        }
        (outs, ins)
    }

    fn body(&mut self, b: &IfaceBody, sizes: &Sizes) -> Option<Part> {
        let plain: Vec<PortDecl> = b
            .entries
            .iter()
            .filter_map(|e| {
                if let IfaceEntry::Port(p) = e {
                    Some(p.clone())
                } else {
                    None
                }
            })
            .collect();
        let mut modes = Vec::new();
        let mut mode_names: HashMap<String, Span> = HashMap::new();
        for e in &b.entries {
            if let IfaceEntry::Mode { name, ports, .. } = e {
                if let Some(prev) = mode_names.insert(name.name.clone(), name.span) {
                    self.report(
                        Diagnostic::new(
                            codes::DUPLICATE,
                            name.span,
                            format!("mode `{}` is declared twice", name.name),
                        )
                        .with(prev, "first declared here"),
                    );
                    continue;
                }
                let (outs, ins) = self.ports(ports, sizes, &mut HashMap::new());
                modes.push(ModeSig {
                    name: name.name.clone(),
                    span: name.span,
                    outs,
                    ins,
                });
            }
        }
        if !modes.is_empty() && !plain.is_empty() {
            self.report(
                Diagnostic::new(
                    codes::BAD_INTERFACE,
                    plain[0].span,
                    "an interface with modes cannot also have ports outside its modes",
                )
                .label("port outside every mode")
                .with(modes[0].span, "this interface has modes")
                .hint("declare the port inside each mode that has it"),
            );
            return None;
        }
        if modes.is_empty() {
            let (outs, ins) = self.ports(&plain, sizes, &mut HashMap::new());
            return Some(Part {
                modes: vec![ModeSig {
                    name: String::new(),
                    span: b.span,
                    outs,
                    ins,
                }],
                moded: false,
                label: None,
            });
        }
        Some(Part {
            modes,
            moded: true,
            label: None,
        })
    }

    /// The normal form of a finite polynomial expression.
    pub fn fin_poly(
        &mut self,
        p: &Poly,
        sizes: &Sizes,
        depth: usize,
    ) -> Result<FinPoly, Diagnostic> {
        if depth > 600 {
            return Err(Diagnostic::new(
                codes::RECURSIVE_SYSTEM,
                p.span,
                "interfaces nest too deeply (or refer to themselves)",
            ));
        }
        let too_large = |span: Span| {
            Diagnostic::new(codes::NOT_FINITE, span, "polynomial too large to compute")
                .label("its normal form exceeds the computation limits")
                .hint("coefficients up to 2^128 and at most 10^6 terms are computed")
        };
        let card = |cx: &mut Self, t: &TypeExpr| -> Result<u128, Diagnostic> {
            let ty = cx.resolve_type(t, sizes);
            match cardinality(&ty) {
                Ok(Some(n)) => Ok(n),
                Ok(None) => Err(Diagnostic::new(codes::NOT_FINITE, t.span, format!("the size of {ty} is not known")).label("unknown size")),
                Err(inf) => Err(Diagnostic::new(codes::NOT_FINITE, t.span, format!("{ty} is infinite, so this polynomial has no finite normal form"))
                    .label(format!("{inf} has infinitely many values"))
                    .hint("normal forms exist for polynomials over finite sets: numerals, Bool, enums, and records or tensors of them")),
            }
        };
        let exp = |n: u128, span: Span| u64::try_from(n).map_err(|_| too_large(span));
        Ok(match &p.kind {
            PolyKind::Error => {
                return Err(Diagnostic::new(
                    codes::PARSE_ERROR,
                    p.span,
                    "this polynomial did not parse",
                ));
            }
            PolyKind::Y => FinPoly::y(),
            PolyKind::Atom(t) if is_y(t) => FinPoly::y(),
            PolyKind::Atom(t) => match self.atom_iface(t) {
                Some(id) => {
                    let ItemKind::Interface(def) = &self.item(id).kind else {
                        unreachable!()
                    };
                    if !def.sizes.is_empty() {
                        return Err(Diagnostic::new(
                            codes::BAD_SIZE,
                            t.span,
                            format!("interface `{}` needs size arguments", def.name.name),
                        ));
                    }
                    let saved = self.cur;
                    self.cur = id.module;
                    let r = self.fin_poly(&def.poly, &Sizes::default(), depth + 1);
                    self.cur = saved;
                    r?
                }
                None => FinPoly::constant(card(self, t)?),
            },
            PolyKind::Body(b) => {
                let part = self.body(b, sizes).ok_or_else(|| {
                    Diagnostic::new(codes::BAD_INTERFACE, b.span, "malformed interface")
                })?;
                let mut acc = FinPoly::zero();
                for m in &part.modes {
                    let mut c: u128 = 1;
                    for o in &m.outs {
                        c = c
                            .checked_mul(port_card(o)?)
                            .ok_or_else(|| too_large(b.span))?;
                    }
                    let mut e: u128 = 1;
                    for i in &m.ins {
                        e = e
                            .checked_mul(port_card(i)?)
                            .ok_or_else(|| too_large(b.span))?;
                    }
                    acc = acc
                        .add(&FinPoly::monomial(c, exp(e, b.span)?))
                        .map_err(|_| too_large(b.span))?;
                }
                acc
            }
            PolyKind::Pow(base, e) => {
                let n = card(self, e)?;
                let bp = self.fin_poly(base, sizes, depth + 1)?;
                bp.power(exp(n, e.span)?).map_err(|_| too_large(p.span))?
            }
            PolyKind::Coef(c, inner) => {
                let n = card(self, c)?;
                FinPoly::constant(n)
                    .product(&self.fin_poly(inner, sizes, depth + 1)?)
                    .map_err(|_| too_large(p.span))?
            }
            PolyKind::Named(_, inner) => self.fin_poly(inner, sizes, depth + 1)?,
            PolyKind::Sum(a, b)
            | PolyKind::Product(a, b)
            | PolyKind::Tensor(a, b)
            | PolyKind::Compose(a, b) => {
                let x = self.fin_poly(a, sizes, depth + 1)?;
                let y = self.fin_poly(b, sizes, depth + 1)?;
                match &p.kind {
                    PolyKind::Sum(..) => x.add(&y),
                    PolyKind::Product(..) => x.product(&y),
                    PolyKind::Tensor(..) => x.tensor(&y),
                    _ => x.compose(&y),
                }
                .map_err(|_| too_large(p.span))?
            }
        })
    }
}

fn port_card(p: &PortSig) -> Result<u128, Diagnostic> {
    match cardinality(&p.ty) {
        Ok(Some(n)) => Ok(n),
        Ok(None) => Err(Diagnostic::new(codes::NOT_FINITE, p.span, format!("the size of port `{}` is not known", p.name))),
        Err(inf) => Err(Diagnostic::new(codes::NOT_FINITE, p.span, format!("port `{}: {}` has infinitely many values", p.name, p.ty))
            .label(format!("{inf} is infinite"))
            .hint("normal forms exist for interfaces whose ports have finite types: numerals, Bool, enums")),
    }
}

/// `y` inside a polynomial is the identity polynomial.
pub fn is_y(t: &TypeExpr) -> bool {
    matches!(&t.kind, TypeKind::Named(p) if p.len() == 1 && p[0].name == "y")
}
