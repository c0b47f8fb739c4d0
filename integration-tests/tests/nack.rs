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
//! connect timeout longer than Envoy accepts (CDS).

use std::path::Path;
use std::time::Duration;

use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::trellis::run_trellis;
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

/// 1-based line and column of the first line of `text` containing `key`
/// (the column of `key` itself, where YAML positions a field).
fn position_of(text: &str, key: &str) -> (u64, u64) {
    let (i, line) = (text.lines().enumerate())
        .find(|(_, l)| l.contains(key))
        .unwrap();
    (i as u64 + 1, line.find(key).unwrap() as u64 + 1)
}

/// The origin `/debug/proxies` shows for `node`'s last NACK of a type
/// whose URL ends with `type_suffix`.
fn nack_origin(
    proxies: &serde_json::Value,
    node: &str,
    type_suffix: &str,
) -> Option<serde_json::Value> {
    let types = proxies.get(node)?.get("types")?.as_object()?;
    let (_, t) = types.iter().find(|(url, _)| url.ends_with(type_suffix))?;
    let origin = t.get("last_nack")?.get("origin")?;
    (!origin.is_null()).then(|| origin.clone())
}

/// `trellis proxy-status` (`-o json` when `json`), against `trellis`.
async fn proxy_status(trellis: &Trellis, json: bool) -> String {
    let port = trellis.admin_port();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["proxy-status", "--admin-addr", &addr];
        if json {
            args.extend(["-o", "json"]);
        }
        run_trellis(&args).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "proxy-status: {err}");
    out
}

/// Asserts that `node`'s rejection of a `type_suffix` response was traced
/// to `file` at `(line, column)`, object `kind`/payment, in the log,
/// `/debug/proxies`, `proxy-status` (text and JSON) and the metric.
async fn assert_traced(
    trellis: &Trellis,
    node: &str,
    (type_suffix, short): (&str, &str),
    (kind, file): (&str, &Path),
    (line, column): (u64, u64),
) {
    let origin = wait::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { nack_origin(&trellis.debug_proxies().await.ok()?, node, type_suffix) },
    )
    .await
    .map_err(|_| format!("/debug/proxies never showed the origin of the {short} NACK"));
    let origin = match origin {
        Ok((origin, _)) => origin,
        Err(e) => {
            let log = trellis.log();
            let nacks: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("NACK") || l.contains("traced"))
                .collect();
            panic!("{e}: {:?}\n{nacks:#?}", trellis.debug_proxies().await);
        }
    };
    assert_eq!(origin["kind"], kind, "{origin}");
    assert_eq!(origin["name"], "payment", "{origin}");
    assert_eq!(origin["namespace"], "default", "{origin}");
    assert_eq!(origin["file"], file.display().to_string(), "{origin}");
    assert_eq!(
        (origin["line"].as_u64(), origin["column"].as_u64()),
        (Some(line), Some(column)),
        "{origin}"
    );
    assert!(origin["resource"].is_string(), "{origin}");

    let place = format!(
        "{}:{line}:{column}: error: {kind}/payment: ",
        file.display()
    );
    let log = trellis.log();
    let by = format!("(rejected by proxy {node}: ");
    let logged = log.lines().find(|l| l.contains(&place) && l.contains(&by));
    assert!(logged.is_some(), "no log line {place}...{by}...: {log}");

    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&proxy_status(trellis, true).await).unwrap();
    let row = rows.iter().find(|r| r["proxy"] == node).unwrap();
    assert_eq!(row["types"][short]["state"], "NACKED", "{row}");
    assert_eq!(row["types"][short]["nack_origin"], origin, "{row}");
    let text = proxy_status(trellis, false).await;
    let at = format!(
        "{node} {}: {}:{line}:{column}: {kind}/payment: rejected: ",
        short.to_uppercase(),
        file.display()
    );
    assert!(text.contains(&at), "{text}");

    let metrics = trellis.metrics().await.unwrap();
    let series = format!(
        "trellis_proxy_rejections_total{{kind=\"{kind}\",namespace=\"default\",name=\"payment\"}}"
    );
    assert!(
        metrics.lines().any(|l| l.starts_with(&series)),
        "{series} in {metrics}"
    );
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
    assert_traced(
        &trellis,
        &client.sidecar.spec.node_id,
        ("RouteConfiguration", "rds"),
        ("VirtualService", &file),
        position_of(&routes, "regex:"),
    )
    .await;

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
    assert_traced(
        &trellis,
        &client.sidecar.spec.node_id,
        ("Cluster", "cds"),
        ("DestinationRule", &file),
        position_of(&rule, "connectTimeout:"),
    )
    .await;
    // The proxy keeps its last good clusters and still routes.
    let after = client.tally("payment", &[], 20, 2).await;
    assert_eq!(after.get("payment v1"), 20, "{after:?}");
}
