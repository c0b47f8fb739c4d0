//! DestinationRule `exportTo` and `workloadSelector` against real Envoy:
//! three client sidecars of one mesh see three different rules for one
//! host, by namespace and labels, and each sends a VirtualService's
//! `stable` subset where the rule it sees says.
//!
//! - `default/payment` (exported everywhere): `stable` is v1;
//! - `team-a/payment-a` (`exportTo: ["."]`): `stable` is v2, at most 7
//!   connections: what team-a's sidecars see;
//! - `team-a/payment-canary` (`workloadSelector: {role: canary}`):
//!   `stable` is v1, at most 3 connections: what team-a's canary sees.

use std::time::Duration;

use serde_json::Value;
use trellis_integration_tests::sidecar::SidecarSpec;
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const FQDN: &str = "payment.default.svc.cluster.local";
const STABLE: &str = "outbound|80|stable|payment.default.svc.cluster.local";

const CONFIG: &str = r#"apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: mesh}
spec:
  defaultSidecarScope: ALL_SERVICES
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment}
spec:
  hosts: [payment]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment}
spec:
  host: payment
  subsets:
  - {name: stable, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment-a, namespace: team-a}
spec:
  host: payment.default.svc.cluster.local
  exportTo: ["."]
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 7}}
  subsets:
  - {name: stable, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment-canary, namespace: team-a}
spec:
  host: payment.default.svc.cluster.local
  workloadSelector:
    matchLabels: {role: canary}
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 3}}
  subsets:
  - {name: stable, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payment}
spec:
  hosts: [payment]
  http:
  - route: [{destination: {host: payment, subset: stable}}]
"#;

/// A client sidecar in `namespace` with `labels`, with a token minted for
/// that namespace, and its idle app.
async fn client_in(
    trellis: &Trellis,
    namespace: &str,
    labels: &[(&str, &str)],
) -> (Backend, Sidecar) {
    let app = Backend::start("client", "v1").await.unwrap();
    let mut spec = SidecarSpec::new("client", labels, app.port());
    let token = trellis.state_dir().join(format!("{}.token", spec.node_id));
    let (state, out) = (
        trellis.state_dir().display().to_string(),
        token.display().to_string(),
    );
    let args = [
        "token",
        "--service",
        "client",
        "--namespace",
        namespace,
        "--ttl",
        "1h",
        "--state-dir",
        &state,
        "-o",
        &out,
    ];
    let (code, _, stderr) = run_trellis(&args).unwrap();
    assert_eq!(code, 0, "trellis token: {stderr}");
    spec.token_file = Some(token);
    spec.extra_args = vec!["--namespace".into(), namespace.into()];
    (app, Sidecar::start_spec(trellis, spec).await.unwrap())
}

/// The `stable` cluster as the sidecar's Envoy holds it, once it has it.
async fn stable_cluster(sidecar: &Sidecar) -> Value {
    let found = std::sync::Mutex::new(Value::Null);
    let ok = wait_for(TIMEOUT, POLL, || async {
        let Ok(dump) = sidecar.envoy().config_dump().await else {
            return false;
        };
        let hit = active_clusters(&dump)
            .into_iter()
            .find(|c| c["name"] == STABLE)
            .cloned();
        let got = hit.is_some();
        *found.lock().unwrap() = hit.unwrap_or(Value::Null);
        got
    })
    .await;
    assert!(
        ok.is_ok(),
        "{STABLE} in {}'s config_dump",
        sidecar.spec.node_id
    );
    found.into_inner().unwrap()
}

fn max_connections(cluster: &Value) -> Value {
    cluster["circuit_breakers"]["thresholds"][0]["max_connections"].clone()
}

/// Polls until 20 requests in a row through `sidecar` reach `version`;
/// fails with the last outcome seen.
async fn all_reach(sidecar: &Sidecar, version: &str) {
    let http = Client::new();
    let last = std::sync::Mutex::new(String::new());
    let ok = wait_for(TIMEOUT, POLL, || async {
        for _ in 0..20 {
            let got = match http.get(sidecar.outbound_port(), FQDN, "/", &[]).await {
                Ok(r) if r.status == 200 => r.version().unwrap_or("?").to_string(),
                Ok(r) => format!("HTTP {}", r.status),
                Err(e) => e.to_string(),
            };
            if got != version {
                *last.lock().unwrap() = got;
                return false;
            }
        }
        true
    })
    .await;
    let last = last.lock().unwrap().clone();
    assert!(
        ok.is_ok(),
        "{}: want {version}, last got {last}",
        sidecar.spec.node_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sidecar_follows_the_destination_rule_it_sees() {
    let config = ConfigDir::with(&[("mesh.yaml", CONFIG)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "payment", "v2", Behavior::Ok)
        .await
        .unwrap();
    let (_a, team_a) = client_in(&trellis, "team-a", &[("app", "client")]).await;
    let (_c, canary) =
        client_in(&trellis, "team-a", &[("app", "client"), ("role", "canary")]).await;
    let (_b, team_b) = client_in(&trellis, "team-b", &[("app", "client")]).await;

    // Each Envoy holds the stable cluster of the rule it sees.
    assert_eq!(max_connections(&stable_cluster(&team_a).await), 7);
    assert_eq!(max_connections(&stable_cluster(&canary).await), 3);
    let other = max_connections(&stable_cluster(&team_b).await);
    assert!(
        other != 7 && other != 3,
        "team-b sees default/payment: {other}"
    );

    // And sends `stable` where that rule says.
    all_reach(&team_a, "v2").await;
    all_reach(&canary, "v1").await;
    all_reach(&team_b, "v1").await;
}

/// A rule only team-a sees sets a connect timeout Envoy refuses: team-a's
/// sidecar NACKs its clusters, and the rejection is traced to that rule's
/// line, not to the default rule that made everyone else's clusters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_cluster_is_traced_to_the_rule_its_sidecar_sees() {
    let team_a_rule = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment-a, namespace: team-a}
spec:
  host: payment.default.svc.cluster.local
  exportTo: [\".\"]
  trafficPolicy:
    connectionPool:
      tcp:
        connectTimeout: 3000000h
";
    let mesh = "apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: mesh}
spec:
  defaultSidecarScope: ALL_SERVICES
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment}
spec:
  hosts: [payment]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment}
spec:
  host: payment
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 1s}}
";
    let files = [("mesh.yaml", mesh), ("team-a.yaml", team_a_rule)];
    let config = ConfigDir::with(&files).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let (_a, team_a) = client_in(&trellis, "team-a", &[("app", "client")]).await;
    let node = &team_a.spec.node_id;
    let origin = trellis_integration_tests::nack::wait_origin(&trellis, node, "Cluster").await;
    assert_eq!(origin["kind"], "DestinationRule", "{origin}");
    assert_eq!(
        (origin["namespace"].as_str(), origin["name"].as_str()),
        (Some("team-a"), Some("payment-a")),
        "{origin}"
    );
    let file = config.path().join("team-a.yaml");
    assert_eq!(origin["file"], file.display().to_string(), "{origin}");
    assert_eq!(origin["line"].as_u64(), Some(10), "{origin}");
}
