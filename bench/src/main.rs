//! `trellis-bench`: benchmarks of the Trellis control plane.
//!
//! `trellis-bench xds --proxies N --services S --endpoints E [--delta]
//! [--duration SECS]` starts `trellis serve` on a generated mesh, connects N
//! simulated Envoys over real gRPC on loopback and prints one JSON line of
//! measurements (see BENCHMARKS.md).
//!
//! `trellis-bench envoy --sidecars K --services S` starts real Envoy sidecars
//! on a generated mesh and prints JSON lines of route change convergence and
//! of one sidecar's RSS in scoped, small and unscoped meshes.
//!
//! `trellis-bench churn --rate R --duration SECS` registers and deregisters
//! simulated sidecars at R per second while observer sidecars ACK the
//! endpoint updates, and prints one JSON line of lags.
//!
//! `trellis-bench dataplane --rates 500,1000 --runs 3` loads an app at
//! fixed rates directly, through two minimal Envoys with mTLS and through
//! two Trellis sidecars, and prints the latency, CPU and memory the
//! sidecars add.

mod churn;
mod client;
mod dataplane;
mod envoy;
mod mesh;
mod run;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of the Trellis control plane")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Simulated Envoy ADS clients against `trellis serve`.
    Xds(XdsArgs),
    /// Real Envoy sidecars: route change convergence and sidecar RSS.
    Envoy(envoy::EnvoyArgs),
    /// Endpoint churn: sidecars registering and leaving at a steady rate.
    Churn(churn::ChurnArgs),
    /// Data plane: latency, CPU and memory two sidecars add to a request.
    Dataplane(dataplane::DataplaneArgs),
}

/// Flags of `trellis-bench xds`.
#[derive(Debug, clap::Args)]
pub struct XdsArgs {
    /// Simulated sidecars (one ADS stream and connection each).
    #[arg(long, default_value_t = 100)]
    proxies: usize,
    /// Services in the generated mesh.
    #[arg(long, default_value_t = 10)]
    services: usize,
    /// Static endpoints per service.
    #[arg(long, default_value_t = 3)]
    endpoints: usize,
    /// Scope every sidecar to the first K services with a `Sidecar`
    /// resource (default: no Sidecar, every service).
    #[arg(long, value_name = "K")]
    scope: Option<usize>,
    /// Spread the services over M namespaces (`ns-0` …, contiguous blocks;
    /// with 1, everything is in `default`).
    #[arg(long, value_name = "M", default_value_t = 1)]
    namespaces: usize,
    /// Write a `Mesh` with `defaultSidecarScope: ALL_SERVICES` (every
    /// sidecar reaches every service unless a `Sidecar` says otherwise).
    #[arg(long)]
    all_services: bool,
    /// Use DeltaAggregatedResources instead of state of the world.
    #[arg(long)]
    delta: bool,
    /// Upper bound of the whole run in seconds; phases not reached are null.
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// Present a workload token per service identity (issued with
    /// `trellis token`) instead of serving with --insecure-xds.
    #[arg(long)]
    tokens: bool,
    /// Streams connecting at once while the sidecars ramp up.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// The trellis binary (default: $TRELLIS_BIN, else built next to this program).
    #[arg(long)]
    trellis: Option<PathBuf>,
    /// Run R replicas of `trellis serve` sharing one etcd (started and
    /// stopped by the bench); client I connects to replica I mod R.
    #[arg(long, value_name = "R", default_value_t = 1)]
    replicas: usize,
    /// Exit 1 unless every client converged to the same final versions as
    /// the other clients of its service (the CI correctness check).
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.cmd {
        Cmd::Xds(args) => rt.block_on(run::xds(args)),
        Cmd::Envoy(args) => rt.block_on(envoy::envoy(args)),
        Cmd::Churn(args) => rt.block_on(churn::churn(args)),
        Cmd::Dataplane(args) => rt.block_on(dataplane::dataplane(args)),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
