//! After N requests split 90/10, the client sidecar's
//! stats port shows per-destination-subset request counters equal to the
//! counts sent, with response codes and source/destination tags; the admin
//! API is not reachable through the stats port.

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use trellis_integration_tests::client::http_get;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::*;

const N: usize = 400;
const ERRORS: usize = 20;

/// Scrapes `path` on the stats port.
async fn scrape_stats(port: u16, path: &str) -> Scrape {
    let (status, body) = http_get(port, path).await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(s: &Sample) -> f64 {
    match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{other:?}"),
    }
}

/// Sum of `metric` over the samples whose labels include all of `labels`.
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(value)
        .sum()
}

/// The request counters on the stats port, for failure messages.
fn dump(port: u16) -> String {
    let url = "/stats/prometheus";
    let rt = tokio::runtime::Handle::current();
    let body = std::thread::spawn(move || rt.block_on(http_get(port, url)))
        .join()
        .map(|r| r.map(|(_, b)| b).unwrap_or_else(|e| e.to_string()))
        .unwrap_or_default();
    body.lines()
        .filter(|l| l.contains("upstream_rq_total") || l.contains("upstream_rq{"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_port_counts_requests_per_destination_subset() {
    let config = ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        (
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 90), ("v2", 10)]),
        ),
    ])
    .unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "payment", "v2", Behavior::Ok)
        .await
        .unwrap();
    // 404 is not retried by the default policy, so each request is one upstream request.
    let _ledger = Instance::start(&trellis, "ledger", "v1", Behavior::Always(404))
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    for subset in ["v1", "v2"] {
        let cluster = subset_cluster(subset, "payment");
        client.wait_endpoints(&cluster, 1).await.unwrap();
    }
    client.wait_endpoints("||ledger.", 1).await.unwrap();

    let tally = client.tally("payment", &[], N, 8).await;
    assert_eq!(tally.ok(), N, "{tally:?}");
    let errors = client.tally("ledger", &[], ERRORS, 4).await;
    assert_eq!(errors.get("HTTP 404"), ERRORS, "{errors:?}");

    let port = client.sidecar.spec.stats_port;
    let payment = "payment.default.svc.cluster.local";
    let expect = [
        ("v1", tally.get("payment v1")),
        ("v2", tally.get("payment v2")),
    ];
    let (scrape, _) = wait::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let scrape = scrape_stats(port, "/stats/prometheus").await;
            let all_counted = expect.iter().all(|(subset, n)| {
                let labels = [
                    ("destination_service", payment),
                    ("destination_subset", *subset),
                ];
                sum(&scrape, "envoy_cluster_upstream_rq_total", &labels) as usize == *n
            });
            all_counted.then_some(scrape)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("counters never matched {tally:?}: {e}\n{}", dump(port)));

    for (subset, n) in expect {
        let by_code = [
            ("source_service", "client"),
            ("source_version", "v1"),
            ("destination_service", payment),
            ("destination_subset", subset),
            ("destination_port", "80"),
            ("envoy_response_code", "200"),
        ];
        assert_eq!(
            sum(&scrape, "envoy_cluster_upstream_rq", &by_code) as usize,
            n,
            "{subset} by response code"
        );
        let cluster = format!("outbound|80|{subset}|{payment}");
        let by_cluster = [("cluster_name", cluster.as_str())];
        assert_eq!(
            sum(&scrape, "envoy_cluster_upstream_rq_total", &by_cluster) as usize,
            n
        );
        // The latency histogram is grouped the same way.
        let histogram = scrape.samples.iter().find(|s| {
            s.metric == "envoy_cluster_upstream_rq_time"
                && s.labels.get("destination_subset") == Some(subset)
        });
        assert!(histogram.is_some(), "no latency histogram for {subset}");
    }
    let ledger = [
        ("destination_service", "ledger.default.svc.cluster.local"),
        ("envoy_response_code", "404"),
    ];
    assert_eq!(
        sum(&scrape, "envoy_cluster_upstream_rq", &ledger) as usize,
        ERRORS
    );
    let class = [
        ("destination_service", "ledger.default.svc.cluster.local"),
        ("envoy_response_code_class", "4"),
    ];
    assert_eq!(
        sum(&scrape, "envoy_cluster_upstream_rq_xx", &class) as usize,
        ERRORS,
        "by response code class"
    );
    let v2 = expect[1].1 as f64 / N as f64;
    assert!((0.05..=0.15).contains(&v2), "v2 share {v2}");

    // `/metrics` is an alias; the admin API is not reachable.
    let alias = scrape_stats(port, "/metrics").await;
    assert!(!alias.samples.is_empty());
    for path in [
        "/config_dump",
        "/clusters",
        "/quitquitquit",
        "/stats",
        "/certs",
        "/",
    ] {
        let (status, body) = http_get(port, path).await.unwrap();
        assert_eq!(status, 404, "{path} through the stats port: {body}");
    }
    // The sidecar is still alive after the GET /quitquitquit attempt.
    assert!(client.sidecar.admin("/ready").await.is_ok());
}
