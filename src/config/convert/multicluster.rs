//! `Mesh.spec.multiCluster`: names, networks and the remote clusters'
//! stores, each error at its field.

use std::collections::BTreeSet;

use super::{is_dns_label, is_dns_subdomain, Cx};
use crate::config::model::{MultiCluster, RemoteCluster};
use crate::config::raw::peer_authentication as raw;
use crate::store::etcd::parse_store_url;

/// The store prefix remote clusters use unless `storePrefix` says
/// otherwise (`trellis serve --store-prefix`'s default).
pub(crate) const DEFAULT_STORE_PREFIX: &str = "/trellis";

/// Converts `multiCluster`; `None` when any field is wrong.
pub(crate) fn multi_cluster(cx: &mut Cx<'_>, m: &raw::MultiCluster) -> Option<MultiCluster> {
    let before = cx.diags.len();
    let base = "spec.multiCluster";
    let cluster_name = match &m.cluster_name {
        Some(name) => name_field(cx, &format!("{base}.clusterName"), name),
        None => {
            let msg = "`clusterName` must be set: the name of this cluster";
            cx.err(base, msg);
            String::new()
        }
    };
    let network = (m.network.as_ref())
        .map(|n| network_field(cx, &format!("{base}.network"), n))
        .unwrap_or_default();
    let mut names = BTreeSet::new();
    let mut remotes = Vec::new();
    for (i, r) in m.remote_clusters.iter().enumerate() {
        let path = format!("{base}.remoteClusters[{i}]");
        let Some(remote) = remote(cx, &path, r, &network) else {
            continue;
        };
        if remote.name == cluster_name {
            let msg = format!("{:?} is this cluster's own name", remote.name);
            cx.err(&format!("{path}.name"), msg);
        } else if !names.insert(remote.name.clone()) {
            let msg = format!("remote cluster {:?} is listed twice", remote.name);
            cx.err(&format!("{path}.name"), msg);
        }
        remotes.push(remote);
    }
    (cx.diags.len() == before).then_some(MultiCluster {
        cluster_name,
        network,
        remotes,
    })
}

/// One remote cluster; its network defaults to this cluster's.
fn remote(
    cx: &mut Cx<'_>,
    path: &str,
    r: &raw::RemoteCluster,
    own_network: &str,
) -> Option<RemoteCluster> {
    let before = cx.diags.len();
    let name = match &r.name {
        Some(n) => name_field(cx, &format!("{path}.name"), n),
        None => {
            cx.err(path, "`name` must be set");
            String::new()
        }
    };
    let network = match &r.network {
        Some(n) => network_field(cx, &format!("{path}.network"), n),
        None => own_network.to_string(),
    };
    let endpoints = match r.store.as_deref().map(parse_store_url) {
        Some(Ok(Some(endpoints))) => endpoints,
        Some(_) => {
            let msg = "expected etcd://HOST:PORT[,HOST:PORT...] (the remote cluster's --store)";
            cx.err(&format!("{path}.store"), msg);
            Vec::new()
        }
        None => {
            cx.err(path, "`store` must be set: etcd://HOST:PORT[,HOST:PORT...]");
            Vec::new()
        }
    };
    let prefix = r.store_prefix.as_deref().unwrap_or(DEFAULT_STORE_PREFIX);
    if !prefix.starts_with('/') || prefix.len() < 2 {
        let msg = format!("{prefix:?}: expected an absolute key prefix such as /trellis");
        cx.err(&format!("{path}.storePrefix"), msg);
    }
    (cx.diags.len() == before).then(|| RemoteCluster {
        name,
        network,
        endpoints,
        prefix: prefix.to_string(),
    })
}

fn name_field(cx: &mut Cx<'_>, path: &str, name: &str) -> String {
    if !is_dns_label(name) {
        cx.err(path, format!("{name:?} is not a valid DNS-1123 label"));
    }
    name.to_string()
}

fn network_field(cx: &mut Cx<'_>, path: &str, network: &str) -> String {
    if !is_dns_subdomain(network) {
        cx.err(
            path,
            format!("network {network:?} is not a valid DNS-1123 name"),
        );
    }
    network.to_string()
}
