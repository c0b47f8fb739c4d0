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
use envoy_types::pb::envoy::config::core::v3::{Http1ProtocolOptions, UpstreamHttpProtocolOptions};
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
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use envoy_types::util::pack_any;
use prost::{Message, Name};

use super::retry::route_timeout;
use super::util::duration;
use super::{Shared, DEFAULT_CONNECT_TIMEOUT};
use crate::config::model::{egress_proxy, outbound_policy, OutboundTrafficPolicy};
use crate::registry::Proxy;

/// Where `ALLOW_ANY` traffic goes: istiod's name for it, so that stats and
/// `/config_dump` read as in Istio (here a dynamic forward proxy cluster).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// The HTTP status of a request `REGISTRY_ONLY` refuses (istiod's).
pub const BLOCKED_STATUS: u32 = 502;
const DFP_FILTER: &str = "envoy.filters.http.dynamic_forward_proxy";
const DFP_CLUSTER_TYPE: &str = "envoy.clusters.dynamic_forward_proxy";
/// The filter's and the cluster's cache: Envoy requires both to name the
/// same cache with the same settings.
const DNS_CACHE: &str = "outbound_passthrough";

/// The cluster of `proxy`'s `egressProxy`, if its `Sidecar` writes one.
pub fn egress_cluster_of(shared: &Shared, proxy: &Proxy) -> Option<String> {
    let d = egress_proxy(
        &shared.sidecars,
        &shared.mesh,
        &proxy.namespace,
        &proxy.labels,
    )?;
    // The config check requires its port.
    let port = d.port.unwrap_or(80);
    Some(super::cluster_name(
        port,
        d.subset.as_deref(),
        d.host.as_str(),
    ))
}

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
    let mut c = Cluster {
        name: PASSTHROUGH_CLUSTER.to_string(),
        connect_timeout: Some(duration(DEFAULT_CONNECT_TIMEOUT)),
        ..Default::default()
    };
    make_dynamic(&mut c);
    c
}

/// Makes `c` a dynamic forward proxy cluster on the shared DNS cache: it
/// connects to the host (and port, else 80, or 443 with TLS) of each
/// request's `:authority` or `CONNECT` target, which the HTTP filter
/// resolved. Such a cluster balances itself (`CLUSTER_PROVIDED`) and has no
/// endpoints of its own. With TLS, the SNI and the certificate's expected
/// name are the request's host (`auto_sni`, `auto_san_validation`), as
/// Envoy requires of a dynamic forward proxy cluster that originates TLS.
pub fn make_dynamic(c: &mut Cluster) {
    let config = ClusterConfig {
        cluster_implementation_specifier: Some(
            cluster_config::ClusterImplementationSpecifier::DnsCacheConfig(dns_cache()),
        ),
        ..Default::default()
    };
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::ClusterType(
        cluster::CustomClusterType {
            name: DFP_CLUSTER_TYPE.to_string(),
            typed_config: Some(pack_any(config)),
        },
    ));
    c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
    c.load_balancing_policy = None;
    c.lb_config = None;
    c.load_assignment = None;
    c.eds_cluster_config = None;
    // Envoy refuses a dynamic forward proxy cluster whose HTTP protocol
    // options (a DestinationRule's `connectionPool.http`, say) leave out
    // `auto_sni` and `auto_san_validation`, TLS or not.
    let http_options =
        (c.typed_extension_protocol_options).contains_key(&HttpProtocolOptions::full_name());
    if c.transport_socket.is_some() || http_options {
        set_auto_sni(c);
    }
}

/// Sets `auto_sni` and `auto_san_validation` in the cluster's HTTP
/// protocol options (adding HTTP/1 options when it has none).
fn set_auto_sni(c: &mut Cluster) {
    let key = HttpProtocolOptions::full_name();
    let written = (c.typed_extension_protocol_options.get(&key))
        .and_then(|any| HttpProtocolOptions::decode(any.value.as_slice()).ok());
    let mut options = written.unwrap_or_else(|| HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::HttpProtocolOptions(
                    Http1ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    });
    options.upstream_http_protocol_options = Some(UpstreamHttpProtocolOptions {
        auto_sni: true,
        auto_san_validation: true,
        ..Default::default()
    });
    (c.typed_extension_protocol_options).insert(key, pack_any(options));
}

/// The dynamic forward proxy HTTP filter (before the router). It acts
/// only on requests routed to a dynamic forward proxy cluster
/// ([`PASSTHROUGH_CLUSTER`], and those of services that forward to the
/// host a request names: [`make_dynamic`]).
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
/// istiod's `allow_any` or `block_all`. `ALLOW_ANY` forwards to
/// [`PASSTHROUGH_CLUSTER`], or with an `egressProxy` to that proxy's
/// cluster (`egress`), requests keeping their `Host` and tunnels their
/// bytes, so the egress proxy sees what the app asked for.
pub fn catch_all(policy: OutboundTrafficPolicy, egress: Option<&str>) -> VirtualHost {
    let (name, routes) = match policy {
        OutboundTrafficPolicy::AllowAny => {
            let cluster = egress.unwrap_or(PASSTHROUGH_CLUSTER);
            let forward = Route {
                name: "allow_any".to_string(),
                r#match: Some(any_path()),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        cluster.to_string(),
                    )),
                    timeout: Some(route_timeout(None)),
                    ..Default::default()
                })),
                ..Default::default()
            };
            ("allow_any", vec![connect_route(cluster), forward])
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

#[cfg(test)]
mod service_tests;
