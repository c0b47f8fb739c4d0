//! The docker-compose setup, live: the Grafana dashboard in deploy/ parses,
//! and every metric it queries (and every label it selects or groups by) is
//! one that trellis `/metrics` or a sidecar's stats port really exports,
//! scraped from a running mesh with traffic. So is every metric of the
//! alert rules, `deploy/prometheus/alerts.yml`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::client::http_get;
use trellis_integration_tests::mesh::weighted_routes;
use trellis_integration_tests::*;

/// Metric name → every label name seen on it; from samples and from
/// `# TYPE` lines (a family with no samples yet is still exported).
type Exported = BTreeMap<String, BTreeSet<String>>;

fn exported(text: &str, into: &mut Exported) {
    // The text must parse as Prometheus exposition format.
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "histogram" => &["_bucket", "_sum", "_count"],
                "counter" => &["", "_total"],
                _ => &[""],
            };
            for s in suffixes {
                into.entry(format!("{name}{s}")).or_default();
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = into.entry(line[..end].to_string()).or_default();
            if let (Some(open), Some(close)) = (line.find('{'), line.rfind('}')) {
                for pair in line[open + 1..close].split("\",") {
                    if let Some((k, _)) = pair.split_once('=') {
                        labels.insert(k.trim().to_string());
                    }
                }
            }
        }
    }
}

/// The PromQL expressions of every panel.
fn dashboard_exprs() -> Vec<(String, String)> {
    let path = repo_root().join("deploy/grafana/dashboards/mesh.json");
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap().to_string();
            out.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    assert!(out.len() >= 12, "{out:?}");
    out
}

/// Series Prometheus makes itself (scrape status, alert state): no
/// exporter has them.
const PROMETHEUS_SERIES: &[&str] = &["up", "absent", "ALERTS"];

/// `(alert, expr)` of every rule in the alert rules.
fn alert_exprs() -> Vec<(String, String)> {
    let path = repo_root().join("deploy/prometheus/alerts.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap().to_string();
            out.push((name, rule["expr"].as_str().unwrap().to_string()));
        }
    }
    assert!(out.len() >= 8, "{out:?}");
    out
}

/// Metric names and label names of one expression: labels are the words
/// inside `{...}` before a matcher and inside `by (...)`; metric names are
/// the other `envoy_*`/`trellis_*` words.
fn names(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut rest = expr;
    while let Some(i) = rest.find(|c: char| word(c) || c == '{' || c == '"') {
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix('"') {
            rest = r.split_once('"').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix('{') {
            let (inside, after) = r.split_once('}').unwrap();
            for m in inside.split(',') {
                let name = m.trim().split(['=', '!']).next().unwrap().trim();
                labels.insert(name.to_string());
            }
            rest = after;
        } else {
            let end = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
            let w = &rest[..end];
            rest = &rest[end..];
            if w == "by" {
                let open = rest.find('(').unwrap();
                let (inside, after) = rest[open + 1..].split_once(')').unwrap();
                labels.extend(inside.split(',').map(|l| l.trim().to_string()));
                rest = after;
            } else if w.starts_with("envoy_") || w.starts_with("trellis_") {
                metrics.insert(w.to_string());
            }
        }
    }
    labels.remove("le");
    (metrics, labels)
}

#[test]
fn names_split_metrics_from_labels() {
    let (m, l) = names(
        r#"histogram_quantile(0.5, sum by (le, source_service) (rate(envoy_cluster_upstream_rq_time_bucket{cluster_name=~"inbound.*", destination_service!=""}[1m])))"#,
    );
    assert_eq!(
        m,
        BTreeSet::from(["envoy_cluster_upstream_rq_time_bucket".to_string()])
    );
    let want = ["cluster_name", "destination_service", "source_service"];
    assert_eq!(l, want.iter().map(|s| s.to_string()).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_metric_is_exported_by_trellis_or_a_sidecar() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1,
        trellis,
        config,
    } = CanaryMesh::weighted(90, 10, &["v1", "v2"]).await.unwrap();
    let tally = client.tally("payment", &[], 50, 4).await;
    assert_eq!(tally.ok(), 50, "{tally:?}");
    // A config change, so that the control plane pushes and converges.
    config
        .replace(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 50), ("v2", 50)]),
        )
        .unwrap();
    wait_weight(&client, 50).await;
    // Labelled counters appear with their first event: a NACK (Envoy's RE2
    // refuses a regex this big) and a stream refused for a bad token.
    config.replace("routes.yaml", NACKED_ROUTES).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _refused = start_refused_envoy(&trellis, dir.path());

    let ports = [client.sidecar.spec.stats_port, v1.sidecar.spec.stats_port];
    let ok = wait::wait_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            let now = scrape_all(&trellis, ports).await?;
            missing(&now).is_empty().then_some(())
        },
    )
    .await;
    if ok.is_err() {
        let now = scrape_all(&trellis, ports).await.unwrap_or_default();
        panic!(
            "the dashboard or the alerts query names nobody exports:\n{:#?}",
            missing(&now)
        );
    }
}

