//! AUTO_PASSTHROUGH: a gateway forwards a client's TLS, untouched, to the
//! mesh service its SNI names (istiod: `buildGatewayListeners` with
//! `AUTO_PASSTHROUGH`, its "SNI-DNAT" clusters).
//!
//! The mapping, which east-west gateways rely on: SNI
//! `outbound_.PORT_.SUBSET_.HOST` (`SUBSET` empty for the whole service,
//! so `outbound_.8080_._.reviews.default.svc.cluster.local`) is exactly
//! the SNI a sidecar sends to cluster `outbound|PORT|SUBSET|HOST` (see
//! `clusters::set_tls`). The gateway proxies it to cluster
//! `outbound_.PORT_.SUBSET_.HOST`: a copy of that outbound cluster (same
//! endpoints over EDS, same `DestinationRule` policy) without any TLS of
//! its own, so the caller's mTLS reaches the destination sidecar end to
//! end.

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch};

use super::super::l4::TCP_PROXY;
use std::sync::Arc;

use crate::config::model::{Gateway, GatewayServer, Host};
use crate::registry::Proxy;
use crate::translate::rules::Profile;
use crate::translate::scope::Scope;
use crate::translate::Shared;

/// The SNI (and gateway cluster name) for outbound cluster `name`
/// (`outbound|PORT|SUBSET|HOST`), `None` for any other cluster.
pub fn sni_for_cluster(name: &str) -> Option<(String, Host)> {
    let mut parts = name.strip_prefix("outbound|")?.splitn(3, '|');
    let (port, subset, host) = (parts.next()?, parts.next()?, parts.next()?);
    port.parse::<u16>().ok()?;
    Some((
        format!("outbound_.{port}_.{subset}_.{host}"),
        Host(host.to_string()),
    ))
}

/// One outbound cluster as an AUTO_PASSTHROUGH gateway proxies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SniCluster {
    /// The service's host.
    pub host: Host,
    /// `outbound_.PORT_.SUBSET_.HOST`: the SNI and the cluster's name.
    pub cluster: XdsCluster,
}

/// The SNI clusters of every outbound cluster, when some `Gateway` has an
/// AUTO_PASSTHROUGH server (else none: sidecars never need them).
pub fn sni_clusters(shared: &Shared) -> Vec<SniCluster> {
    let wanted = (shared.gateways.iter())
        .flat_map(|g| g.servers.iter())
        .any(is_auto_passthrough);
    if !wanted {
        return Vec::new();
    }
    shared.clusters.iter().filter_map(sni_cluster).collect()
}

/// Outbound cluster `c` as an AUTO_PASSTHROUGH gateway proxies to it;
/// `None` for any other cluster.
fn sni_cluster(c: &XdsCluster) -> Option<SniCluster> {
    let (sni, host) = sni_for_cluster(&c.name)?;
    let mut cluster = c.clone();
    cluster.name = sni;
    // The client's TLS passes through: no TLS of our own.
    cluster.transport_socket = None;
    cluster.transport_socket_matches.clear();
    Some(SniCluster { host, cluster })
}

/// The port other networks dial to reach `proxy` as its network's
/// east-west gateway: the listen port of its lowest AUTO_PASSTHROUGH
/// server among the `Gateway`s selecting it (Istio's
/// `cross-network-gateway`, port 15443); `None` for any other proxy.
pub fn east_west_port(gateways: &[Arc<Gateway>], proxy: &Proxy) -> Option<u16> {
    let node = proxy.gateway.as_ref()?;
    (gateways.iter())
        .filter(|g| g.selects(&proxy.labels))
        .flat_map(|g| g.servers.iter())
        .filter(|s| is_auto_passthrough(s))
        .map(|s| s.port)
        .min()
        .map(|port| node.listen_port(port))
}

/// True for a server in mode AUTO_PASSTHROUGH.
pub(crate) fn is_auto_passthrough(s: &GatewayServer) -> bool {
    (s.tls.as_ref())
        .is_some_and(|t| t.mode == Some(crate::config::model::ServerTlsMode::AutoPassthrough))
}

/// The SNI clusters server `s` exposes: those of services in the
/// gateway's scope whose host (and namespace) the server's hosts admit.
/// Where the gateway sees another DestinationRule than a host's default
/// (`profile`), that host's clusters are the ones of the rule it sees.
pub(super) fn exposed(
    shared: &Shared,
    scope: Option<&Scope<'_>>,
    s: &GatewayServer,
    profile: &Profile,
) -> Vec<SniCluster> {
    let varied: Vec<_> = (profile.iter())
        .filter_map(|&entry| {
            let contested = shared.rule_variants.clusters(entry)?;
            Some((&contested.host, &contested.variants[entry.1 as usize].1))
        })
        .collect();
    let shown = |c: &SniCluster| {
        let ns = shared.service_namespaces.get(&c.host);
        let ns = ns.map_or("", String::as_str);
        scope.is_none_or(|sc| sc.admits_host(c.host.as_str()))
            && s.hosts.iter().any(|h| h.admits(ns, c.host.as_str()))
    };
    // Copied only once shown: an east-west gateway may hold thousands.
    let shared_ones = (shared.sni_clusters.iter())
        .filter(|c| !varied.iter().any(|(host, _)| **host == c.host) && shown(c))
        .cloned();
    let varied_ones = (varied.iter())
        .flat_map(|(_, clusters)| clusters.clusters())
        .filter_map(sni_cluster)
        .filter(|c| shown(c));
    shared_ones.chain(varied_ones).collect()
}

/// One chain per exposed cluster: its SNI → `tcp_proxy` to it.
pub(super) fn chains(clusters: &[SniCluster]) -> Vec<FilterChain> {
    use envoy_types::pb::envoy::config::listener::v3::{filter, Filter};
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy::ClusterSpecifier, TcpProxy,
    };
    use envoy_types::util::pack_any;
    (clusters.iter())
        .map(|c| {
            let name = c.cluster.name.clone();
            let proxy = TcpProxy {
                stat_prefix: name.clone(),
                cluster_specifier: Some(ClusterSpecifier::Cluster(name.clone())),
                ..Default::default()
            };
            FilterChain {
                filter_chain_match: Some(FilterChainMatch {
                    server_names: vec![name],
                    ..Default::default()
                }),
                filters: vec![Filter {
                    name: TCP_PROXY.to_string(),
                    config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
                }],
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_is_istios_outbound_name() {
        let (sni, host) = sni_for_cluster("outbound|8080||reviews.default.svc.cluster.local")
            .expect("an outbound cluster");
        assert_eq!(sni, "outbound_.8080_._.reviews.default.svc.cluster.local");
        assert_eq!(host.as_str(), "reviews.default.svc.cluster.local");
        let (sni, _) = sni_for_cluster("outbound|80|v2|r.default.svc.cluster.local").unwrap();
        assert_eq!(sni, "outbound_.80_.v2_.r.default.svc.cluster.local");
        assert!(sni_for_cluster("inbound|8080||").is_none());
        assert!(sni_for_cluster("outbound|http||x").is_none());
    }
}
