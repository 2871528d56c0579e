//! Loading source files and the modules they `use`.
//!
//! `use std.X…` reads `stdlib/X.dyn`; `use lib.X…` reads `lib/X.dyn` beside the importing
//! file. Every file is parsed once; a `use` chain that comes back to a file still being
//! loaded is an import cycle (E0014), reported at the `use` that closes it.

use dyn_diag::{Diagnostic, FileId, SourceMap, Span, codes};
use dyn_syntax::ast::{File, ItemKind, UseDecl};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Index of a loaded module.
pub type ModId = usize;

/// One parsed source file.
#[derive(Debug)]
pub struct Module {
    /// The file in the source map.
    pub file: FileId,
    /// The dotted name (`std.neurons`), or the file name for the root.
    pub name: String,
    /// Directory of the file, for `use lib.X`.
    pub dir: Option<PathBuf>,
    /// The syntax tree.
    pub ast: File,
    /// For each `use` item (by item index): the module it names.
    pub imports: HashMap<usize, ModId>,
}

/// Where the standard library lives: a directory, or the copy embedded in the binary.
#[derive(Debug, Clone)]
pub enum Stdlib {
    /// A directory with `X.dyn` files.
    Dir(PathBuf),
    /// The files compiled into the binary (name, text).
    Embedded(&'static [(&'static str, &'static str)]),
}

/// The stdlib sources, embedded so a copied binary still finds them.
pub static EMBEDDED_STDLIB: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/stdlib.rs"));

impl Stdlib {
    /// `DYN_STDLIB` if set, else the source tree's `stdlib/` when it exists, else the
    /// embedded copy.
    pub fn locate() -> Stdlib {
        if let Some(dir) = std::env::var_os("DYN_STDLIB") {
            return Stdlib::Dir(PathBuf::from(dir));
        }
        let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib");
        if tree.is_dir() {
            return Stdlib::Dir(tree);
        }
        Stdlib::Embedded(EMBEDDED_STDLIB)
    }

    fn read(&self, name: &str) -> Option<(String, Option<PathBuf>, String)> {
        match self {
            Stdlib::Dir(d) => {
                let p = d.join(format!("{name}.dyn"));
                let text = std::fs::read_to_string(&p).ok()?;
                Some((format!("<std>/{name}.dyn"), Some(p), text))
            }
            Stdlib::Embedded(files) => files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, t)| (format!("<std>/{n}.dyn"), None, t.to_string())),
        }
    }
}

/// Loads files and their imports into a source map.
pub struct Loader<'a> {
    /// Where spans point.
    pub sources: &'a mut SourceMap,
    /// Where `std` is.
    pub stdlib: &'a Stdlib,
    /// Modules loaded so far.
    pub modules: Vec<Module>,
    /// Diagnostics from parsing and loading.
    pub diags: Vec<Diagnostic>,
    by_key: HashMap<String, ModId>,
    loading: Vec<String>,
    /// The `use` that started loading each module on the `loading` stack (none for the root).
    use_spans: Vec<Option<Span>>,
    pending_use: Option<Span>,
}

impl<'a> Loader<'a> {
    /// A loader writing into `sources`.
    pub fn new(sources: &'a mut SourceMap, stdlib: &'a Stdlib) -> Self {
        Loader {
            sources,
            stdlib,
            modules: Vec::new(),
            by_key: HashMap::new(),
            loading: Vec::new(),
            use_spans: Vec::new(),
            pending_use: None,
            diags: Vec::new(),
        }
    }

