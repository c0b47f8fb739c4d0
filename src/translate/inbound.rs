//! The inbound listener's TLS, per the proxy's `PeerAuthentication` mode
//! (istiod: `pilot/pkg/networking/core/listener_inbound.go` and
//! `security/authn/policy_applier.go`):
//!
//! - STRICT: one chain, mTLS required (a plaintext client fails the
//!   handshake);
//! - PERMISSIVE: the `tls_inspector` listener filter tells TLS from
//!   plaintext; chain `transport_protocol: tls` terminates mTLS, chain
//!   `raw_buffer` serves plaintext, on the same port;
//! - DISABLE (or no CA): one plaintext chain.
//!
//! On mTLS chains the app receives the caller's identity in
//! `x-forwarded-client-cert` (`SANITIZE_SET`, `URI=spiffe://...`); plaintext
//! chains drop any XFCC a caller sends (`SANITIZE`), so it cannot be forged.
//!
//! A sidecar whose app port is a TCP or TLS service port (Istio: the
//! port's protocol, from its name or `protocol`) serves connections
//! instead: the same chains carry the network RBAC filters and a
//! `tcp_proxy` to `inbound|APP_PORT||` (istiod's inbound TCP chain).

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{ForwardClientCertDetails, SetCurrentClientCertDetails},
    HttpConnectionManager,
};
use envoy_types::util::pack_any;

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier, TcpProxy,
};

use super::l4::{guard_and_log, TCP_PROXY};
use super::rbac::network_filters;
use super::telemetry::{tcp_access_logs, Direction};
use super::tls::inbound_mtls;
use super::{ProxySecurity, Shared};
use crate::config::model::{effective_mtls, MtlsMode, Protocol, ServicePort};
use crate::registry::Proxy;

const HCM: &str = "envoy.filters.network.http_connection_manager";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// The proxy's inbound mode on `port` (the app port, or an ingress
/// port): its `PeerAuthentication` mode there; DISABLE when the runtime
/// gives it no certificates.
pub fn mode(shared: &Shared, proxy: &Proxy, security: &ProxySecurity, port: u16) -> MtlsMode {
    if !security.mtls {
        return MtlsMode::Disable;
    }
    effective_mtls(
        &shared.peer_authentications,
        &shared.mesh.root_namespace,
        &proxy.namespace,
        &proxy.labels,
        port,
    )
}

/// What the inbound chains serve: HTTP requests, or connections (the
/// network filters, ending with `tcp_proxy`).
pub enum Serve<'a> {
    /// An HTTP connection manager (XFCC is set per chain).
    Http(&'a HttpConnectionManager),
    /// Network filters, as they are on every chain.
    Tcp(&'a [Filter]),
}

/// Listener filters and filter chains for `mode`, each chain serving
/// `serve`.
pub fn chains(
    mode: MtlsMode,
    trust_domain: &str,
    serve: &Serve<'_>,
) -> (Vec<ListenerFilter>, Vec<FilterChain>) {
    let tls = || Some(inbound_mtls(trust_domain));
    match mode {
        MtlsMode::Strict => (Vec::new(), vec![chain("inbound-mtls", serve, tls(), None)]),
        MtlsMode::Permissive | MtlsMode::Unset => {
            let mtls = chain("inbound-mtls", serve, tls(), Some("tls"));
            let plain = chain("inbound-plaintext", serve, None, Some("raw_buffer"));
            (vec![tls_inspector()], vec![mtls, plain])
        }
        MtlsMode::Disable => (Vec::new(), vec![chain("inbound", serve, None, None)]),
    }
}

/// One chain behind a server TLS of the user's (a Sidecar ingress port's
/// `tls`), instead of the mesh mTLS: callers from outside the mesh.
pub fn tls_chain(serve: &Serve<'_>, tls: TransportSocket) -> Vec<FilterChain> {
    vec![chain("inbound-tls", serve, Some(tls), None)]
}

/// One chain; it matches on `transport_protocol` only next to the TLS
/// inspector (PERMISSIVE).
fn chain(
    name: &str,
    serve: &Serve<'_>,
    tls: Option<TransportSocket>,
    transport_protocol: Option<&str>,
) -> FilterChain {
    let filters = match serve {
        Serve::Http(hcm) => vec![hcm_filter(hcm, tls.is_some())],
        Serve::Tcp(filters) => filters.to_vec(),
    };
    FilterChain {
        name: name.to_string(),
        filter_chain_match: transport_protocol.map(|p| FilterChainMatch {
            transport_protocol: p.to_string(),
            ..Default::default()
        }),
        filters,
        transport_socket: tls,
        ..Default::default()
    }
}

/// The HCM of one chain: XFCC set from the peer certificate on mTLS
/// chains, dropped on plaintext ones.
fn hcm_filter(hcm: &HttpConnectionManager, mtls: bool) -> Filter {
    let mut hcm = hcm.clone();
    if mtls {
        hcm.forward_client_cert_details = ForwardClientCertDetails::SanitizeSet as i32;
        hcm.set_current_client_cert_details = Some(SetCurrentClientCertDetails {
            uri: true,
            ..Default::default()
        });
    } else {
        hcm.forward_client_cert_details = ForwardClientCertDetails::Sanitize as i32;
    }
    Filter {
        name: HCM.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}

/// The protocol of the app behind `proxy`: its service's port whose
/// target (or number) is the app port, else its first port; HTTP when
/// its service has no port (a registered sidecar without a ServiceEntry).
pub fn app_protocol(shared: &Shared, proxy: &Proxy) -> Protocol {
    let Some(ports) = shared.service_ports.get(&proxy.host()) else {
        return Protocol::Http;
    };
    let target = |p: &ServicePort| p.target_port.unwrap_or(p.number);
    (ports.iter().find(|p| target(p) == proxy.app_port))
        .or(ports.first())
        .map_or(Protocol::Http, |p| p.protocol)
}

/// The network filters of an inbound TCP chain: the proxy's
/// AuthorizationPolicies (rules' `ports` name `port`: the app port, or
/// an ingress port), then `tcp_proxy` to `cluster`, logging per the
/// proxy's Telemetry.
pub fn tcp_filters(shared: &Shared, proxy: &Proxy, port: u16, cluster: &str) -> Vec<Filter> {
    let cluster = cluster.to_string();
    let proxy_filter = Filter {
        name: TCP_PROXY.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(TcpProxy {
            stat_prefix: cluster.clone(),
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
            ..Default::default()
        }))),
    };
    let mut chain = [FilterChain {
        filters: vec![proxy_filter],
        ..Default::default()
    }];
    let rbac = network_filters(&shared.authz, proxy, port);
    let logs = tcp_access_logs(shared, proxy, Direction::Inbound);
    guard_and_log(&mut chain, &rbac, &logs);
    let [chain] = chain;
    chain.filters
}

pub(super) fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: TLS_INSPECTOR.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
