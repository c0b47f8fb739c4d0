//! Replicas of `trellis serve` sharing one etcd (`--store etcd://…`), with
//! real etcd (Debian's `etcd-server`) and real Envoy sidecars. System tests:
//! `make test-system` runs them; each fails, never skips, when etcd is
//! missing.
//!
//! Every replica has its own config directory (same content) and state
//! directory holding a copy of the first replica's CA and token key, as
//! docs/operations.md ("Replicas on etcd") tells operators to do.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use trellis_integration_tests::client::http_post;
use trellis_integration_tests::etcd::Etcd;
use trellis_integration_tests::netns::{Host, Lan};
use trellis_integration_tests::sidecar::SidecarSpec;
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

const CLUSTER: &str = "outbound|80||inventory.default.svc.cluster.local";

/// A route change made after a fault: a response header.
const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: inventory
spec:
  hosts:
  - inventory
  http:
  - headers:
      response:
        add:
          x-after-fault: "yes"
    route:
    - destination:
        host: inventory
"#;

/// The fewest requests that must fall inside the window from the fault to
/// the end of the check for "no failed request" to count.
const MIN_REQUESTS: usize = 300;

/// One replica: its own config directory and the control plane.
struct Replica {
    config: ConfigDir,
    trellis: Trellis,
}

/// Starts a replica on `etcd`, sharing the CA and token key of `peer`.
async fn replica(etcd: &Etcd, peer: Option<&Replica>, ports: Option<(u16, u16)>) -> Replica {
    let opts = TrellisOptions {
        ports,
        ..Default::default()
    };
    replica_with(etcd, peer, opts).await
}

/// Like [`replica`], in `host`'s network namespace on its address.
async fn replica_on(etcd: &Etcd, peer: Option<&Replica>, host: &Host) -> Replica {
    let opts = TrellisOptions {
        host: Some(host.clone()),
        ..Default::default()
    };
    replica_with(etcd, peer, opts).await
}

/// A replica on `etcd` with `opts` plus the store, the restart grace
/// period and `peer`'s CA and token key.
async fn replica_with(etcd: &Etcd, peer: Option<&Replica>, mut opts: TrellisOptions) -> Replica {
    let config = ConfigDir::new().unwrap();
    opts.extra_args.extend([
        "--store".into(),
        etcd.store_url(),
        "--restart-grace-period".into(),
        "30s".into(),
    ]);
    opts.share_state_of = peer.map(|p| p.trellis.state_dir().to_path_buf());
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    Replica { config, trellis }
}

/// A sidecar spec whose bootstrap lists `via` first, then `more` replicas.
fn spec(service: &str, version: &str, port: u16, more: &[String]) -> SidecarSpec {
    let mut spec = SidecarSpec::new(service, &[("version", version)], port);
    for addr in more {
        spec.extra_args.extend(["--xds-addr".into(), addr.clone()]);
    }
    spec
}

/// An `inventory` instance whose sidecar registers through `via`.
async fn instance(via: &Replica, version: &str, more: &[String]) -> Instance {
    let backend = Backend::start("inventory", version).await.unwrap();
    let spec = spec("inventory", version, backend.port(), more);
    let sidecar = Sidecar::start_spec(&via.trellis, spec).await.unwrap();
    Instance { backend, sidecar }
}

/// A client sidecar connected through `via`.
async fn client(via: &Replica, more: &[String]) -> MeshClient {
    let app = Backend::start("client", "v1").await.unwrap();
    let spec = spec("client", "v1", app.port(), more);
    let sidecar = Sidecar::start_spec(&via.trellis, spec).await.unwrap();
    MeshClient {
        app,
        sidecar,
        http: Client::new(),
    }
}

