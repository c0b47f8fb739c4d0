//! Outbound clusters: one per service port (`outbound|PORT||HOST`) and one
//! per `DestinationRule` subset (`outbound|PORT|SUBSET|HOST`), as istiod
//! builds them (`pilot/pkg/networking/core/cluster_builder.go`).

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster as XdsCluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use super::endpoints::load_assignment;
use super::policy::{self, effective};
use super::tls;
use super::util::{ads, zero_duration};
use crate::config::model::{
    ClientTls, ClientTlsMode, DestinationRule, Location, MeshConfig, Resolution, ServicePort,
    Subset,
};
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
    let trust_domain = mesh.mesh.trust_domain.as_str();
    for view in services {
        let dr = mesh.destination_rules.get(&view.host).map(|d| d.as_ref());
        for port in &view.ports {
            let subsets = dr.map(|d| d.subsets.iter()).into_iter().flatten();
            for subset in std::iter::once(None).chain(subsets.map(Some)) {
                let (mut c, cla) = build(view, port, dr, subset);
                let tls = effective(dr, port.number, subset).tls;
                let subset_name = subset.map(|s| s.name.as_str());
                set_tls(&mut c, tls, view, port.number, subset_name, trust_domain);
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

/// Upstream TLS per `DestinationRule` `tls`, else Istio's auto mTLS for
/// in-mesh EDS services: mTLS to endpoints labelled `tlsMode: istio`
/// (sidecars), plaintext to the rest. The server must present the SPIFFE
/// ID of one of the service's sidecars (ISTIO_MUTUAL: or the rule's
/// `subjectAltNames`). SNI is Istio's `outbound_.PORT_.SUBSET_.HOST`.
fn set_tls(
    c: &mut XdsCluster,
    tls: Option<&ClientTls>,
    view: &ServiceView,
    port: u16,
    subset: Option<&str>,
    trust_domain: &str,
) {
    let sni = format!("outbound_.{port}_.{}_.{}", subset.unwrap_or(""), view.host);
    let mut ids: Vec<String> = (view.instances.iter())
        .filter_map(|i| i.identity.as_ref())
        .map(|id| id.spiffe_id(trust_domain))
        .collect();
    ids.sort();
    ids.dedup();
    match tls {
        None if view.resolution == Resolution::Static
            && view.location == Location::MeshInternal =>
        {
            let mtls = tls::istio_mutual(&ids, trust_domain, &sni);
            c.transport_socket_matches = tls::auto_mtls_matches(mtls);
        }
        None => {}
        Some(t) => match t.mode {
            ClientTlsMode::Disable => {}
            ClientTlsMode::IstioMutual => {
                let sans = if t.subject_alt_names.is_empty() {
                    &ids
                } else {
                    &t.subject_alt_names
                };
                let sni = t.sni.as_deref().unwrap_or(&sni);
                c.transport_socket = Some(tls::istio_mutual(sans, trust_domain, sni));
            }
            ClientTlsMode::Simple | ClientTlsMode::Mutual => {
                c.transport_socket = Some(tls::from_files(t, view.host.as_str()));
            }
        },
    }
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
