//! Per-match `gateways` and `sourceLabels` of VirtualService HTTP rules
//! against real Envoy: in one VirtualService bound to a gateway and the
//! mesh, a gateway-only match routes on the gateway and not on sidecars,
//! a mesh-only match the other way round, and two client sidecars that
//! differ only in their labels get different routes.

use std::time::Duration;

use trellis_integration_tests::gateway::start_gateway;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const FQDN: &str = "payment.default.svc.cluster.local";

const CONFIG: &str = "apiVersion: networking.istio.io/v1
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
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payment}
spec:
  hosts: [payment]
  gateways: [edge, mesh]
  http:
  - name: edge-only
    match: [{uri: {prefix: /edge}, gateways: [edge]}]
    route: [{destination: {host: payment, subset: v2}}]
  - name: canary-clients
    match: [{gateways: [mesh], sourceLabels: {role: canary}}]
    route: [{destination: {host: payment, subset: v2}}]
  - name: mesh-only
    match: [{gateways: [mesh]}]
    route: [{destination: {host: payment, subset: v1}}]
";

/// A client sidecar with `labels`, and its idle app.
async fn client(trellis: &Trellis, labels: &[(&str, &str)]) -> (Backend, Sidecar) {
    let app = Backend::start("client", "v1").await.unwrap();
    let sidecar = Sidecar::start(trellis, "client", labels, app.port())
        .await
        .unwrap();
    (app, sidecar)
}

/// Polls until a GET of `path` on `port` gets `want` (a backend's
/// version, or `HTTP NNN`); fails with the last outcome seen.
async fn expect(port: u16, path: &str, want: &str) {
    let http = Client::new();
    let last = std::sync::Mutex::new(String::new());
    let ok = wait_for(TIMEOUT, POLL, || async {
        let got = match http.get(port, FQDN, path, &[]).await {
            Ok(r) if r.status == 200 => r.version().unwrap_or("?").to_string(),
            Ok(r) => format!("HTTP {}", r.status),
            Err(e) => e.to_string(),
        };
        let hit = got == want;
        *last.lock().unwrap() = got;
        hit
    })
    .await;
    let last = last.lock().unwrap().clone();
    assert!(
        ok.is_ok(),
        "GET {path} on port {port}: want {want}, last got {last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn matches_apply_where_their_gateways_and_source_labels_say() {
    let config = ConfigDir::with(&[("mesh.yaml", CONFIG)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "payment", "v2", Behavior::Ok)
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let gw_port = free_port();
    let _gateway = start_gateway(&trellis, files.path(), &[(80, gw_port)])
        .await
        .unwrap();
    let (_a, plain) = client(&trellis, &[("version", "v1")]).await;
    let (_b, canary) = client(&trellis, &[("version", "v1"), ("role", "canary")]).await;

    // The gateway: only the gateway-only match applies; the mesh-only
    // rules are not there, so other paths find no route.
    expect(gw_port, "/edge", "v2").await;
    expect(gw_port, "/other", "HTTP 404").await;
    // A plain sidecar: the gateway-only match is not there (/edge falls
    // to the mesh-only rule), and the canary rule is not its own.
    expect(plain.outbound_port(), "/edge", "v1").await;
    expect(plain.outbound_port(), "/other", "v1").await;
    // The canary client: its sourceLabels rule comes first.
    expect(canary.outbound_port(), "/other", "v2").await;
    expect(canary.outbound_port(), "/edge", "v2").await;
    let routes = plain
        .admin("/config_dump?resource=dynamic_route_configs")
        .await
        .unwrap();
    assert!(!routes.contains("canary-clients") && !routes.contains("edge-only"));
}