/// Waits until every node id in `ids` has an open stream to `replica`
/// (its own entry: `/debug/proxies` also shows other replicas' proxies).
async fn wait_connected(replica: &Replica, ids: &[String], timeout: Duration) -> Duration {
    let me = replica.trellis.xds_addr();
    let (_, took) = wait_until(timeout, Duration::from_millis(20), || async {
        let proxies = replica.trellis.debug_proxies().await.ok()?;
        ids.iter()
            .all(|id| proxies[id]["connected"] == true && proxies[id]["replica"] == me.as_str())
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("sidecars not connected: {e}\n{}", replica.trellis.log()));
    took
}

/// Waits until `replica` counts `n` registered sidecars (its own plus
/// every other replica's, read from etcd).
async fn wait_registered(replica: &Replica, n: usize) {
    let line = format!("trellis_registered_sidecars {n}\n");
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async {
            let metrics = replica.trellis.admin("/metrics").await.ok()?;
            metrics.contains(&line).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{line:?} never shown: {e}\n{}", replica.trellis.log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd): make test-system"]
async fn an_endpoint_registered_through_a_reaches_a_client_on_b() {
    let etcd = Etcd::start(1).await.unwrap();
    let a = replica(&etcd, None, None).await;
    let b = replica(&etcd, Some(&a), None).await;
    let client = client(&b, &[]).await;
    let backend = Backend::start("inventory", "v1").await.unwrap();
    let spec = spec("inventory", "v1", backend.port(), &[]);
    let id = spec.node_id.clone();
    // The sidecar registers through A while B's client is watched: the
    // time from A's registration to B's client holding the endpoint.
    let start = Sidecar::start_spec(&a.trellis, spec);
    let registered = async {
        wait_connected(&a, std::slice::from_ref(&id), Duration::from_secs(20)).await;
        Instant::now()
    };
    let seen = async {
        client.wait_endpoints(CLUSTER, 1).await.unwrap();
        Instant::now()
    };
    let (sidecar, registered, seen) = tokio::join!(start, registered, seen);
    let _sidecar = sidecar.unwrap();
    let latency = seen.saturating_duration_since(registered);
    eprintln!("registration through A -> B's client has the endpoint: {latency:?}");
    let reply = client.get("inventory", &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("inventory"), "{}", reply.body);
    assert!(latency < Duration::from_secs(5), "{latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd, long fault): make test-system"]
async fn kill_9_of_a_replica_under_traffic_fails_no_request() {
    let etcd = Etcd::start(1).await.unwrap();
    let a = replica(&etcd, None, None).await;
    // B's ports are known before B runs, so every sidecar's bootstrap lists
    // both replicas while only A answers: they all start on A.
    let b_ports = (free_port(), free_port());
    let b_addr = vec![format!("127.0.0.1:{}", b_ports.0)];
    let v1 = instance(&a, "v1", &b_addr).await;
    let v2 = instance(&a, "v2", &b_addr).await;
    let client = client(&a, &b_addr).await;
    client.wait_endpoints(CLUSTER, 2).await.unwrap();
    let ids: Vec<String> = [&v1.sidecar, &v2.sidecar, &client.sidecar]
        .iter()
        .map(|s| s.spec.node_id.clone())
        .collect();
    wait_connected(&a, &ids, Duration::from_secs(20)).await;
    let mut a = a;
    let b = replica(&etcd, Some(&a), Some(b_ports)).await;
    wait_registered(&b, 3).await;

    let load = Load::start(&client, "inventory");
    load.keep_until(0, 50, Instant::now(), Duration::ZERO).await;
    let start = load.sent();
    a.trellis.kill();
    let killed = Instant::now();
    let moved = wait_connected(&b, &ids, Duration::from_secs(30)).await;
    // Past the grace period with traffic all along.
    load.keep_until(start, MIN_REQUESTS, killed, Duration::from_secs(8))
        .await;
    // A config change after the fault reaches every sidecar (through B,
    // from B's own copy of the config).
    b.config.write("routes.yaml", ROUTES).unwrap();
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let reply = client.get("inventory", &[]).await.ok()?;
            reply.headers.contains_key("x-after-fault").then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("the route change never reached the client: {e}"));
    for id in &ids {
        let (acked, status) = b.trellis.wait_all_acked(id).await;
        assert!(acked, "{id} did not ACK everything on B: {status}");
    }
    let (sent, failures) = load.finish().await;
    eprintln!(
        "kill -9 of replica A: every sidecar on B {moved:?} after the kill; {} requests from \
         the kill on, {} failed",
        sent - start,
        failures.len()
    );
    assert_no_failures(sent - start, &failures);
    assert!(
        sent - start >= MIN_REQUESTS,
        "only {} requests",
        sent - start
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd, long fault): make test-system"]
async fn losing_the_etcd_leader_disrupts_nothing() {
    let mut etcd = Etcd::start(3).await.unwrap();
    let a = replica(&etcd, None, None).await;
    let b = replica(&etcd, Some(&a), None).await;
    let _v1 = instance(&a, "v1", &[]).await;
    let client = client(&b, &[]).await;
    client.wait_endpoints(CLUSTER, 1).await.unwrap();

    let load = Load::start(&client, "inventory");
    load.keep_until(0, 50, Instant::now(), Duration::ZERO).await;
    let start = load.sent();
    let leader = etcd.leader().unwrap();
    etcd.members[leader].kill();
    let killed = Instant::now();
    // A registration after the loss still reaches the other replica.
    let _v2 = instance(&a, "v2", &[]).await;
    let took = client.wait_endpoints(CLUSTER, 2).await.unwrap();
    let registered = killed.elapsed();
    load.keep_until(start, MIN_REQUESTS, killed, Duration::from_secs(5))
        .await;
    for r in [&a, &b] {
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async { r.trellis.admin("/readyz").await.ok() },
        )
        .await
        .unwrap_or_else(|e| panic!("replica not ready after the member loss: {e}"));
    }
    let (sent, failures) = load.finish().await;
    eprintln!(
        "etcd leader m{leader} killed: a new registration reached the other replica's client \
         {registered:?} after the kill ({took:?} after its sidecar started); {} requests, {} failed",
        sent - start,
        failures.len()
    );
    assert_no_failures(sent - start, &failures);
    assert!(
        sent - start >= MIN_REQUESTS,
        "only {} requests",
        sent - start
    );
}

/// The node ids in `replica`'s registry view: its own sidecars and every
/// other replica's, as `/debug/proxies` lists them.
async fn registry_ids(replica: &Replica) -> Option<BTreeSet<String>> {
    let proxies = replica.trellis.debug_proxies().await.ok()?;
    Some(proxies.as_object()?.keys().cloned().collect())
}

/// Waits until `replica`'s `/readyz` answers `status`; returns the body.
async fn wait_readyz(replica: &Replica, status: u16, timeout: Duration) -> (String, Duration) {
    wait_until(timeout, Duration::from_millis(50), || async {
        let (got, body) = replica.trellis.admin_get("/readyz").await.ok()?;
        (got == status).then_some(body)
    })
    .await
    .unwrap_or_else(|e| panic!("/readyz never answered {status}: {e}"))
}

/// Separate hosts (network namespaces on one bridge): etcd, replica A and
/// replica B each have an address of their own; the sidecars and the load
/// run on the test machine and reach A and B over the bridge. nftables in
/// A's namespace then drops every packet between A and etcd, silently, as a
/// broken link does, while A still reaches its sidecars and B still
/// reaches etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd, root, network namespaces): make test-system"]
async fn a_replica_partitioned_from_etcd_keeps_serving_and_converges() {
    // Declared first, so dropped last: after every process in it is gone.
    let lan = Lan::new(3).unwrap();
    let (etcd_host, a_host, b_host) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    let etcd = Etcd::start_on(&[Some(etcd_host.clone())]).await.unwrap();
    let b = replica_on(&etcd, None, b_host).await;
    let a = replica_on(&etcd, Some(&b), a_host).await;
    let v1 = instance(&a, "v1", &[]).await;
    let client_a = client(&a, &[]).await;
    let client_b = client(&b, &[]).await;
    client_b.wait_endpoints(CLUSTER, 1).await.unwrap();
    wait_registered(&b, 3).await;

    let load = Load::start(&client_a, "inventory");
    load.keep_until(0, 50, Instant::now(), Duration::ZERO).await;
    let start = load.sent();
    a_host.partition_from(&[etcd_host.ip]).unwrap();
    let cut = Instant::now();
    let (reason, not_ready) = wait_readyz(&a, 503, Duration::from_secs(15)).await;
    assert!(reason.contains("store unreachable"), "{reason}");
    // Registered through B during the partition: A cannot know yet. And a
    // sidecar that registers through A meanwhile is served by A at once.
    let v2 = instance(&b, "v2", &[]).await;
    let v3 = instance(&a, "v3", &[]).await;
    client_b.wait_endpoints(CLUSTER, 2).await.unwrap();
    client_a.wait_endpoints(CLUSTER, 2).await.unwrap();
    load.keep_until(start, MIN_REQUESTS, cut, Duration::from_secs(8))
        .await;
    let metrics = a.trellis.admin("/metrics").await.unwrap();
    assert!(metrics.contains("trellis_store_up 0\n"), "{metrics}");
    // A kept its sidecars' streams all along.
    let ids = [&v1.sidecar, &client_a.sidecar].map(|s| s.spec.node_id.clone());
    wait_connected(&a, &ids, Duration::from_secs(1)).await;

    a_host.heal().unwrap();
    let healed = Instant::now();
    wait_readyz(&a, 200, Duration::from_secs(20)).await;
    let ready_again = healed.elapsed();
    let expected: BTreeSet<String> = [&v1, &v2, &v3]
        .map(|i| &i.sidecar)
        .into_iter()
        .chain([&client_a.sidecar, &client_b.sidecar])
        .map(|s| s.spec.node_id.clone())
        .collect();
    let equal = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let on_a = registry_ids(&a).await?;
            let on_b = registry_ids(&b).await?;
            (on_a == expected && on_b == expected).then_some(())
        },
    )
    .await;
    if let Err(e) = equal {
        let (on_a, on_b) = (registry_ids(&a).await, registry_ids(&b).await);
        panic!("registries differ after healing: {e}\nA {on_a:?}\nB {on_b:?}");
    }
    let converged = healed.elapsed();
    client_a.wait_endpoints(CLUSTER, 3).await.unwrap();
    client_b.wait_endpoints(CLUSTER, 3).await.unwrap();
    let (sent, failures) = load.finish().await;
    eprintln!(
        "partition of A from etcd (nftables drop): not ready {not_ready:?} after the cut \
         ({reason}); {} requests from A's client during and after it, {} failed; after healing A \
         ready in {ready_again:?}, both registries equal in {converged:?}",
        sent - start,
        failures.len(),
    );
    assert_no_failures(sent - start, &failures);
    assert!(
        sent - start >= MIN_REQUESTS,
        "only {} requests",
        sent - start
    );
}

