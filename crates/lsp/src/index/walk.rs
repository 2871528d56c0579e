//! The walk that builds an [`Index`]: definitions, resolved uses and local scopes of the
//! root module, with the definitions they reach in imported modules and the stdlib.

use super::env::LocalEnv;
use super::{Def, DefKind, Index, Scope};
use dyn_check::Checked;
use dyn_check::checker::{Binding, Checker, ItemId, Sizes};
use dyn_check::expr::Res;
use dyn_check::iface::Iface;
use dyn_check::modules::Module;
use dyn_check::types::Ty;
use dyn_diag::{SourceMap, Span};
use dyn_syntax::ast::{
    Dir, Expr, ExprKind, FnDef, Ident, Item, ItemKind, LensDef, LensItem, LensItemKind, Pattern,
    Poly, PolyKind, PortDecl, RunDef, RunItem, SysItem, SysItemKind, SystemDef, TypeExpr, TypeKind,
    UseDecl,
};
use std::collections::HashMap;
use std::rc::Rc;

/// A port of an interface as the walk sees it: local name, definition, type, direction.
type PortDef = (String, usize, Ty, Dir);

/// Walks the root module of a checked source.
pub(super) struct Walker<'m> {
    cx: Checker<'m>,
    modules: &'m [Module],
    sources: &'m SourceMap,
    ix: Index,
    item_defs: HashMap<ItemId, usize>,
    module_defs: HashMap<usize, usize>,
    sys_ifaces: HashMap<ItemId, Option<Rc<Iface>>>,
    /// Port declaration span → the span of its name.
    port_names: HashMap<Span, Span>,
    /// The module being walked.
    m: usize,
    locals: Vec<(String, usize)>,
    env: LocalEnv,
    types: HashMap<usize, Ty>,
    box_ifaces: HashMap<usize, Rc<Iface>>,
    /// Modes in scope: a system's own, a lens's source.
    modes: HashMap<String, usize>,
    /// A lens's target modes.
    tgt_modes: HashMap<String, usize>,
    sizes: Sizes,
}

fn symbolic(names: &[Ident]) -> Sizes {
    Sizes {
        bound: Default::default(),
        symbolic: names.iter().map(|s| s.name.clone()).collect(),
    }
}

impl<'m> Walker<'m> {
    /// A walker over `checked`.
    pub fn new(checked: &'m Checked) -> Self {
        Walker {
            cx: Checker::new(&checked.modules),
            modules: &checked.modules,
            sources: &checked.sources,
            ix: Index::default(),
            item_defs: HashMap::new(),
            module_defs: HashMap::new(),
            sys_ifaces: HashMap::new(),
            port_names: HashMap::new(),
            m: 0,
            locals: Vec::new(),
            env: LocalEnv::default(),
            types: HashMap::new(),
            box_ifaces: HashMap::new(),
            modes: HashMap::new(),
            tgt_modes: HashMap::new(),
            sizes: Sizes::default(),
        }
    }

    /// Indexes the root module.
    pub fn run(mut self) -> Index {
        if self.modules.is_empty() {
            return self.ix;
        }
        for m in self.modules {
            for item in &m.ast.items {
                match &item.kind {
                    ItemKind::Interface(i) => self.port_names_in(&i.poly),
                    ItemKind::System(s) => self.port_names_in(&s.iface.poly),
                    ItemKind::Lens(l) => {
                        self.port_names_in(&l.src.poly);
                        self.port_names_in(&l.tgt.poly);
                    }
                    _ => {}
                }
            }
        }
        self.cx.cur = 0;
        let mut names = self.cx.scope_names();
        names.sort();
        for n in names {
            if let Some(b) = self.cx.lookup_in(0, &n)
                && let Some(d) = self.binding_def(b)
            {
                self.ix.module_scope.push((n, d));
            }
        }
        let modules = self.modules;
        for (index, item) in modules[0].ast.items.iter().enumerate() {
            self.item(ItemId { module: 0, index }, item);
            self.cx.diags.clear();
        }
        self.ix
    }

    // ------------------------------------------------------------ definitions

