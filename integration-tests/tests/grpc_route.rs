//! gRPC through real Envoy: a GRPCRoute on a Gateway (method matches,
//! Exact and RegularExpression, a header match, 100/0 weights, a header
//! filter, an error status passed back), GRPCRoutes for a Service between
//! sidecars (two routes merged by precedence, a 50/50 split), consumer
//! and producer routes for one Service, and a VirtualService routing a
//! gRPC port by `:path` prefix. Every call is a real h2c unary call to an
//! h2c gRPC backend behind its sidecar.

use std::time::Duration;

use trellis_integration_tests::gateway::{start_gateway_spec, GatewaySpec};
use trellis_integration_tests::grpc::{call, GrpcBackend, GrpcReply};
use trellis_integration_tests::sidecar::SidecarSpec;
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::wait::wait_until;
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// `greeter` (the Service clients call) and the two backends' Services,
/// each one gRPC port, in `ns`.
fn services(ns: &str) -> String {
    ["greeter", "grpc-a", "grpc-b"]
        .map(|s| {
            format!(
                "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {s}, namespace: {ns}}}
spec:
  hosts: [{s}.{ns}.svc.cluster.local]
  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]
  resolution: STATIC
"
            )
        })
        .join("---\n")
}

/// A gRPC backend named `service` behind a sidecar of `service` in `ns`.
struct GrpcInstance {
    backend: GrpcBackend,
    _sidecar: Sidecar,
}

async fn grpc_instance(trellis: &Trellis, ns: &str, service: &str) -> GrpcInstance {
    let backend = GrpcBackend::start(service).await.unwrap();
    let sidecar = sidecar_in(trellis, ns, service, backend.port()).await;
    GrpcInstance {
        backend,
        _sidecar: sidecar,
    }
}

/// A sidecar of `service` in `ns`, with a token minted for that namespace
/// (the control plane checks the node's claim against it).
async fn sidecar_in(trellis: &Trellis, ns: &str, service: &str, app_port: u16) -> Sidecar {
    let mut spec = SidecarSpec::new(service, &[("app", service)], app_port);
    let token = trellis.state_dir().join(format!("{}.token", spec.node_id));
    let (state, out) = (trellis.state_dir().display(), token.display());
    let (state, out) = (state.to_string(), out.to_string());
    let args = [
        "token",
        "--service",
        service,
        "--namespace",
        ns,
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
    spec.extra_args = vec!["--namespace".into(), ns.into()];
    Sidecar::start_spec(trellis, spec).await.unwrap()
}

/// Polls until a call of `method` on `port` with `headers` is answered by
/// `backend`, and returns that answer.
async fn wait_grpc(
    port: u16,
    authority: &str,
    method: &str,
    headers: &[(&str, &str)],
    backend: &str,
) -> GrpcReply {
    let got = wait_until(TIMEOUT, POLL, || async {
        let r = call(port, authority, method, headers).await.ok()?;
        (r.status == 0 && r.backend() == Some(backend)).then_some(r)
    })
    .await;
    let last = call(port, authority, method, headers).await;
    match got {
        Ok((r, _)) => r,
        Err(_) => panic!("{method} on {port} never reached {backend}: last {last:?}"),
    }
}

/// `n` calls of `method`, counted by the backend that answered (`status
/// N` for a failed call).
async fn tally(port: u16, authority: &str, method: &str, n: usize) -> Tally {
    let mut out = Tally::default();
    for _ in 0..n {
        let outcome = match call(port, authority, method, &[]).await {
            Ok(r) if r.status == 0 => r.backend().unwrap_or("?").to_string(),
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("error {e}"),
        };
        *out.0.entry(outcome).or_default() += 1;
    }
    out
}

const EDGE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: istio
  listeners:
  - {name: grpc, port: 80, protocol: HTTP, hostname: grpc.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter}
spec:
  parentRefs: [{name: edge}]
  rules:
  - matches: [{method: {service: pkg.Greeter, method: Hello}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: hello}]}
    backendRefs: [{name: grpc-b, port: 50051}]
  - matches: [{method: {type: RegularExpression, service: 'pkg\\.Admin.*', method: 'Get.*'}}]
    backendRefs: [{name: grpc-b, port: 50051}]
  - matches: [{headers: [{name: x-team, value: blue}]}]
    backendRefs: [{name: grpc-b, port: 50051}]
  - backendRefs:
    - {name: grpc-a, port: 50051, weight: 100}
    - {name: grpc-b, port: 50051, weight: 0}
