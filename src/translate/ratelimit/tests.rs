use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::RateLimit as GlobalRateLimit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpConnectionManager, HttpFilter,
};
use prost::Message;

use crate::registry::{instances, Proxy, Registry};
use crate::translate::{for_proxy, shared, ProxySecurity, Shared};

const SERVICES: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay}
spec:
  hosts: [pay]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay}
spec:
  host: pay
  subsets:
  - {name: v1, labels: {version: v1}}
---
";

fn shared_with(limits: &str) -> Shared {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), format!("{SERVICES}{limits}")).unwrap();
    let mesh = crate::config::load_dir(dir.path()).unwrap();
    shared(&mesh, &instances(&mesh, &Registry::new()))
}

fn pay(version: &str) -> Proxy {
    Proxy {
        id: format!("pay-{version}"),
        service: "pay".into(),
        namespace: "default".into(),
        service_account: "pay".into(),
        labels: [("version".to_string(), version.to_string())].into(),
        app_port: 9000,
        inbound_address: "127.0.0.1".into(),
        inbound_port: 15006,
        outbound_port: 15001,
        ..Default::default()
    }
}

/// The HTTP filters of the proxy's inbound listener.
fn inbound_filters(sh: &Shared, proxy: &Proxy) -> Vec<HttpFilter> {
    let r = for_proxy(sh, proxy, &ProxySecurity::default());
    let l = r.listeners.iter().find(|l| l.name == "inbound").unwrap();
    let f = &l.filter_chains[0].filters[0];
    let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!()
    };
    HttpConnectionManager::decode(any.value.as_slice())
        .unwrap()
        .http_filters
}

fn config<M: Message + Default>(f: &HttpFilter) -> M {
    let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!()
    };
    M::decode(any.value.as_slice()).unwrap()
}

const LOCAL: &str = "apiVersion: trellis.dev/v1alpha1
kind: RateLimit
metadata: {name: pay-limits}
spec:
  target: {host: pay, subset: v1}
  rules:
  - name: api
    match: {path: {prefix: /api}, method: GET}
    limit: {requests: 10, unit: second, burst: 5}
  - name: all-else
    match: {path: {prefix: /web}}
    limit: {requests: 100, unit: minute}
    shadow: true
";

#[test]
fn local_rules_become_one_bucket_each_before_the_router() {
    let sh = shared_with(LOCAL);
    let filters = inbound_filters(&sh, &pay("v1"));
    let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.local_ratelimit",
            "envoy.filters.http.local_ratelimit",
            "envoy.filters.http.router"
        ]
    );
    let api: LocalRateLimit = config(&filters[0]);
    assert_eq!(api.stat_prefix, "ratelimit_default_pay-limits_api");
    let bucket = api.descriptors[0].token_bucket.unwrap();
    assert_eq!(bucket.max_tokens, 15, "requests + burst");
    assert_eq!(bucket.tokens_per_fill.unwrap().value, 10);
    assert!(api.token_bucket.is_none(), "no default bucket");
    assert_eq!(api.status.unwrap().code, 429);
    assert_eq!(
        api.filter_enforced
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        100
    );
    let entries: Vec<(&str, &str)> = (api.descriptors[0].entries.iter())
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("ratelimit", "default/pay-limits"),
            ("rule", "api"),
            ("match", "true")
        ]
    );
    assert_eq!(api.rate_limits[0].actions.len(), 3);
    let shadow: LocalRateLimit = config(&filters[1]);
    assert_eq!(
        shadow
            .filter_enforced
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        0
    );
    assert_eq!(
        shadow
            .filter_enabled
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        100
    );
}

#[test]
fn a_subset_target_leaves_other_instances_alone() {
    let sh = shared_with(LOCAL);
    let filters = inbound_filters(&sh, &pay("v2"));
    assert_eq!(filters.len(), 1, "only the router");
}

#[test]
fn global_rules_call_the_service_over_mesh_mtls_and_fail_open() {
    let global = "apiVersion: trellis.dev/v1alpha1
kind: RateLimit
metadata: {name: pay-global}
spec:
  target: {host: pay}
  mode: global
  service: {address: '127.0.0.1:8081', namespace: trellis-system, serviceAccount: ratelimit}
  rules:
  - name: all
    match: {source: {namespace: shop}}
    limit: {requests: 10, unit: second}
";
    let sh = shared_with(global);
    let filters = inbound_filters(&sh, &pay("v1"));
    let g: GlobalRateLimit = config(&filters[0]);
    assert_eq!(g.domain, "trellis");
    assert!(!g.failure_mode_deny);
    let actions = &g.rate_limits[0].actions;
    assert_eq!(actions.len(), 3, "resource, rule, source");
    let cluster = (sh.clusters.iter())
        .find(|c| c.name == "ratelimit|127.0.0.1|8081")
        .expect("the service's cluster is shared");
    let ts = cluster.transport_socket.as_ref().unwrap();
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &ts.config_type
    else {
        panic!()
    };
    let tls =
        envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext::decode(
            any.value.as_slice(),
        )
        .unwrap();
    let ts = format!("{tls:?}");
    assert!(
        ts.contains("spiffe://cluster.local/ns/trellis-system/sa/ratelimit"),
        "{ts}"
    );
}

/// The gateway proxy of the `rate-limits` example.
fn example() -> Shared {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples/rate-limits");
    let mesh = crate::config::load_dir(&dir).unwrap();
    shared(&mesh, &instances(&mesh, &Registry::new()))
}

fn ingress() -> Proxy {
    Proxy {
        id: "gw".into(),
        service: "istio-ingressgateway".into(),
        namespace: "default".into(),
        service_account: "istio-ingressgateway".into(),
        labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
        gateway: Some(crate::registry::GatewayNode {
            listen_address: "0.0.0.0".into(),
            port_map: Default::default(),
            endpoint_address: None,
            network_port: None,
        }),
        ..Default::default()
    }
}

#[test]
fn a_gateway_target_limits_the_gateways_listeners_only() {
    let sh = example();
    let gw = ingress();
    let limits = super::in_force(&sh, &gw);
    assert_eq!(limits.len(), 1);
    assert_eq!(limits[0].qualified(), "default/edge");
    let r = for_proxy(&sh, &gw, &ProxySecurity::default());
    let l = &r.listeners[0];
    let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!()
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    let local = (hcm.http_filters.iter())
        .filter(|f| f.name == "envoy.filters.http.local_ratelimit")
        .count();
    assert_eq!(local, 3, "one filter per rule of `edge`");
    let login: LocalRateLimit = config(&hcm.http_filters[0]);
    assert_eq!(login.status.unwrap().code, 503);
    assert_eq!(
        login.response_headers_to_add[0]
            .header
            .as_ref()
            .unwrap()
            .key,
        "retry-after"
    );
    // A sidecar of another service gets neither rule set.
    let mut other = pay("v1");
    other.service = "shop".into();
    assert!(super::in_force(&sh, &other).is_empty());
}