/// True when `proxy` (a `/debug/proxies` entry) is connected and ACKed the
/// last response of every type it was sent, of at least CDS, EDS, LDS and
/// SDS.
fn synced(proxy: &serde_json::Value) -> bool {
    let Some(types) = proxy["types"].as_object() else {
        return false;
    };
    proxy["connected"] == true
        && types.len() >= 4
        && types.values().all(|t| {
            t["last_sent_version"].is_string() && t["last_sent_version"] == t["last_acked_version"]
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd): make test-system"]
async fn a_sidecar_on_a_shows_in_bs_proxy_status_as_synced_with_a_named() {
    let etcd = Etcd::start(1).await.unwrap();
    let a = replica(&etcd, None, None).await;
    let b = replica(&etcd, Some(&a), None).await;
    let instance = instance(&a, "v1", &[]).await;
    let id = instance.sidecar.spec.node_id.clone();
    wait_connected(&a, std::slice::from_ref(&id), Duration::from_secs(20)).await;
    // B shows what A's own table holds, once A's ACKs are published.
    let (seen, took) = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let on_a = a.trellis.debug_proxies().await.ok()?[&id].clone();
            let on_b = b.trellis.debug_proxies().await.ok()?[&id].clone();
            (synced(&on_a) && synced(&on_b) && on_a["types"] == on_b["types"]).then_some(on_b)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "B never showed A's sidecar as synced: {e}\n{}",
            b.trellis.log()
        )
    });
    eprintln!("A's sidecar synced in B's /debug/proxies after {took:?}");
    assert_eq!(seen["replica"], a.trellis.xds_addr(), "{seen}");
    assert_eq!(seen["service"], "inventory", "{seen}");
    // A names itself for its own sidecar.
    let on_a = a.trellis.debug_proxies().await.unwrap();
    assert_eq!(on_a[&id]["replica"], a.trellis.xds_addr());

    // `trellis proxy-status` against B: the row, SYNCED, served by A.
    let admin = format!("127.0.0.1:{}", b.trellis.admin_port());
    let args = ["proxy-status", "--admin-addr", &admin, "-o", "json"];
    let (code, out, err) = run_trellis(&args).unwrap();
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let row = rows.iter().find(|r| r["proxy"] == id.as_str()).expect(&out);
    assert_eq!(row["status"], "SYNCED", "{row}");
    assert_eq!(row["replica"], a.trellis.xds_addr(), "{row}");
    let (code, table, err) = run_trellis(&["proxy-status", "--admin-addr", &admin]).unwrap();
    assert_eq!(code, 0, "{err}");
    let header: Vec<&str> = table.split_whitespace().take(2).collect();
    assert_eq!(header, ["PROXY", "REPLICA"], "{table}");
    let line = table.lines().find(|l| l.starts_with(&id)).expect(&table);
    assert!(
        line.contains(&a.trellis.xds_addr()) && line.contains("SYNCED"),
        "{table}"
    );

    // The sidecar leaves: after A's grace period its status leaves B too.
    drop(instance);
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let on_b = b.trellis.debug_proxies().await.ok()?;
            on_b.get(&id).is_none().then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("A's departed sidecar stayed in B's view: {e}"));
}

