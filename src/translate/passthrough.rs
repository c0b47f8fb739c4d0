//! Hosts that are not in the registry, and HTTP `CONNECT`, on a sidecar's
//! outbound listener (`Sidecar`/`Mesh` `outboundTrafficPolicy`).
//!
//! Sidecars have no transparent interception, so Istio's
//! `PassthroughCluster` (ORIGINAL_DST) has no original destination to
//! use: the app names its destination in the request instead (`Host`, or
//! the absolute URL of an `http_proxy` client, or the authority of a
//! `CONNECT`). `ALLOW_ANY` therefore forwards with Envoy's dynamic forward
//! proxy: the `envoy.filters.http.dynamic_forward_proxy` filter resolves
//! that host through a DNS cache and the `envoy.clusters.dynamic_forward_proxy`
//! cluster connects to it. `REGISTRY_ONLY` answers 502 as istiod's
//! `block_all` virtual host does (`BuildCatchAllVirtualHost`).

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::route::v3::{
    route, route_action, route_match, DirectResponseAction, Route, RouteAction, RouteMatch,
    VirtualHost,
};
use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::{
    cluster_config, ClusterConfig,
};
use envoy_types::pb::envoy::extensions::common::dynamic_forward_proxy::v3::DnsCacheConfig;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_forward_proxy::v3::{
    filter_config, FilterConfig,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::network::dns_resolver::getaddrinfo::v3::GetAddrInfoDnsResolverConfig;
use envoy_types::util::pack_any;

use super::retry::route_timeout;
use super::util::duration;
use super::{Shared, DEFAULT_CONNECT_TIMEOUT};
use crate::config::model::{outbound_policy, OutboundTrafficPolicy};
use crate::registry::Proxy;

/// Where `ALLOW_ANY` traffic goes: istiod's name for it, so that stats and
/// `/config_dump` read as in Istio (here a dynamic forward proxy cluster).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// The HTTP status of a request `REGISTRY_ONLY` refuses (istiod's).
pub const BLOCKED_STATUS: u32 = 502;
const DFP_FILTER: &str = "envoy.filters.http.dynamic_forward_proxy";
/// The filter's and the cluster's cache: Envoy requires both to name the
/// same cache with the same settings.
const DNS_CACHE: &str = "outbound_passthrough";

/// The policy of `proxy` (its `Sidecar`'s, else the mesh's).
pub fn policy_of(shared: &Shared, proxy: &Proxy) -> OutboundTrafficPolicy {
    outbound_policy(
        &shared.sidecars,
        &shared.mesh,
        &proxy.namespace,
        &proxy.labels,
    )
}

/// The DNS cache: the `getaddrinfo` resolver, so that names resolve as
/// the host's other programs resolve them (`/etc/hosts` included, hence
/// `localhost`), and IPv4 first, as loopback services usually listen.
fn dns_cache() -> DnsCacheConfig {
    let resolver = TypedExtensionConfig {
        name: "envoy.network.dns_resolver.getaddrinfo".to_string(),
        typed_config: Some(pack_any(GetAddrInfoDnsResolverConfig::default())),
    };
    DnsCacheConfig {
        name: DNS_CACHE.to_string(),
        dns_lookup_family: cluster::DnsLookupFamily::V4Preferred as i32,
        typed_dns_resolver_config: Some(resolver),
        ..Default::default()
    }
}

/// The dynamic forward proxy cluster `ALLOW_ANY` routes to.
pub fn cluster() -> Cluster {
    let config = ClusterConfig {
        cluster_implementation_specifier: Some(
            cluster_config::ClusterImplementationSpecifier::DnsCacheConfig(dns_cache()),
        ),
        ..Default::default()
    };
    Cluster {
        name: PASSTHROUGH_CLUSTER.to_string(),
        connect_timeout: Some(duration(DEFAULT_CONNECT_TIMEOUT)),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::ClusterType(
            cluster::CustomClusterType {
                name: "envoy.clusters.dynamic_forward_proxy".to_string(),
                typed_config: Some(pack_any(config)),
            },
        )),
        ..Default::default()
    }
}

/// The dynamic forward proxy HTTP filter (before the router). It acts
/// only on requests routed to [`PASSTHROUGH_CLUSTER`].
pub fn http_filter() -> HttpFilter {
    let config = FilterConfig {
        implementation_specifier: Some(filter_config::ImplementationSpecifier::DnsCacheConfig(
            dns_cache(),
        )),
        ..Default::default()
    };
    HttpFilter {
        name: DFP_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    }
}

/// A route that terminates `CONNECT` and tunnels its bytes to `cluster`
/// over TCP (`connect_config`; the HCM must allow the `CONNECT` upgrade).
pub fn connect_route(cluster: &str) -> Route {
    Route {
        name: "connect".to_string(),
        r#match: Some(connect_match()),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_string())),
            upgrade_configs: vec![route_action::UpgradeConfig {
                upgrade_type: "CONNECT".to_string(),
                connect_config: Some(route_action::upgrade_config::ConnectConfig::default()),
                ..Default::default()
            }],
            // A tunnel lives as long as its connection.
            timeout: Some(route_timeout(None)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn connect_match() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::ConnectMatcher(
            route_match::ConnectMatcher::default(),
        )),
        ..Default::default()
    }
}

fn any_path() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
        ..Default::default()
    }
}

/// The virtual host for every other domain (`*`, which Envoy tries last):
/// istiod's `allow_any` or `block_all`.
pub fn catch_all(policy: OutboundTrafficPolicy) -> VirtualHost {
    let (name, routes) = match policy {
        OutboundTrafficPolicy::AllowAny => {
            let forward = Route {
                name: "allow_any".to_string(),
                r#match: Some(any_path()),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        PASSTHROUGH_CLUSTER.to_string(),
                    )),
                    timeout: Some(route_timeout(None)),
                    ..Default::default()
                })),
                ..Default::default()
            };
            (
                "allow_any",
                vec![connect_route(PASSTHROUGH_CLUSTER), forward],
            )
        }
        OutboundTrafficPolicy::RegistryOnly => {
            let refuse = |name: &str, m: RouteMatch| Route {
                name: name.to_string(),
                r#match: Some(m),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status: BLOCKED_STATUS,
                    ..Default::default()
                })),
                ..Default::default()
            };
            let routes = vec![
                refuse("connect", connect_match()),
                refuse("block_all", any_path()),
            ];
            ("block_all", routes)
        }
    };
    VirtualHost {
        name: name.to_string(),
        domains: vec!["*".to_string()],
        routes,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
