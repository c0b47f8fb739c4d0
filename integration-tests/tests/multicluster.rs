//! Two mesh clusters, east and west, each with its own control plane and
//! its own etcd, on one network, with one root of trust: each cluster's CA
//! is a plug-in intermediate of the same root. East's `Mesh` setting lists
//! west as a remote cluster, so east's client sees `payment` instances of
//! both clusters. On two networks, east reaches west's `payment` through
//! west's east-west gateway (split-horizon EDS, AUTO_PASSTHROUGH). System
//! test: `make test-system` runs it (real etcd, real
//! Envoy); it fails, never skips, when etcd is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use trellis_integration_tests::etcd::Etcd;
use trellis_integration_tests::gateway::{start_gateway_spec, GatewaySpec};
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

/// The `Mesh` setting of cluster `name` on `network`, watching `remote`
/// (name, network, store) if given.
fn mesh(name: &str, network: &str, remote: Option<(&str, &str, &Etcd)>) -> String {
    let mut spec = format!("  multiCluster:\n    clusterName: {name}\n    network: {network}\n");
    if let Some((remote, network, etcd)) = remote {
        spec += &format!(
            "    remoteClusters:\n    - name: {remote}\n      network: {network}\n      store: {}\n      storePrefix: /{remote}\n",
            etcd.store_url()
        );
    }
    format!("apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n{spec}")
}

async fn cluster(name: &str, etcd: Etcd, ca: tempfile::TempDir, mesh: &str) -> MeshCluster {
    cluster_with(name, etcd, ca, &[("mesh.yaml", mesh)]).await
}

