//! The control plane's `/metrics` parses with a
//! Prometheus text parser; a config change increases the convergence
//! histogram's count; a NACK increases the NACK counter; a rejected reload
//! increases reload failures; the leaf expiry gauge lies within the leaf TTL.

use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::client::http_get;
use trellis_integration_tests::mesh::weighted_routes;
use trellis_integration_tests::*;

/// The default workload certificate TTL (24 h).
const LEAF_TTL_SECS: f64 = 86_400.0;
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

async fn scrape(trellis: &Trellis) -> Scrape {
    let (status, body) = http_get(trellis.admin_port(), "/metrics").await.unwrap();
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of `metric` (with the OpenMetrics `_total` suffix or not)
/// whose labels include `labels`; histograms give their count.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let names = [
        metric.to_string(),
        format!("{metric}_total"),
        format!("{metric}_count"),
    ];
    scrape
        .samples
        .iter()
        .filter(|s| names.contains(&s.metric))
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
        .reduce(f64::max)
}

async fn wait_value_above(
    trellis: &Trellis,
    metric: &str,
    labels: &[(&str, &str)],
    floor: f64,
) -> f64 {
    let (v, _) = wait::wait_until(WAIT, POLL, || async {
        value(&scrape(trellis).await, metric, labels).filter(|v| *v > floor)
    })
    .await
    .unwrap_or_else(|e| panic!("{metric}{labels:?} never rose above {floor}: {e}"));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_metrics_follow_changes() {
    let CanaryMesh {
        client: _client,
        v2: _v2,
        v1: _v1,
        trellis,
        config,
    } = CanaryMesh::weighted(100, 0, &["v1"]).await.unwrap();

    let converged = wait_value_above(&trellis, "trellis_proxy_convergence_seconds", &[], 0.0).await;
    let first = scrape(&trellis).await;
    assert_eq!(
        value(&first, "trellis_xds_connected_proxies", &[]),
        Some(3.0)
    );
    assert!(value(&first, "trellis_ca_certificates_issued", &[]).unwrap() >= 3.0);
    let leaf = value(&first, "trellis_ca_leaf_soonest_expiry_seconds", &[]).unwrap();
    assert!(leaf > 0.0 && leaf <= LEAF_TTL_SECS, "leaf expiry {leaf}");
    let root = value(&first, "trellis_ca_root_expiry_seconds", &[]).unwrap();
    assert!(root > leaf, "root {root} leaf {leaf}");
    assert!(value(&first, "trellis_xds_acks", &[("type", "cds")]).unwrap() >= 3.0);
    assert!(value(&first, "trellis_xds_pushes", &[("type", "lds")]).unwrap() >= 3.0);
    let loaded_at = value(
        &first,
        "trellis_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(loaded_at > 1.0e9, "{loaded_at}");

    // A config change: every proxy converges again.
    config
        .replace(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 0), ("v2", 100)]),
        )
        .unwrap();
    wait_value_above(
        &trellis,
        "trellis_proxy_convergence_seconds",
        &[],
        converged,
    )
    .await;
    let reloaded = scrape(&trellis).await;
    let ok = value(&reloaded, "trellis_config_reloads", &[("result", "ok")]).unwrap();
    assert!(ok >= 1.0);
    let after = value(
        &reloaded,
        "trellis_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(after >= loaded_at);

    // A NACK.
    let nacks = value(&reloaded, "trellis_xds_nacks", &[("type", "rds")]).unwrap_or(0.0);
    config.replace("routes.yaml", NACKED_ROUTES).unwrap();
    wait_value_above(&trellis, "trellis_xds_nacks", &[("type", "rds")], nacks).await;

    // A rejected reload (weights sum to 110) keeps the last success time.
    let failed = value(
        &scrape(&trellis).await,
        "trellis_config_reloads",
        &[("result", "failed")],
    )
    .unwrap_or(0.0);
    let before = value(
        &scrape(&trellis).await,
        "trellis_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .unwrap();
    config
        .replace(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 10), ("v2", 100)]),
        )
        .unwrap();
    wait_value_above(
        &trellis,
        "trellis_config_reloads",
        &[("result", "failed")],
        failed,
    )
    .await;
    let last = scrape(&trellis).await;
    assert_eq!(
        value(
            &last,
            "trellis_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        Some(before),
        "a rejected reload is no success"
    );
}
