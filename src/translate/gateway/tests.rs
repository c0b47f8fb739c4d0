use envoy_types::pb::envoy::config::route::v3::virtual_host::TlsRequirementType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;

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
            endpoint_address: None,
            network_port: None,
        }),
        ..Default::default()
    }
}

fn translate(proxy: &Proxy, with_credential: bool) -> crate::translate::ProxyResources {
    translate_with(proxy, with_credential, "")
}

fn translate_with(
    proxy: &Proxy,
    with_credential: bool,
    extra: &str,
) -> crate::translate::ProxyResources {
    for_proxy(
        &shared_with(with_credential, extra),
        proxy,
        &ProxySecurity::default(),
    )
}

fn shared_with(with_credential: bool, extra: &str) -> crate::translate::Shared {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), format!("{CONFIG}{extra}")).unwrap();
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
    sh
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

/// The HTTP filter names of every filter chain's HCM of every listener.
fn http_filter_names(r: &crate::translate::ProxyResources) -> Vec<Vec<String>> {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use prost::Message;
    let mut out = Vec::new();
    for l in &r.listeners {
        for c in &l.filter_chains {
            for f in &c.filters {
                let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                    continue;
                };
                let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
                out.push(hcm.http_filters.iter().map(|h| h.name.clone()).collect());
            }
        }
    }
    out
}

const DENY_ADMIN: &str = "
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin]}}]
";

/// An AuthorizationPolicy that selects a gateway's labels applies on every
/// one of its listeners, before the router; one that does not select it
/// adds nothing.
#[test]
fn authorization_policies_selecting_the_gateway_apply_on_its_listeners() {
    let r = translate_with(
        &gateway_proxy(&[("istio", "ingressgateway")]),
        true,
        DENY_ADMIN,
    );
    let chains = http_filter_names(&r);
    assert!(!chains.is_empty());
    for names in &chains {
        assert_eq!(
            names.first().map(String::as_str),
            Some(crate::translate::rbac::RBAC_FILTER)
        );
        assert_eq!(
            names.last().map(String::as_str),
            Some("envoy.filters.http.router")
        );
    }
    let r = translate_with(&gateway_proxy(&[("istio", "ingressgateway")]), true, "");
    for names in http_filter_names(&r) {
        assert_eq!(
            names,
            ["envoy.filters.http.cors", "envoy.filters.http.router"]
        );
    }
}

const PASSTHROUGH: &str = "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-backend}
spec:
  hosts: [tls-backend]
  ports: [{number: 8443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: pass}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 9443, name: tls, protocol: TLS}
    hosts: [\"*.example.com\"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-sni}
spec:
  hosts: [\"*.example.com\"]
  gateways: [pass]
  tls:
  - match: [{sniHosts: [a.example.com, b.example.org]}]
    route: [{destination: {host: tls-backend}}]
  - match: [{sniHosts: [c.example.org]}]
    route: [{destination: {host: tls-backend}}]
";

#[test]
fn a_passthrough_server_routes_only_the_sni_names_its_hosts_admit() {
    let r = translate_with(
        &gateway_proxy(&[("istio", "ingressgateway")]),
        true,
        PASSTHROUGH,
    );
    let l = (r.listeners.iter())
        .find(|l| l.name == "127.0.0.1_9443")
        .unwrap();
    let names: Vec<_> = (l.filter_chains.iter())
        .map(|c| c.filter_chain_match.as_ref().unwrap().server_names.clone())
        .collect();
    assert_eq!(names, [vec!["a.example.com".to_string()]]);
    let inspector = &l.listener_filters[0].name;
    assert_eq!(inspector, "envoy.filters.listener.tls_inspector");
    // No HTTP route configuration for a TLS port.
    assert!(r.routes.iter().all(|rc| rc.name != "http.9443"));
}

/// A TCP/TLS server of a gateway that an AuthorizationPolicy selects
/// serves with the policy as network RBAC in front of `tcp_proxy`; a DENY
/// rule of HTTP-only fields (`paths`) ignores them on TCP, as Istio does,
/// so it denies every connection.
#[test]
fn tcp_servers_of_a_policy_guarded_gateway_enforce_it() {
    use envoy_types::pb::envoy::config::rbac::v3::{permission, rbac::Action};
    let proxy = gateway_proxy(&[("istio", "ingressgateway")]);
    let sh = shared_with(true, &format!("{PASSTHROUGH}{DENY_ADMIN}"));
    let r = crate::translate::proxy_own(&sh, &proxy, &ProxySecurity::default());
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    let l = (r.listeners.iter())
        .find(|l| l.name == "127.0.0.1_9443")
        .unwrap();
    let filters = &l.filter_chains[0].filters;
    let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            crate::translate::rbac::NETWORK_RBAC_FILTER,
            crate::translate::l4::TCP_PROXY
        ]
    );
    let rbac = crate::translate::rbac::decode_network(&filters[0]).unwrap();
    let rules = rbac.rules.unwrap();
    assert_eq!(rules.action, Action::Deny as i32);
    let policy = &rules.policies["ns[default]-policy[no-admin]-rule[0]"];
    // The operation kept no field: an AND of `any`.
    let and = match &policy.permissions[0].rule {
        Some(permission::Rule::AndRules(set)) => &set.rules,
        other => panic!("{other:?}"),
    };
    assert_eq!(and[0].rule, Some(permission::Rule::Any(true)));
    assert_eq!(rbac.stat_prefix, "tcp.");
}

