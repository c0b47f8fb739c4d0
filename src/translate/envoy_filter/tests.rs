//! Patches applied to translated resources: Istio's order, names and
//! merge rules, and the report of what changed.

use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use prost::Message;

use super::{applicable, shared_key};
use crate::config::model::MeshConfig;
use crate::registry::{instances, Registry};
use crate::translate::fixtures::sidecar;
use crate::translate::{for_proxy, shared, ProxyResources, ProxySecurity};

const PRODUCTPAGE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage}
spec:
  hosts: [productpage]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
";

fn mesh(files: &[(&str, &str)]) -> MeshConfig {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    crate::config::load_dir(dir.path()).unwrap()
}

fn resources(mesh: &MeshConfig, service: &str) -> ProxyResources {
    let mut reg = Registry::new();
    let proxy = sidecar(service, &format!("{service}-1"), "v1", 16000);
    reg.register(proxy.clone());
    let sh = shared(mesh, &instances(mesh, &reg));
    for_proxy(&sh, &proxy, &ProxySecurity::default())
}

fn filter(name: &str, ns: &str, priority: i32, body: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  priority: {priority}\n{body}\n---\n"
    )
}

fn inbound_hcm(res: &ProxyResources) -> HttpConnectionManager {
    let l = res.listeners.iter().find(|l| l.name == "inbound").unwrap();
    let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!()
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

#[test]
fn filters_apply_by_priority_then_root_namespace_first() {
    let sel = "  workloadSelector: {labels: {app: productpage}}\n  configPatches: []";
    let text = [
        filter("b", "default", 0, sel),
        filter("a", "default", 0, sel),
        filter("z", "istio-system", 0, sel),
        filter("first", "default", -1, sel),
        filter("other", "shop", -5, sel),
        filter(
            "unselected",
            "default",
            -9,
            "  workloadSelector: {labels: {app: x}}\n  configPatches: []",
        ),
    ]
    .concat();
    let m = mesh(&[("f.yaml", &text)]);
    let p = sidecar("productpage", "pp", "v1", 16000);
    let order: Vec<String> = applicable(&m.envoy_filters, "istio-system", &p)
        .iter()
        .map(|f| format!("{}/{}", f.origin.namespace, f.origin.name))
        .collect();
    assert_eq!(
        order,
        ["default/first", "istio-system/z", "default/a", "default/b"]
    );
    // None of them patches what proxies share: the proxy keeps sharing.
    assert!(shared_key(&applicable(&m.envoy_filters, "istio-system", &p)).is_empty());
}

#[test]
fn istios_inbound_names_select_trellis_inbound_routes() {
    let body = "  workloadSelector: {labels: {app: productpage}}
  configPatches:
  - applyTo: HTTP_ROUTE
    match:
      context: SIDECAR_INBOUND
      routeConfiguration:
        name: 'inbound|9080||'
        vhost: {name: 'inbound|http|9080', route: {action: ROUTE}}
    patch:
      operation: MERGE
      value: {response_headers_to_add: [{header: {key: x-a, value: b}}]}";
    let m = mesh(&[
        ("s.yaml", PRODUCTPAGE),
        ("f.yaml", &filter("ef", "istio-system", 0, body)),
    ]);
    let res = resources(&m, "productpage");
    let Some(RouteSpecifier::RouteConfig(rc)) = inbound_hcm(&res).route_specifier else {
        panic!()
    };
    let route = &rc.virtual_hosts[0].routes[0];
    assert_eq!(
        route.response_headers_to_add[0]
            .header
            .as_ref()
            .unwrap()
            .key,
        "x-a"
    );
    let patched = &res.envoy_filters.patched;
    assert_eq!(patched.len(), 1, "{patched:?}");
    assert_eq!(patched[0].resource, "inbound");
    assert_eq!(patched[0].envoy_filter, "istio-system/ef");
    assert_eq!(patched[0].line, 8);
    assert!(res.envoy_filters.unmatched(&m.envoy_filters).is_empty());
}

#[test]
fn merge_replaces_a_duration_whole_and_appends_lists() {
    let body = "  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND, cluster: {service: productpage, portNumber: 9080}}
    patch:
      operation: MERGE
      value: {connect_timeout: 3s, dns_lookup_family: V4_ONLY}";
    let m = mesh(&[
        ("s.yaml", PRODUCTPAGE),
        ("f.yaml", &filter("ef", "default", 0, body)),
    ]);
    let res = resources(&m, "client");
    let c = (res.clusters.iter())
        .find(|c| c.name == "outbound|9080||productpage.default.svc.cluster.local")
        .unwrap();
    let t = c.connect_timeout.as_ref().unwrap();
    assert_eq!((t.seconds, t.nanos), (3, 0));
    assert_eq!(c.dns_lookup_family, 1);
    // Only that cluster changed.
    let inbound = res
        .clusters
        .iter()
        .find(|c| c.name.starts_with("inbound|"))
        .unwrap();
    assert_ne!(inbound.dns_lookup_family, 1);
}

#[test]
fn a_patch_that_matches_nothing_is_reported() {
    let body = "  configPatches:
  - applyTo: VIRTUAL_HOST
    match: {routeConfiguration: {vhost: {name: nowhere}}}
    patch: {operation: REMOVE}";
    let m = mesh(&[
        ("s.yaml", PRODUCTPAGE),
        ("f.yaml", &filter("ef", "default", 0, body)),
    ]);
    let res = resources(&m, "client");
    let unmatched = res.envoy_filters.unmatched(&m.envoy_filters);
    assert_eq!(unmatched.len(), 1);
    assert!(
        unmatched[0].warning().contains(
            ":7:5: warning: EnvoyFilter/ef: spec.configPatches[0]: patch matched nothing"
        ),
        "{}",
        unmatched[0].warning()
    );
}

#[test]
fn a_merge_of_another_type_is_an_error_at_the_patch() {
    let body = "  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      context: SIDECAR_INBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}
    patch:
      operation: MERGE
      value:
        typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: x}";
    let m = mesh(&[
        ("s.yaml", PRODUCTPAGE),
        ("f.yaml", &filter("ef", "default", 0, body)),
    ]);
    let res = resources(&m, "productpage");
    let errors = &res.envoy_filters.errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("cannot merge a type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"), "{}", errors[0]);
    assert_eq!(errors[0].line, 7);
    // The filter is left as translated.
    assert!(inbound_hcm(&res).stat_prefix.starts_with("inbound_"));
}