/// Serials (as Envoy's `/certs` prints them) of the CA in use and of the
/// CA staged to rotate to: each an intermediate of its own root.
const OLD_ROOT: &str = "1001";
const NEW_ROOT: &str = "2001";

/// The fewest requests that must fall between the rotation request and
/// its end for "no failed request" to count.
const MIN_ROTATION_REQUESTS: usize = 200;

fn ca_params(cn: &str, serial: u64) -> rcgen::CertificateParams {
    use rcgen::{BasicConstraints, DnType, IsCa, KeyUsagePurpose};
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.remove(DnType::CommonName);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.serial_number = Some(rcgen::SerialNumber::from(serial));
    p
}

/// Writes one root and intermediate in Istio's `cacerts` layout into `dirs`.
fn write_ca(dirs: &[std::path::PathBuf], name: &str, serials: (u64, u64)) {
    use std::os::unix::fs::PermissionsExt;
    let root_key = rcgen::KeyPair::generate().unwrap();
    let root_params = ca_params(&format!("{name} root"), serials.0);
    let root = root_params.self_signed(&root_key).unwrap();
    let issuer = rcgen::Issuer::new(root_params, root_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params(&format!("{name} intermediate"), serials.1)
        .signed_by(&key, &issuer)
        .unwrap();
    for dir in dirs {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ca-cert.pem"), ca.pem()).unwrap();
        let key_path = dir.join("ca-key.pem");
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("cert-chain.pem"), ca.pem() + &root.pem()).unwrap();
        std::fs::write(dir.join("root-cert.pem"), root.pem()).unwrap();
    }
}