";

#[tokio::test(flavor = "multi_thread")]
async fn grpc_route_on_a_gateway_matches_methods_and_headers() {
    let config =
        ConfigDir::with(&[("services.yaml", &services("default")), ("edge.yaml", EDGE)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _a = grpc_instance(&trellis, "default", "grpc-a").await;
    let b = grpc_instance(&trellis, "default", "grpc-b").await;
    let files = tempfile::tempdir().unwrap();
    let port = free_port();
    let spec = GatewaySpec {
        service: "edge".into(),
        namespace: "default".into(),
        label: "gateway.networking.k8s.io/gateway-name=edge".into(),
        extra_args: Vec::new(),
    };
    let _gateway = start_gateway_spec(&trellis, files.path(), &spec, &[(80, port)])
        .await
        .unwrap();
    let host = "grpc.example.com";
    // Exact service and method, with the request header the filter sets.
    let hello = wait_grpc(port, host, "/pkg.Greeter/Hello", &[], "grpc-b").await;
    assert_eq!(hello.message, "grpc-b /pkg.Greeter/Hello");
    assert_eq!(hello.header("x-echo-x-route"), Some("hello"));
    wait_grpc(port, host, "/pkg.Greeter/Bye", &[], "grpc-a").await;
    // RegularExpression on service and method.
    let admin = call(port, host, "/pkg.AdminService/GetUser", &[]).await;
    assert_eq!(admin.unwrap().backend(), Some("grpc-b"));
    let set = call(port, host, "/pkg.AdminService/SetUser", &[]).await;
    assert_eq!(set.unwrap().backend(), Some("grpc-a"));
    // A header match.
    let blue = call(port, host, "/pkg.Greeter/Bye", &[("x-team", "blue")]).await;
    assert_eq!(blue.unwrap().backend(), Some("grpc-b"));
    // 100/0: every call of 40 goes to grpc-a.
    let split = tally(port, host, "/pkg.Greeter/Bye", 40).await;
    assert_eq!(split.get("grpc-a"), 40, "{split:?}");
    // The backend's error status comes back through the gateway.
    b.backend.set_status(7);
    let denied = call(port, host, "/pkg.Greeter/Hello", &[]).await.unwrap();
    assert_eq!((denied.status, denied.http_status), (7, 200), "{denied:?}");
    // Another host is not the listener's.
    let other = call(port, "other.example.com", "/pkg.Greeter/Hello", &[]).await;
    assert!(other.is_err() || other.unwrap().status != 0);
}

/// Two GRPCRoutes for `greeter`: `a-split` (older by name) has only a
/// catch-all, `b-methods` the method and header matches, which win by
/// precedence although they come second.
const GAMMA: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: a-split}
spec:
  parentRefs: [{group: '', kind: Service, name: greeter, port: 50051}]
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-split, value: 'yes'}]}
    backendRefs:
    - {name: grpc-a, port: 50051, weight: 1}
    - {name: grpc-b, port: 50051, weight: 1}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: b-methods}
spec:
  parentRefs: [{group: '', kind: Service, name: greeter, port: 50051}]
  rules:
  - matches: [{method: {service: pkg.Greeter, method: Hello}}]
    backendRefs: [{name: grpc-b, port: 50051}]
  - matches: [{method: {type: RegularExpression, method: 'Get.*'}}]
    backendRefs: [{name: grpc-a, port: 50051}]
  - matches: [{headers: [{name: x-team, value: blue}]}]
    backendRefs: [{name: grpc-b, port: 50051}]
