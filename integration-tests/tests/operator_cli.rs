//! `trellis proxy-status` marks a proxy NACKED (not in
//! sync) after a NACK; `trellis proxy-config` prints routes with the
//! configured weights; key material never appears.

use std::time::Duration;

use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

/// Runs `trellis ARGS --admin-addr ...`; stdout on success.
async fn cli(trellis: &Trellis, args: &[&str]) -> String {
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.extend([
        "--admin-addr".into(),
        format!("127.0.0.1:{}", trellis.admin_port()),
    ]);
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        run_trellis(&argv).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "trellis {args:?}: {err}");
    assert!(
        !out.contains("PRIVATE KEY") && !err.contains("PRIVATE KEY"),
        "key material in {args:?}"
    );
    out
}

/// The proxy-status row of `node`.
async fn status_row(trellis: &Trellis, node: &str) -> serde_json::Value {
    let out = cli(trellis, &["proxy-status", "-o", "json"]).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter()
        .find(|r| r["proxy"] == node)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_status_and_proxy_config() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1: _v1,
        trellis,
        config,
    } = CanaryMesh::weighted(90, 10, &["v2"]).await.unwrap();
    let node = client.sidecar.spec.node_id.clone();

    wait::wait_for(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { status_row(&trellis, &node).await["status"] == "SYNCED" },
    )
    .await
    .expect("the client never showed SYNCED");
    let table = cli(&trellis, &["proxy-status"]).await;
    let line = table
        .lines()
        .find(|l| l.starts_with(&node))
        .unwrap_or_default();
    assert!(
        line.contains("client") && line.contains("version=v1") && line.contains("SYNCED"),
        "{table}"
    );
    assert!(line.contains('h'), "certificate expiry in hours: {table}");

    // Routes with the configured weights, in JSON and YAML.
    let routes = cli(&trellis, &["proxy-config", &node, "routes"]).await;
    let v: serde_json::Value = serde_json::from_str(&routes).unwrap();
    let text = v.to_string();
    assert!(
        text.contains("\"weight\":90") && text.contains("\"weight\":10"),
        "{routes}"
    );
    let yaml = cli(&trellis, &["proxy-config", &node, "routes", "-o", "yaml"]).await;
    assert!(
        yaml.contains("weight: 90") && yaml.contains("weight: 10"),
        "{yaml}"
    );
    // Secrets are there, their keys are not.
    let secrets = cli(&trellis, &["proxy-config", &node, "secrets"]).await;
    assert!(secrets.contains("[redacted]"), "{secrets}");
    assert!(!secrets.contains("BEGIN"), "{secrets}");
    let all = cli(&trellis, &["proxy-config", &node]).await;
    assert!(all.contains("listeners") && all.contains("clusters"));

    // A NACK: proxy-status says so, with Envoy's message.
    config.replace("routes.yaml", NACKED_ROUTES).unwrap();
    let (row, _) = wait::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let row = status_row(&trellis, &node).await;
            (row["status"] == "NACKED").then_some(row)
        },
    )
    .await
    .expect("proxy-status never showed NACKED");
    assert_eq!(row["types"]["rds"]["state"], "NACKED", "{row}");
    assert!(
        row["types"]["rds"]["nack_message"]
            .as_str()
            .unwrap_or("")
            .contains("program size"),
        "{row}"
    );
    assert_eq!(row["types"]["cds"]["state"], "SYNCED", "{row}");
    let table = cli(&trellis, &["proxy-status"]).await;
    let line = table
        .lines()
        .find(|l| l.starts_with(&node))
        .unwrap_or_default();
    assert!(line.contains("NACKED"), "{table}");
}