#[test]
fn workload_selected_filters_that_patch_shared_resources_key_the_group() {
    let body = "  workloadSelector: {labels: {version: v2}}
  configPatches:
  - applyTo: CLUSTER
    patch: {operation: ADD, value: {name: extra, type: STATIC, connect_timeout: 1s}}";
    let m = mesh(&[("f.yaml", &filter("ef", "default", 0, body))]);
    let v1 = sidecar("a", "a1", "v1", 16000);
    let v2 = sidecar("a", "a2", "v2", 16001);
    let key = |p| shared_key(&applicable(&m.envoy_filters, "istio-system", p));
    assert!(key(&v1).is_empty());
    assert_eq!(key(&v2), [("default".to_string(), "ef".to_string())]);
}

#[test]
fn merge_and_replace_list_sets_a_list_where_merge_appends() {
    let domains = |operation: &str| {
        let body = format!(
            "  configPatches:
  - applyTo: VIRTUAL_HOST
    match:
      context: SIDECAR_INBOUND
      routeConfiguration: {{vhost: {{name: 'inbound|http|9080'}}}}
    patch:
      operation: {operation}
      value: {{domains: [only.example]}}"
        );
        let m = mesh(&[
            ("s.yaml", PRODUCTPAGE),
            ("f.yaml", &filter("ef", "default", 0, &body)),
        ]);
        let res = resources(&m, "productpage");
        assert!(
            res.envoy_filters.errors.is_empty(),
            "{:?}",
            res.envoy_filters.errors
        );
        let Some(RouteSpecifier::RouteConfig(rc)) = inbound_hcm(&res).route_specifier else {
            panic!()
        };
        rc.virtual_hosts[0].domains.clone()
    };
    let merged = domains("MERGE");
    assert!(
        merged.len() > 1 && merged.last().unwrap() == "only.example",
        "{merged:?}"
    );
    assert_eq!(domains("MERGE_AND_REPLACE_LIST"), ["only.example"]);
}

#[test]
fn listener_filters_are_added_next_to_the_named_one_and_removed() {
    let body = "  configPatches:
  - applyTo: LISTENER_FILTER
    match: {context: SIDECAR_OUTBOUND, listener: {name: virtualOutbound}}
    patch:
      operation: ADD
      value:
        name: envoy.filters.listener.tls_inspector
        typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
  - applyTo: LISTENER_FILTER
    match: {context: SIDECAR_OUTBOUND, listener: {listenerFilter: envoy.filters.listener.tls_inspector}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.listener.proxy_protocol
        typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol}
  - applyTo: LISTENER_FILTER
    match: {context: SIDECAR_OUTBOUND, listener: {name: virtualOutbound, listenerFilter: envoy.filters.listener.tls_inspector}}
    patch: {operation: REMOVE}";
    let m = mesh(&[
        ("s.yaml", PRODUCTPAGE),
        ("f.yaml", &filter("ef", "default", 0, body)),
    ]);
    let res = resources(&m, "client");
    let names = |name: &str| -> Vec<String> {
        let l = res.listeners.iter().find(|l| l.name == name).unwrap();
        l.listener_filters.iter().map(|f| f.name.clone()).collect()
    };
    // Added, the other inserted before it, then it was removed again.
    assert_eq!(names("outbound"), ["envoy.filters.listener.proxy_protocol"]);
    assert!(names("inbound").is_empty(), "{:?}", names("inbound"));
    assert!(res.envoy_filters.errors.is_empty());
    assert!(res.envoy_filters.unmatched(&m.envoy_filters).is_empty());
}
