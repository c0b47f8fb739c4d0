//! Command-line arguments (clap derive) and dispatch to the library.
//!
//! Exit codes follow `trellis validate`'s contract everywhere: 0 success,
//! 1 the input is invalid (or the command failed), 2 usage or I/O error.

mod assess;
mod bootstrap;
mod ca;
mod credentials;
mod diff;
mod graph;
mod lint;
mod proxy;
mod ratelimit;
mod rollout;
mod serve;
mod token;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Exit code for usage and I/O errors (clap uses it for bad arguments too).
pub const EXIT_USAGE: u8 = 2;

/// Trellis: a service mesh control plane for stock Envoy sidecars.
#[derive(Debug, Parser)]
#[command(name = "trellis", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: watch the config dir and serve ADS to sidecars.
    Serve(serve::ServeArgs),
    /// Check a config directory; print one line per error (exit 0 valid, 1 invalid, 2 I/O).
    Validate(validate::ValidateArgs),
    /// What a config change does to every proxy's Envoy resources (exit 0 none, 1 changes, 2 error).
    Diff(diff::DiffArgs),
    /// Find harmful but valid config: retry storms, timeouts, unsafe retries, proxy memory (exit 0 clean, 1 findings, 2 usage).
    Lint(lint::LintArgs),
    /// Score whether a mesh pays off (the adoption framework); may write an mTLS starter config.
    Assess(assess::AssessArgs),
    /// Write an Envoy bootstrap (YAML) for one sidecar.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Certificate authority operations (root rotation).
    Ca(ca::CaArgs),
    /// The observed service graph: request rate, success rate and p50/p99 per edge.
    Graph(graph::GraphArgs),
    /// Every proxy: service, labels, per xDS type sent/ACKed/NACKed, SYNCED/STALE/NACKED, cert expiry.
    ProxyStatus(proxy::StatusArgs),
    /// What one proxy was sent (listeners, routes, clusters, endpoints, secrets), keys redacted.
    ProxyConfig(proxy::ConfigArgs),
    /// Staged config rollout: status, promote the canary generation, or abort it.
    Rollout(rollout::RolloutArgs),
    /// Print a signed workload token for `trellis bootstrap --token-file`.
    Token(token::TokenArgs),
    /// Run the rate-limit service of global RateLimits (counters in Redis).
    Ratelimit(ratelimit::RatelimitArgs),
    /// Make a Gateway TLS credential for `serve --credentials-dir` (demos, tests).
    Credentials(credentials::CredentialsArgs),
    /// Run a local demo: control plane, sample services and Envoy sidecars.
    Demo(crate::demo::DemoArgs),
    /// A tiny HTTP service used by the demo and the tests.
    #[command(hide = true)]
    DemoApp(crate::demo::app::AppArgs),
}

/// Parses arguments, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(&cli.command, Command::Serve(a) if a.log_format == serve::LogFormat::Json);
    init_tracing(json);
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Lint(args) => lint::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Assess(args) => assess::run(&args),
        Command::Bootstrap(args) => report(bootstrap::run(&args)),
        Command::Token(args) => report(token::run(&args)),
        Command::Credentials(args) => report(credentials::run(&args)),
        Command::Graph(args) => report(block_on(graph::run(args))),
        Command::ProxyStatus(args) => report(block_on(proxy::status(args))),
        Command::ProxyConfig(args) => report(block_on(proxy::config(args))),
        Command::Ca(args) => report(block_on(ca::run(args))),
        Command::Rollout(args) => report(block_on(rollout::run(args))),
        Command::Serve(args) => report(block_on(serve::run(args))),
        Command::Ratelimit(args) => report(block_on(ratelimit::run(args))),
        Command::Demo(args) => report(block_on(crate::demo::run(args))),
        Command::DemoApp(args) => report(block_on(crate::demo::app::run(args))),
    }
}

/// Logs go to stderr so stdout stays for output other programs read;
/// `json`: one JSON object per line (`serve --log-format json`).
fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_current_span(false)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people: logs read by tools stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// How long an idle blocking thread (a reload, a rebuild) stays. The
/// allocator hands back what a thread freed only when that thread allocates
/// again or exits, so an idle `serve` held its last load's transient peak
/// until tokio's default 10 s ran out; a burst of changes still reuses the
/// threads.
const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

fn block_on<T, F: std::future::Future<Output = anyhow::Result<T>>>(fut: F) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()?
        .block_on(fut)
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Parses `500ms`, `3s`, `1m`, `1h` (also fractions such as `1.5s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 3s, 1m"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" if value == 0.0 => 0.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unit must be ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "3", "s", "3x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
