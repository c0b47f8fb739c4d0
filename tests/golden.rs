//! Golden tests: every directory under `config-examples/` translated for a
//! fixed proxy (with two fake sidecars, v1 and v2, per service) and
//! rendered as proto3 JSON, compared with `tests/golden/<dir>.json`.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the files; review
//! the diff like code.

#[path = "support/translate.rs"]
mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn golden_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap().to_string_lossy().to_string();
    if dir
        .parent()
        .is_some_and(|p| p.ends_with("translate-fixtures"))
    {
        name = format!("fixture-{name}");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"))
}

fn render(dir: &Path) -> String {
    let resources: Vec<Value> = support::translate_dir(dir)
        .packed()
        .iter()
        .map(|r| trellis::envoy_json::to_json(&r.resource).unwrap())
        .collect();
    serde_json::to_string_pretty(&Value::Array(resources)).unwrap() + "\n"
}

#[test]
fn examples_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    let dirs = support::example_dirs()
        .into_iter()
        .chain(support::fixture_dirs());
    for dir in dirs {
        let got = render(&dir);
        let path = golden_path(&dir);
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            mismatched.push(path.display().to_string());
        }
    }
    assert!(
        mismatched.is_empty(),
        "golden files differ (rerun with UPDATE_GOLDEN=1 and review the diff): {mismatched:?}"
    );
}

/// The settings the canary example must show in its golden output.
#[test]
fn canary_golden_shows_every_setting() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples/canary");
    let json: Value = serde_json::from_str(&render(&dir)).unwrap();
    let all = json.as_array().unwrap();
    let find = |kind: &str, name: &str| {
        all.iter()
            .find(|r| r["name"] == name && r["@type"].as_str().unwrap().ends_with(kind))
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let h = "payment-service.default.svc.cluster.local";
    let routes = find(".RouteConfiguration", "outbound");
    let vhost = routes["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == format!("{h}:80"))
        .unwrap();
    // routes[0] tunnels CONNECT to the port's cluster.
    let action = &vhost["routes"][1]["route"];
    let weights: Vec<(String, u64)> = action["weighted_clusters"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        weights,
        vec![
            (format!("outbound|80|stable|{h}"), 90),
            (format!("outbound|80|canary|{h}"), 10)
        ]
    );
    let retry = &action["retry_policy"];
    assert_eq!(retry["num_retries"], 3);
    assert_eq!(retry["per_try_timeout"], "2s");
    assert_eq!(retry["retry_on"], "5xx,reset,connect-failure");
    for subset in ["", "stable", "canary"] {
        let c = find(".Cluster", &format!("outbound|80|{subset}|{h}"));
        let od = &c["outlier_detection"];
        assert_eq!(od["consecutive_5xx"], 5);
        assert_eq!(od["interval"], "30s");
        assert_eq!(od["base_ejection_time"], "60s");
        let opts = &c["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            opts["common_http_protocol_options"]["max_requests_per_connection"],
            100
        );
        assert!(opts["explicit_http_config"]["http2_protocol_options"].is_object());
    }
}
