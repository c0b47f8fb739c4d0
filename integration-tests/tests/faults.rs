//! Check 5: fault injection (abort and delay).

use std::time::Duration;

use trellis_integration_tests::*;

fn routes(fault: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - fault:
{fault}
    route:
    - destination:
        host: payment
"#
    )
}

async fn setup(fault: &str) -> (ConfigDir, Trellis, Instance, MeshClient) {
    let config = ConfigDir::with(&[("routes.yaml", &routes(fault))]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let server = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints("|payment.default.svc.cluster.local", 1)
        .await
        .unwrap();
    (config, trellis, server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_all_with_503() {
    let fault = "      abort:\n        httpStatus: 503\n        percentage:\n          value: 100";
    let (_c, _t, server, client) = setup(fault).await;
    let tally = client.tally("payment", &[], 50, 4).await;
    assert_eq!(tally.get("HTTP 503"), 50, "{tally:?}");
    assert_eq!(
        server.backend.hits(),
        0,
        "aborted requests never reach the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_every_request_by_one_second() {
    let fault = "      delay:\n        fixedDelay: 1s\n        percentage:\n          value: 100";
    let (_c, _t, _s, client) = setup(fault).await;
    let replies = futures::future::join_all((0..4).map(|_| client.get("payment", &[]))).await;
    for reply in replies {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            // Envoy's timers tick in milliseconds: a delay may end a hair
            // before the client's own clock says 1 s.
            reply.elapsed >= Duration::from_millis(995),
            "{:?}",
            reply.elapsed
        );
        assert!(
            reply.elapsed < Duration::from_secs(3),
            "{:?}",
            reply.elapsed
        );
    }
}
