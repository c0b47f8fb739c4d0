//! A Gateway API Gateway and its routes on the gateway proxy that carries
//! its name label.

use envoy_types::pb::envoy::config::route::v3::{redirect_action, route, route_action};

use super::*;
use crate::registry::{instances, Registry};
use crate::translate::{for_proxy, shared, ProxySecurity};

fn example() -> crate::translate::ProxyResources {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples/gateway-api");
    let mesh = crate::config::load_dir(&dir).unwrap();
    let mut sh = shared(&mesh, &instances(&mesh, &Registry::new()));
    let cred = Credential {
        cert_pem: "CERT".into(),
        key_pem: "KEY".into(),
        ca_pem: None,
    };
    sh.credentials
        .insert(("default".into(), "shop-cert".into()), Arc::new(cred));
    let proxy = Proxy {
        id: "gw-1".into(),
        service: "shop-gateway".into(),
        namespace: "default".into(),
        labels: [(
            "gateway.networking.k8s.io/gateway-name".to_string(),
            "shop-gateway".to_string(),
        )]
        .into(),
        gateway: Some(GatewayNode {
            listen_address: "127.0.0.1".into(),
            port_map: Default::default(),
            endpoint_address: None,
            network_port: None,
        }),
        ..Default::default()
    };
    for_proxy(&sh, &proxy, &ProxySecurity::default())
}

#[test]
fn routes_attach_to_their_listeners() {
    let r = example();
    let rc = |name: &str| {
        r.routes
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let http = rc("http.80");
    assert_eq!(http.virtual_hosts.len(), 1, "{http:?}");
    let redirect = match &http.virtual_hosts[0].routes[0].action {
        Some(route::Action::Redirect(r)) => r,
        other => panic!("not a redirect: {other:?}"),
    };
    assert_eq!(
        redirect.scheme_rewrite_specifier,
        Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
            "https".into()
        ))
    );
    let https = rc("http.443");
    let vh = &https.virtual_hosts[0];
    assert_eq!(vh.domains, ["shop.example.com"]);
    let split = vh.routes.iter().find_map(|r| match &r.action {
        Some(route::Action::Route(a)) => match &a.cluster_specifier {
            Some(route_action::ClusterSpecifier::WeightedClusters(w)) => Some(w.clone()),
            _ => None,
        },
        _ => None,
    });
    let weights: Vec<u32> = split
        .unwrap()
        .clusters
        .iter()
        .map(|c| c.weight.as_ref().unwrap().value)
        .collect();
    assert_eq!(weights, [70, 30]);
    assert!(rc("http.9443").virtual_hosts[0].domains == ["catalog.example.com"]);
}
