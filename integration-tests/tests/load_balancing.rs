//! DestinationRule load balancing against a real Envoy: consistent hashing
//! keeps each key on one host and moves the keys of a host that
//! leaves; `warmup` is Envoy's slow start config on both algorithms.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_integration_tests::wait::wait_until;
use trellis_integration_tests::*;

const CLUSTER: &str = "outbound|80||payment.default.svc.cluster.local";
const GRACE: Duration = Duration::from_secs(1);

fn rule(load_balancer: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: payment\nspec:\n  host: payment\n  trafficPolicy:\n    loadBalancer:\n{load_balancer}")
}

async fn start(rule: &str, names: &[&str]) -> (ConfigDir, Trellis, Vec<Instance>, MeshClient) {
    let config = ConfigDir::with(&[("rule.yaml", rule)]).unwrap();
    let opts = TrellisOptions {
        grace_period: Some(GRACE),
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    let mut instances = Vec::new();
    for name in names {
        let i = Instance::start_named(&trellis, "payment", name, "v1", Behavior::Ok);
        instances.push(i.await.unwrap());
    }
    let client = MeshClient::start(&trellis).await.unwrap();
    client.wait_endpoints(CLUSTER, names.len()).await.unwrap();
    (config, trellis, instances, client)
}

/// The one backend every one of `n` requests of `user` reached.
async fn owner(client: &MeshClient, user: &str, n: usize) -> String {
    let tally = client.tally("payment", &[("x-user", user)], n, 4).await;
    assert_eq!(tally.0.len(), 1, "{user} went to several hosts: {tally:?}");
    let (backend, count) = tally.0.iter().next().unwrap();
    assert_eq!(*count, n, "{user}: {tally:?}");
    assert!(
        !backend.starts_with("HTTP") && backend != "error",
        "{tally:?}"
    );
    backend.clone()
}

/// The cluster as Envoy holds it (`/config_dump`).
async fn dumped_cluster(client: &MeshClient) -> serde_json::Value {
    let dump = client.sidecar.config_dump().await.unwrap();
    active_clusters(&dump)
        .into_iter()
        .find(|c| c["name"] == CLUSTER)
        .cloned()
        .expect("cluster in config_dump")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_sticks_and_moves_the_keys_of_a_host_that_leaves() {
    let lb = "      consistentHash:\n        httpHeaderName: x-user\n        ringHash:\n          minimumRingSize: 2048\n";
    let (_config, _trellis, mut instances, client) = start(&rule(lb), &["a", "b", "c"]).await;
    let cluster = dumped_cluster(&client).await;
    assert_eq!(cluster["lb_policy"], "RING_HASH", "{cluster}");
    assert_eq!(cluster["ring_hash_lb_config"]["minimum_ring_size"], "2048");

    // Each key stays on one host for 100 requests; the keys spread.
    let first = owner(&client, "user-0", 100).await;
    let mut owners = BTreeMap::new();
    for u in 0..30 {
        let user = format!("user-{u}");
        owners.insert(user.clone(), owner(&client, &user, 20).await);
    }
    assert_eq!(owners["user-0"], first);
    let hosts: std::collections::BTreeSet<_> = owners.values().collect();
    assert!(hosts.len() >= 2, "every key on one host: {owners:?}");

    // The host of user-0 leaves: its keys move to one other host each.
    // Keys on the other hosts mostly stay: their ring points remain, and
    // only the points Envoy adds to fill the ring again (its size is kept)
    // can take a key over (about one in six here).
    let gone = ["a", "b", "c"]
        .iter()
        .position(|n| first.starts_with(&format!("{n} ")))
        .unwrap();
    instances.remove(gone).kill();
    client.wait_endpoints(CLUSTER, 2).await.unwrap();
    let moved = owner(&client, "user-0", 100).await;
    assert_ne!(moved, first, "user-0 still on the host that left");
    let (mut kept, mut survivors) = (0, 0);
    for (user, was) in &owners {
        let now = owner(&client, user, 20).await;
        assert_ne!(now, first, "{user} still on the host that left");
        if *was != first {
            survivors += 1;
            kept += usize::from(now == *was);
        }
    }
    assert!(
        kept * 2 >= survivors,
        "only {kept} of {survivors} keys stayed"
    );
    eprintln!("user-0: {first} -> {moved}; {kept} of {survivors} other keys stayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_is_what_envoy_runs() {
    let lb = "      consistentHash:\n        httpHeaderName: x-user\n        maglev:\n          tableSize: 65537\n";
    let (_config, _trellis, _instances, client) = start(&rule(lb), &["a", "b"]).await;
    let cluster = dumped_cluster(&client).await;
    assert_eq!(cluster["lb_policy"], "MAGLEV", "{cluster}");
    assert_eq!(cluster["maglev_lb_config"]["table_size"], "65537");
    let first = owner(&client, "alice", 100).await;
    assert_eq!(owner(&client, "alice", 100).await, first);
}

const WINDOW: u64 = 15;

fn warmup_rule(simple: &str) -> String {
    rule(&format!("      simple: {simple}\n      warmup:\n        duration: {WINDOW}s\n        minimumPercent: 10\n        aggression: 1.5\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_is_slow_start_in_envoy() {
    for (simple, config) in [
        ("ROUND_ROBIN", "round_robin_lb_config"),
        ("LEAST_REQUEST", "least_request_lb_config"),
    ] {
        let (_config, _trellis, _instances, client) = start(&warmup_rule(simple), &["a"]).await;
        let cluster = dumped_cluster(&client).await;
        let slow_start = &cluster[config]["slow_start_config"];
        assert_eq!(
            slow_start["slow_start_window"],
            format!("{WINDOW}s"),
            "{cluster}"
        );
        assert_eq!(slow_start["min_weight_percent"]["value"], 10.0, "{cluster}");
        assert_eq!(slow_start["aggression"]["default_value"], 1.5, "{cluster}");
        assert_eq!(client.tally("payment", &[], 10, 1).await.get("a v1"), 10);
    }
}

/// The ramp window of [`warmup_ramps_a_new_host_up`]: short, since the
/// test waits it out once before the new host joins.
const RAMP_WINDOW: Duration = Duration::from_secs(8);

/// The ramp itself. Envoy starts the slow start window of every host when
/// the load balancer first sees it, hosts present when the cluster arrives
/// included (`EdfLoadBalancerBase::recalculateHostsInSlowStart` stamps each
/// host's `last_hc_pass_time` then). So the old host must have been in the
/// client's cluster for a whole window before the new one joins; otherwise
/// both ramp together and share evenly from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_ramps_a_new_host_up() {
    let window = RAMP_WINDOW.as_secs();
    let rule = rule(&format!(
        "      simple: LEAST_REQUEST\n      warmup:\n        duration: {window}s\n        minimumPercent: 10\n        aggression: 1.5\n"
    ));
    let (_config, trellis, _instances, client) = start(&rule, &["old"]).await;
    // The old host's own window, counted from when the client had it.
    tokio::time::sleep(RAMP_WINDOW + Duration::from_millis(500)).await;
    let new = Instance::start_named(&trellis, "payment", "new", "v1", Behavior::Ok);
    let _new = new.await.unwrap();
    client.wait_endpoints(CLUSTER, 2).await.unwrap();
    let joined = Instant::now();
    // Just joined: its weight is 10% of the old host's (minimumPercent).
    let early = client.tally("payment", &[], 100, 1).await;
    let early_share = early.get("new v1");
    assert_eq!(early.ok(), 100, "{early:?}");
    assert!(early_share <= 25, "no ramp: {early:?}");
    // Once about half the window has passed it gets near an even share.
    let (late, took) = wait_until(
        RAMP_WINDOW + Duration::from_secs(20),
        Duration::from_millis(300),
        || async {
            let t = client.tally("payment", &[], 100, 1).await;
            (t.get("new v1") >= 40).then_some(t)
        },
    )
    .await
    .expect("the new host never got an even share");
    let ramped = joined.elapsed();
    eprintln!("new host: {early_share}/100 at first, {late:?} after {ramped:?} (poll {took:?})");
    assert!(
        ramped >= RAMP_WINDOW / 4,
        "even share after {ramped:?}: no slow start"
    );
}
