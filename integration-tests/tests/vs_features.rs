//! VirtualService features on a real Envoy: a CORS preflight answered for
//! an allowed origin and not for another, two mirrors each receiving its
//! share, a delegate VirtualService's rules, and header presence, header
//! absence and query presence matches.

use std::time::Duration;

use hyper::Method;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - name: cors
    match:
    - uri:
        prefix: /cors
    corsPolicy:
      allowOrigins:
      - exact: https://shop.example
      allowMethods:
      - GET
      - POST
      allowHeaders:
      - x-token
      maxAge: 600s
    route:
    - destination:
        host: payment
        subset: v1
  - name: mirrored
    match:
    - uri:
        prefix: /mirror
    route:
    - destination:
        host: payment
        subset: v1
    mirrors:
    - destination:
        host: payment
        subset: v2
      percentage:
        value: 50
    - destination:
        host: payment
        subset: v1
  - name: team
    match:
    - uri:
        prefix: /team
    delegate:
      name: payment-team
  - name: beta
    match:
    - headers:
        x-beta: {}
      withoutHeaders:
        x-opt-out: {}
    - queryParams:
        trace: {}
    route:
    - destination:
        host: payment
        subset: v2
  - route:
    - destination:
        host: payment
        subset: v1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: payment-team
spec:
  http:
  - match:
    - uri:
        prefix: /team/v2
    route:
    - destination:
        host: payment
        subset: v2
  - route:
    - destination:
        host: payment
        subset: v1
"#;

async fn version(client: &MeshClient, path: &str, headers: &[(&str, &str)]) -> String {
    let reply = client
        .send(Method::GET, "payment", path, headers)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{path}: {reply:?}");
    reply.version().unwrap_or("none").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_mirrors_delegate_and_presence_matches() {
    let mesh = CanaryMesh::start(ROUTES, &["v1", "v2"]).await.unwrap();
    cors_preflight(&mesh.client).await;
    presence_matches(&mesh.client).await;
    delegate_routes(&mesh.client).await;
    mirrors_get_their_share(&mesh).await;
}

/// Envoy answers the preflight of an allowed origin itself; another
/// origin's preflight gets no `access-control-allow-origin` (it goes on
/// to the app, Istio's default `unmatchedPreflights: FORWARD`).
async fn cors_preflight(client: &MeshClient) {
    let preflight = |origin: &'static str| {
        let headers = [
            ("origin", origin),
            ("access-control-request-method", "POST"),
        ];
        async move {
            (client.send(Method::OPTIONS, "payment", "/cors/pay", &headers))
                .await
                .unwrap()
        }
    };
    let allowed = preflight("https://shop.example").await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    let h = &allowed.headers;
    assert_eq!(
        h.get("access-control-allow-origin").map(String::as_str),
        Some("https://shop.example"),
        "{allowed:?}"
    );
    assert_eq!(
        h.get("access-control-allow-methods").map(String::as_str),
        Some("GET,POST")
    );
    assert_eq!(
        h.get("access-control-max-age").map(String::as_str),
        Some("600")
    );
    assert!(allowed.backend.is_none(), "Envoy answers it: {allowed:?}");
    let other = preflight("https://evil.example").await;
    assert!(
        !other.headers.contains_key("access-control-allow-origin"),
        "{other:?}"
    );
    assert_eq!(other.backend.as_deref(), Some("payment v1"), "{other:?}");
    let get = (client.send(
        Method::GET,
        "payment",
        "/cors",
        &[("origin", "https://shop.example")],
    ))
    .await
    .unwrap();
    assert_eq!(
        get.headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("https://shop.example"),
        "{get:?}"
    );
}

async fn presence_matches(client: &MeshClient) {
    assert_eq!(version(client, "/", &[("x-beta", "")]).await, "v2");
    assert_eq!(version(client, "/", &[("x-beta", "yes")]).await, "v2");
    let opted_out = [("x-beta", "yes"), ("x-opt-out", "1")];
    assert_eq!(version(client, "/", &opted_out).await, "v1");
    assert_eq!(version(client, "/?trace", &[]).await, "v2");
    assert_eq!(version(client, "/?trace=1&a=b", &[]).await, "v2");
    assert_eq!(version(client, "/?tracer=1", &[]).await, "v1");
    assert_eq!(version(client, "/", &[]).await, "v1");
}

async fn delegate_routes(client: &MeshClient) {
    assert_eq!(version(client, "/team/v2/x", &[]).await, "v2");
    assert_eq!(version(client, "/team/other", &[]).await, "v1");
    // Outside the root's `/team` the delegate's rules do not apply.
    assert_eq!(version(client, "/v2", &[]).await, "v1");
}

/// 200 requests to `/mirror`: v1 answers all of them and gets a copy of
/// each (100%), v2 gets a copy of about half.
async fn mirrors_get_their_share(mesh: &CanaryMesh) {
    const N: u64 = 200;
    let (v1_before, v2_before) = (mesh.v1.backend.hits(), mesh.v2.backend.hits());
    for _ in 0..N {
        assert_eq!(version(&mesh.client, "/mirror", &[]).await, "v1");
    }
    let v1 = || mesh.v1.backend.hits() - v1_before;
    let v2 = || mesh.v2.backend.hits() - v2_before;
    // Copies are sent in the background: wait for all of v1's.
    wait_for(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { v1() >= 2 * N },
    )
    .await
    .unwrap_or_else(|_| panic!("v1 got {} of {}", v1(), 2 * N));
    assert_eq!(v1(), 2 * N, "each request and its 100% copy");
    // 50% of 200: binomial, sd ~7; 60..140 fails one run in ~10^8.
    let v2 = v2();
    assert!((60..=140).contains(&v2), "v2 mirror copies: {v2} of {N}");
}
