//! The checker of dyn: modules, names, types, interfaces (polynomials), lenses, systems,
//! wiring and causality. Pure: it reads files only through [`modules::Loader`] and reports
//! everything as [`dyn_diag::Diagnostic`]s.
//!
//! Entry point: [`check_source`] (a file or REPL text) returns a [`Checked`] with the
//! source map, the diagnostics and the signatures of the checked systems.

// `Diagnostic` is the error type throughout; it is large, and boxing it everywhere would
// only add noise to code that is not on a hot path.
#![allow(clippy::result_large_err)]

pub mod build;
pub mod causality;
pub mod checker;
pub mod consteval;
pub mod expr;
pub mod flow;
pub mod iface;
pub mod learner;
pub mod lens;
pub mod modules;
pub mod poly;
pub mod run;
pub mod system;
pub mod typeck;
pub mod types;

use checker::{Checker, ItemId};
use dyn_diag::{Diagnostic, SourceMap};
use dyn_syntax::ast::ItemKind;
use modules::{Loader, Module, Stdlib};
use std::path::PathBuf;
use std::rc::Rc;
use system::SystemSig;

/// The result of checking one root source.
pub struct Checked {
    /// Every file read.
    pub sources: SourceMap,
    /// Parsed modules; the root is module 0.
    pub modules: Vec<Module>,
    /// Diagnostics, errors and warnings, in file and source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The root module's systems, checked (non-generic ones).
    pub systems: Vec<(ItemId, Rc<SystemSig>)>,
    /// Expression types (for lowering).
    pub typeck: typeck::Typeck,
    /// Each module's scope: what a module-level name means there.
    pub scopes: Vec<std::collections::HashMap<String, checker::Binding>>,
    /// Typing context of each checked fn body.
    pub fn_ctx: std::collections::HashMap<ItemId, u32>,
}

impl Checked {
    /// True when there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks a source text (`path` is used for `use lib.X` and for messages).
pub fn check_source(name: &str, path: Option<PathBuf>, text: String, stdlib: &Stdlib) -> Checked {
    let mut sources = SourceMap::new();
    let (modules, mut diags) = {
        let mut loader = Loader::new(&mut sources, stdlib);
        loader.load_root(name, path, text);
        let mut modules = loader.modules;
        let mut diags = loader.diags;
        flow::expand(&mut modules, &mut diags);
        learner::derive(&mut modules, &mut diags);
        (modules, diags)
    };
    let (cdiags, systems, typeck, fn_ctx, scopes) = {
        let mut cx = Checker::new(&modules);
        check_module(&mut cx, 0);
        let d = std::mem::take(&mut cx.diags);
        let s = std::mem::take(&mut cx.checked_systems);
        let t = std::mem::take(&mut cx.typeck);
        let f = std::mem::take(&mut cx.fn_ctx);
        (d, s, t, f, cx.into_scopes())
    };
    diags.extend(cdiags);
    dedup(&mut diags);
    Checked {
        sources,
        modules,
        diagnostics: diags,
        systems,
        typeck,
        scopes,
        fn_ctx,
    }
}

/// Checks every item of module `m` (imported modules are checked as far as it uses them).
pub fn check_module(cx: &mut Checker, m: usize) {
    let modules = cx.modules;
    for (index, item) in modules[m].ast.items.iter().enumerate() {
        let id = ItemId { module: m, index };
        cx.cur = m;
        match &item.kind {
            ItemKind::Const(_) => {
                cx.const_item(id);
            }
            ItemKind::TypeAlias(t) => {
                cx.resolve_type(
                    &dyn_syntax::ast::TypeExpr {
                        kind: dyn_syntax::ast::TypeKind::Named(vec![t.name.clone()]),
                        span: t.name.span,
                    },
                    &Default::default(),
                );
            }
            ItemKind::Enum(_) => {
                cx.enum_ty(id);
            }
            ItemKind::Fn(_) => {
                cx.fn_sig(id);
            }
            ItemKind::Interface(i) => {
                if i.sizes.is_empty() {
                    if let Some(b) = cx.iface_item(id, vec![], i.name.span)
                        && let Err(np) = b.as_ref()
                        && np.clash
                    {
                        cx.report(
                            Diagnostic::new(
                                dyn_diag::codes::BAD_INTERFACE,
                                np.span,
                                format!("interface `{}` has two ports with one name", i.name.name),
                            )
                            .label("the factors of this ⊗ clash")
                            .hint(np.why.clone()),
                        );
                    }
                } else {
                    let sizes = checker::Sizes {
                        bound: Default::default(),
                        symbolic: i.sizes.iter().map(|s| s.name.clone()).collect(),
                    };
                    cx.build_poly(&i.poly, &sizes);
                }
            }
            ItemKind::System(s) => {
                if s.sizes.is_empty() {
                    if let Some(sig) = cx.system_sig(id, vec![], s.name.span) {
                        cx.checked_systems.push((id, sig));
                    }
                } else {
                    cx.check_generic_system(id);
                }
            }
            ItemKind::Lens(l) => cx.check_lens(l),
            ItemKind::Run(r) => cx.check_run(r),
            ItemKind::Use(_) | ItemKind::Error => {}
        }
    }
}

/// Drops repeated diagnostics (same code, place and message), keeping the first, and sorts
/// by file and position.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.code.id, d.primary.span, d.message.clone())));
    diags.sort_by_key(|d| (d.primary.span.file, d.primary.span.lo));
}

/// The normal form of a polynomial expression written in the scope of a checked root
/// module (`dyn check --poly 'P ◁ Q' FILE`). The expression is added to the source map as
/// `<poly>` so diagnostics can point into it.
pub fn normal_form(checked: &mut Checked, expr: &str) -> Result<String, Vec<Diagnostic>> {
    let prefix = "interface __poly__ = ";
    let text = format!("{prefix}{expr}");
    let file = checked.sources.add("<poly>", None, text);
    let (ast, diags) = dyn_syntax::parse(file, &checked.sources.get(file).text);
    if !diags.is_empty() {
        return Err(diags);
    }
    let Some(ItemKind::Interface(def)) = ast.items.first().map(|i| &i.kind) else {
        return Err(vec![Diagnostic::new(
            dyn_diag::codes::PARSE_ERROR,
            dyn_diag::Span::new(file, 0, checked.sources.get(file).text.len()),
            "expected a polynomial expression",
        )]);
    };
    if ast.items.len() != 1 {
        return Err(vec![Diagnostic::new(
            dyn_diag::codes::PARSE_ERROR,
            ast.items[1].span,
            "expected one polynomial expression",
        )]);
    }
    let mut cx = Checker::new(&checked.modules);
    cx.diags.clear();
    cx.cur = 0;
    let r = cx.fin_poly(&def.poly, &Default::default(), 0);
    let mut errs: Vec<Diagnostic> = cx.diags.into_iter().filter(Diagnostic::is_error).collect();
    match r {
        Ok(p) if errs.is_empty() => Ok(p.to_string()),
        Ok(_) => Err(errs),
        Err(d) => {
            errs.push(d);
            dedup(&mut errs);
            Err(errs)
        }
    }
}
