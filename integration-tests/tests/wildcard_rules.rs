//! DestinationRules for wildcard hosts against real Envoy, as istiod
//! applies them: each service takes, in each namespace of the lookup, the
//! rule of the most specific host that matches it.
//!
//! - `default/versions` (`*.default.svc.cluster.local`) reaches `payment`,
//!   a service only its sidecars declare: subsets `v1`/`v2` (a route names
//!   `v2`) and at most 5 connections;
//! - `istio-system/mesh-defaults` (`*`) reaches `ledger` in namespace
//!   `billing`, which no nearer rule matches: at most 9 connections and
//!   outlier detection;
//! - editing the wildcard rule reaches the Envoy like any other edit.

use std::time::Duration;

use serde_json::Value;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const PAYMENT: &str = "payment.default.svc.cluster.local";
const PAYMENT_V2: &str = "outbound|80|v2|payment.default.svc.cluster.local";
const LEDGER: &str = "outbound|80||ledger.billing.svc.cluster.local";

fn rules(max: u32) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: versions}}
spec:
  host: "*.default.svc.cluster.local"
  trafficPolicy:
    connectionPool: {{tcp: {{maxConnections: {max}}}}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: mesh-defaults, namespace: istio-system}}
spec:
  host: "*"
  trafficPolicy:
    connectionPool: {{tcp: {{maxConnections: 9}}}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}}
"#
    )
}

fn services(ledger_port: u16) -> String {
    format!(
        r#"apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {{name: mesh}}
spec:
  defaultSidecarScope: ALL_SERVICES
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ledger, namespace: billing}}
spec:
  hosts: [ledger]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {ledger_port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: payment}}
spec:
  hosts: [payment]
  http:
  - route: [{{destination: {{host: payment, subset: v2}}}}]
"#
    )
}

/// The cluster `name` as the client's Envoy holds it, once `accept` holds.
async fn cluster_where(client: &MeshClient, name: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let found = std::sync::Mutex::new(Value::Null);
    let ok = wait_for(TIMEOUT, POLL, || async {
        let Ok(dump) = client.sidecar.envoy().config_dump().await else {
            return false;
        };
        let hit = active_clusters(&dump)
            .into_iter()
            .find(|c| c["name"] == name)
            .cloned();
        *found.lock().unwrap() = hit.clone().unwrap_or(Value::Null);
        hit.is_some_and(|c| accept(&c))
    })
    .await;
    let last = found.into_inner().unwrap();
    assert!(
        ok.is_ok(),
        "{name} in the client's config_dump, last: {last}"
    );
    last
}

fn max_connections(cluster: &Value) -> Value {
    cluster["circuit_breakers"]["thresholds"][0]["max_connections"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_rules_reach_the_services_they_cover() {
    let ledger = Backend::start("ledger", "v1").await.unwrap();
    let config = ConfigDir::with(&[
        ("services.yaml", &services(ledger.port())),
        ("rules.yaml", &rules(5)),
    ])
    .unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "payment", "v2", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();

    // The namespace's wildcard rule: its subsets and its pool.
    let v2 = cluster_where(&client, PAYMENT_V2, |_| true).await;
    assert_eq!(max_connections(&v2), 5);
    client.wait_endpoints(PAYMENT_V2, 1).await.unwrap();
    let tally = client.tally(PAYMENT, &[], 40, 4).await;
    assert_eq!(
        tally.get("payment v2"),
        40,
        "every request to the v2 subset: {tally:?}"
    );

    // The root namespace's `*`, for a service no nearer rule matches.
    let ledger_cluster = cluster_where(&client, LEDGER, |_| true).await;
    assert_eq!(max_connections(&ledger_cluster), 9);
    assert_eq!(
        ledger_cluster["outlier_detection"]["consecutive_5xx"], 5,
        "{ledger_cluster}"
    );
    let reply = client
        .get("ledger.billing.svc.cluster.local", &[])
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    // An edit of the wildcard rule reaches the services it covers.
    config.replace("rules.yaml", &rules(6)).unwrap();
    cluster_where(&client, PAYMENT_V2, |c| max_connections(c) == 6).await;
}