    fn def(
        &mut self,
        name: &str,
        kind: DefKind,
        span: Span,
        full: Span,
        doc: Option<String>,
    ) -> usize {
        if let Some(&d) = self.ix.by_span.get(&span) {
            return d;
        }
        let d = self.ix.defs.len();
        self.ix.defs.push(Def {
            name: name.to_string(),
            kind,
            span,
            full,
            ty: None,
            doc,
            detail: None,
            members: Vec::new(),
        });
        self.ix.by_span.insert(span, d);
        d
    }

    fn set_ty(&mut self, d: usize, t: &Ty) {
        if self.ix.defs[d].ty.is_none() && !t.is_error() {
            self.ix.defs[d].ty = Some(t.to_string());
        }
    }

    fn reference(&mut self, at: Span, d: usize) {
        if self.ix.defs[d].span != at {
            self.ix.refs.push((at, d));
        }
    }

    fn binding_def(&mut self, b: Binding) -> Option<usize> {
        match b {
            Binding::Item(id) => self.item_def(id),
            Binding::Module(m) => Some(self.module_def(m)),
            Binding::Variant(id, vi) => {
                let d = self.item_def(id)?;
                self.ix.defs[d].members.get(vi).copied()
            }
        }
    }

    fn module_def(&mut self, m: usize) -> usize {
        if let Some(&d) = self.module_defs.get(&m) {
            return d;
        }
        let module = &self.modules[m];
        let len = self.sources.get(module.file).text.len();
        let d = self.def(
            &module.name,
            DefKind::Module,
            Span::new(module.file, 0, 0),
            Span::new(module.file, 0, len),
            None,
        );
        self.module_defs.insert(m, d);
        let mut members = Vec::new();
        for index in 0..module.ast.items.len() {
            if let Some(i) = self.item_def(ItemId { module: m, index }) {
                members.push(i);
            }
        }
        self.ix.defs[d].members = members;
        d
    }

    fn item_def(&mut self, id: ItemId) -> Option<usize> {
        if let Some(&d) = self.item_defs.get(&id) {
            return Some(d);
        }
        let item: &'m Item = self.cx.item(id);
        let name = Checker::item_name(item)?;
        let kind = match &item.kind {
            ItemKind::Const(_) => DefKind::Const,
            ItemKind::TypeAlias(_) => DefKind::Type,
            ItemKind::Enum(_) => DefKind::Enum,
            ItemKind::Fn(_) => DefKind::Fn,
            ItemKind::Interface(_) => DefKind::Interface,
            ItemKind::System(_) => DefKind::System,
            ItemKind::Lens(_) => DefKind::Lens,
            _ => return None,
        };
        let d = self.def(&name.name, kind, name.span, item.span, item.doc.clone());
        self.item_defs.insert(id, d);
        let saved = self.cur_enter(id.module);
        match &item.kind {
            ItemKind::Const(_) => {
                let (t, _) = self.cx.const_item(id);
                self.set_ty(d, &t);
            }
            ItemKind::TypeAlias(a) => {
                let t = self.cx.resolve_type(&a.ty, &Sizes::default());
                self.set_ty(d, &t);
            }
            ItemKind::Enum(e) => {
                let mut members = Vec::new();
                for v in &e.variants {
                    let vd = self.def(&v.name, DefKind::Variant, v.span, v.span, None);
                    self.ix.defs[vd].ty = Some(e.name.name.clone());
                    members.push(vd);
                }
                self.ix.defs[d].members = members;
            }
            ItemKind::Fn(f) => {
                if let Some(sig) = self.cx.fn_sig(id) {
                    let params: Vec<String> = sig
                        .params
                        .iter()
                        .map(|(n, t)| format!("{n}: {t}"))
                        .collect();
                    let sizes = if f.sizes.is_empty() {
                        String::new()
                    } else {
                        format!("<{}>", sig.sizes.join(", "))
                    };
                    self.ix.defs[d].detail = Some(format!(
                        "fn {}{sizes}({}) -> {}",
                        f.name.name,
                        params.join(", "),
                        sig.ret
                    ));
                }
            }
            ItemKind::Interface(i) => {
                let poly = self.sources.snippet(i.poly.span).to_string();
                let mut detail = format!("interface {} = {poly}", i.name.name);
                if i.sizes.is_empty() {
                    if let Ok(nf) = self.cx.fin_poly(&i.poly, &Sizes::default(), 0) {
                        detail.push_str(&format!("\n\nnormal form: {nf}"));
                    }
                    if let Some(b) = self.cx.iface_item(id, vec![], i.name.span)
                        && let Ok(iface) = b.as_ref()
                    {
                        let ports = self.iface_defs(&iface.clone());
                        self.ix.defs[d].members = ports.iter().map(|p| p.1).collect();
                    }
                }
                self.ix.defs[d].detail = Some(detail);
            }
            ItemKind::System(s) => {
                let header = self.sources.snippet(s.iface.poly.span).to_string();
                let kw = if s.learner.is_some() {
                    "learner"
                } else {
                    "system"
                };
                self.ix.defs[d].detail = Some(format!("{kw} {} : {header}", s.name.name));
                if let Some(iface) = self.system_iface(id) {
                    let ports = self.iface_defs(&iface);
                    self.ix.defs[d].members = ports.iter().map(|p| p.1).collect();
                }
            }
            ItemKind::Lens(l) => {
                let src = self.sources.snippet(l.src.poly.span);
                let tgt = self.sources.snippet(l.tgt.poly.span);
                self.ix.defs[d].detail = Some(format!("lens {} : {src} -> {tgt}", l.name.name));
            }
            _ => {}
        }
        self.cx.cur = saved;
        Some(d)
    }