const JWT_AT_THE_EDGE: &str = r#"
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: edge-jwt}
spec:
  selector: {matchLabels: {istio: ingressgateway, tier: edge}}
  jwtRules:
  - issuer: https://auth.example.com
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}'
"#;

/// A RequestAuthentication that selects a gateway puts the JWT filter on
/// every one of its HCMs, before RBAC (which reads the payload it
/// verified); one that selects other labels adds nothing.
#[test]
fn request_authentication_selecting_the_gateway_goes_before_rbac() {
    let gw = gateway_proxy(&[("istio", "ingressgateway"), ("tier", "edge")]);
    let r = translate_with(&gw, true, &format!("{JWT_AT_THE_EDGE}{DENY_ADMIN}"));
    let chains = http_filter_names(&r);
    assert!(!chains.is_empty());
    for names in &chains {
        assert_eq!(
            names,
            &[
                crate::translate::jwt::JWT_FILTER,
                crate::translate::rbac::RBAC_FILTER,
                "envoy.filters.http.cors",
                "envoy.filters.http.router"
            ]
        );
    }
    let other = gateway_proxy(&[("istio", "ingressgateway")]);
    let chains = http_filter_names(&translate_with(&other, true, JWT_AT_THE_EDGE));
    assert!(!chains.is_empty());
    for names in chains {
        assert_eq!(
            names,
            ["envoy.filters.http.cors", "envoy.filters.http.router"]
        );
    }
}

const MESH_MODES: &str = "
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mesh-modes}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ['*.local']
    tls: {mode: AUTO_PASSTHROUGH}
  - port: {number: 9443, name: https-mesh, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: ISTIO_MUTUAL}
";

fn listener_socket(r: &crate::translate::OwnResources, name: &str) -> DownstreamTlsContext {
    let l = r.listeners.iter().find(|l| l.name == name).unwrap();
    let ts = l.filter_chains[0].transport_socket.as_ref().unwrap();
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &ts.config_type
    else {
        panic!("typed config")
    };
    <DownstreamTlsContext as prost::Message>::decode(any.value.as_slice()).unwrap()
}

