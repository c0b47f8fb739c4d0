//! Replicas: the store this control plane shares with others, opened at
//! start, and the loop that applies what other replicas do (registrations,
//! deregistrations, revocations) and the store's health (`/readyz`).

use std::sync::Arc;

use tokio::sync::watch;

use super::auth::StreamAuth;
use super::core::Core;
use super::rotation::shared::{self, Stored};
use super::{ServeError, ServeOptions};
use crate::ca::Ca;
use crate::store::etcd::TrustMarks;
use crate::store::{EtcdFeed, EtcdStore, Store, StoreEvent, StoreHealth, StoreMetrics};

/// The local state directory, or etcd with its feed of other replicas'
/// changes.
pub(super) async fn open_store(
    opts: &ServeOptions,
    ca: &Ca,
    auth: &StreamAuth,
    metrics: StoreMetrics,
) -> Result<(Store, Option<EtcdFeed>), ServeError> {
    let Some(etcd) = &opts.store else {
        let state_dir = opts.state_dir.clone();
        return Ok((Store::Local { state_dir }, None));
    };
    let staged = (opts.plugin_ca.as_ref()).map(|p| p.next());
    let next_roots = staged
        .filter(|next| next.cert.exists())
        .and_then(|next| Ca::identity_of(&next).ok())
        .map(|(_, roots)| roots);
    let marks = TrustMarks {
        roots: ca.roots_mark(),
        token_key: auth.tokens().key_check(),
        next_roots,
    };
    tracing::info!(endpoints = ?etcd.endpoints, prefix = %etcd.prefix, lease_ttl = ?etcd.lease_ttl, "sharing state in etcd");
    let (store, feed) = EtcdStore::start(etcd.clone(), marks, metrics).await?;
    Ok((Store::Etcd(store), Some(feed)))
}

/// Applies the store's events and health until `stop` fires.
pub(super) async fn store_loop(
    core: Arc<Core>,
    mut feed: EtcdFeed,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            event = feed.events.recv() => match event {
                Some(event) => apply(&core, event),
                None => return,
            },
            changed = feed.health.changed() => {
                if changed.is_err() {
                    return;
                }
                let health = feed.health.borrow_and_update().clone();
                core.admin.set_store_problem(match health {
                    StoreHealth::Up => None,
                    StoreHealth::Connecting => Some("store: connecting to etcd".into()),
                    StoreHealth::Down(why) => Some(why),
                });
            }
            _ = stop.changed() => return,
        }
    }
}

fn apply(core: &Core, event: StoreEvent) {
    match event {
        StoreEvent::Registered(proxy) => core.remote_registered(*proxy),
        StoreEvent::Removed(id) => core.remote_removed(&id),
        StoreEvent::Snapshot(proxies) => core.remote_snapshot(proxies),
        StoreEvent::Status(record) => core.peers.set(*record),
        StoreEvent::StatusRemoved { replica, node } => core.peers.remove(&replica, &node),
        StoreEvent::StatusSnapshot(records) => core.peers.replace(records),
        StoreEvent::Rotation(stored) => {
            let stored = stored.map(|b| {
                let (record, raw) = *b;
                Stored { record, raw }
            });
            shared::follow(core, stored);
        }
        StoreEvent::Driver(holder) => {
            core.shared_rotation.driver.send_replace(holder);
        }
        StoreEvent::Settled(replicas) => {
            core.shared_rotation.settled.send_replace(replicas);
        }
        StoreEvent::Rollout(raw) => core.rollout_follow(raw),
        StoreEvent::RolloutDriver(holder) => {
            if let Some(shared) = &core.rollout.shared {
                shared.driver.send_replace(holder);
                core.rollout.changed.notify_one();
            }
        }
        StoreEvent::Revoked(jti) => {
            let tokens = core.auth.tokens();
            if tokens.is_revoked(&jti) {
                return;
            }
            // Appended to this replica's list: the revocation loop then cuts
            // the streams that presented it, as for a local revocation.
            match tokens.revoke(&jti) {
                Ok(()) => tracing::info!(jti = %jti, "token revoked through another replica"),
                Err(e) => tracing::warn!(jti = %jti, "recording a revocation from the store: {e}"),
            }
        }
    }
}
