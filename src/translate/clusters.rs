//! Outbound clusters: one per service port (`outbound|PORT||HOST`) and one
//! per `DestinationRule` subset (`outbound|PORT|SUBSET|HOST`), as istiod
//! builds them (`pilot/pkg/networking/core/cluster_builder.go`).

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster as XdsCluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use super::endpoints::load_assignment;
use super::policy::{self, effective};
use super::util::{ads, zero_duration};
use crate::config::model::{DestinationRule, MeshConfig, Resolution, ServicePort, Subset};
use crate::registry::ServiceView;

/// Istio's outbound cluster name: `outbound|PORT|SUBSET|HOST`.
pub fn cluster_name(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// Clusters of every service, and the load assignments of those that use
/// EDS. Deterministic order: by host, port, then subset as declared.
pub fn outbound(
    mesh: &MeshConfig,
    services: &[&ServiceView],
) -> (Vec<XdsCluster>, Vec<ClusterLoadAssignment>) {
    let mut clusters = Vec::new();
    let mut assignments = Vec::new();
    for view in services {
        let dr = mesh.destination_rules.get(&view.host).map(|d| d.as_ref());
        for port in &view.ports {
            let subsets = dr.map(|d| d.subsets.iter()).into_iter().flatten();
            for subset in std::iter::once(None).chain(subsets.map(Some)) {
                let (c, cla) = build(view, port, dr, subset);
                clusters.push(c);
                assignments.extend(cla);
            }
        }
    }
    (clusters, assignments)
}

/// One cluster; the assignment is returned for EDS clusters and inlined
/// for DNS ones.
fn build(
    view: &ServiceView,
    port: &ServicePort,
    dr: Option<&DestinationRule>,
    subset: Option<&Subset>,
) -> (XdsCluster, Option<ClusterLoadAssignment>) {
    let name = cluster_name(
        port.number,
        subset.map(|s| s.name.as_str()),
        view.host.as_str(),
    );
    let cla = load_assignment(
        &name,
        &view.instances,
        port.number,
        subset.map(|s| &s.labels),
    );
    let mut c = XdsCluster {
        name,
        ..Default::default()
    };
    policy::apply(&mut c, &effective(dr, port.number, subset), port);
    let eds = set_discovery(&mut c, view.resolution, cla);
    (c, eds)
}

/// EDS over ADS for STATIC services (the assignment is returned, to be
/// served on its own); STRICT_DNS with the assignment inline for DNS.
fn set_discovery(
    c: &mut XdsCluster,
    resolution: Resolution,
    cla: ClusterLoadAssignment,
) -> Option<ClusterLoadAssignment> {
    let kind = match resolution {
        Resolution::Static => cluster::DiscoveryType::Eds,
        Resolution::Dns => cluster::DiscoveryType::StrictDns,
    };
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(kind as i32));
    match resolution {
        Resolution::Static => {
            let mut eds_config = ads();
            // Istio waits for EDS as long as it takes (0 = no timeout).
            eds_config.initial_fetch_timeout = Some(zero_duration());
            c.eds_cluster_config = Some(cluster::EdsClusterConfig {
                eds_config: Some(eds_config),
                service_name: c.name.clone(),
            });
            Some(cla)
        }
        Resolution::Dns => {
            c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
            c.load_assignment = Some(cla);
            None
        }
    }
}

#[cfg(test)]
mod tests;
