//! Check 6: a weight change in the file reaches Envoy within a second; an
//! invalid change is rejected and the mesh keeps the last good config.

use std::time::{Duration, Instant};

use trellis_integration_tests::mesh::weighted_routes;
use trellis_integration_tests::*;

/// Finds, anywhere in `v`, an object with a `file` ending in `file_name` and
/// a positive `line`: a diagnostic as `/debug/config` shows it.
fn find_diagnostic<'a>(v: &'a serde_json::Value, file_name: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(map) => {
            let file_ok = map
                .get("file")
                .and_then(|f| f.as_str())
                .is_some_and(|f| f.ends_with(file_name));
            let line_ok = map
                .get("line")
                .and_then(|l| l.as_u64())
                .is_some_and(|l| l > 0);
            if file_ok && line_ok {
                return Some(v);
            }
            map.values().find_map(|x| find_diagnostic(x, file_name))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|x| find_diagnostic(x, file_name)),
        _ => None,
    }
}

/// Time until every proxy connected before the change has ACKed a new route
/// version (and holds no newer unACKed one), by polling `/debug/proxies`.
async fn ack_latency(
    trellis: &Trellis,
    before: &std::collections::BTreeMap<String, (Option<String>, Option<String>)>,
) -> Duration {
    let (_, took) = wait::wait_until(Duration::from_secs(5), Duration::from_millis(2), || async {
        let now = trellis.acked_versions("RouteConfiguration").await.ok()?;
        before
            .iter()
            .all(|(node, (old, _))| {
                now.get(node)
                    .is_some_and(|(acked, sent)| acked != old && acked.is_some() && acked == sent)
            })
            .then_some(())
    })
    .await
    .expect("the proxies never ACKed the new routes");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_change_then_invalid_change() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1: _v1,
        trellis,
        config,
    } = CanaryMesh::weighted(90, 10, &["v1", "v2"]).await.unwrap();
    let before = client.tally("payment", &[], 200, 4).await;
    assert!(before.get("payment v1") > 150, "{before:?}");

    // 0/100, written in place; then poll with requests until a run of 20
    // goes to v2 (under 90/10 that would happen once in 10^20).
    let acked_before = trellis.acked_versions("RouteConfiguration").await.unwrap();
    assert_eq!(
        acked_before.len(),
        3,
        "3 connected proxies: {acked_before:?}"
    );
    config
        .write(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 0), ("v2", 100)]),
        )
        .unwrap();
    let start = Instant::now();
    let acked = ack_latency(&trellis, &acked_before).await;
    let mut run_start = None;
    let mut run = 0;
    while run < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no shift to v2 within 5 s"
        );
        let sent = start.elapsed();
        let reply = client.get("payment", &[]).await.unwrap();
        if reply.version() == Some("v2") {
            run_start.get_or_insert(sent);
            run += 1;
        } else {
            run_start = None;
            run = 0;
        }
    }
    let took = run_start.unwrap_or_default();
    eprintln!("reload: all routes ACKed after {acked:?}; 100% v2 from {took:?}");
    assert!(
        acked <= Duration::from_secs(1),
        "reload-to-ACK took {acked:?} > 1 s"
    );
    assert!(took <= Duration::from_secs(1), "shift took {took:?} > 1 s");
    let after = client.tally("payment", &[], 200, 4).await;
    assert_eq!(after.get("payment v2"), 200, "{after:?}");

    // An invalid change (weights sum to 110) is rejected with file and line.
    let invalid = weighted_routes("payment", &[("v1", 10), ("v2", 100)]);
    config.replace("routes.yaml", &invalid).unwrap();
    let (diag, _) = wait::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async {
            let dbg = trellis.debug_config().await.ok()?;
            find_diagnostic(&dbg, "routes.yaml").cloned()
        },
    )
    .await
    .expect("/debug/config never showed the rejected change");
    eprintln!("rejected: {diag}");
    let still = client.tally("payment", &[], 200, 4).await;
    assert_eq!(
        still.get("payment v2"),
        200,
        "traffic must not change: {still:?}"
    );
}
