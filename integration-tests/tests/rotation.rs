//! Leaf rotation (short TTL) and root rotation
//! under constant traffic with zero failed requests; a control-plane restart
//! keeps the CA while proxies keep serving and reconnect.

use std::collections::BTreeSet;
use std::time::Duration;

use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

const ROTATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Serial numbers of the certificate chains and CA certs Envoy holds.
async fn envoy_serials(envoy: &Envoy) -> (BTreeSet<String>, BTreeSet<String>) {
    let certs: serde_json::Value =
        serde_json::from_str(&envoy.admin("/certs").await.unwrap_or_default()).unwrap_or_default();
    let (mut leaves, mut cas) = (BTreeSet::new(), BTreeSet::new());
    for c in certs["certificates"].as_array().into_iter().flatten() {
        for (key, set) in [("cert_chain", &mut leaves), ("ca_cert", &mut cas)] {
            for cert in c[key].as_array().into_iter().flatten() {
                if let Some(s) = cert["serial_number"].as_str() {
                    set.insert(s.to_string());
                }
            }
        }
    }
    (leaves, cas)
}

async fn payment_mesh(config: &ConfigDir) -> (Trellis, Instance, MeshClient) {
    payment::payment_mesh(config, Behavior::Ok).await.unwrap()
}

fn roots(ca: &serde_json::Value) -> Vec<String> {
    ca["roots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["fingerprint_sha256"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_rotate_under_load_without_failures() {
    let mesh = "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n  \
                certificates:\n    workloadTTL: 10s\n";
    let config = ConfigDir::with(&[("mesh.yaml", mesh)]).unwrap();
    let (_trellis, payment, client) = payment_mesh(&config).await;
    let load = Load::start(&client, "payment");
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let (_, took) = wait_until(ROTATION_TIMEOUT, Duration::from_millis(200), || async {
        let now = envoy_serials(payment.sidecar.envoy()).await.0;
        let mut seen = seen.lock().unwrap();
        seen.extend(now);
        // The first leaf and three re-issued ones.
        (seen.len() >= 4).then_some(())
    })
    .await
    .expect("payment's Envoy shows at least three re-issued leaves");
    let seen = seen.into_inner().unwrap();
    let (sent, failures) = load.finish().await;
    eprintln!("{} leaves seen in {took:?}; {sent} requests", seen.len());
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(sent > 100, "too little traffic: {sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_rotates_under_load_without_failures() {
    let config = ConfigDir::new().unwrap();
    let (trellis, payment, client) = payment_mesh(&config).await;
    let before: serde_json::Value =
        serde_json::from_str(&trellis.admin("/debug/ca").await.unwrap()).unwrap();
    let (_, cas_before) = envoy_serials(payment.sidecar.envoy()).await;
    let load = Load::start(&client, "payment");
    let addr = format!("127.0.0.1:{}", trellis.admin_port());
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_trellis(&["ca", "rotate", "--admin-addr", &addr, "--timeout", "60s"])
    })
    .await
    .unwrap()
    .unwrap();
    let (sent, failures) = load.finish().await;
    assert_eq!(code, 0, "trellis ca rotate: {out}{err}\n{}", trellis.log());
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let after: serde_json::Value =
        serde_json::from_str(&trellis.admin("/debug/ca").await.unwrap()).unwrap();
    assert_eq!(after["phase"], "idle");
    let (old, new) = (roots(&before), roots(&after));
    assert_eq!((old.len(), new.len()), (1, 1), "{before} → {after}");
    assert_ne!(old, new, "the root changed");
    let (_, cas_after) = envoy_serials(payment.sidecar.envoy()).await;
    assert!(
        cas_after.is_disjoint(&cas_before),
        "Envoy trusts only the new root: {cas_before:?} → {cas_after:?}"
    );
    eprintln!("root rotated under {sent} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_ca_and_proxies_reconnect() {
    let config = ConfigDir::new().unwrap();
    let (mut trellis, payment, client) = payment_mesh(&config).await;
    let before = roots(&serde_json::from_str(&trellis.admin("/debug/ca").await.unwrap()).unwrap());
    let load = Load::start(&client, "payment");
    trellis.restart().await.unwrap();
    let ids = [
        payment.sidecar.spec.node_id.clone(),
        client.sidecar.spec.node_id.clone(),
    ];
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let proxies = trellis.debug_proxies().await.ok()?;
            ids.iter()
                .all(|id| proxies[id]["connected"] == true)
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("proxies did not reconnect: {e}\n{}", trellis.log()));
    // Traffic through the reconnected proxies, then stop.
    let tally = client.tally("payment", &[], 20, 2).await;
    let (sent, failures) = load.finish().await;
    assert_eq!(tally.ok(), 20, "{tally:?}");
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let after = roots(&serde_json::from_str(&trellis.admin("/debug/ca").await.unwrap()).unwrap());
    assert_eq!(before, after, "the restart kept the CA");
}
