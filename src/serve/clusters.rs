//! Multi-cluster: one read-only watch per remote cluster of the `Mesh`
//! setting (`multiCluster.remoteClusters`), started, restarted and stopped
//! as the config changes, feeding the remote sidecars into the registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::core::Core;
use crate::config::model::RemoteCluster;
use crate::store::etcd::{watch_remote, RemoteEvent};
use crate::store::{EtcdTls, StoreMetrics};

/// Runs the remote clusters' watches until `stop` fires.
pub(super) async fn clusters_loop(
    core: Arc<Core>,
    tls: Option<EtcdTls>,
    metrics: StoreMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<RemoteEvent>();
    let mut running: BTreeMap<String, (RemoteCluster, JoinHandle<()>)> = BTreeMap::new();
    // Every config put in force is compared with the running watches; the
    // first one is in force already.
    let mut installed = core.config_installed();
    installed.mark_changed();
    loop {
        tokio::select! {
            Some(e) = rx.recv() => {
                // A stopped watch's last events are dropped.
                if running.contains_key(&e.cluster) {
                    core.remote_cluster_event(&e.cluster, e.event);
                }
            }
            Ok(()) = installed.changed() => {
                follow_config(&core, &mut running, &tx, tls.as_ref(), &metrics);
            }
            _ = stop.changed() => break,
        }
    }
    for (_, (_, task)) in running {
        task.abort();
    }
}

/// Starts the watches of new or changed remote clusters, stops the others.
fn follow_config(
    core: &Core,
    running: &mut BTreeMap<String, (RemoteCluster, JoinHandle<()>)>,
    tx: &mpsc::UnboundedSender<RemoteEvent>,
    tls: Option<&EtcdTls>,
    metrics: &StoreMetrics,
) {
    let config = core.config.load();
    let wanted: BTreeMap<&str, &RemoteCluster> = (config.mesh.multi_cluster.remotes.iter())
        .map(|r| (r.name.as_str(), r))
        .collect();
    let gone: Vec<String> = (running.iter())
        .filter(|(name, (r, _))| wanted.get(name.as_str()) != Some(&r))
        .map(|(name, _)| name.clone())
        .collect();
    for name in gone {
        if let Some((_, task)) = running.remove(&name) {
            task.abort();
        }
        core.forget_remote_cluster(&name);
    }
    for (name, remote) in wanted {
        if running.contains_key(name) {
            continue;
        }
        match watch_remote(remote.clone(), tls, tx.clone(), metrics.clone()) {
            Ok(task) => {
                tracing::info!(cluster = name, endpoints = ?remote.endpoints, prefix = %remote.prefix, "watching a remote cluster's registry");
                running.insert(name.to_string(), (remote.clone(), task));
            }
            Err(e) => tracing::error!(cluster = name, "cannot watch remote cluster: {e}"),
        }
    }
}