/// A CA directory per replica, each with the same CA in use and the same
/// new CA staged in `next/`, as docs/operations.md tells operators to do.
fn staged_ca_dirs(n: usize) -> Vec<tempfile::TempDir> {
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths = |sub: &str| -> Vec<std::path::PathBuf> {
        dirs.iter().map(|d| d.path().join(sub)).collect()
    };
    write_ca(&paths(""), "old", (0x1001, 0x1002));
    write_ca(&paths("next"), "new", (0x2001, 0x2002));
    dirs
}

/// A replica with a plug-in CA directory (and `peer`'s token key).
async fn ca_replica(etcd: &Etcd, peer: Option<&Replica>, ca: &Path, lease: &str) -> Replica {
    let config = ConfigDir::new().unwrap();
    let opts = TrellisOptions {
        extra_args: vec![
            "--store".into(),
            etcd.store_url(),
            "--restart-grace-period".into(),
            lease.into(),
            "--ca-dir".into(),
            ca.display().to_string(),
        ],
        share_state_of: peer.map(|p| p.trellis.state_dir().to_path_buf()),
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    Replica { config, trellis }
}

/// The serials of the CA certificates an Envoy trusts (`/certs`).
async fn trusted_serials(envoy: &Envoy) -> BTreeSet<String> {
    let certs: serde_json::Value =
        serde_json::from_str(&envoy.admin("/certs").await.unwrap_or_default()).unwrap_or_default();
    let mut cas = BTreeSet::new();
    for c in certs["certificates"].as_array().into_iter().flatten() {
        for cert in c["ca_cert"].as_array().into_iter().flatten() {
            if let Some(s) = cert["serial_number"].as_str() {
                cas.insert(s.trim_start_matches('0').to_string());
            }
        }
    }
    cas
}

/// A line of a PEM file's base64 body, from its middle (the public key):
/// found in a config dump only where that certificate is.
fn pem_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len() / 2].to_string()
}

