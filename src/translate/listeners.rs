//! A proxy's two listeners and its inbound cluster.
//!
//! Inbound: mesh traffic arrives at `inbound_address:inbound_port` and goes
//! to the app on `127.0.0.1:APP_PORT` through `inbound|APP_PORT||`.
//! Outbound: the app calls `127.0.0.1:outbound_port`; the shared
//! `outbound` route configuration (over RDS) routes by `Host`.

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster as XdsCluster};
use envoy_types::pb::envoy::config::core::v3::{Http2ProtocolOptions, TrafficDirection};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    route, route_action, route_match, RetryPolicy, Route, RouteAction, RouteConfiguration,
    RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier, UpgradeConfig},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::endpoints::load_assignment;
use super::policy::{apply_connection_pool, set_http_options};
use super::retry::route_timeout;
use super::util::{ads, socket, u32v};
use super::{inbound, passthrough, ProxySecurity, Shared};
use super::{FAULT_FILTER, INBOUND_LISTENER, OUTBOUND_LISTENER, OUTBOUND_ROUTE};
use crate::config::model::{ConnectionPool, OutboundTrafficPolicy};
use crate::registry::{Instance, Proxy};

const HCM: &str = "envoy.filters.network.http_connection_manager";
const ROUTER: &str = "envoy.filters.http.router";

/// Istio's inbound cluster name: `inbound|APP_PORT||`.
pub fn inbound_cluster_name(app_port: u16) -> String {
    format!("inbound|{app_port}||")
}

/// The cluster to the local app: STATIC 127.0.0.1:APP_PORT, HTTP/2 when
/// the proxy's service speaks it, the Sidecar's `inboundConnectionPool`
/// or Istio's default connection pool.
pub fn inbound_cluster(proxy: &Proxy, h2: bool, pool: &ConnectionPool) -> XdsCluster {
    let name = inbound_cluster_name(proxy.app_port);
    let app = Instance {
        address: "127.0.0.1".to_string(),
        port: proxy.app_port,
        service_port: proxy.app_port,
        labels: Default::default(),
        weight: 1,
        sidecar: false,
        identity: None,
        mtls: false,
        topology: Default::default(),
    };
    let cla: ClusterLoadAssignment = load_assignment(&name, &[app], proxy.app_port, None);
    static_cluster(cla, h2, pool)
}

/// A STATIC cluster of `cla`'s endpoints with `pool`'s limits.
pub(super) fn static_cluster(
    cla: ClusterLoadAssignment,
    h2: bool,
    pool: &ConnectionPool,
) -> XdsCluster {
    let mut c = XdsCluster {
        name: cla.cluster_name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(cla),
        ..Default::default()
    };
    apply_connection_pool(&mut c, pool);
    set_http_options(&mut c, pool, h2);
    c
}

/// The inbound listener: everything to the app, over the filter chains
/// of the proxy's mTLS mode (see `inbound`): requests (see
/// `inbound_route`), or connections when the app's port is TCP or TLS.
pub fn inbound(shared: &Shared, proxy: &Proxy, security: &ProxySecurity) -> Listener {
    let mode = inbound::mode(shared, proxy, security, proxy.app_port);
    let td = &shared.mesh.trust_domain;
    let cluster = inbound_cluster_name(proxy.app_port);
    let (listener_filters, filter_chains) = if inbound::app_protocol(shared, proxy).is_http() {
        let names = InboundNames {
            route: INBOUND_LISTENER.to_string(),
            virtual_host: INBOUND_LISTENER.to_string(),
            stat_prefix: format!("inbound_{}", proxy.inbound_port),
        };
        let hcm = inbound_hcm(shared, proxy, proxy.app_port, &cluster, names);
        inbound::chains(mode, td, &inbound::Serve::Http(&hcm))
    } else {
        let filters = inbound::tcp_filters(shared, proxy, proxy.app_port, &cluster);
        inbound::chains(mode, td, &inbound::Serve::Tcp(&filters))
    };
    Listener {
        name: INBOUND_LISTENER.to_string(),
        address: Some(socket(&proxy.inbound_address, proxy.inbound_port)),
        listener_filters,
        filter_chains,
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    }
}

/// The names an inbound HCM shows in `/config_dump` and its stats.
pub(super) struct InboundNames {
    /// Its inline route configuration's name.
    pub route: String,
    /// Its one virtual host's name.
    pub virtual_host: String,
    /// The HCM's `stat_prefix`.
    pub stat_prefix: String,
}

