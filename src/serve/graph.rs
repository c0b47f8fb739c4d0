//! The sidecar stats scraper of `serve`: every registered sidecar with a
//! stats port is a target (so every replica sees the whole mesh, which a
//! staged rollout's comparison needs), scraped into `Core::samples`
//! beside the push path, never in it.

use std::sync::Arc;

use tokio::sync::watch;

use super::core::{lock, Core};
use super::GraphOptions;
use crate::graph::{ScrapeOptions, Target};

/// Scrapes the registered sidecars until `stop` fires.
pub(super) async fn scrape_loop(core: Arc<Core>, opts: GraphOptions, stop: watch::Receiver<bool>) {
    let store = core.samples.clone();
    let targets = move || targets(&core);
    crate::graph::scrape_loop(
        targets,
        store,
        ScrapeOptions::every(opts.scrape_interval),
        stop,
    )
    .await;
}

/// The registry's sidecars that told where their stats are.
fn targets(core: &Core) -> Vec<Target> {
    let registry = Arc::clone(&lock(&core.registry));
    (registry.sidecars().values())
        .filter_map(|p| {
            Some(Target {
                addr: p.stats_addr()?,
                proxy: p.id.clone(),
                service: Some(p.host().to_string()),
            })
        })
        .collect()
}