/// Envoy's SDS secrets as its config dump shows them (keys redacted).
async fn secrets_dump(envoy: &Envoy) -> String {
    let path = "/config_dump?resource=dynamic_active_secrets";
    envoy.admin(path).await.unwrap_or_default()
}

/// Every Envoy trusts the new root alone and holds a leaf whose chain is
/// the new intermediate's.
async fn wait_new_ca_only(envoys: &[&Envoy], ca: &Path) {
    let old_intermediate = pem_line(&ca.join("ca-cert.pem"));
    let new_intermediate = pem_line(&ca.join("next/ca-cert.pem"));
    for envoy in envoys {
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || async {
                let cas = trusted_serials(envoy).await;
                let dump = secrets_dump(envoy).await;
                let new = dump.contains(&new_intermediate) && !dump.contains(&old_intermediate);
                (cas.len() == 1 && cas.contains(NEW_ROOT) && new).then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("an Envoy kept the old CA: {e}"));
    }
}

/// The old CA in an Envoy, before a rotation.
async fn assert_old_ca(envoy: &Envoy, ca: &Path) {
    let cas = trusted_serials(envoy).await;
    assert_eq!(cas, BTreeSet::from([OLD_ROOT.to_string()]));
    let dump = secrets_dump(envoy).await;
    assert!(dump.contains(&pem_line(&ca.join("ca-cert.pem"))), "{dump}");
}

/// How many replicas logged that they drove the rotation.
fn drivers(replicas: &[&Replica]) -> usize {
    (replicas.iter())
        .map(|r| r.trellis.log().matches("this replica drives it").count())
        .sum()
}

