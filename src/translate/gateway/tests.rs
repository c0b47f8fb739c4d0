use envoy_types::pb::envoy::config::route::v3::virtual_host::TlsRequirementType;

use super::*;
use crate::registry::{instances, Registry};
use crate::translate::{for_proxy, shared, ProxySecurity};

const CONFIG: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay}
spec:
  hosts: [pay]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http:
  - route:
    - destination: {host: pay}
";

fn gateway_proxy(labels: &[(&str, &str)]) -> Proxy {
    Proxy {
        id: "gw-1".into(),
        service: "ingress".into(),
        namespace: "default".into(),
        service_account: "ingress".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        gateway: Some(GatewayNode {
            listen_address: "127.0.0.1".into(),
            port_map: [(443, 18443), (80, 18080)].into(),
        }),
        ..Default::default()
    }
}

fn translate(proxy: &Proxy, with_credential: bool) -> crate::translate::ProxyResources {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), CONFIG).unwrap();
    let mesh = crate::config::load_dir(dir.path()).unwrap();
    let mut sh = shared(&mesh, &instances(&mesh, &Registry::new()));
    if with_credential {
        let cred = Credential {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
            ca_pem: None,
        };
        sh.credentials
            .insert(("default".into(), "shop-cert".into()), Arc::new(cred));
    }
    for_proxy(&sh, proxy, &ProxySecurity::default())
}

#[test]
fn selected_gateway_gets_a_listener_per_port_with_rds() {
    let r = translate(&gateway_proxy(&[("istio", "ingressgateway")]), true);
    let ports: Vec<u32> = (r.listeners.iter())
        .filter_map(|l| match l.address.as_ref()?.address.as_ref()? {
            envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s) => {
                match s.port_specifier {
                    Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) => Some(p),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        ports,
        [18080, 18443],
        "server ports mapped by the node's port map"
    );
    let names: Vec<&str> = r.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["http.80", "http.443"],
        "no sidecar `outbound` route"
    );
    let https = &r.routes[1].virtual_hosts[0];
    assert_eq!(https.domains, ["shop.example.com"]);
    assert!(https.routes[0].action.is_some());
    let redirect = &r.routes[0].virtual_hosts[0];
    assert_eq!(redirect.require_tls, TlsRequirementType::All as i32);
    let tls_chain = &r.listeners[1].filter_chains[0];
    assert!(tls_chain.transport_socket.is_some());
    let secrets: Vec<&str> = r.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(secrets, ["kubernetes://shop-cert"]);
    assert!(!r.clusters.iter().any(|c| c.name.starts_with("inbound|")));
}

#[test]
fn missing_credential_leaves_the_server_out() {
    let r = translate(&gateway_proxy(&[("istio", "ingressgateway")]), false);
    assert_eq!(r.listeners.len(), 1, "only the plain-text port is left");
    assert!(r.secrets.is_empty());
}

#[test]
fn unselected_gateway_proxy_gets_nothing() {
    let r = translate(&gateway_proxy(&[("istio", "egressgateway")]), true);
    assert!(r.listeners.is_empty());
    assert!(r.routes.is_empty());
}

#[test]
fn credential_debug_hides_the_key() {
    let c = Credential {
        cert_pem: "C".into(),
        key_pem: "SECRET".into(),
        ca_pem: None,
    };
    assert!(!format!("{c:?}").contains("SECRET"));
}
