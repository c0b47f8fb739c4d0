//! Each run of the integration suite speaks the ADS mode it claims: delta
//! (the `trellis bootstrap` default) unless `TRELLIS_TEST_ADS_MODE=sotw`, as
//! in `make test`'s second run. Without this, a harness that silently
//! ignored the variable would run delta twice and leave state of the world
//! untested. Nothing in this binary pins a mode (`use_ads_mode` is
//! process-wide), so it sees the run's choice.

use std::time::Duration;

use trellis_integration_tests::ads_mode::{api_type, expected_api_type};
use trellis_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_speak_the_mode_this_run_chose() {
    let config = ConfigDir::new().unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    let want = expected_api_type();
    assert_eq!(api_type(&client.sidecar).await.unwrap(), want);
    // The stream really works in that mode: the proxy ACKs its listeners.
    let acked = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let now = trellis.acked_versions("Listener").await.ok()?;
            let ok = now.values().any(|(a, s)| a.is_some() && a == s);
            ok.then_some(())
        },
    )
    .await;
    assert!(
        acked.is_ok(),
        "no listener ACK on {want}:\n{}",
        trellis.log()
    );
}
