//! `dyn`: the command-line front of the dyn language.
//!
//! Exit codes: 0 when clean, 1 when a checked file has errors, 2 for usage or I/O errors.

mod analyze;
mod build;
mod fit;
mod plot;
mod run;

use clap::{Parser, Subcommand, ValueEnum};
use dyn_check::modules::Stdlib;
use dyn_diag::Diagnostic;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// dyn: typed nested dynamical systems (interfaces are polynomials, systems are lenses).
#[derive(Parser)]
#[command(name = "dyn", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check .dyn files: does this model (this analogy) type-check?
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format of the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Print the normal form of a finite polynomial written in the file's scope,
        /// e.g. --poly 'P <| Q'.
        #[arg(long, value_name = "EXPR")]
        poly: Vec<String>,
        /// Colour the terminal output.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Run a model: its `run` block, overridden by flags; the trace is CSV.
    Run(Box<run::RunArgs>),
    /// Compile a model ahead of time: an executable that runs its `run` block (or, with
    /// --lib, a shared library and its C header).
    Build(Box<build::BuildArgs>),
    /// Analyse a model as a dynamical system: fixed points, Lyapunov exponents, parameter
    /// sweeps, basins of attraction, ensembles.
    Analyze(Box<analyze::AnalyzeArgs>),
    /// Fit params (and initial states) to a recorded trace (CSV) by gradients through time:
    /// L-BFGS or Adam on the mean squared error.
    Fit(Box<fit::FitArgs>),
    /// Print the IR of nested systems (or, with --flat, the flattened step program).
    Ir {
        /// The file.
        file: PathBuf,
        /// The system (default: the run block's, else the last one).
        #[arg(long)]
        system: Option<String>,
        /// Print the flattened step program.
        #[arg(long)]
        flat: bool,
    },
    /// Explain a diagnostic code, with a wrong and a fixed example.
    Explain {
        /// The code, e.g. E0060.
        code: String,
    },
    /// Start the language server (LSP over stdin/stdout) for editors.
    Lsp,
    /// Explore interactively: define, evaluate, check, run (piped input runs as a script).
    Repl {
        /// Files to load first.
        files: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Rendered reports on stderr.
    Human,
    /// One JSON object per diagnostic on stdout.
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Color {
    /// Colour when stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Stack of the thread that runs a command, and of rayon's workers: deep models (a `grad`
/// through a long `flow`, long chains of lets) recurse deeply in lowering, AD and code
/// generation, and the stages' depth limits (E0027's 1,000 nested operations) are sized for
/// this much stack, not for the platform's default.
const STACK: usize = 256 << 20;

fn main() -> ExitCode {
    // Analyses compile one model per worker thread: give them the same room.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(STACK)
        .build_global();
    match std::thread::Builder::new()
        .name("dyn".into())
        .stack_size(STACK)
        .spawn(command)
    {
        Ok(h) => h.join().unwrap_or(ExitCode::from(101)),
        Err(e) => {
            eprintln!("error: cannot start the main thread: {e}");
            ExitCode::from(2)
        }
    }
}

/// Parses the command line and runs the command.
fn command() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check {
            files,
            format,
            poly,
            color,
        } => check(&files, format, &poly, color),
        Command::Explain { code } => explain(&code),
        Command::Lsp => lsp(),
        Command::Repl { files } => ExitCode::from(dyn_repl::main(&files)),
        Command::Run(a) => run::run(&a, use_color(Color::Auto)),
        Command::Build(a) => build::build(&a, use_color(Color::Auto)),
        Command::Analyze(a) => analyze::analyze(&a, use_color(Color::Auto)),
        Command::Fit(a) => fit::fit(&a, use_color(Color::Auto)),
        Command::Ir { file, system, flat } => {
            run::ir(&file, system.as_deref(), flat, use_color(Color::Auto))
        }
    }
}

fn use_color(c: Color) -> bool {
    match c {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn check(files: &[PathBuf], format: Format, polys: &[String], color: Color) -> ExitCode {
    let stdlib = Stdlib::locate();
    let color = use_color(color);
    let mut status = 0u8;
    for path in files {
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                status = 2;
                continue;
            }
        };
        let name = path.display().to_string();
        let mut checked = dyn_check::check_source(&name, Some(path.clone()), text, &stdlib);
        let mut diags = std::mem::take(&mut checked.diagnostics);
        let mut forms = Vec::new();
        if !checked.has_errors_in(&diags) {
            for p in polys {
                match dyn_check::normal_form(&mut checked, p) {
                    Ok(nf) => forms.push((p.clone(), nf)),
                    Err(ds) => diags.extend(ds),
                }
            }
        }
        emit(&checked.sources, &diags, format, color);
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let warnings = diags.len() - errors;
        for (p, nf) in forms {
            println!("{p} = {nf}");
        }
        if errors > 0 {
            status = status.max(1);
            if let Format::Human = format {
                eprintln!(
                    "{name}: {} error{}, {} warning{}",
                    errors,
                    plural(errors),
                    warnings,
                    plural(warnings)
                );
            }
        } else if let Format::Human = format
            && polys.is_empty()
        {
            let w = if warnings > 0 {
                format!(" ({warnings} warning{})", plural(warnings))
            } else {
                String::new()
            };
            println!("{name}: ok{w}");
        }
    }
    ExitCode::from(status)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

trait HasErrors {
    fn has_errors_in(&self, d: &[Diagnostic]) -> bool;
}

impl HasErrors for dyn_check::Checked {
    fn has_errors_in(&self, d: &[Diagnostic]) -> bool {
        d.iter().any(Diagnostic::is_error)
    }
}

fn emit(sources: &dyn_diag::SourceMap, diags: &[Diagnostic], format: Format, color: bool) {
    match format {
        Format::Human => eprint!("{}", dyn_diag::render_all(sources, diags, color)),
        Format::Json => {
            for d in diags {
                println!("{}", dyn_diag::to_json(sources, d));
            }
        }
    }
}

fn explain(code: &str) -> ExitCode {
    match dyn_diag::codes::lookup(code) {
        Some(c) => {
            print!("{}", c.explain);
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "error: unknown code `{code}`; codes run from E0001 to E0070 and W0001 to W0003"
            );
            ExitCode::from(2)
        }
    }
}

fn lsp() -> ExitCode {
    match dyn_lsp::run_stdio() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: dyn lsp: {e}");
            ExitCode::from(2)
        }
    }
}
