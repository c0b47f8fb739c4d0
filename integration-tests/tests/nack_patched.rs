//! Rejections of what is not an outbound route or cluster, traced to the
//! config line, live and by `trellis validate --envoy`:
//! - a listener an `EnvoyFilter` patched with a filter config Envoy
//!   refuses (a local rate limit without its required `stat_prefix`):
//!   blamed on the patch, not on what generated the listener;
//! - a gateway's `http.PORT` route configuration with a regex over RE2's
//!   program-size limit: blamed on the VirtualService bound to the
//!   gateway, at the regex.

use std::time::Duration;

use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::gateway::start_gateway;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::nack::{assert_traced, position_of, validate_envoy, Expected};
use trellis_integration_tests::*;

const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// Every sidecar of `default` gets a local rate limit filter without a
/// `stat_prefix`: Trellis type-checks the patch (it is a valid message),
/// Envoy's validation requires the field and rejects the listener.
const BROKEN_FILTER: &str = "apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: broken-limit
  namespace: default
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          token_bucket:
            max_tokens: 4
            tokens_per_fill: 4
            fill_interval: 60s
";

/// Where the blame of [`BROKEN_FILTER`] points: its patch.
fn broken_filter_at(config: &ConfigDir) -> (std::path::PathBuf, (u64, u64)) {
    (
        config.file("filter.yaml"),
        position_of(BROKEN_FILTER, "applyTo:"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_an_envoy_filter_broke_is_traced_to_the_patch() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1: _v1,
        trellis,
        config,
    } = CanaryMesh::weighted(100, 0, &["v1"]).await.unwrap();
    config.write("filter.yaml", BROKEN_FILTER).unwrap();
    let rejected = wait::wait_for(WAIT, POLL, || async {
        client.sidecar.stats().await.ok().is_some_and(|s| {
            s.get("listener_manager.lds.update_rejected")
                .is_some_and(|v| *v >= 1)
        })
    })
    .await;
    assert!(
        rejected.is_ok(),
        "Envoy never rejected the patched listener (lds update_rejected): {}",
        trellis.log()
    );
    let (file, at) = broken_filter_at(&config);
    let want = Expected {
        kind: "EnvoyFilter",
        name: "broken-limit",
        file: &file,
        at,
    };
    let node = &client.sidecar.spec.node_id;
    assert_traced(&trellis, node, ("Listener", "lds"), want).await;
    // The proxy keeps its last good listeners and still routes.
    let after = client.tally("payment", &[], 20, 2).await;
    assert_eq!(after.get("payment v1"), 20, "{after:?}");
}

#[test]
fn validate_envoy_traces_a_broken_patch_to_its_line() {
    let config = ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        ("routes.yaml", &weighted_routes("payment", &[("v1", 100)])),
        ("filter.yaml", BROKEN_FILTER),
    ])
    .unwrap();
    let (code, line, all) = validate_envoy(config.path(), &["--proxy", "client"]);
    assert_eq!(code, 1, "{all}");
    let (file, (row, col)) = broken_filter_at(&config);
    let place = format!(
        "{}:{row}:{col}: error: EnvoyFilter/broken-limit: ",
        file.display()
    );
    let line = line.unwrap_or_else(|| panic!("no error line: {all}"));
    assert!(line.starts_with(&place), "{line}\n{all}");
}

const EDGE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment}
spec:
  hosts: [payment]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
";

/// A VirtualService bound to the gateway `edge`, its first rule matching
/// with `regex` when given.
fn edge_routes(regex: Option<&str>) -> String {
    let matched = regex.map_or(String::new(), |r| {
        format!("  - match:\n    - uri:\n        regex: \"{r}\"\n    route:\n    - destination: {{host: payment}}\n")
    });
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: edge-routes}}
spec:
  hosts: [shop.example.com]
  gateways: [edge]
  http:
{matched}  - route:
    - destination: {{host: payment}}
"
    )
}

/// The regex of [`NACKED_ROUTES`]: RE2 program size about 660.
fn big_regex() -> &'static str {
    let line = NACKED_ROUTES
        .lines()
        .find(|l| l.contains("regex:"))
        .unwrap();
    let (_, quoted) = line.split_once("regex: ").unwrap();
    quoted.trim().trim_matches('"')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_route_nack_is_traced_to_the_bound_virtual_service() {
    let config =
        ConfigDir::with(&[("edge.yaml", EDGE), ("routes.yaml", &edge_routes(None))]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&trellis, files.path(), &[(80, free_port())])
        .await
        .unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&gateway.admin("/server_info").await.unwrap()).unwrap();
    let node = info["node"]["id"].as_str().unwrap().to_string();

    let routes = edge_routes(Some(big_regex()));
    config.replace("routes.yaml", &routes).unwrap();
    let rejected = wait::wait_for(WAIT, POLL, || async {
        gateway.stats().await.ok().is_some_and(|s| {
            s.iter()
                .any(|(k, v)| k.ends_with("rds.http.80.update_rejected") && *v >= 1)
        })
    })
    .await;
    assert!(
        rejected.is_ok(),
        "the gateway never rejected http.80: {}",
        trellis.log()
    );
    let file = config.file("routes.yaml");
    let want = Expected {
        kind: "VirtualService",
        name: "edge-routes",
        file: &file,
        at: position_of(&routes, "regex:"),
    };
    assert_traced(&trellis, &node, ("RouteConfiguration", "rds"), want).await;

    // The pre-flight renders the gateway the config declares and finds
    // the same line.
    let dir = config.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || validate_envoy(&dir, &[]));
    let (code, line, all) = run.await.unwrap();
    assert_eq!(code, 1, "{all}");
    let (row, col) = position_of(&routes, "regex:");
    let place = format!(
        "{}:{row}:{col}: error: VirtualService/edge-routes: ",
        file.display()
    );
    let line = line.unwrap_or_else(|| panic!("no error line: {all}"));
    assert!(line.starts_with(&place), "{line}\n{all}");
}