    fn cur_enter(&mut self, m: usize) -> usize {
        std::mem::replace(&mut self.cx.cur, m)
    }

    /// The interface of a system item (with its size parameters left symbolic).
    fn system_iface(&mut self, id: ItemId) -> Option<Rc<Iface>> {
        if let Some(i) = self.sys_ifaces.get(&id) {
            return i.clone();
        }
        self.sys_ifaces.insert(id, None);
        let item: &'m Item = self.cx.item(id);
        let ItemKind::System(s) = &item.kind else {
            return None;
        };
        let saved = self.cur_enter(id.module);
        let iface = self.cx.header_iface(&s.iface, &symbolic(&s.sizes));
        self.cx.cur = saved;
        self.sys_ifaces.insert(id, iface.clone());
        iface
    }

    /// Definitions for the ports (and modes) of an interface.
    fn iface_defs(&mut self, iface: &Iface) -> Vec<PortDef> {
        let mut out = Vec::new();
        for mode in &iface.modes {
            let mode_def = iface
                .moded
                .then(|| self.def(&mode.name, DefKind::Mode, mode.span, mode.span, None));
            for (dir, ports) in [(Dir::Out, &mode.outs), (Dir::In, &mode.ins)] {
                for p in ports {
                    let kind = match dir {
                        Dir::Out => DefKind::OutPort,
                        Dir::In => DefKind::InPort,
                    };
                    let span = self.port_names.get(&p.span).copied().unwrap_or(p.span);
                    let d = self.def(&p.name, kind, span, p.span, p.doc.clone());
                    self.set_ty(d, &p.ty);
                    if let Some(md) = mode_def
                        && dir == Dir::Out
                        && !self.ix.defs[md].members.contains(&d)
                    {
                        self.ix.defs[md].members.push(d);
                    }
                    if !out
                        .iter()
                        .any(|(n, od, _, _): &PortDef| *n == p.name && *od == d)
                    {
                        out.push((p.name.clone(), d, p.ty.clone(), dir));
                    }
                }
            }
        }
        out
    }

