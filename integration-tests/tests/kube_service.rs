//! A Kubernetes `v1 Service` manifest defines the service: sidecars whose
//! labels match its selector are its endpoints, and Istio routing written
//! against `NAME.NAMESPACE.svc.cluster.local` works against a real Envoy.

use trellis_integration_tests::*;

const CONFIG: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
spec:
  type: ClusterIP
  clusterIP: 10.96.12.7
  selector:
    app: reviews
  ports:
  - name: http
    port: 9080
    targetPort: 9080
    protocol: TCP
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews.default.svc.cluster.local
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews.default.svc.cluster.local, subset: v2}
  - route:
    - destination: {host: reviews.default.svc.cluster.local, subset: v1}
"#;

const HOST: &str = "reviews.default.svc.cluster.local:9080";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_manifest_selects_sidecars_and_routes() {
    let config = ConfigDir::with(&[("reviews.yaml", CONFIG)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    // The sidecars register under their deployments' names: only the
    // Service's selector makes them endpoints of `reviews`.
    let mut instances = Vec::new();
    for v in ["v1", "v2"] {
        let backend = Backend::start("reviews", v).await.unwrap();
        let labels = [("app", "reviews"), ("version", v)];
        let name = format!("reviews-{v}");
        let sidecar = Sidecar::start(&trellis, &name, &labels, backend.port());
        instances.push((backend, sidecar.await.unwrap()));
    }
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints("|v1|reviews.default.svc.cluster.local", 1)
        .await
        .unwrap();
    client
        .wait_endpoints("|v2|reviews.default.svc.cluster.local", 1)
        .await
        .unwrap();
    client
        .wait_endpoints("outbound|9080||reviews.default.svc.cluster.local", 2)
        .await
        .unwrap();

    let plain = client.tally(HOST, &[], 20, 2).await;
    assert_eq!(plain.get("reviews v1"), 20, "{plain:?}");
    let jason = client.tally(HOST, &[("end-user", "jason")], 20, 2).await;
    assert_eq!(jason.get("reviews v2"), 20, "{jason:?}");
}