/// An inbound HCM: JWT, RBAC (rules' `ports` checked against `port`) and
/// the route to `cluster`.
pub(super) fn inbound_hcm(
    shared: &Shared,
    proxy: &Proxy,
    port: u16,
    cluster: &str,
    names: InboundNames,
) -> HttpConnectionManager {
    let route = inbound_route(cluster);
    let config = RouteConfiguration {
        name: names.route,
        virtual_hosts: vec![VirtualHost {
            name: names.virtual_host,
            domains: vec!["*".to_string()],
            routes: vec![route],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut filters = Vec::new();
    // JWT before RBAC: RBAC matches the payload the JWT filter verified.
    filters.extend(super::jwt::http_filter(&shared.jwt, proxy));
    filters.extend(super::rbac::http_filters_on(&shared.authz, proxy, port));
    // After RBAC: a denied request takes no token.
    filters.extend(super::ratelimit::http_filters(shared, proxy));
    filters.push(router());
    let mut hcm = hcm(
        names.stat_prefix,
        RouteSpecifier::RouteConfig(config),
        filters,
    );
    hcm.upgrade_configs.push(websocket());
    super::jwt::local_reply::apply(&mut hcm);
    super::telemetry::apply(
        &mut hcm,
        shared,
        proxy,
        super::telemetry::Direction::Inbound,
    );
    hcm
}

/// Everything to the app, no timeout; Istio's inbound retry of requests
/// reset before they reached the app (safe even for non-idempotent ones).
fn inbound_route(cluster: &str) -> Route {
    Route {
        name: "default".to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_string())),
            timeout: Some(route_timeout(None)),
            retry_policy: Some(RetryPolicy {
                retry_on: "reset-before-request".to_string(),
                num_retries: Some(u32v(2)),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The outbound listener on loopback, routing with RDS `outbound`.
pub fn outbound(shared: &Shared, proxy: &Proxy) -> Listener {
    let rds = Rds {
        config_source: Some(ads()),
        route_config_name: OUTBOUND_ROUTE.to_string(),
    };
    let fault = HttpFilter {
        name: FAULT_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            HttpFault::default(),
        ))),
        ..Default::default()
    };
    // Fault, then CORS, as istiod orders them.
    let mut filters = vec![fault, super::cors::http_filter()];
    let allow_any = passthrough::policy_of(shared, proxy) == OutboundTrafficPolicy::AllowAny;
    if allow_any || !shared.dynamic_hosts.is_empty() {
        filters.push(passthrough::http_filter());
    }
    filters.push(router());
    let mut hcm = hcm(
        format!("outbound_{}", proxy.outbound_port),
        RouteSpecifier::Rds(rds),
        filters,
    );
    allow_connect(&mut hcm);
    super::telemetry::apply(
        &mut hcm,
        shared,
        proxy,
        super::telemetry::Direction::Outbound,
    );
    listener(
        OUTBOUND_LISTENER,
        "127.0.0.1",
        proxy.outbound_port,
        TrafficDirection::Outbound,
        hcm,
    )
}

/// Lets `https_proxy` clients tunnel: HTTP/1.1 `CONNECT` (and HTTP/2's)
/// reaches the routes, whose `connect_matcher` routes terminate it
/// (`passthrough::connect_route`).
fn allow_connect(hcm: &mut HttpConnectionManager) {
    hcm.upgrade_configs.push(UpgradeConfig {
        upgrade_type: "CONNECT".to_string(),
        ..Default::default()
    });
    hcm.upgrade_configs.push(websocket());
    hcm.http2_protocol_options = Some(Http2ProtocolOptions {
        allow_connect: true,
        ..Default::default()
    });
}

/// WebSocket upgrades on every route, as istiod enables them (Istio's
/// `websocketUpgrade` field is deprecated for that reason).
pub(super) fn websocket() -> UpgradeConfig {
    UpgradeConfig {
        upgrade_type: "websocket".to_string(),
        ..Default::default()
    }
}

fn router() -> HttpFilter {
    HttpFilter {
        name: ROUTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    }
}

/// HCM with codec AUTO (h2 from peer sidecars, HTTP/1 from apps). Like
/// istiod's sidecar listeners, `use_remote_address` is false: a sidecar
/// is not the edge, the peer's address is not the client's.
fn hcm(
    stat_prefix: String,
    routes: RouteSpecifier,
    http_filters: Vec<HttpFilter>,
) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix,
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(routes),
        http_filters,
        use_remote_address: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

fn listener(
    name: &str,
    address: &str,
    port: u16,
    direction: TrafficDirection,
    hcm: HttpConnectionManager,
) -> Listener {
    Listener {
        name: name.to_string(),
        address: Some(socket(address, port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM.to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        traffic_direction: direction as i32,
        ..Default::default()
    }
}
