//! Per-sidecar scoping with real Envoy: a `Sidecar` resource scoping the
//! client to one of three services leaves only that service's clusters,
//! endpoints and routes in its `/config_dump`; a sidecar it does not select
//! still gets every service (Istio's default).

use std::time::Duration;

use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

fn service(name: &str, port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
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
