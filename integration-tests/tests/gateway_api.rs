//! Kubernetes Gateway API against real Envoy: an HTTPRoute splits 70/30
//! through a gateway proxy that carries the Gateway's name label, with
//! header-modifier and redirect filters; a GAMMA HTTPRoute (parent: a
//! Service) splits that Service's sidecar traffic between two Services;
//! a backend in another namespace is reached only with a ReferenceGrant.

use std::time::Duration;

use trellis_integration_tests::gateway::{start_gateway_spec, GatewaySpec};
use trellis_integration_tests::trellis::trellis_bin;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const REQUESTS: usize = 200;

/// Two Services, one per version; each sidecar joins its own.
const SERVICES: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web-v1}
spec:
  hosts: [web-v1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web-v2}
spec:
  hosts: [web-v2]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
";

const EDGE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, hostname: shop.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: new.example.com, statusCode: 301}
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-edge, value: gateway-api}]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-served-by, value: trellis}]}
    backendRefs:
    - {name: web-v1, port: 80, weight: 70}
    - {name: web-v2, port: 80, weight: 30}
";

fn edge_spec() -> GatewaySpec {
    GatewaySpec {
        service: "edge".into(),
        namespace: "default".into(),
        label: "gateway.networking.k8s.io/gateway-name=edge".into(),
        extra_args: Vec::new(),
    }
}

/// Polls until `port` answers `host` with a 2xx from `backend`.
async fn wait_backend(port: u16, host: &str, backend: &str) {
    let http = Client::new();
    let ok = wait_for(TIMEOUT, POLL, || async {
        let r = http.get(port, host, "/", &[]).await;
        r.is_ok_and(|r| r.backend.as_deref() == Some(backend))
    })
    .await;
    assert!(ok.is_ok(), "{host} on port {port} never reached {backend}");
}

