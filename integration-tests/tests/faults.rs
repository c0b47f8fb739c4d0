//! Check 5: fault injection (abort and delay).

use std::time::Duration;

use trellis_integration_tests::payment::{payment_routes, start_payment};
use trellis_integration_tests::*;

/// A control plane, one `payment` instance and a client; `fault` is the
/// route's `fault:` body (indented by six spaces).
async fn setup(fault: &str) -> (ConfigDir, Trellis, Instance, MeshClient) {
    let routes = payment_routes(&format!("    fault:\n{fault}\n"));
    start_payment(&routes, Behavior::Ok).await.unwrap()
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
