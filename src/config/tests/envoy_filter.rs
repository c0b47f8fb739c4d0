//! `EnvoyFilter`: Istio's documented filters load, and every error case
//! is reported at its position.

use super::{errors, load};
use crate::config::model::{ApplyTo, Operation, PatchContext, PatchValue};

/// An EnvoyFilter whose `configPatches` start on line 5.
fn filter(patches: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {{name: ef}}\nspec:\n  configPatches:\n{patches}"
    )
}

const LUA: &str = "  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        filterChain:
          filter:
            name: envoy.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config:
          '@type': type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          value:
            default_source_code: {inline_string: 'function envoy_on_response(h) end'}
";

#[test]
fn a_typed_struct_is_read_as_the_message_it_wraps() {
    let mesh = load(&[("f.yaml", &filter(LUA))]).unwrap();
    let p = &mesh.envoy_filters[0].patches[0];
    assert_eq!(p.apply_to, ApplyTo::HttpFilter);
    assert_eq!(p.context, PatchContext::SidecarOutbound);
    assert_eq!(p.operation, Operation::InsertBefore);
    let Some(PatchValue::HttpFilter(f)) = &p.value else {
        panic!("{p:?}")
    };
    let Some(envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("{f:?}")
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
    );
    assert_eq!(p.site.line, 6);
    // The deprecated filter name reads as the current one.
    let crate::config::model::ObjectMatch::Listener(m) = &p.object else {
        panic!()
    };
    let chain = m.filter_chain.as_ref().unwrap();
    assert_eq!(
        chain.filter.as_deref(),
        Some("envoy.filters.network.http_connection_manager")
    );
}

#[test]
fn insert_on_an_unordered_object_is_add_as_in_istio() {
    let patches = "  - applyTo: CLUSTER
    patch:
      operation: INSERT_FIRST
      value: {name: extra, type: STATIC, connect_timeout: 1s}
";
    let mesh = load(&[("f.yaml", &filter(patches))]).unwrap();
    assert_eq!(mesh.envoy_filters[0].patches[0].operation, Operation::Add);
}

