//! Replicas of `trellis serve` sharing one etcd (`--store etcd://…`), with
//! real etcd (Debian's `etcd-server`) and real Envoy sidecars. System tests:
//! `make test-system` runs them; each fails, never skips, when etcd is
//! missing.
//!
//! Every replica has its own config directory (same content) and state
//! directory holding a copy of the first replica's CA and token key, as
//! docs/operations.md ("Replicas on etcd") tells operators to do.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

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
