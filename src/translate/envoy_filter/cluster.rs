//! CLUSTER patches (Istio's `cluster_patch.go`).

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use prost::Name;

use super::merge::{merge_any, merge_lists};
use super::{Patcher, Step};
use crate::config::model::{ApplyTo, ObjectMatch, Operation, PatchContext, PatchValue};

/// Applies CLUSTER patches to `clusters`: MERGE and REMOVE on those
/// that match, then ADD (on the outbound or gateway side). `service` is
/// the proxy's own service host, which its inbound cluster stands for;
/// `adds` is false where only a proxy's own clusters are patched (the
/// added ones go with the shared set, once).
pub fn patch_clusters(
    patcher: &mut Patcher<'_>,
    clusters: &mut Vec<Cluster>,
    service: &str,
    adds: bool,
) {
    if patcher.is_empty() {
        return;
    }
    clusters.retain_mut(|c| patch_cluster(patcher, c, service));
    if !adds {
        return;
    }
    let context = patcher.add_context();
    for step in (patcher.patches(ApplyTo::Cluster, context)).collect::<Vec<_>>() {
        if let (Operation::Add, Some(PatchValue::Cluster(v))) =
            (step.patch.operation, &step.patch.value)
        {
            patcher.record(&step, &Cluster::type_url(), &v.name);
            clusters.push((**v).clone());
        }
    }
}

/// The context a cluster is patched in.
fn context_of(patcher: &Patcher<'_>, c: &Cluster) -> PatchContext {
    if patcher.gateway {
        PatchContext::Gateway
    } else if c.name.starts_with("inbound|") {
        PatchContext::SidecarInbound
    } else {
        PatchContext::SidecarOutbound
    }
}

/// False when a patch removed `c`.
fn patch_cluster(patcher: &mut Patcher<'_>, c: &mut Cluster, service: &str) -> bool {
    let context = context_of(patcher, c);
    for step in (patcher.patches(ApplyTo::Cluster, context)).collect::<Vec<_>>() {
        if !cluster_matches(c, &step, service) {
            continue;
        }
        match (step.patch.operation, &step.patch.value) {
            (Operation::Remove, _) => {
                patcher.record(&step, &Cluster::type_url(), &c.name);
                return false;
            }
            (Operation::Merge, Some(PatchValue::Cluster(v))) => {
                match merge_cluster(c, v, step.patch.replace_lists) {
                    Ok(()) => patcher.record(&step, &Cluster::type_url(), &c.name),
                    Err(e) => patcher.error(&step, &format!("cluster {}", c.name), e),
                }
            }
            _ => {}
        }
    }
    true
}

/// Istio's `clusterMatch`: by name, else by the parts of
/// `DIRECTION|PORT|SUBSET|HOST` (an inbound cluster's host is the
/// proxy's service).
fn cluster_matches(c: &Cluster, step: &Step<'_>, service: &str) -> bool {
    let ObjectMatch::Cluster(m) = &step.patch.object else {
        return true;
    };
    if !m.name.is_empty() {
        return m.name == c.name;
    }
    let mut parts = c.name.splitn(4, '|');
    let (direction, port, subset, host) = (
        parts.next().unwrap_or_default(),
        parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let host = if direction == "inbound" {
        service
    } else {
        host
    };
    (m.subset.is_empty() || m.subset == subset)
        && (m.service.is_empty() || m.service == host)
        && (m.port_number == 0 || m.port_number == port)
}

/// Istio's cluster MERGE: a transport socket in the patch merges into
/// the cluster's socket of that name (a transport socket match's, with
/// auto mTLS) and nothing else merges; otherwise a proto merge.
fn merge_cluster(c: &mut Cluster, patch: &Cluster, replace_lists: bool) -> Result<(), String> {
    let Some(src) = &patch.transport_socket else {
        return merge_lists(c, patch, replace_lists);
    };
    let target: Option<&mut TransportSocket> = if !c.transport_socket_matches.is_empty() {
        let found = (c.transport_socket_matches.iter_mut())
            .filter_map(|m| m.transport_socket.as_mut())
            .find(|t| t.name == src.name);
        match found {
            Some(t) => Some(t),
            // Istio leaves the matches alone when none has that name.
            None => return Ok(()),
        }
    } else {
        c.transport_socket.as_mut().filter(|t| t.name == src.name)
    };
    let Some(dst) = target else {
        c.transport_socket = Some(src.clone());
        return Ok(());
    };
    if let (Some(ConfigType::TypedConfig(d)), Some(ConfigType::TypedConfig(s))) =
        (&dst.config_type, &src.config_type)
    {
        dst.config_type = Some(ConfigType::TypedConfig(merge_any(d, s)?));
    }
    Ok(())
}
