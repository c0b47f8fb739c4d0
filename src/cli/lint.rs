//! `trellis lint DIR`: findings on a valid config (docs/lint.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use trellis::config::{load_dir, LoadError, SourceIndex};
use trellis::lint::{self, output, sarif, Input, MemoryCost, Severity};

use super::EXIT_USAGE;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `FILE:LINE:COL: SEVERITY: CHECK: ...` with why and fix, then the proxy-tax table.
    Text,
    /// One JSON object: findings and proxy-tax figures.
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
}

/// `--severity` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// Everything.
    Info,
    /// Warnings and errors (default).
    Warning,
    /// Errors only.
    Error,
}

impl From<Level> for Severity {
    fn from(l: Level) -> Severity {
        match l {
            Level::Info => Severity::Info,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
        }
    }
}

/// Flags of `trellis lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// The config directory (as for `validate`).
    dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Report findings at or above this severity; exit 1 when there is one.
    #[arg(long, value_enum, default_value_t = Level::Warning)]
    severity: Level,
    /// A running control plane's admin address: the calls its sidecars were
    /// seen making (`/debug/graph`) join the call graph.
    #[arg(long, value_name = "ADDR")]
    admin_addr: Option<std::net::SocketAddr>,
}

/// Exit 0 when no finding reaches `--severity`, 1 when one does (or the
/// config is invalid: its errors are printed as `validate` prints them),
/// 2 on usage and I/O errors.
pub fn run(args: &LintArgs) -> ExitCode {
    let mesh = match load_dir(&args.dir) {
        Ok(mesh) => mesh,
        Err(LoadError::Invalid(diags)) => {
            println!("{diags}");
            eprintln!(
                "{}: invalid config ({} error(s)): fix it before linting",
                args.dir.display(),
                diags.len()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let source = match SourceIndex::read(&mesh.files) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let observed = match args.admin_addr.map(observed_graph).transpose() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: the observed service graph: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let report = lint::lint(&Input {
        mesh: &mesh,
        source: &source,
        cost: MemoryCost::MEASURED,
        observed: observed.as_ref(),
    });
    let threshold = Severity::from(args.severity);
    let shown = report.at_least(threshold);
    match args.format {
        Format::Text => {
            print!("{}", output::text(&shown));
            print!("{}", output::tax_table(&report.proxy_tax));
        }
        Format::Json => println!("{}", output::json(&report, threshold)),
        Format::Sarif => println!("{}", sarif::sarif(&shown)),
    }
    let hidden = report.findings.len() - shown.len();
    let more = match hidden {
        0 => String::new(),
        n => format!(", {n} below {} not shown", threshold.as_str()),
    };
    eprintln!(
        "{}: {} finding(s) at or above {}{more}",
        args.dir.display(),
        shown.len(),
        threshold.as_str()
    );
    if shown.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `/debug/graph` of the control plane at `addr`.
fn observed_graph(addr: std::net::SocketAddr) -> anyhow::Result<trellis::graph::Graph> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(super::graph::fetch(addr))
}