    fn iface_modes(&mut self, iface: &Iface) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        if iface.moded {
            for mode in &iface.modes {
                let d = self.def(&mode.name, DefKind::Mode, mode.span, mode.span, None);
                out.insert(mode.name.clone(), d);
            }
        }
        out
    }

    fn port_names_in(&mut self, p: &Poly) {
        match &p.kind {
            PolyKind::Body(b) => {
                for e in &b.entries {
                    match e {
                        dyn_syntax::ast::IfaceEntry::Port(pd) => {
                            self.port_names.insert(pd.span, pd.name.span);
                        }
                        dyn_syntax::ast::IfaceEntry::Mode { ports, .. } => {
                            for pd in ports {
                                self.port_names.insert(pd.span, pd.name.span);
                            }
                        }
                        dyn_syntax::ast::IfaceEntry::Error => {}
                    }
                }
            }
            PolyKind::Pow(a, _) | PolyKind::Coef(_, a) | PolyKind::Named(_, a) => {
                self.port_names_in(a)
            }
            PolyKind::Sum(a, b)
            | PolyKind::Product(a, b)
            | PolyKind::Tensor(a, b)
            | PolyKind::Compose(a, b) => {
                self.port_names_in(a);
                self.port_names_in(b);
            }
            PolyKind::Y | PolyKind::Atom(_) | PolyKind::Error => {}
        }
    }

    // ------------------------------------------------------------ scopes

    fn local(&self, name: &str) -> Option<usize> {
        self.locals
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, d)| *d)
    }

    fn push_local(&mut self, name: &str, d: usize) {
        self.locals.push((name.to_string(), d));
        if let Some(iface) = self.box_ifaces.get(&d) {
            self.env
                .names
                .insert(name.to_string(), Res::Box(self.env.boxes.len()));
            self.env.boxes.push(iface.clone());
        } else if let Some(t) = self.types.get(&d) {
            self.env.names.insert(name.to_string(), Res::Val(t.clone()));
            if let Some((g, _)) = name.split_once('.') {
                self.env
                    .names
                    .entry(g.to_string())
                    .or_insert(Res::Group(g.to_string()));
            }
        }
    }

    fn reset_scope(&mut self) {
        self.locals.clear();
        self.env = LocalEnv::default();
        self.modes.clear();
        self.tgt_modes.clear();
        self.sizes = Sizes::default();
    }

    fn close_scope(&mut self, span: Span) {
        let defs = self.locals.iter().map(|(_, d)| *d).collect();
        self.ix.scopes.push(Scope { span, defs });
    }

    fn typed_local(
        &mut self,
        name: &Ident,
        kind: DefKind,
        full: Span,
        doc: Option<String>,
        t: Ty,
    ) -> usize {
        let d = self.def(&name.name, kind, name.span, full, doc);
        self.set_ty(d, &t);
        self.types.insert(d, t);
        self.push_local(&name.name, d);
        d
    }

    fn size_params(&mut self, sizes: &[Ident]) {
        self.sizes = symbolic(sizes);
        for s in sizes {
            self.typed_local(s, DefKind::SizeParam, s.span, None, Ty::Int);
        }
    }

    fn ports_as_locals(&mut self, ports: &[PortDef], prefix: &str) {
        for (n, d, t, _) in ports {
            self.types.insert(*d, t.clone());
            self.push_local(&format!("{prefix}{n}"), *d);
        }
    }

    /// Resolves a name used as a value or type, recording the use.
    fn name_ref(&mut self, n: &Ident) -> Option<usize> {
        let d = match self.local(&n.name) {
            Some(d) => d,
            None => {
                let b = self.cx.lookup_in(self.m, &n.name)?;
                self.binding_def(b)?
            }
        };
        self.reference(n.span, d);
        Some(d)
    }

    fn path(&mut self, path: &[Ident]) -> Option<usize> {
        if let [one] = path
            && let Some(d) = self.local(&one.name)
        {
            self.reference(one.span, d);
            return Some(d);
        }
        let mut module = self.m;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            match self.cx.lookup_in(module, &seg.name)? {
                Binding::Module(mm) => {
                    let d = self.module_def(mm);
                    self.reference(seg.span, d);
                    if last {
                        return Some(d);
                    }
                    module = mm;
                }
                b => {
                    let d = self.binding_def(b)?;
                    self.reference(seg.span, d);
                    return last.then_some(d);
                }
            }
        }
        None
    }

    fn lookup_item(&self, path: &[Ident]) -> Option<ItemId> {
        let mut module = self.m;
        for (i, seg) in path.iter().enumerate() {
            match (self.cx.lookup_in(module, &seg.name)?, i + 1 == path.len()) {
                (Binding::Module(mm), false) => module = mm,
                (Binding::Item(id), true) => return Some(id),
                _ => return None,
            }
        }
        None
    }

    fn type_of(&mut self, e: &Expr) -> Ty {
        self.cx.cur = self.m;
        self.cx.check_expr(&mut self.env, e, None)
    }

    // ------------------------------------------------------------ items

    fn item(&mut self, id: ItemId, item: &'m Item) {
        self.reset_scope();
        self.cx.cur = self.m;
        self.item_def(id);
        match &item.kind {
            ItemKind::Use(u) => self.use_item(id, u),
            ItemKind::Const(c) => {
                if let Some(t) = &c.ty {
                    self.ty(t);
                }
                self.expr(&c.value);
            }
            ItemKind::TypeAlias(a) => self.ty(&a.ty),
            ItemKind::Enum(_) | ItemKind::Error => {}
            ItemKind::Fn(f) => self.fn_item(f, item.span),
            ItemKind::Interface(i) => {
                self.size_params(&i.sizes);
                self.poly(&i.poly);
            }
            ItemKind::System(s) => self.system(id, s, item.span),
            ItemKind::Lens(l) => self.lens(l, item.span),
            ItemKind::Run(r) => self.run_item(r),
        }
    }

    fn use_item(&mut self, id: ItemId, u: &'m UseDecl) {
        let Some(&target) = self.modules[self.m].imports.get(&id.index) else {
            return;
        };
        let tmod = &self.modules[target];
        let k = tmod.name.split('.').count();
        let md = self.module_def(target);
        if let Some(seg) = u.path.get(k.saturating_sub(1)) {
            self.reference(seg.span, md);
        }
        if !u.glob
            && u.path.len() > k
            && let Some(last) = u.path.last()
            && let Some(index) = tmod
                .ast
                .items
                .iter()
                .position(|it| Checker::item_name(it).is_some_and(|n| n.name == last.name))
            && let Some(d) = self.item_def(ItemId {
                module: target,
                index,
            })
        {
            self.reference(last.span, d);
        }
    }

    fn fn_item(&mut self, f: &'m FnDef, span: Span) {
        self.size_params(&f.sizes);
        for (n, t) in &f.params {
            let ty = self.cx.resolve_type(t, &self.sizes.clone());
            self.ty(t);
            self.typed_local(n, DefKind::FnParam, n.span.to(t.span), None, ty);
        }
        self.ty(&f.ret);
        self.expr(&f.body);
        self.close_scope(span);
    }

    fn system(&mut self, id: ItemId, s: &'m SystemDef, span: Span) {
        self.size_params(&s.sizes);
        self.poly(&s.iface.poly);
        for e in &s.iface.sizes {
            self.expr(e);
        }
        if let Some(iface) = self.system_iface(id) {
            let ports = self.iface_defs(&iface);
            self.ports_as_locals(&ports, "");
            self.modes = self.iface_modes(&iface);
        }
        self.declare(&s.body);
        for it in &s.body {
            self.sys_item(it);
        }
        self.close_scope(span);
    }

    /// Defines the params, states, lets and boxes of a system body before walking it
    /// (uses may come before definitions).
    fn declare(&mut self, body: &'m [SysItem]) {
        for it in body {
            match &it.kind {
                SysItemKind::Param { name, ty, .. } => {
                    let t = self.cx.resolve_type(ty, &self.sizes.clone());
                    self.typed_local(name, DefKind::Param, it.span, it.doc.clone(), t);
                }
                SysItemKind::State { name, ty, .. } => {
                    let t = self.cx.resolve_type(ty, &self.sizes.clone());
                    self.typed_local(name, DefKind::State, it.span, it.doc.clone(), t);
                }
                SysItemKind::Let { name, ty, .. } => {
                    let d = self.def(&name.name, DefKind::Let, name.span, it.span, it.doc.clone());
                    if let Some(ty) = ty {
                        let t = self.cx.resolve_type(ty, &self.sizes.clone());
                        self.set_ty(d, &t);
                        self.types.insert(d, t);
                    }
                    self.push_local(&name.name, d);
                }
                SysItemKind::Box {
                    name,
                    count,
                    system,
                    ..
                } => {
                    let d = self.def(&name.name, DefKind::Box, name.span, it.span, it.doc.clone());
                    let sys: Vec<&str> = system.iter().map(|i| i.name.as_str()).collect();
                    let count = count
                        .as_ref()
                        .map(|c| format!("[{}]", self.sources.snippet(c.span)))
                        .unwrap_or_default();
                    self.ix.defs[d].ty = Some(format!("{}{count}", sys.join(".")));
                    if let Some(sid) = self.lookup_item(system)
                        && let Some(iface) = self.system_iface(sid)
                    {
                        let ports = self.iface_defs(&iface);
                        self.ix.defs[d].members = ports.iter().map(|p| p.1).collect();
                        self.box_ifaces.insert(d, iface);
                    }
                    self.push_local(&name.name, d);
                }
                SysItemKind::For { body, .. } => self.declare(body),
                _ => {}
            }
        }
    }

    fn sys_item(&mut self, it: &'m SysItem) {
        match &it.kind {
            SysItemKind::Param { ty, default, .. } => {
                self.ty(ty);
                if let Some(e) = default {
                    self.expr(e);
                }
            }
            SysItemKind::State { ty, init, .. } => {
                self.ty(ty);
                self.expr(init);
            }
            SysItemKind::Let { name, ty, value } => {
                if let Some(t) = ty {
                    self.ty(t);
                }
                self.expr(value);
                if let Some(d) = self.ix.def_at_span(name.span)
                    && !self.types.contains_key(&d)
                {
                    let t = self.type_of(value);
                    self.set_ty(d, &t);
                    self.types.insert(d, t.clone());
                    self.env.names.insert(name.name.clone(), Res::Val(t));
                }
            }
            SysItemKind::Out { name, value } => {
                if let Some(n) = name {
                    self.name_ref(n);
                }
                self.expr(value);
            }
            SysItemKind::Update { target, value, .. } => {
                self.name_ref(target);
                self.expr(value);
            }
            SysItemKind::UpdateMatch { arms, .. } => {
                for arm in arms {
                    if let Some(&d) = self.modes.get(&arm.mode.name) {
                        self.reference(arm.mode.span, d);
                    }
                    for a in &arm.body {
                        self.name_ref(&a.target);
                        self.expr(&a.value);
                    }
                }
            }
            SysItemKind::When { cond, body } => {
                self.expr(cond);
                for a in body {
                    self.name_ref(&a.target);
                    self.expr(&a.value);
                }
            }
            SysItemKind::Box {
                count,
                system,
                sizes,
                args,
                ..
            } => {
                if let Some(c) = count {
                    self.expr(c);
                }
                self.path(system);
                for s in sizes {
                    self.expr(s);
                }
                let sid = self.lookup_item(system);
                for a in args {
                    if let (Some(n), Some(sid)) = (&a.name, sid)
                        && let Some(d) = self.param_of(sid, &n.name)
                    {
                        self.reference(n.span, d);
                    }
                    self.expr(&a.value);
                }
            }
            SysItemKind::Wire { target, value } => {
                if let Some(b) = self.name_ref(&target.boxname)
                    && let Some(p) = self.ix.member(b, &target.port.name)
                {
                    self.reference(target.port.span, p);
                }
                if let Some(i) = &target.index {
                    self.expr(i);
                }
                self.expr(value);
            }
            SysItemKind::For { var, lo, hi, body } => {
                self.expr(lo);
                self.expr(hi);
                let d = self.typed_local(var, DefKind::LoopVar, it.span, None, Ty::Int);
                for b in body {
                    self.sys_item(b);
                }
                self.locals.pop();
                self.ix.scopes.push(Scope {
                    span: it.span,
                    defs: vec![d],
                });
            }
            SysItemKind::Optimizer { .. } | SysItemKind::Error => {}
        }
    }

    /// The definition of param `name` of system `sid` (from its source).
    fn param_of(&mut self, sid: ItemId, name: &str) -> Option<usize> {
        let item: &'m Item = self.cx.item(sid);
        let ItemKind::System(s) = &item.kind else {
            return None;
        };
        s.body.iter().find_map(|it| match &it.kind {
            SysItemKind::Param { name: n, .. } if n.name == name => {
                Some(self.def(&n.name, DefKind::Param, n.span, it.span, it.doc.clone()))
            }
            _ => None,
        })
    }

    fn lens(&mut self, l: &'m LensDef, span: Span) {
        for r in [&l.src, &l.tgt] {
            self.poly(&r.poly);
            for e in &r.sizes {
                self.expr(e);
            }
        }
        let src = self.cx.header_iface(&l.src, &Sizes::default());
        let tgt = self.cx.header_iface(&l.tgt, &Sizes::default());
        let src_ports = src.as_ref().map(|i| self.iface_defs(i)).unwrap_or_default();
        let tgt_ports = tgt.as_ref().map(|i| self.iface_defs(i)).unwrap_or_default();
        if let Some(i) = &src {
            self.modes = self.iface_modes(i);
        }
        if let Some(i) = &tgt {
            self.tgt_modes = self.iface_modes(i);
        }
        let readable: Vec<PortDef> = src_ports
            .iter()
            .filter(|p| p.3 == Dir::Out)
            .chain(tgt_ports.iter().filter(|p| p.3 == Dir::In))
            .cloned()
            .collect();
        self.ports_as_locals(&readable, "");
        self.ports_as_locals(&src_ports, "src.");
        self.ports_as_locals(&tgt_ports, "tgt.");
        let defined: HashMap<(Dir, String), usize> = tgt_ports
            .iter()
            .filter(|p| p.3 == Dir::Out)
            .chain(src_ports.iter().filter(|p| p.3 == Dir::In))
            .map(|(n, d, _, dir)| ((*dir, n.clone()), *d))
            .collect();
        self.lens_items(&l.body, &defined);
        self.close_scope(span);
    }

    fn lens_items(&mut self, items: &'m [LensItem], defined: &HashMap<(Dir, String), usize>) {
        for it in items {
            match &it.kind {
                LensItemKind::Def {
                    dir, port, value, ..
                } => {
                    if let Some(&d) = defined.get(&(*dir, port.name.clone())) {
                        self.reference(port.span, d);
                    }
                    self.expr(value);
                }
                LensItemKind::Let { name, value } => {
                    self.expr(value);
                    let t = self.type_of(value);
                    self.typed_local(name, DefKind::Let, it.span, None, t);
                }
                LensItemKind::Match(arms) => {
                    for arm in arms {
                        if let Some(&d) = self.modes.get(&arm.src_mode.name) {
                            self.reference(arm.src_mode.span, d);
                        }
                        if let Some(t) = &arm.tgt_mode
                            && let Some(&d) = self.tgt_modes.get(&t.name)
                        {
                            self.reference(t.span, d);
                        }
                        self.lens_items(&arm.body, defined);
                    }
                }
                LensItemKind::Error => {}
            }
        }
    }

    fn run_item(&mut self, r: &'m RunDef) {
        let sys = self.name_ref(&r.system);
        if let Some(sid) = self.lookup_item(std::slice::from_ref(&r.system))
            && let Some(iface) = self.system_iface(sid)
        {
            let ports = self.iface_defs(&iface);
            let outs: Vec<PortDef> = ports.into_iter().filter(|p| p.3 == Dir::Out).collect();
            self.ports_as_locals(&outs, "");
        }
        let _ = sys;
        for it in &r.items {
            match it {
                RunItem::Setting { values, .. } => {
                    for v in values {
                        self.expr(v);
                    }
                }
                RunItem::Param { value, .. } => self.expr(value),
                RunItem::Error => {}
            }
        }
    }

    // ------------------------------------------------------------ polynomials, types, exprs

    fn poly(&mut self, p: &'m Poly) {
        match &p.kind {
            PolyKind::Y | PolyKind::Error => {}
            PolyKind::Atom(t) => self.ty(t),
            PolyKind::Body(b) => {
                for e in &b.entries {
                    match e {
                        dyn_syntax::ast::IfaceEntry::Port(pd) => {
                            self.port_decl(pd);
                        }
                        dyn_syntax::ast::IfaceEntry::Mode { doc, name, ports } => {
                            let md = self.def(
                                &name.name,
                                DefKind::Mode,
                                name.span,
                                name.span,
                                doc.clone(),
                            );
                            for pd in ports {
                                let d = self.port_decl(pd);
                                if pd.dir == Dir::Out && !self.ix.defs[md].members.contains(&d) {
                                    self.ix.defs[md].members.push(d);
                                }
                            }
                        }
                        dyn_syntax::ast::IfaceEntry::Error => {}
                    }
                }
            }
            PolyKind::Pow(a, t) | PolyKind::Coef(t, a) => {
                self.ty(t);
                self.poly(a);
            }
            PolyKind::Named(n, a) => {
                self.def(&n.name, DefKind::Factor, n.span, p.span, None);
                self.poly(a);
            }
            PolyKind::Sum(a, b)
            | PolyKind::Product(a, b)
            | PolyKind::Tensor(a, b)
            | PolyKind::Compose(a, b) => {
                self.poly(a);
                self.poly(b);
            }
        }
    }

    fn port_decl(&mut self, pd: &'m PortDecl) -> usize {
        let kind = match pd.dir {
            Dir::Out => DefKind::OutPort,
            Dir::In => DefKind::InPort,
        };
        let d = self.def(&pd.name.name, kind, pd.name.span, pd.span, pd.doc.clone());
        if self.ix.defs[d].ty.is_none() {
            let t = self.cx.resolve_type(&pd.ty, &self.sizes.clone());
            self.set_ty(d, &t);
        }
        self.ty(&pd.ty);
        d
    }

    fn ty(&mut self, t: &'m TypeExpr) {
        match &t.kind {
            TypeKind::Named(path) => {
                self.path(path);
            }
            TypeKind::Tensor(path, dims) => {
                self.path(path);
                for d in dims {
                    self.expr(d);
                }
            }
            TypeKind::Record(fields) => {
                for (_, ft) in fields {
                    self.ty(ft);
                }
            }
            TypeKind::Numeral(_) | TypeKind::Unit | TypeKind::Error => {}
        }
    }

    fn expr(&mut self, e: &'m Expr) {
        match &e.kind {
            ExprKind::Int(_)
            | ExprKind::Real(_)
            | ExprKind::Bool(_)
            | ExprKind::Unit
            | ExprKind::Error => {}
            ExprKind::Var(n) => {
                self.name_ref(n);
            }
            ExprKind::Field(base, f) => self.field(base, f),
            ExprKind::Index(b, idx) => {
                self.expr(b);
                for i in idx {
                    self.expr(i);
                }
            }
            ExprKind::Call(f, args) => {
                self.expr(f);
                for a in args {
                    self.expr(&a.value);
                }
            }
            ExprKind::Unary(_, a) => self.expr(a),
            ExprKind::Range(lo, hi) => {
                for b in [lo, hi].into_iter().flatten() {
                    self.expr(b);
                }
            }
            ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::If(c, a, b) => {
                self.expr(c);
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Match(s, arms) => {
                self.expr(s);
                for arm in arms {
                    if let Pattern::Name(n) = &arm.pat {
                        match self.modes.get(&n.name) {
                            Some(&d) => self.reference(n.span, d),
                            None => {
                                self.name_ref(n);
                            }
                        }
                    }
                    self.expr(&arm.value);
                }
            }
            ExprKind::Array(xs) => {
                for x in xs {
                    self.expr(x);
                }
            }
            ExprKind::Record(name, fields) => {
                let owner = match name {
                    Some(n) => match self.modes.get(&n.name).or(self.tgt_modes.get(&n.name)) {
                        Some(&d) => {
                            self.reference(n.span, d);
                            Some(d)
                        }
                        None => self.name_ref(n),
                    },
                    None => None,
                };
                for (f, v) in fields {
                    if let Some(o) = owner
                        && let Some(m) = self.ix.member(o, &f.name)
                    {
                        self.reference(f.span, m);
                    }
                    self.expr(v);
                }
            }
        }
    }

    fn field(&mut self, base: &'m Expr, f: &'m Ident) {
        let head = match &base.kind {
            ExprKind::Var(a) => Some((a, None)),
            ExprKind::Index(b, idx) => match &b.kind {
                ExprKind::Var(a) => Some((a, Some(idx))),
                _ => None,
            },
            _ => None,
        };
        let Some((a, idx)) = head else {
            self.expr(base);
            return;
        };
        for i in idx.into_iter().flatten() {
            self.expr(i);
        }
        if let Some(d) = self.name_ref(a) {
            if let Some(m) = self.ix.member(d, &f.name) {
                self.reference(f.span, m);
            }
        } else if let Some(d) = self.local(&format!("{}.{}", a.name, f.name)) {
            self.reference(f.span, d);
        }
    }
}
