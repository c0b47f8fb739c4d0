//! What the staged-rollout tests share: the policy, which backend a client
//! reaches, and the rollout's last outcome.

use std::time::Duration;

use serde_json::Value;

use crate::{wait, MeshClient, Trellis};

/// A `RolloutPolicy` whose canary set is the proxies labelled
/// `track: canary`, baking for `bake`.
pub fn policy(bake: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1
kind: RolloutPolicy
metadata:
  name: staged
spec:
  canary:
    selector:
      matchLabels:
        track: canary
  bakeTime: {bake}
"
    )
}

/// Which backend `client` reaches at `payment` now.
pub async fn backend(client: &MeshClient) -> Option<String> {
    client
        .get("payment", &[])
        .await
        .ok()
        .and_then(|r| r.backend)
}

/// Waits until `client` reaches `want`; panics naming `what` otherwise.
pub async fn wait_backend(client: &MeshClient, want: &str, within: Duration, what: &str) {
    wait::wait_for(within, Duration::from_millis(20), || async {
        backend(client).await.as_deref() == Some(want)
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: never reached {want}"));
}

/// The generation and outcome of the newest entry of a `/debug/rollout`
/// view's history.
pub fn outcome(view: &Value) -> (Option<u64>, Option<&str>) {
    let last = &view["history"][0];
    (last["generation"].as_u64(), last["outcome"].as_str())
}

/// `--admin-addr` of a control plane.
pub fn admin(trellis: &Trellis) -> String {
    format!("127.0.0.1:{}", trellis.admin_port())
}
