use envoy_types::pb::envoy::config::listener::v3::Listener;
use prost::Message;

use super::*;
use crate::config::model::{Labels, MeshSettings, PeerAuthentication};
use crate::translate::fixtures::{labels, origin, sidecar};
use crate::translate::listeners;

fn pa(
    ns: &str,
    selector: Option<Labels>,
    mode: MtlsMode,
    port: Option<(u16, MtlsMode)>,
) -> PeerAuthentication {
    let mut o = origin("PeerAuthentication", "p");
    o.namespace = ns.to_string();
    PeerAuthentication {
        selector,
        mode,
        port_level: port.into_iter().collect(),
        origin: o,
    }
}

fn shared(policies: Vec<PeerAuthentication>) -> Shared {
    Shared {
        mesh: MeshSettings {
            trust_domain: "td.example".into(),
            ..Default::default()
        },
        peer_authentications: policies,
        ..Default::default()
    }
}

const ON: ProxySecurity = ProxySecurity {
    mtls: true,
    certs: None,
};

fn listener(s: &Shared) -> Listener {
    let proxy = sidecar("pay", "pay-v1", "v1", 15006);
    listeners::inbound(s, &proxy, &ON)
}

fn hcm(chain: &FilterChain) -> HttpConnectionManager {
    let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
        panic!();
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

#[test]
fn default_is_permissive_tls_and_plaintext_on_one_port() {
    let l = listener(&shared(vec![]));
    assert_eq!(l.listener_filters.len(), 1);
    assert_eq!(l.listener_filters[0].name, TLS_INSPECTOR);
    let [mtls, plain] = &l.filter_chains[..] else {
        panic!("{:?}", l.filter_chains);
    };
    let proto = |c: &FilterChain| {
        c.filter_chain_match
            .as_ref()
            .unwrap()
            .transport_protocol
            .clone()
    };
    assert_eq!(
        (proto(mtls), proto(plain)),
        ("tls".into(), "raw_buffer".into())
    );
    assert_eq!(
        mtls.transport_socket.as_ref().unwrap().name,
        super::super::tls::TLS_SOCKET
    );
    assert!(plain.transport_socket.is_none());
    // XFCC: the caller's identity on mTLS, nothing forgeable on plaintext.
    let h = hcm(mtls);
    assert_eq!(
        h.forward_client_cert_details,
        ForwardClientCertDetails::SanitizeSet as i32
    );
    assert!(h.set_current_client_cert_details.unwrap().uri);
    let h = hcm(plain);
    assert_eq!(
        h.forward_client_cert_details,
        ForwardClientCertDetails::Sanitize as i32
    );
    assert!(h.set_current_client_cert_details.is_none());
}

#[test]
fn strict_has_only_the_mtls_chain() {
    let l = listener(&shared(vec![pa(
        "istio-system",
        None,
        MtlsMode::Strict,
        None,
    )]));
    assert!(l.listener_filters.is_empty());
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.filter_chains[0].filter_chain_match.is_none());
    assert!(l.filter_chains[0].transport_socket.is_some());
}

#[test]
fn disable_and_no_ca_are_plaintext() {
    let l = listener(&shared(vec![pa("default", None, MtlsMode::Disable, None)]));
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.filter_chains[0].transport_socket.is_none());
    let proxy = sidecar("pay", "pay-v1", "v1", 15006);
    let strict = shared(vec![pa("istio-system", None, MtlsMode::Strict, None)]);
    let off = listeners::inbound(&strict, &proxy, &ProxySecurity::default());
    assert!(off.filter_chains[0].transport_socket.is_none());
}

#[test]
fn workload_beats_namespace_beats_mesh_and_port_level_beats_workload() {
    let me = Some(labels(&[("app", "pay")]));
    let other = Some(labels(&[("app", "other")]));
    let proxy = sidecar("pay", "pay-v1", "v1", 15006);
    let mode_of =
        |policies: Vec<PeerAuthentication>| mode(&shared(policies), &proxy, &ON, proxy.app_port);
    let mesh = pa("istio-system", None, MtlsMode::Strict, None);
    let ns = pa("default", None, MtlsMode::Disable, None);
    assert_eq!(mode_of(vec![mesh.clone()]), MtlsMode::Strict);
    assert_eq!(mode_of(vec![mesh.clone(), ns.clone()]), MtlsMode::Disable);
    let wl = pa("default", me.clone(), MtlsMode::Permissive, None);
    assert_eq!(
        mode_of(vec![mesh.clone(), ns.clone(), wl]),
        MtlsMode::Permissive
    );
    let not_me = pa("default", other, MtlsMode::Strict, None);
    assert_eq!(mode_of(vec![ns.clone(), not_me]), MtlsMode::Disable);
    // The sidecar's app port is 8080.
    let port = pa(
        "default",
        me.clone(),
        MtlsMode::Unset,
        Some((8080, MtlsMode::Strict)),
    );
    assert_eq!(mode_of(vec![ns.clone(), port]), MtlsMode::Strict);
    let other_port = pa(
        "default",
        me,
        MtlsMode::Unset,
        Some((9999, MtlsMode::Strict)),
    );
    assert_eq!(
        mode_of(vec![ns, other_port]),
        MtlsMode::Disable,
        "UNSET inherits"
    );
    let elsewhere = pa("legacy", None, MtlsMode::Strict, None);
    assert_eq!(
        mode_of(vec![elsewhere]),
        MtlsMode::Permissive,
        "Istio's default"
    );
}

/// `pay` with one TCP port targeting the app port (8080 in the fixture).
fn tcp_shared(policies: Vec<PeerAuthentication>) -> Shared {
    use crate::translate::fixtures::{host, port};
    let mut s = shared(policies);
    let mut p = port(9000, "tcp", Protocol::Tcp);
    p.target_port = Some(8080);
    s.service_ports.insert(host("pay"), vec![p]);
    s
}

fn tcp_proxy(chain: &FilterChain) -> TcpProxy {
    let f = chain.filters.last().unwrap();
    assert_eq!(f.name, TCP_PROXY);
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!();
    };
    TcpProxy::decode(any.value.as_slice()).unwrap()
}

#[test]
fn a_tcp_app_port_gets_tcp_proxy_chains_with_mesh_mtls() {
    let strict = pa("istio-system", None, MtlsMode::Strict, None);
    let l = listener(&tcp_shared(vec![strict]));
    let [chain] = &l.filter_chains[..] else {
        panic!("{:?}", l.filter_chains);
    };
    assert!(chain.transport_socket.is_some(), "STRICT: mTLS");
    assert_eq!(chain.filters.len(), 1, "no policy, no RBAC");
    let proxy = tcp_proxy(chain);
    assert_eq!(
        proxy.cluster_specifier,
        Some(ClusterSpecifier::Cluster("inbound|8080||".into()))
    );
}

#[test]
fn a_tcp_app_port_is_permissive_like_http() {
    let l = listener(&tcp_shared(vec![]));
    assert_eq!(l.listener_filters[0].name, TLS_INSPECTOR);
    assert_eq!(l.filter_chains.len(), 2);
    for c in &l.filter_chains {
        tcp_proxy(c);
    }
}

#[test]
fn an_http_port_keeps_the_http_connection_manager() {
    let mut s = tcp_shared(vec![]);
    for ports in s.service_ports.values_mut() {
        ports[0].protocol = Protocol::Http;
    }
    let l = listener(&s);
    assert_eq!(l.filter_chains[0].filters[0].name, HCM);
}
