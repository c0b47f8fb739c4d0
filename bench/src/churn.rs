//! `trellis-bench churn`: endpoint churn (the target: at least 100
//! registrations/deregistrations per second sustained without falling
//! behind).
//!
//! In Trellis a registration is a sidecar opening its ADS stream (its node
//! metadata names its service and inbound address) and a deregistration is
//! its last stream closing plus the grace period. So the bench connects new
//! simulated sidecars of the churned services at R per second and closes
//! the oldest at the same rate (a steady population), while W observer
//! sidecars of another service, subscribed to the churned services' EDS
//! through CDS as Envoy does, ACK every update. Per registration it times
//! the connect until every observer ACKed an EDS response holding the new
//! endpoint; per deregistration, close + grace until every observer ACKed
//! one without it.

mod fleet;
mod ledger;
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::time::MissedTickBehavior;

use crate::mesh::Mesh;
use crate::run::measure::{wait, wait_synced};
use crate::server::{self, Server};
use fleet::Fleet;
use report::Report;

/// Bound of each wait outside the measured window: the server listening,
/// the observers' first sync, the first population being observed, and
/// the drain after the window.
const WAIT: Duration = Duration::from_secs(60);

/// Flags of `trellis-bench churn`.
#[derive(Debug, clap::Args)]
pub struct ChurnArgs {
    /// Registrations (and, once the population is reached,
    /// deregistrations) per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of churn (the measured window).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Churned services: the churning sidecars belong to them round robin.
    #[arg(long, default_value_t = 1)]
    pub services: usize,
    /// Observer sidecars (of one more service) that ACK every update.
    #[arg(long, default_value_t = 10)]
    pub observers: usize,
    /// Churning sidecars alive at once (default: 2 × rate, so each lives
    /// about 2 s).
    #[arg(long)]
    pub population: Option<usize>,
    /// `trellis serve --grace-period` in milliseconds: how long a closed
    /// sidecar stays an endpoint.
    #[arg(long, default_value_t = 100)]
    pub grace_ms: u64,
    /// Use DeltaAggregatedResources instead of state of the world.
    #[arg(long)]
    pub delta: bool,
    /// The trellis binary (default: $TRELLIS_BIN, else built next to this program).
    #[arg(long)]
    pub trellis: Option<PathBuf>,
    /// Exit 1 unless every registration and deregistration was observed
    /// by every observer (the CI correctness check).
    #[arg(long)]
    pub check: bool,
}

/// Runs the churn benchmark and prints its JSON line; Ok(false) when
/// `--check` found an update some observer never saw.
pub async fn churn(args: ChurnArgs) -> anyhow::Result<bool> {
    if !(args.rate > 0.0 && args.rate.is_finite()) || args.observers == 0 {
        bail!("--rate must be positive and --observers at least 1");
    }
    let population = args
        .population
        .unwrap_or((2.0 * args.rate).ceil() as usize)
        .max(1);
    let tmp = tempfile::tempdir()?;
    let server = start_server(&args, tmp.path()).await?;
    let url = format!("http://{}", server.xds);
    let grace = Duration::from_millis(args.grace_ms);
    let services = args.services.max(1);
    let mut fleet = Fleet::new(url, args.delta, services, args.observers, grace);
    let observers = fleet.start_observers()?;
    if !wait_synced(&observers, Instant::now() + WAIT).await {
        bail!("the observers did not sync within {WAIT:?}");
    }
    populate(&mut fleet, population).await?;

    let cpu0 = server.cpu_s()?;
    let mut report = window(&mut fleet, &args, population).await?;
    report.cpu_s = server.cpu_s()? - cpu0;
    report.rss_kb = server.rss_kb()?;
    report.drained = drain(&fleet, &report).await;
    report.stream_errors = fleet.global.errors.load(Ordering::Relaxed);
    println!("{}", report.json(&args, population, &fleet.ledger));
    let ok = report.all_observed(&fleet.ledger) && fleet.ledger.flaps() == 0;
    drop(fleet);
    drop(server);
    Ok(!args.check || (ok && report.stream_errors == 0))
}

/// Writes the mesh (the churned services plus the observers' own, one
/// static endpoint each) and starts `trellis serve` with the grace period.
async fn start_server(args: &ChurnArgs, tmp: &Path) -> anyhow::Result<Server> {
    let bin = server::trellis_bin(args.trellis.clone())?;
    let (config, state) = (tmp.join("config"), tmp.join("state"));
    std::fs::create_dir_all(&config)?;
    let mesh = Mesh {
        services: args.services.max(1) + 1,
        endpoints: 1,
        scope: None,
    };
    mesh.write_all(&config)?;
    let grace = format!("{}ms", args.grace_ms);
    let extra = ["--grace-period", grace.as_str()];
    let log = tmp.join("trellis.log");
    Server::start_with(&bin, &config, &state, true, &log, &extra).await
}

/// Connects the first `population` sidecars and waits (bounded) until
/// every observer saw them, so the window starts in a steady state.
async fn populate(fleet: &mut Fleet, population: usize) -> anyhow::Result<()> {
    let first: Vec<String> = (0..population)
        .map(|_| fleet.open())
        .collect::<anyhow::Result<_>>()?;
    let ledger = fleet.ledger.clone();
    let all_seen = || {
        first
            .iter()
            .all(|a| ledger.registration(a).is_some_and(|o| o.lag.is_some()))
    };
    if !wait(Instant::now() + WAIT, all_seen).await {
        bail!("the first {population} sidecars were not observed within {WAIT:?}");
    }
    Ok(())
}

/// The measured window: one new sidecar every 1/rate seconds (late ticks
/// catch up in a burst), closing the oldest once above `population`.
async fn window(fleet: &mut Fleet, args: &ChurnArgs, population: usize) -> anyhow::Result<Report> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut report = Report::new(fleet.ledger.now());
    let end = Instant::now() + Duration::from_secs(args.duration);
    while Instant::now() < end {
        tick.tick().await;
        report.opened.push(fleet.open()?);
        if fleet.live() > population {
            report.closed.extend(fleet.close_oldest());
        }
    }
    report.end = fleet.ledger.now();
    Ok(report)
}

/// Waits (bounded) until every registration and deregistration of the
/// window was observed; false if some never were.
async fn drain(fleet: &Fleet, report: &Report) -> bool {
    wait(Instant::now() + WAIT, || report.all_observed(&fleet.ledger)).await
}
