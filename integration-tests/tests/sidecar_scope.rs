//! Per-sidecar scoping with real Envoy: a `Sidecar` resource scoping the
//! client to one of three services leaves only that service's clusters,
//! endpoints and routes in its `/config_dump`; a sidecar it does not select
//! gets the default scope (its namespace and the root namespace), which
//! the `Mesh` setting `defaultSidecarScope: ALL_SERVICES` widens to every
//! service (Istio's default).

use std::time::Duration;

use trellis_integration_tests::sidecar::SidecarSpec;
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

fn service(name: &str, port: u16) -> String {
    service_in("default", name, port)
}

fn service_in(namespace: &str, name: &str, port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: {namespace}
spec:
  hosts:
  - {name}
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {port}
---
"#
    )
}

const SCOPE: &str = r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: client
spec:
  workloadSelector:
    labels:
      app: client
  egress:
  - hosts:
    - ./alpha
"#;

async fn dump(sidecar: &Sidecar) -> String {
    let path = "/config_dump?include_eds";
    sidecar.envoy().admin(path).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_sidecar_gets_only_its_services() {
    let mesh = ["alpha", "beta", "gamma"]
        .iter()
        .map(|s| service(s, free_port()))
        .collect::<String>()
        + SCOPE;
    let config = ConfigDir::with(&[("mesh.yaml", &mesh)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let scoped = Sidecar::start(&trellis, "client", &[("app", "client")], free_port())
        .await
        .unwrap();
    let other = Sidecar::start(&trellis, "other", &[("app", "other")], free_port())
        .await
        .unwrap();
    let host = |s: &str| format!("outbound|80||{s}.default.svc.cluster.local");
    let timeout = Duration::from_secs(20);
    let poll = Duration::from_millis(100);
    wait_for(timeout, poll, || async {
        let d = dump(&other).await;
        ["alpha", "beta", "gamma"]
            .iter()
            .all(|s| d.contains(&host(s)))
    })
    .await
    .expect("the unscoped sidecar gets every service");
    wait_for(timeout, poll, || async {
        dump(&scoped).await.contains(&host("alpha"))
    })
    .await
    .expect("the scoped sidecar gets alpha");
    let d = dump(&scoped).await;
    for out_of_scope in ["beta", "gamma"] {
        let fqdn = format!("{out_of_scope}.default.svc.cluster.local");
        assert!(
            !d.contains(&fqdn),
            "{fqdn} in the scoped sidecar's config_dump"
        );
    }
}

const ALL_SERVICES: &str = r#"apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata:
  name: mesh
spec:
  defaultSidecarScope: ALL_SERVICES
"#;

/// A sidecar of service `client` in `namespace`, with a token minted for
/// that namespace (the control plane checks the node's claim against it).
async fn sidecar_in(trellis: &Trellis, namespace: &str) -> Sidecar {
    let mut spec = SidecarSpec::new("client", &[("app", "client")], free_port());
    let token = trellis.state_dir().join(format!("{}.token", spec.node_id));
    let state = trellis.state_dir().display().to_string();
    let out = token.display().to_string();
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
    Sidecar::start_spec(trellis, spec).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sidecar_resource_the_mesh_default_decides() {
    let mesh = [
        ("team-a", "alpha"),
        ("team-b", "beta"),
        ("istio-system", "gamma"),
    ]
    .iter()
    .map(|(ns, s)| service_in(ns, s, free_port()))
    .collect::<String>();
    let config = ConfigDir::with(&[("services.yaml", &mesh)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let client = sidecar_in(&trellis, "team-a").await;
    let alpha = "outbound|80||alpha.team-a.svc.cluster.local";
    let gamma = "outbound|80||gamma.istio-system.svc.cluster.local";
    let beta = "beta.team-b.svc.cluster.local";
    let timeout = Duration::from_secs(20);
    let poll = Duration::from_millis(100);
    wait_for(timeout, poll, || async {
        let d = dump(&client).await;
        d.contains(alpha) && d.contains(gamma)
    })
    .await
    .expect("its namespace's and the root namespace's services");
    // One CDS/EDS/RDS set: had beta been in scope, it would be here now.
    let d = dump(&client).await;
    assert!(
        !d.contains(beta),
        "{beta} in the config_dump of team-a's sidecar"
    );

    config.write("mesh.yaml", ALL_SERVICES).unwrap();
    wait_for(timeout, poll, || async {
        let d = dump(&client).await;
        d.contains(&format!("outbound|80||{beta}")) && d.contains(alpha) && d.contains(gamma)
    })
    .await
    .expect("defaultSidecarScope: ALL_SERVICES gives it every service");
}