";

#[tokio::test(flavor = "multi_thread")]
async fn gamma_grpc_routes_merge_by_precedence_and_split() {
    let config = ConfigDir::with(&[
        ("services.yaml", &services("default")),
        ("gamma.yaml", GAMMA),
    ])
    .unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _a = grpc_instance(&trellis, "default", "grpc-a").await;
    let _b = grpc_instance(&trellis, "default", "grpc-b").await;
    let client = sidecar_in(&trellis, "default", "client", free_port()).await;
    let port = client.outbound_port();
    let host = "greeter:50051";
    let hello = wait_grpc(port, host, "/pkg.Greeter/Hello", &[], "grpc-b").await;
    assert_eq!(hello.header("x-split"), None, "{hello:?}");
    for _ in 0..10 {
        let get = call(port, host, "/pkg.Other/GetThing", &[]).await.unwrap();
        assert_eq!(get.backend(), Some("grpc-a"), "{get:?}");
        let blue = call(port, host, "/pkg.Other/Put", &[("x-team", "blue")]).await;
        assert_eq!(blue.unwrap().backend(), Some("grpc-b"));
    }
    wait_grpc(port, host, "/pkg.Greeter/Bye", &[], "grpc-a").await;
    wait_grpc(port, host, "/pkg.Greeter/Bye", &[], "grpc-b").await;
    let split = tally(port, host, "/pkg.Greeter/Bye", 100).await;
    let (a, b) = (split.get("grpc-a"), split.get("grpc-b"));
    assert_eq!(a + b, 100, "{split:?}");
    // 100 draws at p = 0.5: one standard deviation is 5 calls.
    assert!((30..=70).contains(&a), "grpc-a {a} of 100: {split:?}");
    let any = call(port, host, "/pkg.Greeter/Bye", &[]).await.unwrap();
    assert_eq!(any.header("x-split"), Some("yes"), "{any:?}");
}