/// Two replicas, a client sidecar on A and a server sidecar on B; with
/// `fail_over`, each bootstrap lists the other replica too (and Envoy may
/// pick either).
async fn rotation_mesh(
    etcd: &Etcd,
    cas: &[tempfile::TempDir],
    lease: &str,
    fail_over: bool,
) -> (Replica, Replica, Instance, MeshClient) {
    let a = ca_replica(etcd, None, cas[0].path(), lease).await;
    let b = ca_replica(etcd, Some(&a), cas[1].path(), lease).await;
    let more = |r: &Replica| match fail_over {
        true => vec![r.trellis.xds_addr()],
        false => Vec::new(),
    };
    let server = instance(&b, "v1", &more(&a)).await;
    let client = client(&a, &more(&b)).await;
    client.wait_endpoints(CLUSTER, 1).await.unwrap();
    let ids = [
        server.sidecar.spec.node_id.clone(),
        client.sidecar.spec.node_id.clone(),
    ];
    if fail_over {
        // A's view shows every replica's proxies.
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(20),
            || async {
                let proxies = a.trellis.debug_proxies().await.ok()?;
                ids.iter()
                    .all(|id| proxies[id]["connected"] == true)
                    .then_some(())
            },
        )
        .await
        .expect("sidecars connected");
    } else {
        wait_connected(&b, &ids[..1], Duration::from_secs(20)).await;
        wait_connected(&a, &ids[1..], Duration::from_secs(20)).await;
    }
    // Each replica sees the other's proxy in the shared status.
    for (r, id) in [(&a, &ids[0]), (&b, &ids[1])] {
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(20),
            || async {
                let proxies = r.trellis.debug_proxies().await.ok()?;
                (proxies[id]["connected"] == true).then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{id} not shared: {e}\n{}", r.trellis.log()));
    }
    for envoy in [client.sidecar.envoy(), server.sidecar.envoy()] {
        assert_old_ca(envoy, cas[0].path()).await;
    }
    (a, b, server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd): make test-system"]
async fn one_replica_drives_a_root_rotation_that_fails_no_request() {
    let etcd = Etcd::start(1).await.unwrap();
    let cas = staged_ca_dirs(2);
    let (a, b, server, client) = rotation_mesh(&etcd, &cas, "30s", false).await;
    let load = Load::start(&client, "inventory");
    load.keep_until(0, 50, Instant::now(), Duration::ZERO).await;
    let start = load.sent();
    let began = Instant::now();
    // Asked of B; either replica may win the lock and drive.
    let admin = format!("127.0.0.1:{}", b.trellis.admin_port());
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_trellis(&["ca", "rotate", "--admin-addr", &admin, "--timeout", "120s"])
    })
    .await
    .unwrap()
    .unwrap();
    let took = began.elapsed();
    let during = load.sent() - start;
    assert_eq!(
        code,
        0,
        "trellis ca rotate: {out}{err}\n{}\n{}",
        a.trellis.log(),
        b.trellis.log()
    );
    wait_new_ca_only(
        &[client.sidecar.envoy(), server.sidecar.envoy()],
        cas[0].path(),
    )
    .await;
    load.keep_until(start, MIN_ROTATION_REQUESTS, began, Duration::ZERO)
        .await;
    let (sent, failures) = load.finish().await;
    eprintln!(
        "root rotation with 2 replicas: {took:?} from request to finish; {during} requests \
         during it, {} in all from the request on, {} failed",
        sent - start,
        failures.len()
    );
    assert_no_failures(sent - start, &failures);
    assert!(
        during >= MIN_ROTATION_REQUESTS,
        "only {during} requests during the rotation"
    );
    assert_eq!(drivers(&[&a, &b]), 1, "exactly one replica drove");
    for r in [&a, &b] {
        let ca = debug_ca(r).await;
        assert_eq!(ca["phase"], "idle", "{ca}");
        assert_eq!(ca["roots"].as_array().map(Vec::len), Some(1), "{ca}");
        assert_eq!(ca["shared_rotation"]["phase"], "finished", "{ca}");
    }
}

/// `/debug/ca` of a replica.
async fn debug_ca(r: &Replica) -> serde_json::Value {
    let text = r.trellis.admin("/debug/ca").await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd, long fault): make test-system"]
