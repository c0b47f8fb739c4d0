//! `trellis-bench envoy`: real Envoy sidecars against `trellis serve`.
//!
//! Two measurements, each printed as one JSON line:
//! - route change convergence across K Envoys of an S-service mesh (from
//!   the file write until each Envoy applied the new weights, as its own
//!   `config_reload_time_ms` stat records);
//! - the RSS of one Envoy in a large mesh scoped by a `Sidecar`, in a small
//!   mesh, and in the large mesh unscoped.

mod converge;
mod rss;
mod sidecar;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::mesh::Mesh;
use crate::server::{self, Server};

/// Flags of `trellis-bench envoy`.
#[derive(Debug, clap::Args)]
pub struct EnvoyArgs {
    /// Real Envoy sidecars for the route-change convergence run.
    #[arg(long, default_value_t = 20)]
    sidecars: usize,
    /// Services in the convergence run's mesh.
    #[arg(long, default_value_t = 50)]
    services: usize,
    /// Static endpoints per service (both runs).
    #[arg(long, default_value_t = 3)]
    endpoints: usize,
    /// Services of the large mesh of the RSS comparison.
    #[arg(long, default_value_t = 1000)]
    rss_services: usize,
    /// Services of the small mesh of the RSS comparison.
    #[arg(long, default_value_t = 10)]
    rss_small: usize,
    /// Services the scoped sidecar of the RSS comparison may reach.
    #[arg(long, default_value_t = 5)]
    rss_scope: usize,
    /// Run only one of the two measurements.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Sidecars speak DeltaAggregatedResources instead of state of the world.
    #[arg(long)]
    delta: bool,
    /// Envoys starting at once (each until it is ready).
    #[arg(long, default_value_t = 4)]
    start_concurrency: usize,
    /// How often each Envoy's route version is polled, in milliseconds
    /// (the latency comes from Envoy's own reload timestamp, not the poll).
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Upper bound of each measurement (mesh, Envoys, change) in seconds.
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// How long, in seconds, the route change may take to reach every
    /// Envoy before the ones without it are reported as not converged.
    #[arg(long, default_value_t = 60)]
    change_timeout: u64,
    /// The trellis binary (default: $TRELLIS_BIN, else built next to this program).
    #[arg(long)]
    trellis: Option<PathBuf>,
    /// Exit 1 unless every Envoy converged to the new weights.
    #[arg(long)]
    check: bool,
}

/// Which measurement `--only` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Route change convergence across K sidecars.
    Convergence,
    /// One sidecar's RSS in scoped, small and unscoped meshes.
    Rss,
}

/// A mesh on disk with `trellis serve` running on it; the directory goes
/// when this is dropped, after the server (fields drop in order).
struct Running {
    server: Server,
    config: PathBuf,
    tmp: tempfile::TempDir,
}

impl Running {
    async fn start(bin: &Path, mesh: &Mesh) -> anyhow::Result<Running> {
        let tmp = tempfile::tempdir()?;
        let (config, state) = (tmp.path().join("config"), tmp.path().join("state"));
        std::fs::create_dir_all(&config)?;
        mesh.write_all(&config)?;
        let log = tmp.path().join("trellis.log");
        let server = Server::start(bin, &config, &state, true, &log).await?;
        Ok(Running {
            server,
            config,
            tmp,
        })
    }

    /// A scratch directory for bootstraps and Envoy logs.
    fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

impl EnvoyArgs {
    fn ads_mode(&self) -> &'static str {
        if self.delta {
            "delta"
        } else {
            "sotw"
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.duration)
    }
}

/// Runs the measurements and prints their JSON lines; Ok(false) when
/// `--check` found an Envoy that did not converge. Ctrl-C drops the run,
/// and with it every child (their guards kill and reap them).
pub async fn envoy(args: EnvoyArgs) -> anyhow::Result<bool> {
    tokio::select! {
        r = run(&args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}

async fn run(args: &EnvoyArgs) -> anyhow::Result<bool> {
    let bin = server::trellis_bin(args.trellis.clone())?;
    let mut ok = true;
    if args.only != Some(Only::Rss) {
        ok &= converge::run(args, &bin).await?;
    }
    if args.only != Some(Only::Convergence) {
        rss::run(args, &bin).await?;
    }
    Ok(!args.check || ok)
}