/// AUTO_PASSTHROUGH: one SNI chain per outbound cluster of an admitted
/// service, to a copy of the cluster without TLS; ISTIO_MUTUAL: the
/// gateway's workload certificate and a required mesh client certificate.
#[test]
fn auto_passthrough_and_istio_mutual_servers() {
    let proxy = gateway_proxy(&[("istio", "ingressgateway")]);
    let mut mesh = MESH_MODES.to_string();
    mesh.push_str("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n");
    let sh = shared_with(false, &mesh);
    let security = ProxySecurity {
        mtls: true,
        certs: None,
    };
    let r = crate::translate::proxy_own(&sh, &proxy, &security);
    let sni = "outbound_.9080_._.reviews.default.svc.cluster.local";
    let l = (r.listeners.iter())
        .find(|l| l.name == "127.0.0.1_15443")
        .unwrap();
    let names: Vec<_> = (l.filter_chains.iter())
        .flat_map(|c| c.filter_chain_match.as_ref().unwrap().server_names.clone())
        .collect();
    let pay = "outbound_.8080_._.pay.default.svc.cluster.local";
    assert_eq!(names, [pay, sni], "every cluster-local service port");
    let c = r.gateway_clusters.iter().find(|c| c.name == sni).unwrap();
    assert!(c.transport_socket.is_none() && c.transport_socket_matches.is_empty());
    let eds = c.eds_cluster_config.as_ref().unwrap();
    assert_eq!(
        eds.service_name,
        "outbound|9080||reviews.default.svc.cluster.local"
    );

    let ctx = listener_socket(&r, "127.0.0.1_9443");
    assert_eq!(
        ctx.require_client_certificate,
        Some(BoolValue { value: true })
    );
    let common = ctx.common_tls_context.unwrap();
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
    // Without a CA the ISTIO_MUTUAL server is left out, saying why.
    let r = crate::translate::proxy_own(&sh, &proxy, &ProxySecurity::default());
    assert!(r.listeners.iter().all(|l| l.name != "127.0.0.1_9443"));
    assert!(r
        .skipped
        .iter()
        .any(|(_, _, why)| why.contains("ISTIO_MUTUAL")));
    // Sidecars get no SNI clusters.
    assert!(sh
        .clusters
        .iter()
        .all(|c| !c.name.starts_with("outbound_.")));
}

/// A gateway serving AUTO_PASSTHROUGH is its network's east-west gateway
/// on that server's listen port; other gateways are not.
#[test]
fn east_west_port_is_the_auto_passthrough_servers_listen_port() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), format!("{CONFIG}{MESH_MODES}")).unwrap();
    let mesh = crate::config::load_dir(dir.path()).unwrap();
    let mut proxy = gateway_proxy(&[("istio", "ingressgateway")]);
    assert_eq!(east_west_port(&mesh.gateways, &proxy), Some(15443));
    if let Some(gw) = proxy.gateway.as_mut() {
        gw.port_map.insert(15443, 25443);
    }
    assert_eq!(east_west_port(&mesh.gateways, &proxy), Some(25443));
    let other = gateway_proxy(&[("istio", "eastwestgateway")]);
    assert_eq!(east_west_port(&mesh.gateways, &other), None);
    let plain_dir = tempfile::tempdir().unwrap();
    std::fs::write(plain_dir.path().join("c.yaml"), CONFIG).unwrap();
    let plain = crate::config::load_dir(plain_dir.path()).unwrap();
    assert_eq!(
        east_west_port(&plain.gateways, &proxy),
        None,
        "no AUTO_PASSTHROUGH server"
    );
    let sidecar = Proxy::default();
    assert_eq!(east_west_port(&mesh.gateways, &sidecar), None);
}

const SECOND_SHOP: &str = "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-two}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http:
  - name: two
    match:
    - uri: {prefix: /two}
    route:
    - destination: {host: pay}
";

#[test]
fn two_virtual_services_for_one_gateway_host_merge_in_order() {
    let r = translate_with(
        &gateway_proxy(&[("istio", "ingressgateway")]),
        true,
        SECOND_SHOP,
    );
    let https = &r.routes[1].virtual_hosts;
    assert_eq!(https.len(), 1, "{https:?}");
    let names: Vec<&str> = https[0].routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["", "two"], "shop's routes, then shop-two's");
}

#[test]
fn a_server_port_on_a_listen_address_already_taken_is_left_out() {
    let sh = shared_with(true, "");
    let own = |proxy: &Proxy| crate::translate::proxy_own(&sh, proxy, &ProxySecurity::default());
    // Port 80 mapped where 443 listens: 80 comes first and keeps it.
    let mut proxy = gateway_proxy(&[("istio", "ingressgateway")]);
    if let Some(node) = proxy.gateway.as_mut() {
        node.port_map.insert(80, 18443);
    }
    let r = own(&proxy);
    let routes: Vec<&str> = r.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!((r.listeners.len(), routes), (1, vec!["http.80"]));
    let (gateway, server, why) = &r.skipped[0];
    assert_eq!((gateway.as_str(), *server), ("default/gw", 0));
    assert!(why.contains("server port 443 on 127.0.0.1:18443"), "{why}");
    // Envoy's admin interface (127.0.0.1, node metadata `admin_port`).
    let mut proxy = gateway_proxy(&[("istio", "ingressgateway")]);
    proxy.admin_port = Some(18080);
    let r = own(&proxy);
    assert_eq!(r.listeners.len(), 1);
    assert!(
        r.skipped[0].2.contains("admin interface"),
        "{:?}",
        r.skipped
    );
}

