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

use super::tls::inbound_mtls;
use super::{ProxySecurity, Shared};
use crate::config::model::{effective_mtls, MtlsMode};
use crate::registry::Proxy;

const HCM: &str = "envoy.filters.network.http_connection_manager";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// The proxy's inbound mode: its `PeerAuthentication` mode on the app
/// port; DISABLE when the runtime gives it no certificates.
pub fn mode(shared: &Shared, proxy: &Proxy, security: &ProxySecurity) -> MtlsMode {
    if !security.mtls {
        return MtlsMode::Disable;
    }
    effective_mtls(
        &shared.peer_authentications,
        &shared.mesh.root_namespace,
        &proxy.namespace,
        &proxy.labels,
        proxy.app_port,
    )
}

/// Listener filters and filter chains for `mode`, each chain serving
/// `hcm` (with XFCC set per chain).
pub fn chains(
    mode: MtlsMode,
    trust_domain: &str,
    hcm: &HttpConnectionManager,
) -> (Vec<ListenerFilter>, Vec<FilterChain>) {
    let tls = || Some(inbound_mtls(trust_domain));
    match mode {
        MtlsMode::Strict => (Vec::new(), vec![chain("inbound-mtls", hcm, tls(), None)]),
        MtlsMode::Permissive | MtlsMode::Unset => {
            let mtls = chain("inbound-mtls", hcm, tls(), Some("tls"));
            let plain = chain("inbound-plaintext", hcm, None, Some("raw_buffer"));
            (vec![tls_inspector()], vec![mtls, plain])
        }
        MtlsMode::Disable => (Vec::new(), vec![chain("inbound", hcm, None, None)]),
    }
}

/// One chain; it matches on `transport_protocol` only next to the TLS
/// inspector (PERMISSIVE).
fn chain(
    name: &str,
    hcm: &HttpConnectionManager,
    tls: Option<TransportSocket>,
    transport_protocol: Option<&str>,
) -> FilterChain {
    let mut hcm = hcm.clone();
    if tls.is_some() {
        hcm.forward_client_cert_details = ForwardClientCertDetails::SanitizeSet as i32;
        hcm.set_current_client_cert_details = Some(SetCurrentClientCertDetails {
            uri: true,
            ..Default::default()
        });
    } else {
        hcm.forward_client_cert_details = ForwardClientCertDetails::Sanitize as i32;
    }
    FilterChain {
        name: name.to_string(),
        filter_chain_match: transport_protocol.map(|p| FilterChainMatch {
            transport_protocol: p.to_string(),
            ..Default::default()
        }),
        filters: vec![Filter {
            name: HCM.to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
        }],
        transport_socket: tls,
        ..Default::default()
    }
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
