//! From config + registry to one xDS snapshot per registered sidecar.
//!
//! Translation of what proxies share runs once per change; each resource is
//! encoded once and the same `Arc<Versioned>` goes into every snapshot that
//! carries it; proxies with the same view share whole sets (see
//! [`build`]; docs/architecture.md, "Performance").

mod build;
mod route_bytes;
mod split;
#[cfg(test)]
mod tests;
mod unselected;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub(crate) use build::{BuildState, Built};

use super::certs::Certs;
use super::core::{lock, Core};
use crate::config::model::MeshConfig;
use crate::registry::{instances, Proxy, Registry};
use crate::translate::provenance::PatchIndex;
use crate::translate::{self, ProxySecurity};

/// Snapshots for every sidecar in `registry`, by node id, from a fresh
/// [`BuildState`]. With `certs`, each proxy gets its own certificate and
/// mTLS per policy; a proxy whose certificate cannot be issued gets
/// plaintext resources (and an error log).
#[cfg(test)]
pub(crate) fn build_all(
    mesh: &MeshConfig,
    registry: &Registry,
    certs: Option<&Certs>,
) -> Vec<(String, Arc<crate::xds::Snapshot>, bool)> {
    build_with(&mut BuildState::default(), mesh, registry, certs).snapshots
}

/// [`build_all`] with the state of earlier builds, so unchanged resources
/// keep their encoding and unchanged proxies their own resources.
#[cfg(test)]
pub(crate) fn build_with(
    state: &mut BuildState,
    mesh: &MeshConfig,
    registry: &Registry,
    certs: Option<&Certs>,
) -> Built {
    build_served(state, mesh, registry, certs, &|_| true)
}

/// Snapshots for the sidecars of `registry` that `serves` (those whose
/// streams this replica holds or awaits); every sidecar is still an
/// endpoint. Another replica's or cluster's sidecars get their snapshots
/// and leaves there: building them here too would double each replica's
/// work and issue leaves nobody fetches.
pub(crate) fn build_served(
    state: &mut BuildState,
    mesh: &MeshConfig,
    registry: &Registry,
    certs: Option<&Certs>,
    serves: &dyn Fn(&str) -> bool,
) -> Built {
    state.unselected_gateways =
        unselected::log_changes(&state.unselected_gateways, &mesh.gateways, registry);
    let now = SystemTime::now();
    let bundle = certs.map(|c| c.ca.trust_bundle_pem()).unwrap_or_default();
    let security = |proxy: &Proxy| {
        certs.map_or_else(ProxySecurity::default, |c| {
            match c.for_proxy(proxy, &mesh.mesh, now, &bundle) {
                Ok(certs) => ProxySecurity {
                    mtls: true,
                    certs: Some(certs),
                },
                Err(e) => {
                    tracing::error!(node = %proxy.id, "no workload certificate: {e}");
                    ProxySecurity::default()
                }
            }
        })
    };
    let proxies = registry.sidecars().values();
    build_for(
        state,
        mesh,
        registry,
        proxies.filter(|p| serves(&p.id)),
        &security,
    )
}

/// The one path from config and registry to snapshots, shared by `serve`
/// and the offline renderer ([`crate::render`]), so that what `trellis
/// diff` and `validate --envoy` show is what `serve` would send: joins
/// `mesh` with `registry`, translates what proxies share once, and builds
/// a snapshot for each of `proxies` with the security `security` gives it.
pub(crate) fn build_for<'a>(
    state: &mut BuildState,
    mesh: &MeshConfig,
    registry: &Registry,
    proxies: impl Iterator<Item = &'a Arc<Proxy>>,
    security: &dyn Fn(&Proxy) -> ProxySecurity,
) -> Built {
    let t0 = Instant::now();
    let services = instances(mesh, registry);
    let t1 = Instant::now();
    let mut shared = translate::shared_from(mesh, &services, state.previous());
    shared.credentials = state.credentials.clone();
    shared.jwt.fetched = state.jwks.clone();
    let t2 = Instant::now();
    let proxies = proxies.map(|p| (p, security(p))).collect();
    let t3 = Instant::now();
    let built = state.build(shared, proxies);
    // Where a rebuild's time goes, for profiling at scale (debug log).
    tracing::debug!(
        join = ?(t1 - t0),
        translate = ?(t2 - t1),
        certs = ?(t3 - t2),
        build = ?t3.elapsed(),
        "rebuild phases"
    );
    built
}

/// The rebuild `trellis serve` runs on each change, outside a server and
/// without certificates (sidecars get plaintext resources, as with no CA):
/// for benchmarks and profiles of the translation and snapshot work, which
/// keep their state from one call to the next as the server does.
#[derive(Default)]
pub struct Rebuilder {
    state: BuildState,
}

impl Rebuilder {
    /// A builder with no earlier build.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds every sidecar's snapshot; returns how many are new (not the
    /// very snapshot of the last build).
    pub fn rebuild(&mut self, mesh: &MeshConfig, registry: &Registry) -> usize {
        let built = build_served(&mut self.state, mesh, registry, None, &|_| true);
        built
            .snapshots
            .iter()
            .filter(|(_, _, fresh)| *fresh)
            .count()
    }
}

