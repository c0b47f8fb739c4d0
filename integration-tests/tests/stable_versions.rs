//! The same config gives the same listener bytes and versions, so a change
//! that does not touch a sidecar's listeners sends it no LDS, and Envoy
//! (which drains a listener's connections on every update) keeps them.
//!
//! Envoy hashes a listener ignoring map order, so its `listener_modified`
//! counter cannot tell; what is asserted is what Trellis sends (its LDS
//! push counter) and the `version_info` Envoy holds.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use trellis_integration_tests::mesh::ACCESS_LOGS_ON;
use trellis_integration_tests::*;

const STEP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);

/// A route-only marker: `marker` with a route timeout of `1000 + step` s.
/// RDS is sent after LDS (xDS spec, "Eventual consistency
/// considerations"), so once Envoy holds this step's route, any listener
/// update of the same snapshot has been sent and applied before it.
fn marker(step: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: marker\nspec:\n  \
         hosts: [marker]\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  \
         resolution: STATIC\n  endpoints:\n  - address: 127.0.0.1\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: marker\nspec:\n  \
         hosts: [marker]\n  http:\n  - timeout: {}s\n    route:\n    - destination:\n        host: marker\n",
        1000 + step
    )
}

/// Resources that change nothing for a sidecar of `default`: a policy and a
/// service of another namespace (out of its default scope).
const UNRELATED: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  \
    name: default\n  namespace: elsewhere\nspec:\n  mtls:\n    mode: STRICT\n---\n\
    apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: ledger\n  \
    namespace: elsewhere\nspec:\n  hosts: [ledger]\n  ports:\n  - number: 80\n    name: http\n    \
    protocol: HTTP\n  resolution: STATIC\n  endpoints:\n  - address: 127.0.0.2\n";

/// STRICT mTLS for the sidecar's own namespace: its inbound listener changes.
const STRICT: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  \
    name: default\n  namespace: default\nspec:\n  mtls:\n    mode: STRICT\n";

/// Each dynamic listener's `version_info` in Envoy's `/config_dump`.
async fn listener_versions(envoy: &Envoy) -> BTreeMap<String, String> {
    let dump: Value = serde_json::from_str(&envoy.admin("/config_dump").await.unwrap()).unwrap();
    let configs = dump["configs"].as_array().cloned().unwrap_or_default();
    let listeners = configs
        .iter()
        .filter_map(|c| c["dynamic_listeners"].as_array())
        .flatten();
    listeners
        .filter_map(|l| {
            let version = l["active_state"]["version_info"].as_str()?;
            Some((l["name"].as_str()?.to_string(), version.to_string()))
        })
        .collect()
}

/// `trellis_xds_pushes_total{type="lds"}`: LDS responses Trellis sent.
async fn lds_pushes(trellis: &Trellis) -> u64 {
    let metrics = trellis.metrics().await.unwrap();
    (metrics.lines())
        .find_map(|l| l.strip_prefix("trellis_xds_pushes_total{type=\"lds\"} "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Waits until Envoy holds the route of marker `step`.
async fn wait_marker(envoy: &Envoy, step: u32) {
    let want = format!("\"timeout\":\"{}s\"", 1000 + step);
    wait_until(STEP_TIMEOUT, POLL, || async {
        let dump: Value = serde_json::from_str(&envoy.admin("/config_dump").await.ok()?).ok()?;
        dump.to_string().contains(&want).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("envoy never got marker step {step} ({e}):\n{}", envoy.log()));
}

/// One sidecar of `payment` connected to a control plane serving `config`,
/// with marker step 0 applied.
async fn one_sidecar(config: &ConfigDir) -> (Trellis, Sidecar) {
    config.write("marker.yaml", &marker(0)).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let sidecar = Sidecar::start(&trellis, "payment", &[], free_port())
        .await
        .unwrap();
    wait_marker(sidecar.envoy(), 0).await;
    let (acked, status) = trellis.wait_all_acked(&sidecar.spec.node_id).await;
    assert!(acked, "the sidecar never ACKed its config: {status}");
    (trellis, sidecar)
}

/// A config with the JSON access log on: its format is a `Struct`, a map
/// whose encoding must not follow a hash map's order.
fn logged_config() -> ConfigDir {
    ConfigDir::with(&[("logs.yaml", ACCESS_LOGS_ON)]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_change_sends_no_lds() {
    let config = logged_config();
    let (trellis, sidecar) = one_sidecar(&config).await;
    let versions = listener_versions(sidecar.envoy()).await;
    assert_eq!(versions.len(), 2, "inbound and outbound: {versions:?}");
    let pushes = lds_pushes(&trellis).await;
    assert!(pushes > 0, "the first LDS push was counted");
    for step in 1..=6 {
        // Odd steps add the unrelated resources, even steps remove them.
        let unrelated = if step % 2 == 1 { UNRELATED } else { "" };
        config.replace("unrelated.yaml", unrelated).unwrap();
        config.replace("marker.yaml", &marker(step)).unwrap();
        wait_marker(sidecar.envoy(), step).await;
        assert_eq!(
            lds_pushes(&trellis).await,
            pushes,
            "step {step}: Trellis sent LDS for a change that is not the sidecar's"
        );
        assert_eq!(
            listener_versions(sidecar.envoy()).await,
            versions,
            "step {step}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_then_none_returns_to_the_same_listener_versions() {
    let config = logged_config();
    let (_trellis, sidecar) = one_sidecar(&config).await;
    let envoy = sidecar.envoy();
    let plain = listener_versions(envoy).await;
    let inbound = |v: &BTreeMap<String, String>| v.get("inbound").cloned();
    assert!(inbound(&plain).is_some(), "no inbound listener: {plain:?}");
    for round in 1..=3 {
        config.replace("peer-auth.yaml", STRICT).unwrap();
        let (strict, _) = wait_until(STEP_TIMEOUT, POLL, || async {
            let now = listener_versions(envoy).await;
            (inbound(&now) != inbound(&plain)).then_some(now)
        })
        .await
        .unwrap_or_else(|e| {
            panic!("round {round}: STRICT never reached the inbound listener: {e}")
        });
        config.replace("peer-auth.yaml", "").unwrap();
        let (back, _) = wait_until(STEP_TIMEOUT, POLL, || async {
            let now = listener_versions(envoy).await;
            (inbound(&now) != inbound(&strict)).then_some(now)
        })
        .await
        .unwrap_or_else(|e| panic!("round {round}: removing STRICT never reached Envoy: {e}"));
        assert_eq!(back, plain, "round {round}: same config, other versions");
    }
}
