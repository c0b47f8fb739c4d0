//! `tcp` and `tls` rules → filter chains with Envoy's `tcp_proxy`
//! (istiod: `pilot/pkg/networking/core/tcp_route.go`). A `tls` rule's
//! `sniHosts` become the chain's `filter_chain_match.server_names`, read by
//! the `tls_inspector` listener filter; a `tcp` rule is the chain without
//! a match (Envoy picks the most specific chain: `listener_components.proto`,
//! `FilterChainMatch`). Weighted routes become `weighted_clusters`.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, FilterChainMatch};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::{weighted_cluster::ClusterWeight, ClusterSpecifier, WeightedCluster},
    TcpProxy,
};
use envoy_types::util::pack_any;
use prost::{Message, Name};

use super::clusters::cluster_name;
use crate::config::model::{
    Destination, Host, L4Match, L4Route, ServicePort, VirtualService, WeightedDestination,
};

/// Name of Envoy's TCP proxy network filter.
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

pub use super::source::Place;

impl Place<'_> {
    /// True when the rule applies here: no matches (then the
    /// VirtualService's binding decides), or one that holds.
    fn rule_applies(&self, vs: &VirtualService, r: &L4Route) -> bool {
        if r.matches.is_empty() {
            return self.admits(vs, &L4Match::default());
        }
        r.matches.iter().any(|m| self.admits(vs, m))
    }
}

/// Service ports by host, to resolve a destination's port.
pub type PortsByHost = BTreeMap<Host, Vec<ServicePort>>;

/// The filter chains of `vss` at `place`: with `sni`, one chain per `tls`
/// rule that applies (by its SNI names; a name goes to the first rule);
/// then one chain without a match, from the first `tcp` rule that applies.
pub fn chains(
    vss: &[&VirtualService],
    place: &Place<'_>,
    sni: bool,
    ports: &PortsByHost,
) -> Vec<FilterChain> {
    let mut out = Vec::new();
    let mut used = BTreeSet::new();
    for vs in vss.iter().filter(|_| sni) {
        for r in &vs.tls {
            let names: Vec<String> = (r.matches.iter())
                .filter(|m| place.admits(vs, m))
                .flat_map(|m| m.sni_hosts.iter().cloned())
                .filter(|h| used.insert(h.clone()))
                .collect();
            if !names.is_empty() {
                out.push(chain(Some(names), &r.route, place.port, ports));
            }
        }
    }
    let first_tcp = (vss.iter())
        .flat_map(|vs| vs.tcp.iter().map(move |r| (vs, r)))
        .find(|(vs, r)| place.rule_applies(vs, r));
    if let Some((_, r)) = first_tcp {
        out.push(chain(None, &r.route, place.port, ports));
    }
    out
}

/// A chain proxying to `route`, for `server_names` (SNI) or any connection.
pub fn chain(
    server_names: Option<Vec<String>>,
    route: &[WeightedDestination],
    port: u16,
    ports: &PortsByHost,
) -> FilterChain {
    FilterChain {
        filter_chain_match: server_names.map(|server_names| FilterChainMatch {
            server_names,
            ..Default::default()
        }),
        filters: vec![tcp_proxy(route, port, ports)],
        ..Default::default()
    }
}

/// `tcp_proxy` to one cluster, or `weighted_clusters` when several have
/// weight (Envoy requires each weight ≥ 1: weight-0 ones are left out).
pub fn tcp_proxy(route: &[WeightedDestination], port: u16, ports: &PortsByHost) -> Filter {
    let weighted: Vec<ClusterWeight> = (route.iter())
        .filter(|d| d.weight > 0)
        .map(|d| ClusterWeight {
            name: cluster_for(&d.destination, port, ports),
            weight: d.weight,
            ..Default::default()
        })
        .collect();
    let specifier = match weighted.as_slice() {
        [one] => ClusterSpecifier::Cluster(one.name.clone()),
        _ => ClusterSpecifier::WeightedClusters(WeightedCluster { clusters: weighted }),
    };
    let stat_prefix = match &specifier {
        ClusterSpecifier::Cluster(c) => c.clone(),
        ClusterSpecifier::WeightedClusters(_) => format!("outbound_tcp_{port}"),
    };
    let proxy = TcpProxy {
        stat_prefix,
        cluster_specifier: Some(specifier),
        ..Default::default()
    };
    Filter {
        name: TCP_PROXY.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
    }
}

/// Puts `rbac` (network RBAC filters) in front of every chain's filters
/// and `logs` on its `tcp_proxy`: a denied connection is closed before it
/// is proxied, and every proxied connection is logged when it ends.
pub fn guard_and_log(chains: &mut [FilterChain], rbac: &[Filter], logs: &[AccessLog]) {
    for c in chains {
        if !logs.is_empty() {
            c.filters.iter_mut().for_each(|f| set_access_log(f, logs));
        }
        c.filters.splice(0..0, rbac.iter().cloned());
    }
}

/// Sets the access logs of a `tcp_proxy` filter (others are left alone).
fn set_access_log(f: &mut Filter, logs: &[AccessLog]) {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return;
    };
    if any.type_url != TcpProxy::type_url() {
        return;
    }
    let Ok(mut proxy) = TcpProxy::decode(any.value.as_slice()) else {
        return;
    };
    proxy.access_log = logs.to_vec();
    f.config_type = Some(filter::ConfigType::TypedConfig(pack_any(proxy)));
}

/// Istio's port choice (`GetDestinationCluster`): the destination's port,
/// else the service's only port, else the listener's port when the
/// service has it, else its first port.
pub fn cluster_for(d: &Destination, listener_port: u16, ports: &PortsByHost) -> String {
    let port = d.port.unwrap_or_else(|| match ports.get(&d.host) {
        Some(ps) if ps.len() == 1 => ps[0].number,
        Some(ps) if !ps.iter().any(|p| p.number == listener_port) && !ps.is_empty() => ps[0].number,
        _ => listener_port,
    });
    cluster_name(port, d.subset.as_deref(), d.host.as_str())
}

#[cfg(test)]
mod tests;
