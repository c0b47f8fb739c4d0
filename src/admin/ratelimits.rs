//! `proxy-config ... ratelimits`: the rate limits in force on one proxy,
//! read back from the listeners it was sent (one row per rate-limit
//! filter), so the view shows what Envoy enforces, not what the config
//! meant.

use serde_json::{json, Value};

const LOCAL: &str = "LocalRateLimit";
const GLOBAL: &str = "ratelimit.v3.RateLimit";

/// One entry per rate-limit filter of every listener in `listeners`
/// (rendered resources, as `proxy_config::render` makes them).
pub fn in_force(listeners: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for l in listeners {
        let chains = l["filter_chains"].as_array().into_iter().flatten();
        let filters = chains.flat_map(|c| c["filters"].as_array().into_iter().flatten());
        let http = filters.flat_map(|f| {
            f["typed_config"]["http_filters"]
                .as_array()
                .into_iter()
                .flatten()
        });
        for f in http {
            let config = &f["typed_config"];
            let kind = config["@type"].as_str().unwrap_or_default();
            let row = if kind.ends_with(LOCAL) {
                Some(local(config))
            } else if kind.ends_with(GLOBAL) {
                Some(global(config))
            } else {
                None
            };
            // One filter sits in every chain (TLS and plain text) of a
            // listener: show it once.
            if let Some(mut row) = row {
                row["listener"] = l["name"].clone();
                if !out.contains(&row) {
                    out.push(row);
                }
            }
        }
    }
    out
}

fn local(c: &Value) -> Value {
    let d = &c["descriptors"][0];
    let bucket = &d["token_bucket"];
    json!({
        "mode": "local",
        "rule": c["stat_prefix"],
        "descriptor": entries(&d["entries"]),
        "max_tokens": bucket["max_tokens"],
        "tokens_per_fill": bucket["tokens_per_fill"],
        "fill_interval": bucket["fill_interval"],
        "status": c["status"]["code"],
        "shadow": shadow(c),
    })
}

fn global(c: &Value) -> Value {
    let service = &c["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"];
    let actions = c["rate_limits"][0]["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let keys: Vec<Value> = (actions.iter())
        .filter_map(|a| {
            a["generic_key"]["descriptor_value"]
                .as_str()
                .map(Value::from)
        })
        .collect();
    json!({
        "mode": "global",
        "rule": c["stat_prefix"],
        "descriptor": keys,
        "service_cluster": service,
        "domain": c["domain"],
        "failure_mode_deny": c["failure_mode_deny"].as_bool().unwrap_or(false),
        "status": c["rate_limited_status"]["code"],
        "shadow": shadow(c),
    })
}

/// A rule enforced on no request is a shadow rule.
fn shadow(c: &Value) -> bool {
    c["filter_enforced"]["default_value"]["numerator"]
        .as_u64()
        .unwrap_or(0)
        == 0
}

fn entries(v: &Value) -> Value {
    let pairs: Vec<String> = (v.as_array().into_iter().flatten())
        .map(|e| {
            format!(
                "{}={}",
                e["key"].as_str().unwrap_or(""),
                e["value"].as_str().unwrap_or("")
            )
        })
        .collect();
    json!(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_shows_once_with_its_bucket() {
        let filter = json!({
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "ratelimit_default_pay_api",
                "status": {"code": 429},
                "filter_enforced": {"default_value": {"numerator": 0}},
                "descriptors": [{
                    "entries": [{"key": "rule", "value": "api"}],
                    "token_bucket": {"max_tokens": 15, "tokens_per_fill": 10, "fill_interval": "1s"}
                }]
            }
        });
        let hcm = json!({"typed_config": {"http_filters": [filter]}});
        // The same filter in the TLS and the plain-text chain.
        let listener = json!({"name": "inbound", "filter_chains": [
            {"filters": [hcm.clone()]}, {"filters": [hcm]}
        ]});
        let rows = in_force(&[listener]);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["max_tokens"], 15);
        assert_eq!(rows[0]["shadow"], true);
        assert_eq!(rows[0]["descriptor"], json!(["rule=api"]));
        assert_eq!(rows[0]["listener"], "inbound");
    }
}