/// `greeter` in `shop` with its producer route to grpc-a; a consumer
/// route in `front` sends front's calls to grpc-b (a ReferenceGrant lets
/// it name shop's Services). Clients see `shop` through their Sidecar.
fn consumer_config(producer: bool) -> String {
    let mut out = String::from(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter-front, namespace: front}
spec:
  parentRefs: [{group: '', kind: Service, name: greeter, namespace: shop}]
  rules:
  - backendRefs: [{name: grpc-b, namespace: shop, port: 50051}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: front-routes, namespace: shop}
spec:
  from: [{group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: front}]
  to: [{group: '', kind: Service}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: [./*, shop/*]}]
",
    );
    if producer {
        out.push_str(
            "---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: shop}
spec:
  parentRefs: [{group: '', kind: Service, name: greeter}]
  rules:
  - backendRefs: [{name: grpc-a, port: 50051}]
",
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_route_applies_to_its_namespace_and_the_producer_route_to_others() {
    let config = ConfigDir::with(&[
        ("services.yaml", &services("shop")),
        ("routes.yaml", &consumer_config(true)),
    ])
    .unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _a = grpc_instance(&trellis, "shop", "grpc-a").await;
    let _b = grpc_instance(&trellis, "shop", "grpc-b").await;
    let _own = grpc_instance(&trellis, "shop", "greeter").await;
    let front = sidecar_in(&trellis, "front", "client", free_port()).await;
    let other = sidecar_in(&trellis, "other", "client", free_port()).await;
    let host = "greeter.shop:50051";
    let method = "/pkg.Greeter/Hello";
    wait_grpc(front.outbound_port(), host, method, &[], "grpc-b").await;
    wait_grpc(other.outbound_port(), host, method, &[], "grpc-a").await;
    for _ in 0..10 {
        let f = call(front.outbound_port(), host, method, &[])
            .await
            .unwrap();
        assert_eq!(f.backend(), Some("grpc-b"), "{f:?}");
        let o = call(other.outbound_port(), host, method, &[])
            .await
            .unwrap();
        assert_eq!(o.backend(), Some("grpc-a"), "{o:?}");
    }
    // Without the producer route, other namespaces reach the Service
    // itself; front keeps its consumer route.
    config
        .replace("routes.yaml", &consumer_config(false))
        .unwrap();
    wait_grpc(other.outbound_port(), host, method, &[], "greeter").await;
    let f = call(front.outbound_port(), host, method, &[])
        .await
        .unwrap();
    assert_eq!(f.backend(), Some("grpc-b"), "{f:?}");
}

const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter}
spec:
  hosts: [greeter]
  http:
  - match: [{uri: {prefix: /pkg.Admin/}}]
    route: [{destination: {host: grpc-b, port: {number: 50051}}}]
  - route: [{destination: {host: grpc-a, port: {number: 50051}}}]
";

#[tokio::test(flavor = "multi_thread")]
async fn a_virtual_service_routes_grpc_by_path_prefix() {
    let config =
        ConfigDir::with(&[("services.yaml", &services("default")), ("vs.yaml", VS)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _a = grpc_instance(&trellis, "default", "grpc-a").await;
    let _b = grpc_instance(&trellis, "default", "grpc-b").await;
    let client = sidecar_in(&trellis, "default", "client", free_port()).await;
    let port = client.outbound_port();
    let host = "greeter:50051";
    let admin = wait_grpc(port, host, "/pkg.Admin/Get", &[], "grpc-b").await;
    assert_eq!(admin.message, "grpc-b /pkg.Admin/Get");
    let hello = wait_grpc(port, host, "/pkg.Greeter/Hello", &[], "grpc-a").await;
    assert_eq!(hello.message, "grpc-a /pkg.Greeter/Hello");
}

/// A GRPCRoute and an older HTTPRoute for `greeter` port 50051: the
/// GRPCRoute takes precedence on that Service and port (GEP-1294), so the
/// HTTPRoute's catch-all to grpc-a is ignored and a method the GRPCRoute
/// does not match has no route. Before, the two merged and such calls
/// went to grpc-a.
const TWO_KINDS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catch-all, creationTimestamp: '2024-01-01T00:00:00Z'}
spec:
  parentRefs: [{group: '', kind: Service, name: greeter, port: 50051}]
  rules:
  - backendRefs: [{name: grpc-a, port: 50051}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: hello, creationTimestamp: '2024-02-01T00:00:00Z'}
spec:
  parentRefs: [{group: '', kind: Service, name: greeter, port: 50051}]
  rules:
  - matches: [{method: {service: pkg.Greeter, method: Hello}}]
    backendRefs: [{name: grpc-b, port: 50051}]
";

#[tokio::test(flavor = "multi_thread")]
async fn on_a_service_an_http_route_gives_way_to_a_grpc_route() {
    let config = ConfigDir::with(&[
        ("services.yaml", &services("default")),
        ("routes.yaml", TWO_KINDS),
    ])
    .unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _a = grpc_instance(&trellis, "default", "grpc-a").await;
    let _b = grpc_instance(&trellis, "default", "grpc-b").await;
    let client = sidecar_in(&trellis, "default", "client", free_port()).await;
    let port = client.outbound_port();
    let host = "greeter:50051";
    wait_grpc(port, host, "/pkg.Greeter/Hello", &[], "grpc-b").await;
    let bye = tally(port, host, "/pkg.Greeter/Bye", 10).await;
    assert_eq!(bye.get("grpc-a"), 0, "the HTTPRoute is ignored: {bye:?}");
    let warned = "HTTPRoute/catch-all: spec.parentRefs[0]: ignored for Service greeter.default.svc.cluster.local port 50051";
    assert!(trellis.log().contains(warned), "{}", trellis.log());
}