async fn a_driver_killed_mid_rotation_is_replaced_and_the_rotation_finishes() {
    let etcd = Etcd::start(1).await.unwrap();
    let cas = staged_ca_dirs(2);
    // A 6 s lease: the dead driver's lock goes 6 s after the kill at most.
    let (a, b, server, client) = rotation_mesh(&etcd, &cas, "6s", true).await;
    let load = Load::start(&client, "inventory");
    load.keep_until(0, 50, Instant::now(), Duration::ZERO).await;
    let start = load.sent();
    let (status, body) = http_post(b.trellis.admin_port(), "/ca/rotate")
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let (driver, _) = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(10),
        || async { debug_ca(&b).await["driver"].as_str().map(str::to_string) },
    )
    .await
    .expect("a replica took the lock");
    let (mut dead, alive) = match driver == a.trellis.xds_addr() {
        true => (a, b),
        false => (b, a),
    };
    let phase = debug_ca(&alive).await["shared_rotation"]["phase"].clone();
    dead.trellis.kill();
    let killed = Instant::now();
    assert_ne!(phase, "finished", "the driver was killed mid-rotation");
    let (_, resumed) = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            (debug_ca(&alive).await["shared_rotation"]["phase"] == "finished").then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("the survivor did not finish: {e}\n{}", alive.trellis.log()));
    wait_new_ca_only(
        &[client.sidecar.envoy(), server.sidecar.envoy()],
        cas[0].path(),
    )
    .await;
    load.keep_until(start, MIN_ROTATION_REQUESTS, killed, Duration::ZERO)
        .await;
    let (sent, failures) = load.finish().await;
    eprintln!(
        "driver killed in phase {phase}: the survivor finished {resumed:?} after the kill; \
         {} requests from the request on, {} failed",
        sent - start,
        failures.len()
    );
    assert_no_failures(sent - start, &failures);
    assert_eq!(drivers(&[&alive]), 1, "the survivor took over");
    assert_eq!(
        drivers(&[&dead, &alive]),
        2,
        "one driver at a time, two in turn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd): make test-system"]
async fn rotation_with_replicas_is_refused_without_a_staged_plug_in_ca() {
    let etcd = Etcd::start(1).await.unwrap();
    // Self-signed: the new root's key would exist on one replica only.
    let self_signed = replica(&etcd, None, None).await;
    let (status, body) = http_post(self_signed.trellis.admin_port(), "/ca/rotate")
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("needs a plug-in CA"), "{body}");
    // A plug-in CA with nothing staged in next/.
    let cas = staged_ca_dirs(1);
    std::fs::remove_dir_all(cas[0].path().join("next")).unwrap();
    let etcd = Etcd::start(1).await.unwrap();
    let plugin = ca_replica(&etcd, None, cas[0].path(), "30s").await;
    let (status, body) = http_post(plugin.trellis.admin_port(), "/ca/rotate")
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("nothing to rotate to") && body.contains("next"),
        "{body}"
    );
    let ca = debug_ca(&plugin).await;
    assert_eq!(ca["phase"], "idle", "{ca}");
    assert!(ca["shared_rotation"].is_null(), "nothing written: {ca}");
}

/// The namespaces and the bridge of a [`Lan`] are gone after a test that
/// panics while holding it, and its hosts reach each other before.
#[test]
#[ignore = "system test (root, network namespaces): make test-system"]
fn a_lan_is_removed_even_when_the_test_panics() {
    let names = std::sync::Mutex::new(Vec::new());
    let outcome = std::panic::catch_unwind(|| {
        let lan = Lan::new(2).unwrap();
        let ping = |from: &Host, to: &Host| {
            let mut cmd = from.command("bash");
            cmd.args(["-c", &format!("exec 3<>/dev/tcp/{}/9", to.ip)]);
            cmd.output().unwrap()
        };
        // Nothing listens on port 9: "refused" proves the peer answered.
        let out = ping(&lan.hosts[0], &lan.hosts[1]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused"), "{err}");
        let mut names = names.lock().unwrap();
        names.extend(lan.hosts.iter().map(|h| h.ns.clone()));
        names.push(format!("{}/24", lan.gateway));
        drop(names);
        panic!("a failing test");
    });
    assert!(outcome.is_err());
    let mut names = names.into_inner().unwrap();
    let subnet = names.pop().unwrap();
    assert_eq!(names.len(), 2);
    // The bridge held the machine's address in the lan's subnet.
    let addrs = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "to", &subnet])
        .output()
        .unwrap();
    assert!(addrs.stdout.is_empty(), "{subnet} still on an interface");
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for ns in &names {
        assert!(!list.contains(ns.as_str()), "{ns} left behind: {list}");
    }
}