/// A rule only the gateway sees (`workloadSelector`) hashes `pay`'s
/// cluster: the gateway's route must carry the rule's hash key, as a
/// sidecar's does, or Envoy's ring hash gets no key and spreads.
const GATEWAY_HASH_RULE: &str = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay-at-the-edge}
spec:
  host: pay
  workloadSelector:
    matchLabels: {istio: ingressgateway}
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
";

#[test]
fn a_rule_only_the_gateway_sees_sets_its_routes_hash_key() {
    let r = translate_with(
        &gateway_proxy(&[("istio", "ingressgateway")]),
        true,
        GATEWAY_HASH_RULE,
    );
    let cluster = (r.clusters.iter())
        .find(|c| c.name == "outbound|8080||pay.default.svc.cluster.local")
        .unwrap();
    assert_eq!(
        cluster.lb_policy,
        envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy::RingHash as i32,
        "the gateway's cluster follows the rule it sees"
    );
    let route = &r.routes[1].virtual_hosts[0].routes[0];
    let Some(envoy_types::pb::envoy::config::route::v3::route::Action::Route(action)) =
        &route.action
    else {
        panic!("{route:?}")
    };
    assert_eq!(action.hash_policy.len(), 1, "{action:?}");
}

/// An AUTO_PASSTHROUGH gateway that sees another rule for `pay` than the
/// default (here the only rule, which selects it) proxies to that rule's
/// clusters: its subsets and its connection limits.
#[test]
fn auto_passthrough_clusters_follow_the_rule_the_gateway_sees() {
    let proxy = gateway_proxy(&[("istio", "ingressgateway")]);
    let mut mesh = MESH_MODES.to_string();
    mesh.push_str(
        "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay-at-the-edge}
spec:
  host: pay
  workloadSelector:
    matchLabels: {istio: ingressgateway}
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 7}}
  subsets:
  - {name: edge, labels: {version: v1}}
",
    );
    let sh = shared_with(false, &mesh);
    let security = ProxySecurity {
        mtls: true,
        certs: None,
    };
    let r = crate::translate::proxy_own(&sh, &proxy, &security);
    let names: Vec<&str> = r.gateway_clusters.iter().map(|c| c.name.as_str()).collect();
    let (whole, edge) = (
        "outbound_.8080_._.pay.default.svc.cluster.local",
        "outbound_.8080_.edge_.pay.default.svc.cluster.local",
    );
    assert!(names.contains(&whole) && names.contains(&edge), "{names:?}");
    let c = r.gateway_clusters.iter().find(|c| c.name == whole).unwrap();
    let limits = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(limits.max_connections.map(|v| v.value), Some(7));
    assert!(c.transport_socket.is_none() && c.transport_socket_matches.is_empty());
    // Under the default (no rule) there is no such subset.
    assert!(sh.sni_clusters.iter().all(|c| c.cluster.name != edge));
}

/// A change to a rule only gateways see re-translates the gateways' own
/// resources (their routes' hash key, their AUTO_PASSTHROUGH clusters).
#[test]
fn a_change_to_a_rule_only_gateways_see_is_a_proxy_input() {
    // One directory: the resources' origins name the file.
    let dir = tempfile::tempdir().unwrap();
    let build = |extra: &str| {
        std::fs::write(dir.path().join("c.yaml"), format!("{CONFIG}{extra}")).unwrap();
        let mesh = crate::config::load_dir(dir.path()).unwrap();
        shared(&mesh, &instances(&mesh, &Registry::new()))
    };
    let hash = |header: &str| build(&GATEWAY_HASH_RULE.replace("x-user", header));
    assert!(hash("x-user").same_proxy_inputs(&hash("x-user")));
    assert!(!hash("x-user").same_proxy_inputs(&hash("x-team")));
    let limit = |n: u32| {
        let rule = GATEWAY_HASH_RULE.replace(
            "loadBalancer:\n      consistentHash: {httpHeaderName: x-user}",
            &format!("connectionPool: {{tcp: {{maxConnections: {n}}}}}"),
        );
        build(&format!("{MESH_MODES}{rule}"))
    };
    assert!(limit(7).same_proxy_inputs(&limit(7)));
    assert!(!limit(7).same_proxy_inputs(&limit(8)));
}
