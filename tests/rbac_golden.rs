//! Golden tests of RBAC translation: `config-examples/authz` and the
//! every-field fixture, translated for several sidecars; each file holds
//! the sidecar's inbound RBAC filters (proto3 JSON, in filter order).
//! `UPDATE_GOLDEN=1 cargo test --test rbac_golden` rewrites the files;
//! review the diff like code.

// Only the sidecar helpers are used here.
#[allow(dead_code)]
#[path = "support/translate.rs"]
mod support;

use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use serde_json::Value;
use trellis::registry::Proxy;
use trellis::translate::rbac::{http_filters, AuthzPolicies};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The RBAC filters of `proxy` for the config in `dir`, as JSON.
fn render(dir: &Path, proxy: &Proxy) -> String {
    let mesh = trellis::config::load_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let filters: Vec<Value> = http_filters(&AuthzPolicies::from_mesh(&mesh), proxy)
        .iter()
        .map(|f| {
            let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
                panic!("typed config expected");
            };
            serde_json::json!({
                "name": f.name,
                "typed_config": trellis::envoy_json::to_json(any).unwrap(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&Value::Array(filters)).unwrap() + "\n"
}

/// (golden file name, config dir, proxy).
fn cases() -> Vec<(&'static str, PathBuf, Proxy)> {
    let authz = root().join("config-examples/authz");
    let everything = root().join("tests/translate-fixtures/authz-everything");
    vec![
        (
            "authz-payment",
            authz.clone(),
            support::sidecar("payment", "default", "v1", 16000),
        ),
        (
            "authz-ledger",
            authz.clone(),
            support::sidecar("ledger", "default", "v1", 16001),
        ),
        (
            "authz-shop-frontend",
            authz,
            support::sidecar("frontend", "shop", "v1", 16002),
        ),
        (
            "everything-golden-client",
            everything.clone(),
            support::client(),
        ),
        (
            "everything-payment",
            everything.clone(),
            support::sidecar("payment", "default", "v1", 16003),
        ),
        (
            "everything-shop",
            everything,
            support::sidecar("cart", "shop", "v1", 16004),
        ),
    ]
}

#[test]
fn rbac_filters_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for (name, dir, proxy) in cases() {
        let got = render(&dir, &proxy);
        let path = root()
            .join("tests/golden/rbac")
            .join(format!("{name}.json"));
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != got {
            mismatched.push(path.display().to_string());
        }
    }
    assert!(
        mismatched.is_empty(),
        "golden files differ (rerun with UPDATE_GOLDEN=1 and review the diff): {mismatched:?}"
    );
}

/// What the payment example's policies must become: DENY before ALLOW, frontend's
/// SPIFFE ID, GET, `/api/*`.
#[test]
fn payment_gets_deny_then_allow_for_frontend() {
    let json: Value = serde_json::from_str(&render(
        &root().join("config-examples/authz"),
        &support::sidecar("payment", "default", "v1", 16000),
    ))
    .unwrap();
    let actions: Vec<&Value> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["typed_config"]["rules"]["action"])
        .collect();
    // AUDIT (LOG) and DENY from the mesh-wide policies and payment's
    // own DENY; ALLOW (the default action, not rendered) last.
    assert_eq!(
        actions,
        [&Value::from("LOG"), &Value::from("DENY"), &Value::Null]
    );
    let allow = &json[2]["typed_config"]["rules"]["policies"]
        ["ns[default]-policy[payment-allow-frontend]-rule[0]"];
    let principal = &allow["principals"][0]["and_ids"]["ids"][0]["or_ids"]["ids"][0];
    assert_eq!(
        principal["authenticated"]["principal_name"]["exact"],
        "spiffe://cluster.local/ns/default/sa/frontend"
    );
    let perms = &allow["permissions"][0]["and_rules"]["rules"];
    assert_eq!(
        perms[0]["or_rules"]["rules"][0]["header"]["string_match"]["exact"],
        "GET"
    );
    assert_eq!(
        perms[1]["or_rules"]["rules"][0]["url_path"]["path"]["prefix"],
        "/api/"
    );
}
