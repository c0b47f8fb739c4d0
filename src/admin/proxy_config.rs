//! `/debug/proxies/{id}/config?type=`: what was sent to one proxy, from the
//! snapshot cache, as Envoy-style JSON with key material redacted.

use serde_json::{json, Map, Value};

use crate::xds::{Snapshot, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};

/// What replaces key material (and certificate bytes).
pub const REDACTED: &str = "[redacted]";

/// The `type` names the endpoint and `trellis proxy-config` accept, in
/// the order Envoy applies them.
pub const KINDS: [&str; 5] = ["listeners", "routes", "clusters", "endpoints", "secrets"];

/// The derived kind listing the rate limits in force (from the listeners;
/// see `admin::ratelimits`).
pub const RATE_LIMITS: &str = "ratelimits";

/// The type URL of a kind (`listeners`, `lds`, ...), or `None`.
pub fn type_url(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "listeners" | "listener" | "lds" => LISTENER_TYPE.as_str(),
        "routes" | "route" | "rds" => ROUTE_TYPE.as_str(),
        "clusters" | "cluster" | "cds" => CLUSTER_TYPE.as_str(),
        "endpoints" | "endpoint" | "eds" => ENDPOINT_TYPE.as_str(),
        "secrets" | "secret" | "sds" => SECRET_TYPE.as_str(),
        _ => return None,
    })
}

/// `{ KIND: { version, resources: [...] } }` for the given kinds of
/// `snapshot`, each resource rendered with `envoy_json::to_json` and
/// redacted. A resource that cannot be rendered says why instead.
pub fn render(snapshot: &Snapshot, kinds: &[&str]) -> Value {
    let mut out = Map::new();
    if kinds.contains(&RATE_LIMITS) {
        let listeners = render(snapshot, &["listeners"]);
        let resources = listeners["listeners"]["resources"].as_array().cloned();
        let limits = super::ratelimits::in_force(&resources.unwrap_or_default());
        out.insert(RATE_LIMITS.to_string(), json!(limits));
    }
    for kind in kinds {
        let Some(url) = type_url(kind) else { continue };
        let typed = snapshot.resources(url);
        let resources: Vec<Value> = typed
            .items()
            .iter()
            .map(|(name, any)| match crate::envoy_json::to_json(any) {
                Ok(mut v) => {
                    redact(&mut v);
                    v
                }
                Err(e) => json!({ "name": name, "error": e.to_string() }),
            })
            .collect();
        out.insert(
            kind.to_string(),
            json!({ "version": snapshot.version(url), "resources": resources }),
        );
    }
    Value::Object(out)
}

/// Keys whose whole value is secret material (Envoy's `TlsCertificate`,
/// `CertificateValidationContext`, `GenericSecret` fields).
const SECRET_KEYS: [&str; 6] = [
    "private_key",
    "password",
    "certificate_chain",
    "trusted_ca",
    "secret",
    "ocsp_staple",
];

/// Replaces key material and certificate bytes with [`REDACTED`], and, as a
/// last line of defence, any string holding a PEM private key.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && !x.is_null() {
                    *x = Value::String(REDACTED.into());
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(s) if s.contains("PRIVATE KEY") => *s = REDACTED.into(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_key_material_everywhere() {
        let mut v = json!({
            "name": "default",
            "tls_certificate": {
                "certificate_chain": { "inline_string": "-----BEGIN CERTIFICATE-----" },
                "private_key": { "inline_string": "-----BEGIN PRIVATE KEY-----" },
            },
            "other": ["x -----BEGIN EC PRIVATE KEY----- y", "fine"],
        });
        redact(&mut v);
        let text = v.to_string();
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("BEGIN CERTIFICATE"), "{text}");
        assert_eq!(v["tls_certificate"]["private_key"], REDACTED);
        assert_eq!(v["other"][1], "fine");
        assert_eq!(v["name"], "default");
    }

    #[test]
    fn kinds_map_to_type_urls() {
        for kind in KINDS {
            assert!(type_url(kind).is_some(), "{kind}");
        }
        assert_eq!(type_url("rds"), Some(ROUTE_TYPE.as_str()));
        assert_eq!(type_url("bogus"), None);
    }
}
