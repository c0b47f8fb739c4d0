use super::*;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use tower::ServiceExt;

fn state() -> AdminState {
    let mut reg = prometheus_client::registry::Registry::default();
    let c: Counter = Counter::default();
    c.inc();
    reg.register("trellis_test_things", "Things counted", c);
    AdminState::new(
        reg,
        Box::new(|| serde_json::json!({ "sidecar-1": { "connected": true } })),
    )
}

async fn get(state: &AdminState, path: &str) -> (StatusCode, String) {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn healthz_is_ok() {
    assert_eq!(
        get(&state(), "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
}

#[tokio::test]
async fn readyz_needs_config_and_grpc() {
    let s = state();
    let (code, body) = get(&s, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "config not loaded");
    s.set_config_loaded(true);
    let (code, body) = get(&s, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "gRPC server not listening");
    s.set_grpc_listening(true);
    assert_eq!(get(&s, "/readyz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let (code, body) = get(&state(), "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        body.contains("# TYPE trellis_test_things counter"),
        "{body}"
    );
    assert!(body.contains("trellis_test_things_total 1"), "{body}");
}

#[tokio::test]
async fn debug_proxies_is_the_view() {
    let (code, body) = get(&state(), "/debug/proxies").await;
    assert_eq!(code, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sidecar-1"]["connected"], true);
}

#[tokio::test]
async fn debug_config_shows_the_last_rejection() {
    let s = state();
    let v: serde_json::Value = serde_json::from_str(&get(&s, "/debug/config").await.1).unwrap();
    assert_eq!(v["generation"], 0);
    assert!(v["last_rejected"].is_null());

    let diag = crate::config::Diagnostic {
        file: "mesh/vs.yaml".into(),
        line: 12,
        col: 7,
        kind: "VirtualService".into(),
        name: "payment".into(),
        field: "spec.http[0].route[0].weight".into(),
        message: "weights sum to 90, not 100".into(),
    };
    let err = LoadError::Invalid(Diagnostics(vec![diag]));
    s.set_config_status(ConfigStatus {
        generation: 3,
        config_dir: "mesh".into(),
        files: vec!["mesh/vs.yaml".into()],
        loaded_at: Some(now().0),
        last_rejected: Some(Rejected::from_load_error(&err)),
    });
    let v: serde_json::Value = serde_json::from_str(&get(&s, "/debug/config").await.1).unwrap();
    assert_eq!(v["generation"], 3);
    assert_eq!(v["files"][0], "mesh/vs.yaml");
    let rej = &v["last_rejected"];
    assert_eq!(
        rej["diagnostics"][0],
        "mesh/vs.yaml:12:7: error: VirtualService/payment: spec.http[0].route[0].weight: weights sum to 90, not 100"
    );
    assert_eq!(rej["errors"][0]["line"], 12);
    assert!(rej["at_unix_ms"].as_u64().unwrap() > 0);
}

#[test]
fn io_errors_are_rejections_too() {
    let err = LoadError::Io {
        path: "mesh".into(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
    };
    let rej = Rejected::from_load_error(&err);
    assert_eq!(rej.diagnostics.len(), 1);
    assert!(rej.diagnostics[0].contains("gone") || rej.diagnostics[0].contains("mesh"));
    assert!(rej.errors.0.is_empty());
}

#[tokio::test]
async fn proxy_config_renders_what_was_sent_without_keys() {
    use crate::xds::{Snapshot, SnapshotCache, SECRET_TYPE};
    use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        secret, Secret, TlsCertificate,
    };
    use prost::Message;
    let inline = |s: &str| DataSource {
        specifier: Some(data_source::Specifier::InlineString(s.into())),
        ..Default::default()
    };
    let secret = Secret {
        name: "default".into(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline("-----BEGIN CERTIFICATE-----")),
            private_key: Some(inline("-----BEGIN PRIVATE KEY-----")),
            ..Default::default()
        })),
    };
    let any = std::sync::Arc::new(crate::xds::Versioned::new(
        envoy_types::pb::google::protobuf::Any {
            type_url: SECRET_TYPE.to_string(),
            value: secret.encode_to_vec(),
        },
    ));
    let cache = SnapshotCache::new();
    cache.set(
        "p1",
        std::sync::Arc::new(Snapshot::builder().add("default", any).build()),
    );
    let s = state();
    s.set_snapshots(cache);
    let (code, body) = get(&s, "/debug/proxies/p1/config?type=secrets").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(
        !body.contains("PRIVATE KEY") && !body.contains("BEGIN"),
        "{body}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let res = &v["configs"]["secrets"]["resources"][0];
    assert_eq!(res["name"], "default");
    assert_eq!(res["tls_certificate"]["private_key"], "[redacted]");
    assert_eq!(
        get(&s, "/debug/proxies/nope/config").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&s, "/debug/proxies/p1/config?type=bogus").await.0,
        StatusCode::BAD_REQUEST
    );
}