/// Cluster `name` with [`POLICY`] and the config `files`.
async fn cluster_with(
    name: &str,
    etcd: Etcd,
    ca: tempfile::TempDir,
    files: &[(&str, &str)],
) -> MeshCluster {
    let mut all = vec![("policy.yaml", POLICY)];
    all.extend_from_slice(files);
    let config = ConfigDir::with(&all).unwrap();
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
    let west = cluster("west", west_etcd, west_ca, &mesh("west", "net-1", None)).await;
    let east_etcd = Etcd::start(1).await.unwrap();
    let east_mesh = mesh("east", "net-1", Some(("west", "net-1", &west.etcd)));
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

/// Istio's `cross-network-gateway`: west's east-west gateway passes
/// through, by SNI, the mTLS of every `*.local` service.
const CROSS_NETWORK_GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: cross-network-gateway
spec:
  selector:
    istio: eastwestgateway
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ["*.local"]
"#;

/// The SNI cluster west's gateway proxies `payment` through.
const SNI_CLUSTER: &str = "outbound_.80_._.payment.default.svc.cluster.local";

/// East on net-east, west on net-west, each with its own etcd and
/// prefix, with one root; east watches west. West runs `payment` and
/// its east-west gateway, registered at 127.0.0.1 on `gateway_port`.
async fn two_networks(gateway_port: u16) -> (MeshCluster, MeshCluster, Instance, Envoy) {
    let (east_ca, west_ca) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    plugin_cas(&[east_ca.path(), west_ca.path()]);
    let etcd = Etcd::start(1).await.unwrap();
    let west_mesh = mesh("west", "net-west", None);
    let files = [
        ("mesh.yaml", west_mesh.as_str()),
        ("gateway.yaml", CROSS_NETWORK_GATEWAY),
    ];
    let west = cluster_with("west", etcd, west_ca, &files).await;
    let payment = payment_in(&west.trellis, "west-1", WEST).await;
    let spec = GatewaySpec {
        service: "istio-eastwestgateway".into(),
        namespace: "default".into(),
        label: "istio=eastwestgateway".into(),
        extra_args: vec!["--endpoint-address".into(), "127.0.0.1".into()],
    };
    let dir = west.trellis.state_dir().to_path_buf();
    let gateway = start_gateway_spec(&west.trellis, &dir, &spec, &[(15443, gateway_port)])
        .await
        .unwrap();
    let east_mesh = mesh("east", "net-east", Some(("west", "net-west", &west.etcd)));
    let east_etcd = Etcd::start(1).await.unwrap();
    let east = cluster("east", east_etcd, east_ca, &east_mesh).await;
    (east, west, payment, gateway)
}

/// `(address:port, weight)` of every endpoint of `cluster` in `envoy`'s
/// EDS config dump.
async fn eds_endpoints(envoy: &Envoy, cluster: &str) -> Vec<(String, u64)> {
    let dump = envoy.config_dump().await.unwrap_or_default();
    let configs = dump["configs"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for c in configs.iter().filter(|c| {
        c["@type"]
            .as_str()
            .is_some_and(|t| t.ends_with("EndpointsConfigDump"))
    }) {
        for e in c["dynamic_endpoint_configs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let cla = &e["endpoint_config"];
            if cla["cluster_name"] != cluster {
                continue;
            }
            for l in cla["endpoints"].as_array().into_iter().flatten() {
                for ep in l["lb_endpoints"].as_array().into_iter().flatten() {
                    let sa = &ep["endpoint"]["address"]["socket_address"];
                    let addr = format!(
                        "{}:{}",
                        sa["address"].as_str().unwrap_or(""),
                        sa["port_value"]
                    );
                    out.push((addr, ep["load_balancing_weight"].as_u64().unwrap_or(1)));
                }
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd, 2 clusters, 2 networks): make test-system"]
async fn two_networks_cross_through_the_east_west_gateway() {
    let gateway_port = free_port();
    let (east, west, b1, gateway) = two_networks(gateway_port).await;
    let client = client_in(&east.trellis, EAST).await;
    let through = format!("127.0.0.1:{gateway_port}");
    let poll = Duration::from_millis(20);
    let sees = |want: Vec<(String, u64)>| {
        let client = &client;
        move || {
            let want = want.clone();
            async move { (eds_endpoints(&client.sidecar, CLUSTER).await == want).then_some(()) }
        }
    };
    let (_, took) = wait_until(
        Duration::from_secs(20),
        poll,
        sees(vec![(through.clone(), 1)]),
    )
    .await
    .expect("east's client never got west's gateway as payment's endpoint");
    eprintln!(
        "east's client has payment through west's gateway {took:?} after the gateway was ready"
    );
    // Split horizon: the gateway, never west's sidecar address.
    let west_pod = format!("127.0.0.1:{}", b1.sidecar.spec.inbound_port);
    assert!(!eds_endpoints(&client.sidecar, CLUSTER)
        .await
        .iter()
        .any(|(a, _)| *a == west_pod));

    // The call crosses the gateway, mTLS end to end: STRICT on west's
    // sidecar verified east's client certificate (per-cluster
    // intermediates of one root), the client verified payment's SPIFFE ID
    // through a gateway that holds no certificate for it.
    let tally = client.tally("payment", &[], 20, 4).await;
    assert_eq!(answers_from(&tally, &["west-1"]), 20, "{tally:?}");
    let crossed = gateway
        .stat(&format!("cluster.{SNI_CLUSTER}.upstream_cx_total"))
        .await
        .unwrap();
    assert!(crossed >= 1, "west's gateway proxied no connection by SNI");
    let handshakes = format!("cluster.{CLUSTER}.ssl.handshake");
    assert!(client.sidecar.stat(&handshakes).await.unwrap() > 0);
    let inbound = b1.sidecar.stats().await.unwrap();
    let verified: u64 = (inbound.iter())
        .filter(|(k, _)| k.starts_with("listener.") && k.ends_with(".ssl.handshake"))
        .map(|(_, v)| *v)
        .sum();
    assert!(verified > 0, "west's sidecar saw no mTLS handshake");

    // A second west instance registers: the one gateway endpoint now
    // stands for two (weight 2), in about the time it takes to register.
    let start = std::time::Instant::now();
    let b2 = payment_in(&west.trellis, "west-2", WEST).await;
    let ready = start.elapsed();
    let (_, took) = wait_until(
        Duration::from_secs(20),
        poll,
        sees(vec![(through.clone(), 2)]),
    )
    .await
    .expect("the gateway endpoint's weight never followed west's registration");
    eprintln!("west registration -> east's client (weight 2 on the gateway): {took:?} after west's sidecar was ready ({ready:?} to start it)");

    // Locality failover across networks: an east instance takes the
    // traffic while healthy; when it fails, the client fails over to
    // west through the gateway.
    let a1 = payment_in(&east.trellis, "east-1", EAST).await;
    client.wait_endpoints(CLUSTER, 2).await.unwrap();
    let (_, _, _) = until_steady(&client, 20, Duration::from_secs(20), |o| o == "east-1 v1").await;
    // Bytes, not connections: the client keeps its connection through
    // the gateway open.
    let sent_bytes = format!("cluster.{SNI_CLUSTER}.upstream_cx_tx_bytes_total");
    let crossed_before = gateway.stat(&sent_bytes).await.unwrap();
    a1.backend.set_behavior(Behavior::Always(503));
    let west_side = |o: &str| o == "west-1 v1" || o == "west-2 v1";
    let (took, failed, sent) = until_steady(&client, 20, Duration::from_secs(20), west_side).await;
    eprintln!(
        "failover east -> west across networks: {took:?}, {failed} of {sent} requests failed"
    );
    // Envoy moves traffic off the ejected priority-0 host after about one
    // outlier `interval` (1 s) here, each failed request taking its
    // retries: the bound is that second's worth of sequential requests.
    assert!(
        failed <= 60,
        "{failed} of {sent} requests failed during failover"
    );
    let crossed_after = gateway.stat(&sent_bytes).await.unwrap();
    assert!(
        crossed_after > crossed_before,
        "failover traffic did not cross the gateway"
    );
    drop((b2, a1));
}
