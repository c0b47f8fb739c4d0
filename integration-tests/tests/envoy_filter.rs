//! `EnvoyFilter`s against real Envoy: both of Istio's documented local
//! rate-limit filters ("Enabling Rate Limits using Envoy"), as written,
//! TypedStruct wrapper and Istio's names (`inbound|http|9080`) included,
//! refuse requests over 4 a minute with 429; a Lua filter and a route
//! MERGE add response headers; a REMOVE takes the fault filter out; a
//! MERGE_AND_REPLACE_LIST replaces a virtual host's domains.

use std::time::Duration;

use serde_json::Value;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

const PRODUCTPAGE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage}
spec:
  hosts: [productpage]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
";

/// Istio's first local rate limit: every route of productpage's inbound side.
const LOCAL_RATE_LIMIT: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: filter-local-ratelimit-svc
  namespace: istio-system
spec:
  workloadSelector:
    labels:
      app: productpage
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_INBOUND
        listener:
          filterChain:
            filter:
              name: "envoy.filters.network.http_connection_manager"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
              token_bucket:
                max_tokens: 4
                tokens_per_fill: 4
                fill_interval: 60s
              filter_enabled:
                runtime_key: local_rate_limit_enabled
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              filter_enforced:
                runtime_key: local_rate_limit_enforced
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              response_headers_to_add:
                - append: false
                  header:
                    key: x-local-rate-limit
                    value: 'true'
"#;

/// Istio's second: the bucket on the routes of `inbound|http|9080`.
const PER_ROUTE_RATE_LIMIT: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: filter-local-ratelimit-svc
  namespace: istio-system
spec:
  workloadSelector:
    labels:
      app: productpage
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_INBOUND
        listener:
          filterChain:
            filter:
              name: "envoy.filters.network.http_connection_manager"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
    - applyTo: HTTP_ROUTE
      match:
        context: SIDECAR_INBOUND
        routeConfiguration:
          vhost:
            name: "inbound|http|9080"
            route:
              action: ANY
      patch:
        operation: MERGE
        value:
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              value:
                stat_prefix: http_local_rate_limiter
                token_bucket:
                  max_tokens: 4
                  tokens_per_fill: 4
                  fill_interval: 60s
                filter_enabled:
                  runtime_key: local_rate_limit_enabled
                  default_value:
                    numerator: 100
                    denominator: HUNDRED
                filter_enforced:
                  runtime_key: local_rate_limit_enforced
                  default_value:
                    numerator: 100
                    denominator: HUNDRED
                response_headers_to_add:
                  - append: false
                    header:
                      key: x-local-rate-limit
                      value: 'true'
"#;

const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);

/// Trellis serving `files`, a productpage instance (`app: productpage`)
/// and a client that reaches it.
async fn mesh(files: &[(&str, &str)]) -> (ConfigDir, Trellis, Backend, Sidecar, MeshClient) {
    let config = ConfigDir::with(files).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let app = Backend::start("productpage", "v1").await.unwrap();
    let labels = [("app", "productpage"), ("version", "v1")];
    let sidecar = Sidecar::start(&trellis, "productpage", &labels, app.port())
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("", "productpage"), 1)
        .await
        .unwrap();
    (config, trellis, app, sidecar, client)
}