/// Waits until the client's sidecar holds a route with `weight`, so that
/// the next change is pushed on its own.
async fn wait_weight(client: &MeshClient, weight: u32) {
    let want = format!("\"weight\": {weight}");
    let ok = wait::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { client.routes_dump().await.contains(&want).then_some(()) },
    )
    .await;
    if let Err(e) = ok {
        panic!("{e}: {}", client.routes_dump().await);
    }
}

/// An Envoy whose ADS stream is refused: its token is not a token.
fn start_refused_envoy(trellis: &Trellis, dir: &std::path::Path) -> ChildGuard {
    use trellis_integration_tests::envoy::{envoy_bin, SidecarSpec};
    let mut spec = SidecarSpec::new("intruder", &[("version", "v1")], free_port());
    let token = dir.join("token");
    std::fs::write(&token, "not-a-token").unwrap();
    spec.token_file = Some(token);
    let file = dir.join("intruder.yaml");
    spec.write_bootstrap(&trellis.xds_addr(), &file).unwrap();
    let mut cmd = std::process::Command::new(envoy_bin());
    cmd.arg("-c")
        .arg(&file)
        .args(["--disable-hot-restart", "--concurrency", "1"]);
    ChildGuard::spawn("intruder", cmd, &dir.join("intruder.log")).unwrap()
}

/// Trellis `/metrics` and the stats port of the caller's and a server's
/// sidecar (outbound and inbound clusters).
async fn scrape_all(trellis: &Trellis, ports: [u16; 2]) -> Option<Exported> {
    let mut now = Exported::new();
    exported(&trellis.metrics().await.ok()?, &mut now);
    for port in ports {
        let (status, body) = http_get(port, "/stats/prometheus").await.ok()?;
        (status == 200).then_some(())?;
        exported(&body, &mut now);
    }
    Some(now)
}

/// `(panel or alert, metric or metric{label})` the dashboard or the alert
/// rules use and `exported` lacks.
fn missing(exported: &Exported) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (panel, expr) in dashboard_exprs().into_iter().chain(alert_exprs()) {
        let (metrics, labels) = names(&expr);
        if metrics.is_empty() {
            // Only Prometheus' own series, whose labels are its own too.
            let own = PROMETHEUS_SERIES.iter().any(|s| expr.starts_with(s));
            assert!(own, "{panel}: no metric in {expr}");
            continue;
        }
        for m in &metrics {
            if !exported.contains_key(m) {
                out.push((panel.clone(), m.clone()));
            }
        }
        for l in &labels {
            let seen = metrics
                .iter()
                .any(|m| exported.get(m).is_some_and(|ls| ls.contains(l)));
            if !seen {
                out.push((panel.clone(), format!("{metrics:?}{{{l}}}")));
            }
        }
    }
    out
}
