//! Check 8: a resource Envoy rejects. Trellis validation accepts any regex
//! the Rust `regex` crate accepts; Envoy's RE2 also limits a regex's
//! compiled program size (100 by default) and NACKs the route
//! configuration. The proxy stays on its last good version and
//! `/debug/proxies` shows Envoy's message.
//!
//! Each rejection is traced to the config field responsible: the log line
//! (`trellis validate`'s format), `/debug/proxies`' `last_nack.origin`,
//! `trellis proxy-status` and `trellis_proxy_rejections_total` all name
//! the file and line. Two causes: the regex (RDS), and a DestinationRule
//! connect timeout longer than Envoy accepts (CDS), the latter also found
//! by `trellis validate --envoy`. Listeners, gateway routes and
//! `EnvoyFilter` patches: `nack_patched.rs`.

use std::time::Duration;

use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::nack::{assert_traced, position_of, validate_envoy, Expected};
use trellis_integration_tests::*;

/// `subsets_rule` for `payment` with a connect timeout of 3,000,000 hours:
/// a valid duration Trellis accepts, but over the range Envoy converts to
/// milliseconds, so Envoy rejects the clusters.
fn too_long_timeout_rule() -> String {
    format!(
        "{}  trafficPolicy:
    connectionPool:
      tcp:
        connectTimeout: 3000000h
",
        subsets_rule("payment", &["v1", "v2"])
    )
}

/// [`NACKED_ROUTES`] (a regex whose RE2 program size is about 660) with a
/// default route after it.
fn regex_routes() -> String {
    format!(
        "{NACKED_ROUTES}  - route:
    - destination:
        host: payment
        subset: v2
"
    )
}

fn contains_text(v: &serde_json::Value, needle: &str) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains(needle),
        serde_json::Value::Array(a) => a.iter().any(|x| contains_text(x, needle)),
        serde_json::Value::Object(m) => m
            .iter()
            .any(|(k, x)| k.contains(needle) || contains_text(x, needle)),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_route_keeps_last_good_version() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1: _v1,
        trellis,
        config,
    } = CanaryMesh::weighted(100, 0, &["v1"]).await.unwrap();
    let good = client.tally("payment", &[], 50, 2).await;
    assert_eq!(good.get("payment v1"), 50, "{good:?}");

    config.replace("routes.yaml", &regex_routes()).unwrap();
    wait::wait_for(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async {
            client.sidecar.stats().await.ok().is_some_and(|s| {
                s.iter()
                    .any(|(k, v)| k.ends_with("rds.outbound.update_rejected") && *v >= 1)
            })
        },
    )
    .await
    .expect("Envoy never rejected the route config (rds update_rejected)");

    // Envoy keeps the last good routes: still all v1.
    let after = client.tally("payment", &[], 50, 2).await;
    assert_eq!(after.get("payment v1"), 50, "{after:?}");
    let (proxies, _) = wait::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async {
            let p = trellis.debug_proxies().await.ok()?;
            contains_text(&p, "program size").then_some(p)
        },
    )
    .await
    .expect("/debug/proxies never showed Envoy's NACK message");
    assert!(contains_text(&proxies, &client.sidecar.spec.node_id));
    let routes = regex_routes();
    let file = config.path().join("routes.yaml");
    let want = Expected {
        kind: "VirtualService",
        name: "payment",
        file: &file,
        at: position_of(&routes, "regex:"),
    };
    let node = &client.sidecar.spec.node_id;
    assert_traced(&trellis, node, ("RouteConfiguration", "rds"), want).await;

    // A good change after the bad one is accepted and applied.
    let fixed = weighted_routes("payment", &[("v1", 0), ("v2", 100)]);
    config.replace("routes.yaml", &fixed).unwrap();
    wait::wait_for(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || async {
            client
                .get("payment", &[])
                .await
                .ok()
                .and_then(|r| r.backend)
                == Some("payment v2".into())
        },
    )
    .await
    .expect("the next good config never reached Envoy");
    let recovered = client.tally("payment", &[], 50, 2).await;
    assert_eq!(recovered.get("payment v2"), 50, "{recovered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_cluster_is_traced_to_its_destination_rule() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1: _v1,
        trellis,
        config,
    } = CanaryMesh::weighted(100, 0, &["v1"]).await.unwrap();
    let rule = too_long_timeout_rule();
    config.replace("rule.yaml", &rule).unwrap();
    wait::wait_for(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async {
            client.sidecar.stats().await.ok().is_some_and(|s| {
                s.get("cluster_manager.cds.update_rejected")
                    .is_some_and(|v| *v >= 1)
            })
        },
    )
    .await
    .expect("Envoy never rejected the clusters (cds update_rejected)");
    let proxies = trellis.debug_proxies().await.unwrap();
    eprintln!("debug/proxies after the CDS NACK: {proxies}");
    let file = config.path().join("rule.yaml");
    let want = Expected {
        kind: "DestinationRule",
        name: "payment",
        file: &file,
        at: position_of(&rule, "connectTimeout:"),
    };
    let node = &client.sidecar.spec.node_id;
    assert_traced(&trellis, node, ("Cluster", "cds"), want).await;
    // The proxy keeps its last good clusters and still routes.
    let after = client.tally("payment", &[], 20, 2).await;
    assert_eq!(after.get("payment v1"), 20, "{after:?}");
}

/// The pre-flight finds the same cause: Envoy rejects the clusters it
/// would be sent, and the rejection points at the connect timeout.
#[test]
fn validate_envoy_traces_the_connect_timeout_to_its_line() {
    let rule = too_long_timeout_rule();
    let routes = weighted_routes("payment", &[("v1", 100), ("v2", 0)]);
    let config = ConfigDir::with(&[("rule.yaml", &rule), ("routes.yaml", &routes)]).unwrap();
    let (code, line, all) = validate_envoy(config.path(), &["--proxy", "client"]);
    assert_eq!(code, 1, "{all}");
    let (row, col) = position_of(&rule, "connectTimeout:");
    let place = format!(
        "{}:{row}:{col}: error: DestinationRule/payment: ",
        config.file("rule.yaml").display()
    );
    let line = line.unwrap_or_else(|| panic!("no error line: {all}"));
    assert!(line.starts_with(&place), "{line}\n{all}");
    assert!(line.contains("Duration"), "{line}");
}

/// A delegate VirtualService carries the regex Envoy rejects: the
/// rejection is traced to the delegate's line, not to the root that
/// delegates to it (the merged rule lives in the root's virtual host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_delegated_rule_is_traced_to_the_delegate() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1: _v1,
        trellis,
        config,
    } = CanaryMesh::weighted(100, 0, &["v1"]).await.unwrap();
    let delegate = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: payment-api
spec:
  http:
  - match:
    - uri:
        regex: "/(alpha|beta|gamma|delta){1,30}"
    route:
    - destination:
        host: payment
        subset: v2
"#;
    let root = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - match:
    - headers:
        x-api: {exact: "yes"}
    delegate: {name: payment-api}
  - route:
    - destination:
        host: payment
        subset: v1
"#;
    config.replace("delegate.yaml", delegate).unwrap();
    config.replace("routes.yaml", root).unwrap();
    let file = config.path().join("delegate.yaml");
    let want = Expected {
        kind: "VirtualService",
        name: "payment-api",
        file: &file,
        at: position_of(delegate, "regex:"),
    };
    let node = &client.sidecar.spec.node_id;
    assert_traced(&trellis, node, ("RouteConfiguration", "rds"), want).await;
}
