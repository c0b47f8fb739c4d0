//! Check 9: the canary config from `config-examples/canary/`, as written,
//! shows every setting in Envoy's own `/config_dump`.

use serde_json::Value;
use trellis_integration_tests::*;

/// Every object in `dump` under a `key` (e.g. `cluster`, `route_config`).
fn all_under<'a>(dump: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match dump {
        Value::Object(m) => {
            for (k, v) in m {
                if k == key {
                    out.push(v);
                }
                all_under(v, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| all_under(v, key, out)),
        _ => {}
    }
}

/// True if `v` holds `key: expected` at any depth.
fn has_field(v: &Value, key: &str, expected: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.get(key) == Some(expected) || m.values().any(|x| has_field(x, key, expected))
        }
        Value::Array(a) => a.iter().any(|x| has_field(x, key, expected)),
        _ => false,
    }
}

fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|x| has_key(x, key)),
        Value::Array(a) => a.iter().any(|x| has_key(x, key)),
        _ => false,
    }
}

fn check_route(dump: &Value) {
    let mut routes = Vec::new();
    all_under(dump, "route_config", &mut routes);
    let vhost = routes
        .iter()
        .filter_map(|r| r["virtual_hosts"].as_array())
        .flatten()
        .find(|vh| vh["domains"].to_string().contains("payment-service"))
        .unwrap_or_else(|| panic!("no virtual host for payment-service: {routes:?}"));
    // The first route that is not the CONNECT tunnel every port has.
    let first = (vhost["routes"].as_array().into_iter().flatten())
        .find(|r| r["name"] != "connect")
        .unwrap_or_else(|| panic!("no request route: {vhost}"));
    let route = &first["route"];
    let weights: Vec<(String, u64)> = route["weighted_clusters"]["clusters"]
        .as_array()
        .unwrap_or_else(|| panic!("no weighted clusters: {route}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(weights.len(), 2, "{weights:?}");
    assert!(
        weights[0].0.contains("|stable|") && weights[0].1 == 90,
        "{weights:?}"
    );
    assert!(
        weights[1].0.contains("|canary|") && weights[1].1 == 10,
        "{weights:?}"
    );
    let retry = &route["retry_policy"];
    assert_eq!(retry["num_retries"], 3, "{retry}");
    assert_eq!(retry["per_try_timeout"], "2s", "{retry}");
    let on: Vec<&str> = retry["retry_on"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .collect();
    for want in ["5xx", "reset", "connect-failure"] {
        assert!(on.contains(&want), "retry_on {on:?} lacks {want}");
    }
}

fn check_clusters(dump: &Value) {
    let mut clusters = Vec::new();
    all_under(dump, "cluster", &mut clusters);
    let payment: Vec<&&Value> = clusters
        .iter()
        .filter(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.contains("payment-service"))
        })
        .collect();
    for subset in ["|stable|", "|canary|"] {
        let c = payment
            .iter()
            .find(|c| c["name"].as_str().unwrap().contains(subset))
            .unwrap_or_else(|| panic!("no {subset} cluster among {payment:?}"));
        let od = &c["outlier_detection"];
        assert_eq!(od["consecutive_5xx"], 5, "{od}");
        assert_eq!(od["interval"], "30s", "{od}");
        assert_eq!(od["base_ejection_time"], "60s", "{od}");
        assert!(
            has_field(c, "max_requests_per_connection", &Value::from(100)),
            "100 requests per connection: {c}"
        );
        assert!(has_key(c, "http2_protocol_options"), "h2 upgrade: {c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_example_reaches_envoy_intact() {
    let dir = repo_root().join("config-examples/canary");
    assert!(dir.is_dir(), "{} missing", dir.display());
    let trellis = Trellis::start(&dir).await.unwrap();
    let _stable = Instance::start(&trellis, "payment-service", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _canary = Instance::start(&trellis, "payment-service", "v2", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("stable", "payment-service"), 1)
        .await
        .unwrap();
    client
        .wait_endpoints(&subset_cluster("canary", "payment-service"), 1)
        .await
        .unwrap();

    let dump = client.sidecar.config_dump().await.unwrap();
    check_route(&dump);
    check_clusters(&dump);
    let tally = client.tally("payment-service", &[], 200, 4).await;
    assert_eq!(tally.ok(), 200, "{tally:?}");
    assert!(
        tally.get("payment-service v1") > tally.get("payment-service v2"),
        "{tally:?}"
    );
}