#[test]
fn every_error_case_is_positioned() {
    let cases: &[(&str, &str)] = &[
        (
            "  - applyTo: EXTENSION_CONFIG\n    patch: {operation: ADD, value: {name: x}}\n",
            "f.yaml:6:5: error: EnvoyFilter/ef: spec.configPatches[0].applyTo: applyTo EXTENSION_CONFIG patches ECDS resources, which Trellis does not serve: put the filter's config inline with an HTTP_FILTER patch",
        ),
        (
            "  - applyTo: SOMETHING\n    patch: {operation: ADD, value: {}}\n",
            "f.yaml:6:5: error: EnvoyFilter/ef: spec.configPatches[0].applyTo: unknown applyTo \"SOMETHING\": use LISTENER, LISTENER_FILTER, FILTER_CHAIN, NETWORK_FILTER, HTTP_FILTER, ROUTE_CONFIGURATION, VIRTUAL_HOST, HTTP_ROUTE or CLUSTER",
        ),
        (
            "  - applyTo: CLUSTER\n    patch: {operation: MERGE}\n",
            "f.yaml:7:5: error: EnvoyFilter/ef: spec.configPatches[0].patch: patch.value is required for every operation but REMOVE",
        ),
        (
            "  - applyTo: CLUSTER\n    patch: {operation: SWAP, value: {}}\n",
            "f.yaml:7:13: error: EnvoyFilter/ef: spec.configPatches[0].patch.operation: unknown operation \"SWAP\": use MERGE, MERGE_AND_REPLACE_LIST, ADD, REMOVE, INSERT_BEFORE, INSERT_AFTER, INSERT_FIRST or REPLACE",
        ),
        (
            "  - applyTo: BOOTSTRAP\n    patch: {operation: MERGE, value: {}}\n",
            "f.yaml:6:5: error: EnvoyFilter/ef: spec.configPatches[0].applyTo: applyTo BOOTSTRAP patches Envoy's bootstrap, which a sidecar reads from its file before it talks to Trellis and which xDS never changes: change the file `trellis bootstrap` writes instead",
        ),
        (
            "  - applyTo: LISTENER_FILTER\n    patch: {operation: REMOVE}\n",
            "f.yaml:6:5: error: EnvoyFilter/ef: spec.configPatches[0].match: LISTENER_FILTER with MERGE, REPLACE or REMOVE needs match.listener.listenerFilter (the filter to change)",
        ),
        (
            "  - applyTo: HTTP_FILTER\n    match: {listener: {listenerFilter: envoy.filters.listener.tls_inspector}}\n    patch: {operation: REMOVE}\n",
            "f.yaml:7:24: error: EnvoyFilter/ef: spec.configPatches[0].match.listener.listenerFilter: a listenerFilter match applies to applyTo LISTENER_FILTER only",
        ),
        (
            "  - applyTo: LISTENER_FILTER\n    match: {listener: {filterChain: {name: x}}}\n    patch: {operation: ADD, value: {name: x}}\n",
            "f.yaml:7:24: error: EnvoyFilter/ef: spec.configPatches[0].match.listener.filterChain: a filterChain match does not apply to LISTENER_FILTER (listener filters run before a chain is chosen): match the listener and listenerFilter",
        ),
        (
            "  - applyTo: HTTP_FILTER\n    patch: {operation: ADD, filterClass: AUTHZ, value: {name: x}}\n",
            "f.yaml:7:29: error: EnvoyFilter/ef: spec.configPatches[0].patch.filterClass: filterClass AUTHZ is not applied by Istio either (istiod ignores it): place the filter with INSERT_BEFORE/INSERT_AFTER and a filter name (envoy.filters.http.jwt_authn, envoy.filters.http.rbac, envoy.filters.http.router)",
        ),
        (
            "  - applyTo: LISTENER\n    match: {listener: {portName: http}}\n    patch: {operation: REMOVE}\n",
            "f.yaml:7:24: error: EnvoyFilter/ef: spec.configPatches[0].match.listener.portName: listener.portName is not implemented by Istio (its API marks it so and hides it): match the listener by portNumber",
        ),
        (
            "  - applyTo: CLUSTER\n    patch: {operation: REPLACE, value: {}}\n",
            "f.yaml:7:13: error: EnvoyFilter/ef: spec.configPatches[0].patch.operation: REPLACE applies to HTTP_FILTER, NETWORK_FILTER, LISTENER_FILTER and VIRTUAL_HOST only",
        ),
        (
            "  - applyTo: CLUSTER\n    patch:\n      operation: MERGE\n      value: {connect_timeout: 1s, no_such_field: 1}\n",
            "f.yaml:9:36: error: EnvoyFilter/ef: spec.configPatches[0].patch.value.no_such_field: not a valid envoy.config.cluster.v3.Cluster: unrecognized field name 'no_such_field'",
        ),
        (
            "  - applyTo: HTTP_FILTER\n    match: {context: SIDECAR_INBOUND, cluster: {name: x}}\n    patch: {operation: REMOVE}\n",
            "f.yaml:7:39: error: EnvoyFilter/ef: spec.configPatches[0].match.cluster: applyTo HttpFilter takes a `listener` match",
        ),
        (
            "  - applyTo: CLUSTER\n    match: {context: EVERYWHERE}\n    patch: {operation: REMOVE}\n",
            "f.yaml:7:13: error: EnvoyFilter/ef: spec.configPatches[0].match.context: unknown context \"EVERYWHERE\": use ANY, SIDECAR_INBOUND, SIDECAR_OUTBOUND or GATEWAY",
        ),
        (
            "  - applyTo: NETWORK_FILTER\n    match:\n      listener:\n        filterChain:\n          filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}\n    patch: {operation: REMOVE}\n",
            "f.yaml:10:73: error: EnvoyFilter/ef: spec.configPatches[0].match.listener.filterChain.filter.subFilter: a subFilter match applies to applyTo HTTP_FILTER only",
        ),
        (
            "  - applyTo: CLUSTER\n    match: {proxy: {proxyVersion: '^1\\.2.*'}}\n    patch: {operation: REMOVE}\n",
            "f.yaml:7:13: error: EnvoyFilter/ef: spec.configPatches[0].match.proxy: match.proxy matches Istio proxy versions and node metadata, which Trellis sidecars do not carry: remove it",
        ),
        (
            "  - applyTo: ROUTE_CONFIGURATION\n    patch: {operation: ADD, value: {name: x}}\n",
            "f.yaml:7:13: error: EnvoyFilter/ef: spec.configPatches[0].patch.operation: a route configuration can only be merged into (Istio applies no other operation to it): patch its virtual hosts instead",
        ),
        (
            "  - applyTo: HTTP_FILTER\n    patch:\n      operation: ADD\n      value:\n        name: x\n        typed_config: {'@type': type.googleapis.com/udpa.type.v1.TypedStruct, value: {}}\n",
            "f.yaml:11:9: error: EnvoyFilter/ef: spec.configPatches[0].patch.value.typed_config: a TypedStruct needs a `type_url`",
        ),
        (
            "  - applyTo: HTTP_FILTER\n    patch:\n      operation: ADD\n      value:\n        name: x\n        typed_config: {'@type': type.googleapis.com/envoy.NoSuchType}\n",
            "f.yaml:11:9: error: EnvoyFilter/ef: spec.configPatches[0].patch.value.typed_config: not a valid envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter: message 'envoy.NoSuchType' not found",
        ),
    ];
    let mut wrong = Vec::new();
    for (patches, want) in cases {
        let got = errors(&filter(patches));
        if got != [want.to_string()] {
            wrong.push(format!("want {want}\n got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn target_refs_name_kubernetes_gateways_only() {
    let text = "apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ef}
spec:
  targetRefs:
  - {group: '', kind: Service, name: reviews}
  configPatches: []
";
    assert_eq!(
        errors(text),
        ["f.yaml:6:17: error: EnvoyFilter/ef: spec.targetRefs[0].kind: targetRefs /Service selects ambient waypoint proxies, which Trellis does not have: use kind Gateway (gateway.networking.k8s.io) or a workloadSelector"]
    );
}

#[test]
fn envoy_filter_is_v1alpha3_only() {
    let text =
        "apiVersion: networking.istio.io/v1\nkind: EnvoyFilter\nmetadata: {name: ef}\nspec: {}\n";
    assert_eq!(
        errors(text),
        ["f.yaml:1:1: error: EnvoyFilter/ef: apiVersion: unknown apiVersion \"networking.istio.io/v1\": networking.istio.io serves v1alpha3"]
    );
}
