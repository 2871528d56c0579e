//! A typing environment over the index's local names, used to give `let`s without a
//! declared type a type for hover. It reports nothing: the real check already did.

use dyn_check::checker::Checker;
use dyn_check::expr::{Env, Res};
use dyn_check::iface::Iface;
use dyn_check::types::Ty;
use dyn_diag::Span;
use dyn_syntax::ast::{Expr, Ident};
use std::collections::HashMap;
use std::rc::Rc;

/// Local names with their meaning for the type checker.
#[derive(Default)]
pub(super) struct LocalEnv {
    /// Name → meaning (values, boxes, factor groups).
    pub names: HashMap<String, Res>,
    /// Interfaces of the boxes, by the index in `Res::Box`.
    pub boxes: Vec<Rc<Iface>>,
}

impl Env for LocalEnv {
    fn lookup(&mut self, _cx: &mut Checker, name: &Ident) -> Option<Res> {
        self.names.get(&name.name).cloned()
    }

    fn group_field(&mut self, _cx: &mut Checker, group: &str, field: &Ident) -> Option<Ty> {
        match self.names.get(&format!("{group}.{}", field.name)) {
            Some(Res::Val(t)) => Some(t.clone()),
            _ => Some(Ty::Error),
        }
    }

    fn box_port(
        &mut self,
        _cx: &mut Checker,
        b: usize,
        _index: Option<&Expr>,
        port: &Ident,
        _span: Span,
    ) -> Ty {
        let Some(iface) = self.boxes.get(b) else {
            return Ty::Error;
        };
        iface
            .all_outs()
            .into_iter()
            .find(|(p, _)| p.name == port.name)
            .map(|(p, _)| p.ty.clone())
            .unwrap_or(Ty::Error)
    }
}
