//! Check 2: `end-user: jason` goes to v2, everyone else to v1.

use trellis_integration_tests::mesh::subsets_rule;
use trellis_integration_tests::*;

const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: payment
        subset: v2
  - route:
    - destination:
        host: payment
        subset: v1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_user_jason_goes_to_v2() {
    let rule = subsets_rule("payment", &["v1", "v2"]);
    let config = ConfigDir::with(&[("rule.yaml", &rule), ("routes.yaml", ROUTES)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "payment", "v2", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("v1", "payment"), 1)
        .await
        .unwrap();
    client
        .wait_endpoints(&subset_cluster("v2", "payment"), 1)
        .await
        .unwrap();

    let jason = client
        .tally("payment", &[("end-user", "jason")], 200, 4)
        .await;
    assert_eq!(jason.get("payment v2"), 200, "jason: {jason:?}");
    let others = client
        .tally("payment", &[("end-user", "mary")], 200, 4)
        .await;
    assert_eq!(others.get("payment v1"), 200, "mary: {others:?}");
    let anonymous = client.tally("payment", &[], 200, 4).await;
    assert_eq!(anonymous.get("payment v1"), 200, "no header: {anonymous:?}");
}
