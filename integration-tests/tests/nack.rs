//! Check 8: a resource Envoy rejects. Trellis validation accepts any regex
//! the Rust `regex` crate accepts; Envoy's RE2 also limits a regex's
//! compiled program size (100 by default) and NACKs the route
//! configuration. The proxy stays on its last good version and
//! `/debug/proxies` shows Envoy's message.

use std::time::Duration;

use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::mesh::weighted_routes;
use trellis_integration_tests::*;

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