/// The names of the HTTP filters of listener `name` in a config dump.
fn http_filters(dump: &Value, name: &str) -> Vec<String> {
    let mut listeners = (dump["configs"].as_array().into_iter().flatten())
        .flat_map(|c| c["dynamic_listeners"].as_array().into_iter().flatten())
        .map(|l| &l["active_state"]["listener"]);
    let listener = listeners.rfind(|l| l["name"] == name);
    let filters = (listener.into_iter())
        .flat_map(|l| l["filter_chains"].as_array().into_iter().flatten())
        .flat_map(|fc| fc["filters"].as_array().into_iter().flatten())
        .flat_map(|f| {
            f["typed_config"]["http_filters"]
                .as_array()
                .into_iter()
                .flatten()
        });
    filters
        .map(|f| f["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Six requests in a row: the first four pass, the rest get 429 with the
/// filter's header.
async fn assert_four_a_minute(client: &MeshClient) {
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let reply = client.get("productpage:9080", &[]).await.unwrap();
        statuses.push(reply.status);
        if reply.status == 429 {
            limited = Some(reply);
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    let limited = limited.unwrap();
    assert_eq!(
        limited
            .headers
            .get("x-local-rate-limit")
            .map(String::as_str),
        Some("true"),
        "{limited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istios_local_rate_limit_refuses_the_fifth_request_a_minute() {
    let files = [
        ("mesh.yaml", PRODUCTPAGE),
        ("ratelimit.yaml", LOCAL_RATE_LIMIT),
    ];
    let (_c, _t, _app, sidecar, client) = mesh(&files).await;
    let dump = sidecar.config_dump().await.unwrap();
    let filters = http_filters(&dump, "inbound");
    assert_eq!(
        filters.first().map(String::as_str),
        Some("envoy.filters.http.local_ratelimit"),
        "INSERT_BEFORE without a subFilter inserts first: {filters:?}"
    );
    assert_four_a_minute(&client).await;
    let stats = sidecar.stats().await.unwrap();
    let limited: Vec<_> = (stats.iter())
        .filter(|(k, _)| k.contains("http_local_rate_limiter") && k.ends_with(".rate_limited"))
        .collect();
    assert_eq!(
        limited.iter().map(|(_, v)| **v).sum::<u64>(),
        2,
        "{limited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istios_per_route_rate_limit_matches_the_inbound_vhost_by_istios_name() {
    let files = [
        ("mesh.yaml", PRODUCTPAGE),
        ("ratelimit.yaml", PER_ROUTE_RATE_LIMIT),
    ];
    let (_c, _t, _app, sidecar, client) = mesh(&files).await;
    let dump = sidecar.config_dump().await.unwrap();
    let text = dump.to_string();
    assert!(
        text.contains("typed_per_filter_config"),
        "the route carries the bucket: {dump:#}"
    );
    assert_four_a_minute(&client).await;
}

/// Adds a Lua filter on the client's outbound side and a response header
/// on productpage's outbound virtual host.
const RESPONSE_HEADERS: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: headers}
spec:
  workloadSelector:
    labels: {version: v1}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          default_source_code:
            inline_string: |
              function envoy_on_response(response_handle)
                response_handle:headers():add("x-lua", "hello")
              end
  - applyTo: VIRTUAL_HOST
    match:
      context: SIDECAR_OUTBOUND
      routeConfiguration:
        vhost: {name: "productpage.default.svc.cluster.local:9080"}
    patch:
      operation: MERGE
      value:
        response_headers_to_add:
        - header: {key: x-patched, value: vhost}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_add_response_headers() {
    let files = [
        ("mesh.yaml", PRODUCTPAGE),
        ("headers.yaml", RESPONSE_HEADERS),
    ];
    let (_c, _t, _app, _sidecar, client) = mesh(&files).await;
    let dump = client.sidecar.config_dump().await.unwrap();
    let filters = http_filters(&dump, "outbound");
    let lua = filters.iter().position(|f| f == "envoy.filters.http.lua");
    let router = filters
        .iter()
        .position(|f| f == "envoy.filters.http.router");
    assert_eq!(lua.map(|l| l + 1), router, "{filters:?}");
    let reply = client.get("productpage:9080", &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.headers.get("x-lua").map(String::as_str),
        Some("hello")
    );
    assert_eq!(
        reply.headers.get("x-patched").map(String::as_str),
        Some("vhost"),
        "{reply:?}"
    );
}

const ABORT: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage}
spec:
  hosts: [productpage]
  http:
  - fault:
      abort: {httpStatus: 503, percentage: {value: 100}}
    route:
    - destination: {host: productpage}
";

const NO_FAULT_FILTER: &str = "apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: no-fault, namespace: istio-system}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.fault}
    patch: {operation: REMOVE}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_fault_filter_ends_the_abort() {
    let files = [("mesh.yaml", PRODUCTPAGE), ("routes.yaml", ABORT)];
    let (config, _t, _app, _sidecar, client) = mesh(&files).await;
    let reply = client.get("productpage:9080", &[]).await.unwrap();
    assert_eq!(reply.status, 503, "the fault aborts first: {reply:?}");
    let dump = client.sidecar.config_dump().await.unwrap();
    assert!(http_filters(&dump, "outbound").contains(&"envoy.filters.http.fault".into()));
    config.write("no-fault.yaml", NO_FAULT_FILTER).unwrap();
    wait_for(WAIT, POLL, || async {
        let dump = client.sidecar.config_dump().await.unwrap();
        !http_filters(&dump, "outbound").contains(&"envoy.filters.http.fault".into())
    })
    .await
    .unwrap();
    // A new connection: open ones drain on the listener they started on.
    let fresh = Client::new();
    let port = client.sidecar.outbound_port();
    let reply = fresh.get(port, "productpage:9080", "/", &[]).await.unwrap();
    assert_eq!(reply.status, 200, "no fault filter, no abort: {reply:?}");
    assert!(reply.backend.is_some(), "the app answered: {reply:?}");
}

/// The outbound virtual host of productpage answers one name only: its
/// `domains` replaced whole, where MERGE would append to them.
const ONLY_ONE_NAME: &str = "apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: only-one-name, namespace: istio-system}
spec:
  configPatches:
  - applyTo: VIRTUAL_HOST
    match:
      context: SIDECAR_OUTBOUND
      routeConfiguration:
        vhost: {name: 'productpage.default.svc.cluster.local:9080'}
    patch:
      operation: MERGE_AND_REPLACE_LIST
      value: {domains: [shop.internal]}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_and_replace_list_replaces_the_domains() {
    let files = [("mesh.yaml", PRODUCTPAGE), ("names.yaml", ONLY_ONE_NAME)];
    let (_c, _t, _app, _sidecar, client) = mesh(&files).await;
    let reply = client.get("shop.internal", &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.backend.is_some(), "the app answered: {reply:?}");
    // The service's own names are gone from the list, not kept beside it.
    let reply = client.get("productpage:9080", &[]).await.unwrap();
    assert!(reply.backend.is_none(), "still routed by name: {reply:?}");
    let routes = client.routes_dump().await;
    assert!(routes.contains("shop.internal"), "{routes}");
}

/// Clients send a PROXY protocol header to productpage, which its inbound
/// listener reads with a listener filter put first (before the TLS
/// inspector), as Istio users pair the two.
const PROXY_PROTOCOL: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: productpage}
spec:
  host: productpage
  trafficPolicy:
    proxyProtocol: {version: V1}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: proxy-protocol, namespace: istio-system}
spec:
  workloadSelector: {labels: {app: productpage}}
  configPatches:
  - applyTo: LISTENER_FILTER
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_FIRST
      value:
        name: envoy.filters.listener.proxy_protocol
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol
";

/// The listener filter names of listener `name` in a config dump.
fn listener_filters(dump: &Value, name: &str) -> Vec<String> {
    let listeners = (dump["configs"].as_array().into_iter().flatten())
        .flat_map(|c| c["dynamic_listeners"].as_array().into_iter().flatten())
        .map(|l| &l["active_state"]["listener"]);
    (listeners.filter(|l| l["name"] == name))
        .flat_map(|l| l["listener_filters"].as_array().into_iter().flatten())
        .map(|f| f["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_filter_reads_the_proxy_protocol_header_clients_send() {
    let files = [("mesh.yaml", PRODUCTPAGE), ("pp.yaml", PROXY_PROTOCOL)];
    let (_c, _t, _app, sidecar, client) = mesh(&files).await;
    let dump = sidecar.config_dump().await.unwrap();
    let filters = listener_filters(&dump, "inbound");
    assert_eq!(
        filters.first().map(String::as_str),
        Some("envoy.filters.listener.proxy_protocol"),
        "{filters:?}"
    );
    // Without the filter the header would reach the TLS or HTTP parser
    // and every request would fail.
    let tally = client.tally("productpage:9080", &[], 20, 2).await;
    assert_eq!(tally.ok(), 20, "{tally:?}");
}
