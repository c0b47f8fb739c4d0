//! `trellis assess [DIR]`: the adoption framework, with facts from the
//! config, the rest from flags or asked on a terminal (docs/lint.md).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use trellis::assess::{self, starter, Answers, Assessment, Facts, Kubernetes, Source, Verdict};
use trellis::config::{load_dir, LoadError, MeshConfig};

use super::EXIT_USAGE;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table of factors, the score and the verdict.
    Text,
    /// One JSON object.
    Json,
}

fn yes_no(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" => Ok(true),
        "n" | "no" | "false" => Ok(false),
        _ => Err(format!("expected yes or no, got {s:?}")),
    }
}

/// Flags of `trellis assess`.
#[derive(Debug, Args)]
pub struct AssessArgs {
    /// The config directory (service count, splits, mTLS, tracing); without
    /// it every factor is a question.
    dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Number of services (default: the config's).
    #[arg(long)]
    services: Option<usize>,
    /// Number of programming languages across the services.
    #[arg(long)]
    languages: Option<u32>,
    /// Internal traffic must be encrypted by regulation (yes|no).
    #[arg(long, value_parser = yes_no)]
    regulated: Option<bool>,
    /// Traffic-level canary deployments are needed (yes|no; splits in the config say yes).
    #[arg(long, value_parser = yes_no)]
    canary: Option<bool>,
    /// Debugging cross-service latency is a recurring pain (yes|no).
    #[arg(long, value_parser = yes_no)]
    latency_pain: Option<bool>,
    /// The team's Kubernetes experience.
    #[arg(long, value_enum)]
    kubernetes: Option<Kubernetes>,
    /// Where the mTLS starter config is written when the verdict is "mTLS only".
    #[arg(long, value_name = "DIR", default_value = "trellis-starter")]
    out: PathBuf,
    /// Never ask, even on a terminal: unanswered factors count 0.
    #[arg(long)]
    no_input: bool,
}

/// Exit 0 with the assessment; 1 when the config is invalid or the starter
/// cannot be written; 2 on usage and I/O errors.
pub fn run(args: &AssessArgs) -> ExitCode {
    let mesh = match &args.dir {
        None => None,
        Some(dir) => match load_dir(dir) {
            Ok(mesh) => Some(mesh),
            Err(LoadError::Invalid(diags)) => {
                println!("{diags}");
                eprintln!(
                    "{}: invalid config ({} error(s))",
                    dir.display(),
                    diags.len()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match assess_and_report(args, mesh.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn assess_and_report(args: &AssessArgs, mesh: Option<&MeshConfig>) -> anyhow::Result<()> {
    let facts = mesh.map(assess::facts);
    let mut answers = from_flags_and_config(args, facts.as_ref());
    if !args.no_input && std::io::stdin().is_terminal() {
        let stdin = std::io::stdin();
        ask_missing(
            &mut answers,
            facts.as_ref(),
            &mut stdin.lock(),
            &mut std::io::stderr(),
        )?;
    }
    let result = assess::assess(&answers);
    let starter = match (result.verdict, mesh) {
        (Verdict::MtlsFirst, Some(mesh)) => Some(write_starter(mesh, &args.out)?),
        _ => None,
    };
    match args.format {
        Format::Text => {
            if let Some(f) = &facts {
                print!("{}", facts_line(f));
            }
            print!("{}", text(args, &result, starter.as_deref()));
        }
        Format::Json => {
            let out = serde_json::json!({"assessment": result, "facts": facts, "starter": starter});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}

fn flag<T>(v: T) -> (T, Source) {
    (v, Source::Flag)
}

fn from_flags_and_config(args: &AssessArgs, facts: Option<&Facts>) -> Answers {
    Answers {
        services: (args.services.map(flag)).or_else(|| facts.map(|f| (f.services, Source::Config))),
        languages: args.languages.map(flag),
        regulated: args.regulated.map(flag),
        canary: (args.canary.map(flag)).or_else(|| {
            facts
                .filter(|f| !f.splits.is_empty())
                .map(|_| (true, Source::Config))
        }),
        latency_pain: args.latency_pain.map(flag),
        kubernetes: args.kubernetes.map(flag),
    }
}

/// Asks each unanswered question once (an empty answer takes the default
/// shown, if any, else leaves it unknown; a wrong one asks again).
fn ask_missing(
    a: &mut Answers,
    facts: Option<&Facts>,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let strict = facts.is_some_and(|f| !f.strict_mtls.is_empty());
    let tracing = facts.is_some_and(|f| f.tracing);
    let t = Source::Terminal;
    if a.services.is_none() {
        a.services = ask(
            input,
            out,
            "How many services talk to each other over the network?",
            None,
            |s| s.parse().ok(),
        )?
        .map(|v| (v, t.clone()));
    }
    if a.languages.is_none() {
        a.languages = ask(
            input,
            out,
            "How many programming languages are they written in?",
            None,
            |s| s.parse().ok(),
        )?
        .map(|v| (v, t.clone()));
    }
    if a.regulated.is_none() {
        let hint = strict.then_some("yes (STRICT mTLS is configured)");
        a.regulated = ask(
            input,
            out,
            "Must internal traffic be encrypted by regulation? [yes/no]",
            hint,
            |s| yes_no(s).ok(),
        )?
        .map(|v| (v, t.clone()));
    }
    if a.canary.is_none() {
        a.canary = ask(
            input,
            out,
            "Do you need traffic-level canary deployments? [yes/no]",
            None,
            |s| yes_no(s).ok(),
        )?
        .map(|v| (v, t.clone()));
    }
    if a.latency_pain.is_none() {
        let hint = tracing.then_some("yes (tracing is configured)");
        a.latency_pain = ask(
            input,
            out,
            "Is debugging cross-service latency a recurring pain? [yes/no]",
            hint,
            |s| yes_no(s).ok(),
        )?
        .map(|v| (v, t.clone()));
    }
    if a.kubernetes.is_none() {
        let parse = |s: &str| Kubernetes::from_str(s, true).ok();
        a.kubernetes = ask(
            input,
            out,
            "Your team's Kubernetes experience? [experienced/new/none]",
            None,
            parse,
        )?
        .map(|v| (v, t.clone()));
    }
    Ok(())
}

fn ask<T>(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    question: &str,
    default: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<Option<T>> {
    for _ in 0..3 {
        match default {
            Some(d) => write!(out, "{question} (default {d}): ")?,
            None => write!(out, "{question} (empty: skip): ")?,
        }
        out.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Ok(None); // end of input: unknown
        }
        let line = line.trim();
        let line = match (line.is_empty(), default) {
            (true, Some(d)) => d.split_whitespace().next().unwrap_or_default(),
            (true, None) => return Ok(None),
            (false, _) => line,
        };
        if let Some(v) = parse(line) {
            return Ok(Some(v));
        }
        writeln!(out, "  not understood: {line:?}")?;
    }
    Ok(None)
}

/// Writes the starter files into `out` (never over existing ones); returns
/// the directory written.
fn write_starter(mesh: &MeshConfig, out: &Path) -> anyhow::Result<PathBuf> {
    let files = starter::files(mesh)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, _) in &files {
        if out.join(name).exists() {
            bail!(
                "{} already exists: choose another --out",
                out.join(name).display()
            );
        }
    }
    for (name, yaml) in &files {
        let path = out.join(name);
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(out.to_path_buf())
}

fn source(s: &Source) -> &'static str {
    match s {
        Source::Config => "config",
        Source::Flag => "flag",
        Source::Terminal => "answered",
        Source::Unknown => "unknown",
    }
}

/// What the config told, before the table.
fn facts_line(f: &Facts) -> String {
    let list = |v: &[String]| match v.is_empty() {
        true => "none".to_string(),
        false => v.join(", "),
    };
    format!(
        "Config: {} service(s); traffic splits: {}; STRICT mTLS: {}; tracing: {}\n",
        f.services,
        list(&f.splits),
        list(&f.strict_mtls),
        if f.tracing {
            "configured"
        } else {
            "not configured"
        }
    )
}

fn text(args: &AssessArgs, a: &Assessment, starter: Option<&Path>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let dir = args
        .dir
        .as_ref()
        .map_or("(no config)".into(), |d| d.display().to_string());
    let _ = writeln!(out, "Mesh adoption assessment: {dir}");
    for f in &a.factors {
        let answer = match f.applies {
            Some(_) => format!("{} ({})", f.detail, source(&f.source)),
            None => "unknown, counted 0".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:>3} of {:>+3}  {:<58} {answer}",
            format!("{:+}", f.points),
            f.weight,
            f.text
        );
    }
    let _ = write!(out, "Score: {}", a.score);
    if a.unknown > 0 {
        let _ = write!(
            out,
            " ({} factor(s) unknown, counted as 0: answer them with flags or on a terminal)",
            a.unknown
        );
    }
    let _ = writeln!(out, "\nVerdict: {}", a.verdict.text());
    match (a.verdict, starter) {
        (Verdict::MtlsFirst, Some(dir)) => {
            let _ = writeln!(out, "Starter config (mTLS + observability for the services found) written to {}: services.yaml, mtls.yaml, observability.yaml; check it with `trellis validate {}`", dir.display(), dir.display());
        }
        (Verdict::MtlsFirst, None) => {
            let _ = writeln!(out, "Give the config directory (trellis assess DIR) to get an mTLS starter config for its services.");
        }
        _ => {}
    }
    out
}
