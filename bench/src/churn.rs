//! `trellis-bench churn`: endpoint churn (issue 5: "at least 100
//! registrations/deregistrations per second sustained without falling
//! behind").
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

use std::path::PathBuf;

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
    /// `trellis serve --grace-period` (how long a closed sidecar stays an
    /// endpoint), e.g. 0s, 100ms.
    #[arg(long, default_value = "100ms")]
    pub grace: String,
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
    anyhow::bail!("churn is not implemented yet: {args:?}")
}