impl Core {
    /// Rebuilds every sidecar's snapshot from the config and registry in
    /// force, and drops the snapshots of sidecars that left.
    pub(crate) fn rebuild(&self) {
        let started = Instant::now();
        let ticket = self.rebuild_ticket();
        let mesh = self.config.load_full();
        let plan = self.rollout.plan(&mesh);
        let registry = Arc::clone(&lock(&self.registry));
        self.save_registry(&registry);
        let Built {
            snapshots,
            gone,
            retired,
            skipped_servers,
        } = {
            let served = self.served_ids();
            self.build_planned(&plan, &registry, &served)
        };
        // Before the push, so that a NACK of it finds its patches.
        self.note_patches();
        let built = Instant::now();
        let mut changed = 0usize;
        for (id, snap, fresh) in snapshots {
            // Not fresh: the cache holds this very snapshot already. Fresh
            // but with the same versions: streams need not even wake up.
            if !fresh
                || self
                    .cache
                    .get(&id)
                    .is_some_and(|old| old.same_versions(&snap))
            {
                continue;
            }
            changed += 1;
            // Convergence is timed from the start of the rebuild.
            self.status.expect_snapshot(&id, &snap, started);
            self.cache.set(&id, snap);
        }
        // Only builds set snapshots and issue leaves, so the proxies the
        // last build had and this one has not are all there is to drop.
        self.certs.forget(&gone);
        for id in &gone {
            self.cache.remove(id);
        }
        drop(retired);
        self.metrics.set_sidecars(registry.sidecars().len());
        self.metrics.set_gateway_servers_skipped(skipped_servers);
        self.rebuilt
            .fetch_max(ticket, std::sync::atomic::Ordering::SeqCst);
        tracing::debug!(
            proxies = registry.sidecars().len(),
            changed,
            generation = self.generation(),
            elapsed = ?started.elapsed(),
            publish = ?built.elapsed(),
            "snapshots rebuilt"
        );
    }
}

impl Core {
    /// Publishes which resources `EnvoyFilter` patches changed at the
    /// last build (of both generations during a rollout).
    fn note_patches(&self) {
        let index = {
            let (build, held) = (lock(&self.build), lock(&self.held_build));
            let patched = (build.envoy_filters.patched.iter()).chain(&held.envoy_filters.patched);
            PatchIndex::new(patched)
        };
        if **self.patches.load() != index {
            self.patches.store(Arc::new(index));
        }
    }
}

/// Rebuilds start at most this often. A change after a quiet spell is
/// rebuilt at once; a burst (say 500 sidecars registering within a second)
/// is coalesced into one rebuild per interval, so no change waits longer
/// than this interval or the rebuild in progress.
pub(crate) const MIN_REBUILD_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// How long rebuilds and pushes must pause before the memory they freed is
/// handed back to the OS. A burst of changes keeps it (the next rebuild
/// reuses it without faulting pages in again); an idle control plane does
/// not. Pushes count too: after a rebuild the streams go on sending (and
/// freeing) responses, at scale for seconds, e.g. the initial sync of
/// thousands of sidecars, and what they free would stay resident otherwise.
pub(crate) const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

/// Rebuilds on every dirty signal until `stop` fires. `Notify` keeps at
/// most one pending permit: the first signal is acted on at once (leading
/// edge) and any burst during a rebuild, or within [`MIN_REBUILD_INTERVAL`]
/// of its start, collapses into one more rebuild. Once neither a rebuild
/// nor a push happened for [`RELEASE_AFTER`], `release` (if any) runs once.
pub(crate) async fn rebuild_loop(
    core: Arc<Core>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    release: Option<fn()>,
) {
    let mut last_start: Option<tokio::time::Instant> = None;
    // When to look again whether the streams went quiet, and the count of
    // responses sent when last looked.
    let mut check: Option<(tokio::time::Instant, u64)> = None;
    loop {
        let due = check.zip(release);
        tokio::select! {
            _ = core.dirty.notified() => {}
            _ = stop.changed() => return,
            () = sleep_until_some(due.map(|((at, _), _)| at)) => {
                check = match due {
                    Some(((_, seen), release)) => release_when_quiet(&core.status, seen, release).await,
                    None => None,
                };
                continue;
            }
        }
        if let Some(due) = last_start.map(|t| t + MIN_REBUILD_INTERVAL) {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.changed() => return,
            }
        }
        last_start = Some(tokio::time::Instant::now());
        // Translation and encoding are CPU work that grows with the mesh:
        // keep it off the threads that serve the streams.
        let c = Arc::clone(&core);
        if let Err(e) = tokio::task::spawn_blocking(move || c.rebuild()).await {
            tracing::error!("snapshot rebuild panicked: {e}");
        }
        check = Some((
            tokio::time::Instant::now() + RELEASE_AFTER,
            core.status.responses_sent(),
        ));
    }
}

/// Runs `release` when no response was sent since the count was `seen`;
/// else returns when and against which count to look again.
async fn release_when_quiet(
    status: &crate::xds::ProxyStatusTable,
    seen: u64,
    release: fn(),
) -> Option<(tokio::time::Instant, u64)> {
    let sent = status.responses_sent();
    if sent != seen {
        return Some((tokio::time::Instant::now() + RELEASE_AFTER, sent));
    }
    let _ = tokio::task::spawn_blocking(release).await;
    None
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