/// The share of `outcome` in a tally, asserting every request succeeded.
fn share(tally: &Tally, outcome: &str) -> f64 {
    assert_eq!(
        tally.ok(),
        REQUESTS,
        "every request must succeed: {tally:?}"
    );
    tally.get(outcome) as f64 / REQUESTS as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_splits_70_30_through_the_gateway_with_filters() {
    let config = ConfigDir::with(&[("services.yaml", SERVICES), ("edge.yaml", EDGE)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "web-v1", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "web-v2", "v2", Behavior::Ok)
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let port = free_port();
    let gateway = start_gateway_spec(&trellis, files.path(), &edge_spec(), &[(80, port)])
        .await
        .unwrap();
    wait_backend(port, "shop.example.com", "web-v1 v1").await;
    wait_backend(port, "shop.example.com", "web-v2 v2").await;

    let http = Client::new();
    let tally = http.tally(port, "shop.example.com", &[], REQUESTS, 8).await;
    let v2 = share(&tally, "web-v2 v2");
    // 200 draws at p = 0.3: one standard deviation is 3.2 points.
    assert!(
        (0.2..=0.4).contains(&v2),
        "web-v2 share {v2:.3} outside 30% ± 10%: {tally:?}"
    );

    let reply = http.get(port, "shop.example.com", "/", &[]).await.unwrap();
    assert_eq!(
        reply.headers.get("x-served-by").map(String::as_str),
        Some("trellis")
    );
    let redirect = http
        .get(port, "shop.example.com", "/old/page", &[])
        .await
        .unwrap();
    assert_eq!(redirect.status, 301);
    let location = redirect
        .headers
        .get("location")
        .cloned()
        .unwrap_or_default();
    assert_eq!(location, "http://new.example.com/old/page");
    // Another host is not the listener's: no route.
    let other = http.get(port, "other.example.com", "/", &[]).await.unwrap();
    assert_eq!(other.status, 404);
    // The request header change is Envoy's route config (the backend does
    // not echo request headers).
    let dump = gateway
        .admin("/config_dump?resource=dynamic_route_configs")
        .await
        .unwrap();
    assert!(
        dump.contains("x-edge") && dump.contains("gateway-api"),
        "{dump}"
    );
}

const GAMMA: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-split}
spec:
  parentRefs: [{group: \"\", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{headers: [{name: x-canary, value: \"yes\"}]}]
    backendRefs: [{name: web-v2, port: 80}]
  - backendRefs:
    - {name: web-v1, port: 80, weight: 1}
    - {name: web-v2, port: 80, weight: 1}
";

#[tokio::test(flavor = "multi_thread")]
async fn gamma_route_splits_a_services_sidecar_traffic() {
    let config = ConfigDir::with(&[("services.yaml", SERVICES), ("gamma.yaml", GAMMA)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "web-v1", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "web-v2", "v2", Behavior::Ok)
        .await
        .unwrap();
    let app = Backend::start("client", "v1").await.unwrap();
    let client = Sidecar::start(&trellis, "client", &[("version", "v1")], app.port())
        .await
        .unwrap();
    let port = client.outbound_port();
    wait_backend(port, "web", "web-v1 v1").await;
    wait_backend(port, "web", "web-v2 v2").await;

    let http = Client::new();
    let tally = http.tally(port, "web", &[], REQUESTS, 8).await;
    let v2 = share(&tally, "web-v2 v2");
    assert!(
        (0.4..=0.6).contains(&v2),
        "web-v2 share {v2:.3} outside 50% ± 10%: {tally:?}"
    );
    let canary = http.tally(port, "web", &[("x-canary", "yes")], 50, 8).await;
    assert_eq!(canary.get("web-v2 v2"), 50, "{canary:?}");
}

/// A route in `default` to `audit` in namespace `audit`, whose one
/// endpoint is the backend on `port`; with `grant`, a ReferenceGrant there.
fn cross_namespace(port: u16, grant: bool) -> String {
    let mut out = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: audit, namespace: audit}}
spec:
  hosts: [audit]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: istio
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: audit}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [audit.example.com]
  rules:
  - backendRefs: [{{name: audit, namespace: audit, port: 80}}]
---
# A proxy's scope is its namespace by default: the gateway's takes audit's.
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default}}
spec:
  egress: [{{hosts: [./*, audit/*]}}]
"
    );
    if grant {
        out.push_str(
            "---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: default-routes, namespace: audit}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: \"\", kind: Service, name: audit}]
",
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_grant_allows_and_its_absence_refuses_a_cross_namespace_backend() {
    let audit = Backend::start("audit", "v1").await.unwrap();
    let config = ConfigDir::with(&[("edge.yaml", &cross_namespace(audit.port(), true))]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let port = free_port();
    let _gateway = start_gateway_spec(&trellis, files.path(), &edge_spec(), &[(80, port)])
        .await
        .unwrap();
    wait_backend(port, "audit.example.com", "audit v1").await;

    // Without the grant the config is refused at the backendRef, naming
    // both objects; the mesh keeps the last good config.
    std::fs::write(
        config.path().join("edge.yaml"),
        cross_namespace(audit.port(), false),
    )
    .unwrap();
    let refused = wait_for(TIMEOUT, POLL, || async {
        let log = trellis.log();
        log.contains("spec.rules[0].backendRefs[0]")
            && log.contains("no ReferenceGrant in namespace audit")
    })
    .await;
    assert!(refused.is_ok(), "no refusal logged: {}", trellis.log());
    let reply = Client::new()
        .get(port, "audit.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(reply.backend.as_deref(), Some("audit v1"));
    let out = std::process::Command::new(trellis_bin().unwrap())
        .args(["validate", config.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("HTTPRoute default/audit may not refer to Service audit/audit"),
        "{stderr}"
    );
}

/// A Gateway whose second listener admits only GRPCRoutes: an HTTPRoute
/// attached without `sectionName` serves the first listener only. Before,
/// it served every listener of the Gateway.
#[tokio::test(flavor = "multi_thread")]
async fn a_route_serves_only_the_listeners_that_admit_it() {
    let edge = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: istio
  listeners:
  - {name: web, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}]}}
  - {name: rpc, port: 9090, protocol: HTTP, allowedRoutes: {kinds: [{kind: GRPCRoute}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  rules:
  - backendRefs: [{name: web-v1, port: 80}]
";
    let config = ConfigDir::with(&[("services.yaml", SERVICES), ("edge.yaml", edge)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "web-v1", "v1", Behavior::Ok)
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let (web, rpc) = (free_port(), free_port());
    let _gateway = start_gateway_spec(
        &trellis,
        files.path(),
        &edge_spec(),
        &[(80, web), (9090, rpc)],
    )
    .await
    .unwrap();
    wait_backend(web, "shop.example.com", "web-v1 v1").await;
    let reply = Client::new()
        .get(rpc, "shop.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(
        reply.status, 404,
        "no route on the GRPCRoute listener: {reply:?}"
    );
}
