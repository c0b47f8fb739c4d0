//! Instances without sidecars: `ServiceEntry` static endpoints and
//! `WorkloadEntry`s selected by labels, reached through a client sidecar.

use trellis_integration_tests::mesh::subsets_rule;
use trellis_integration_tests::*;

fn inventory(v1_port: u16, v2_port: u16) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: inventory
spec:
  hosts:
  - inventory
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {v1_port}
    labels:
      version: v1
  - address: 127.0.0.1
    ports:
      http: {v2_port}
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: inventory
spec:
  hosts:
  - inventory
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: inventory
        subset: v2
  - route:
    - destination:
        host: inventory
        subset: v1
"#
    )
}

fn billing(port: u16) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: billing
spec:
  hosts:
  - billing
  ports:
  - number: 8000
    name: http-api
  resolution: STATIC
  workloadSelector:
    labels:
      app: billing
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: billing-vm-1
spec:
  address: 127.0.0.1
  ports:
    http-api: {port}
  labels:
    app: billing
    version: v1
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_endpoints_and_workload_entries() {
    let v1 = Backend::start("inventory", "v1").await.unwrap();
    let v2 = Backend::start("inventory", "v2").await.unwrap();
    let vm = Backend::start("billing", "vm").await.unwrap();
    let config = ConfigDir::with(&[
        ("inventory.yaml", &inventory(v1.port(), v2.port())),
        (
            "inventory-rule.yaml",
            &subsets_rule("inventory", &["v1", "v2"]),
        ),
        ("billing.yaml", &billing(vm.port())),
    ])
    .unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("v1", "inventory"), 1)
        .await
        .unwrap();
    client
        .wait_endpoints(&subset_cluster("v2", "inventory"), 1)
        .await
        .unwrap();

    let others = client.tally("inventory", &[], 50, 4).await;
    assert_eq!(others.get("inventory v1"), 50, "{others:?}");
    let jason = client
        .tally("inventory", &[("end-user", "jason")], 50, 4)
        .await;
    assert_eq!(jason.get("inventory v2"), 50, "{jason:?}");

    client
        .wait_endpoints("|billing.default.svc.cluster.local", 1)
        .await
        .unwrap();
    let billing = client.tally("billing:8000", &[], 20, 2).await;
    assert_eq!(billing.get("billing vm"), 20, "{billing:?}");
}

/// A service with two HTTP ports behind the one outbound listener: the port
/// in `Host` picks the port's virtual host, and a bare name the default
/// port's. Stripping the port before the virtual host is chosen (Envoy's
/// `strip_any_host_port`, or `ignore_port_in_host_matching`) would send
/// `api:9090` to port 8080, which is why every name is also listed with
/// `:PORT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_in_host_picks_the_service_port() {
    let main = Backend::start("api", "main").await.unwrap();
    let admin = Backend::start("api", "admin").await.unwrap();
    let api = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: api
spec:
  hosts:
  - api
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  - number: 9090
    name: http-admin
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {}
      http-admin: {}
"#,
        main.port(),
        admin.port()
    );
    let config = ConfigDir::with(&[("api.yaml", &api)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    for port in [8080, 9090] {
        let cluster = format!("outbound|{port}||api.default.svc.cluster.local");
        client.wait_endpoints(&cluster, 1).await.unwrap();
    }
    for (host, want) in [
        ("api", "api main"),
        ("api:8080", "api main"),
        ("api.default.svc.cluster.local:8080", "api main"),
        ("api:9090", "api admin"),
        ("api.default:9090", "api admin"),
    ] {
        let got = client.tally(host, &[], 10, 2).await;
        assert_eq!(got.get(want), 10, "{host}: {got:?}");
    }
}
