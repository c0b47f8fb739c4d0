//! Two mesh clusters, east and west, each with its own control plane and
//! its own etcd, on one network, with one root of trust: each cluster's CA
//! is a plug-in intermediate of the same root. East's `Mesh` setting lists
//! west as a remote cluster, so east's client sees `payment` instances of
//! both clusters. System test: `make test-system` runs it (real etcd, real
//! Envoy); it fails, never skips, when etcd is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use trellis_integration_tests::etcd::Etcd;
use trellis_integration_tests::locality::{answers_from, client_in, payment_in, until_steady};
use trellis_integration_tests::wait::wait_until;
use trellis_integration_tests::*;

const CLUSTER: &str = "outbound|80||payment.default.svc.cluster.local";
const EAST: &str = "us-east/us-east-1a";
const WEST: &str = "eu-west/eu-west-1a";

/// STRICT mTLS mesh-wide, and locality failover for `payment`.
const POLICY: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: payment
spec:
  host: payment
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 3s
      maxEjectionPercent: 100
"#;

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.remove(DnType::CommonName);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// One root; an intermediate per cluster in Istio's `cacerts` layout.
fn plugin_cas(dirs: &[&Path]) {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("Mesh Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(root_params, root_key);
    for dir in dirs {
        let key = KeyPair::generate().unwrap();
        let ca = ca_params(&format!("{} intermediate", dir.display()))
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca-cert.pem"), ca.pem()).unwrap();
        let key_path = dir.join("ca-key.pem");
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("cert-chain.pem"), ca.pem() + &root.pem()).unwrap();
        std::fs::write(dir.join("root-cert.pem"), root.pem()).unwrap();
    }
}

/// One cluster: its etcd, config, CA directory and control plane.
struct MeshCluster {
    etcd: Etcd,
    _config: ConfigDir,
    _ca: tempfile::TempDir,
    trellis: Trellis,
}

/// The `Mesh` setting of cluster `name`, watching `remote` if given.
fn mesh(name: &str, remote: Option<(&str, &Etcd)>) -> String {
    let mut spec = format!("  multiCluster:\n    clusterName: {name}\n    network: net-1\n");
    if let Some((remote, etcd)) = remote {
        spec += &format!(
            "    remoteClusters:\n    - name: {remote}\n      store: {}\n      storePrefix: /{remote}\n",
            etcd.store_url()
        );
    }
    format!("apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n{spec}")
}

async fn cluster(name: &str, etcd: Etcd, ca: tempfile::TempDir, mesh: &str) -> MeshCluster {
    let config = ConfigDir::with(&[("policy.yaml", POLICY), ("mesh.yaml", mesh)]).unwrap();
    let opts = TrellisOptions {
        extra_args: vec![
            "--store".into(),
            etcd.store_url(),
            "--store-prefix".into(),
            format!("/{name}"),
            "--ca-dir".into(),
            ca.path().display().to_string(),
        ],
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    MeshCluster {
        etcd,
        _config: config,
        _ca: ca,
        trellis,
    }
}

/// East and west with one root; east watches west.
async fn two_clusters() -> (MeshCluster, MeshCluster) {
    let (east_ca, west_ca) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    plugin_cas(&[east_ca.path(), west_ca.path()]);
    let west_etcd = Etcd::start(1).await.unwrap();
    let west = cluster("west", west_etcd, west_ca, &mesh("west", None)).await;
    let east_etcd = Etcd::start(1).await.unwrap();
    let east_mesh = mesh("east", Some(("west", &west.etcd)));
    let east = cluster("east", east_etcd, east_ca, &east_mesh).await;
    (east, west)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd, 2 clusters): make test-system"]
async fn two_clusters_one_network_stay_local_fail_over_and_return() {
    let (east, west) = two_clusters().await;
    let a1 = payment_in(&east.trellis, "east-1", EAST).await;
    let a2 = payment_in(&east.trellis, "east-2", EAST).await;
    let b1 = payment_in(&west.trellis, "west-1", WEST).await;
    let client = client_in(&east.trellis, EAST).await;
    let took = client.wait_endpoints(CLUSTER, 3).await.unwrap();
    eprintln!("east's client has both clusters' endpoints after {took:?}");
    let east_names = ["east-1", "east-2"];

    // Healthy: traffic stays in east.
    let tally = client.tally("payment", &[], 200, 4).await;
    assert_eq!(
        answers_from(&tally, &east_names),
        200,
        "traffic left east: {tally:?}"
    );

    // East fails: outlier detection ejects it, west takes over, over mTLS
    // (STRICT on both sides: west's sidecar verified east's client, and
    // the client verified west's chain to the shared root).
    a1.backend.set_behavior(Behavior::Always(503));
    a2.backend.set_behavior(Behavior::Always(503));
    let timeout = Duration::from_secs(20);
    let (took, failed, sent) = until_steady(&client, 20, timeout, |o| o == "west-1 v1").await;
    eprintln!("failover east -> west: {took:?}, {failed} of {sent} requests failed");
    assert!(
        failed <= 10,
        "{failed} of {sent} requests failed during failover"
    );
    let handshakes = format!("cluster.{CLUSTER}.ssl.handshake");
    assert!(client.sidecar.stat(&handshakes).await.unwrap() > 0);
    let inbound = b1.sidecar.stats().await.unwrap();
    let verified: u64 = (inbound.iter())
        .filter(|(k, _)| k.starts_with("listener.") && k.ends_with(".ssl.handshake"))
        .map(|(_, v)| *v)
        .sum();
    assert!(verified > 0, "west's sidecar saw no mTLS handshake");

    // East recovers: traffic returns once the ejections end.
    a1.backend.set_behavior(Behavior::Ok);
    a2.backend.set_behavior(Behavior::Ok);
    let back = || async {
        let tally = client.tally("payment", &[], 50, 4).await;
        (answers_from(&tally, &east_names) == 50).then_some(())
    };
    let (_, took) = wait_until(Duration::from_secs(30), Duration::from_millis(200), back)
        .await
        .expect("traffic never came back to east");
    eprintln!("traffic back in east after {took:?}");

    // West's store goes away: east keeps west's endpoint and counts it.
    let mut west = west;
    for m in &mut west.etcd.members {
        m.kill();
    }
    let counted = || async {
        let metrics = east.trellis.metrics().await.ok()?;
        metrics
            .contains("trellis_remote_cluster_up{cluster=\"west\"} 0")
            .then_some(())
    };
    wait_until(Duration::from_secs(15), Duration::from_millis(100), counted)
        .await
        .expect("east never noticed west's store outage");
    client.wait_endpoints(CLUSTER, 3).await.unwrap();
    drop(b1);
}