    /// Loads a root source (a file or REPL text) and everything it imports.
    pub fn load_root(&mut self, name: &str, path: Option<PathBuf>, text: String) -> ModId {
        let key = path
            .as_ref()
            .and_then(|p| p.canonicalize().ok())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| name.to_string());
        let dir = path
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        self.load_text(key, name.to_string(), name.to_string(), path, dir, text)
    }

    fn load_text(
        &mut self,
        key: String,
        display: String,
        modname: String,
        path: Option<PathBuf>,
        dir: Option<PathBuf>,
        text: String,
    ) -> ModId {
        let file = self.sources.add(display, path, text);
        let (ast, diags) = dyn_syntax::parse(file, &self.sources.get(file).text);
        self.diags.extend(diags);
        let id = self.modules.len();
        self.modules.push(Module {
            file,
            name: modname,
            dir: dir.clone(),
            ast,
            imports: HashMap::new(),
        });
        self.by_key.insert(key.clone(), id);
        self.loading.push(key);
        let opener = self.pending_use.take();
        self.use_spans.push(opener);
        let uses: Vec<(usize, UseDecl, Span)> = self.modules[id]
            .ast
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| match &it.kind {
                ItemKind::Use(u) => Some((i, u.clone(), it.span)),
                _ => None,
            })
            .collect();
        for (idx, u, span) in uses {
            if let Some(m) = self.resolve_use(&u, span, dir.as_deref()) {
                self.modules[id].imports.insert(idx, m);
            }
        }
        self.loading.pop();
        self.use_spans.pop();
        id
    }

    /// Finds (loading if needed) the module a `use` names. The module path is the whole
    /// path for `use lib.foo` and for globs, else the path without its last segment.
    fn resolve_use(&mut self, u: &UseDecl, span: Span, dir: Option<&Path>) -> Option<ModId> {
        let root = &u.path[0];
        let segs: Vec<&str> = u.path.iter().map(|i| i.name.as_str()).collect();
        if root.name != "std" && root.name != "lib" {
            self.diags.push(
                Diagnostic::new(codes::MODULE_NOT_FOUND, root.span, format!("unknown module root `{}`", root.name))
                    .label("expected `std` or `lib`")
                    .hint("`use std.neurons.FHN` reads stdlib/neurons.dyn; `use lib.foo` reads lib/foo.dyn beside this file"),
            );
            return None;
        }
        if segs.len() < 2 {
            self.diags.push(
                Diagnostic::new(
                    codes::MODULE_NOT_FOUND,
                    span,
                    format!("`use {}` names no module", segs.join(".")),
                )
                .hint("name a module after the root: `use std.neurons.*`"),
            );
            return None;
        }
        // Try the whole path as a module first (`use lib.foo`, `use std.neurons.*`),
        // then without its last segment (`use std.neurons.FHN`).
        let candidates: Vec<usize> = if u.glob {
            vec![segs.len()]
        } else {
            vec![segs.len(), segs.len() - 1]
        };
        for n in candidates {
            if n < 2 {
                continue;
            }
            let rel = segs[1..n].join("/");
            let modname = segs[..n].join(".");
            let found = if root.name == "std" {
                self.stdlib
                    .read(&rel)
                    .map(|(disp, p, t)| (format!("std:{rel}"), disp, p, t))
            } else {
                // Beside the importing file first, then the root file's `lib/`.
                let dirs = [
                    dir.map(Path::to_path_buf),
                    self.modules.first().and_then(|m| m.dir.clone()),
                ];
                let found = dirs
                    .iter()
                    .flatten()
                    .map(|d| d.join("lib").join(format!("{rel}.dyn")))
                    .find(|p| p.is_file());
                let Some(p) = found else { continue };
                match std::fs::read_to_string(&p) {
                    Ok(t) => {
                        let key = p
                            .canonicalize()
                            .map(|c| c.display().to_string())
                            .unwrap_or_else(|_| p.display().to_string());
                        Some((key, p.display().to_string(), Some(p), t))
                    }
                    Err(_) => None,
                }
            };
            let Some((key, disp, path, text)) = found else {
                continue;
            };
            if let Some(pos) = self.loading.iter().position(|k| *k == key) {
                let chain: Vec<String> = self.loading[pos..]
                    .iter()
                    .map(|k| short(k))
                    .chain(std::iter::once(short(&key)))
                    .collect();
                let mut d = Diagnostic::new(
                    codes::IMPORT_CYCLE,
                    span,
                    format!("import cycle: {}", chain.join(" → ")),
                )
                .label("this `use` closes the cycle");
                for s in self.use_spans[pos + 1..].iter().flatten() {
                    d = d.with(*s, "imported here, in the cycle");
                }
                self.diags.push(
                    d.hint("move the shared definitions into a third module that both import"),
                );
                return None;
            }
            if let Some(&m) = self.by_key.get(&key) {
                return Some(m);
            }
            let mdir = path
                .as_ref()
                .and_then(|p| p.parent().map(Path::to_path_buf));
            self.pending_use = Some(span);
            return Some(self.load_text(key, disp, modname, path, mdir, text));
        }
        let what = if root.name == "std" {
            "stdlib/"
        } else {
            "lib/ beside this file: lib/"
        };
        let shown = segs[1..segs.len() - usize::from(!u.glob && segs.len() > 2)].join("/");
        self.diags.push(
            Diagnostic::new(
                codes::MODULE_NOT_FOUND,
                span,
                format!("module `{}` not found", segs.join(".")),
            )
            .label(format!("no file {what}{shown}.dyn"))
            .hint(if root.name == "std" && !self.stdlib_names().is_empty() {
                format!(
                    "the standard library has: {}",
                    self.stdlib_names().join(", ")
                )
            } else if root.name == "std" {
                "no standard library modules were found (set DYN_STDLIB to its directory)"
                    .to_string()
            } else {
                "`use lib.foo` reads lib/foo.dyn in the directory of the importing file".to_string()
            }),
        );
        None
    }

    fn stdlib_names(&self) -> Vec<String> {
        match self.stdlib {
            Stdlib::Embedded(files) => files.iter().map(|(n, _)| format!("std.{n}")).collect(),
            Stdlib::Dir(d) => {
                let mut v: Vec<String> = std::fs::read_dir(d)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| {
                        let p = e.path();
                        if p.extension()? == "dyn" {
                            Some(format!("std.{}", p.file_stem()?.to_string_lossy()))
                        } else {
                            None
                        }
                    })
                    .collect();
                v.sort();
                v
            }
        }
    }
}

fn short(key: &str) -> String {
    let p = Path::new(key);
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| key.to_string())
}
