//! ADS protocol tests: the server on 127.0.0.1:0, driven by a real tonic ADS
//! client (what Envoy speaks), with a fake `StreamHooks`.

#[path = "xds_protocol/support.rs"]
mod support;

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use support::*;
use tonic::Code;
use trellis::xds::{Snapshot, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};

#[tokio::test]
async fn initial_wildcard_and_by_name_requests() {
    let h = start().await;
    let snap = snapshot(&["a", "b"], "1");
    h.cache.set("n1", snap.clone());
    let mut ads = h.open("n1").await.unwrap();
    let cds = ads.recv().await;
    assert_eq!(names(&cds), vec!["a", "b"]);
    assert_eq!(cds.version_info, snap.version(&CLUSTER_TYPE).unwrap());
    ads.ack(&cds, &[]).await;
    let eds = ads.subscribe(&ENDPOINT_TYPE, &["b"]).await;
    assert_eq!(names(&eds), vec!["b"]);
    assert_eq!(names(&ads.subscribe(&LISTENER_TYPE, &[]).await), vec!["l"]);
    assert_eq!(names(&ads.subscribe(&ROUTE_TYPE, &["r"]).await), vec!["r"]);
    assert_eq!(h.hooks.opened.lock().unwrap().as_slice(), ["n1"]);
}

#[tokio::test]
async fn ack_records_version_and_subscription_before_snapshot_waits() {
    let h = start().await;
    let mut ads = h.open("n1").await.unwrap();
    let snap = snapshot(&["a"], "1");
    h.cache.set("n1", snap.clone());
    let cds = ads.recv().await;
    ads.ack(&cds, &[]).await;
    let version = snap.version(&CLUSTER_TYPE).unwrap().to_string();
    eventually("ACK recorded", || {
        let p = h.status.get("n1").unwrap();
        p.connected
            && p.types[CLUSTER_TYPE.as_str()].last_acked_version.as_deref() == Some(&version)
    })
    .await;
    assert!(h
        .metrics_text()
        .contains("trellis_xds_acks_total{type=\"cds\"} 1"));
}

#[tokio::test]
async fn nack_is_recorded_and_not_resent() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a"], "1"));
    let mut ads = settled(&h, "n1").await;
    // A new CDS that the client rejects.
    h.cache.set("n1", snapshot(&["a"], "2"));
    let cds = ads.recv().await;
    assert_eq!(cds.type_url, *CLUSTER_TYPE);
    let mut nack = req(&CLUSTER_TYPE, &[], &cds.nonce);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "bad cluster a".into(),
        ..Default::default()
    });
    ads.send(nack).await;
    // The rest of the push (EDS, LDS, RDS) still arrives; CDS never again.
    for t in [&*ENDPOINT_TYPE, &*LISTENER_TYPE, &*ROUTE_TYPE] {
        assert_eq!(ads.recv().await.type_url, *t);
    }
    eventually("NACK recorded", || {
        let p = h.status.get("n1").unwrap();
        let nack = p.types[CLUSTER_TYPE.as_str()].last_nack.clone();
        nack.is_some_and(|n| n.message == "bad cluster a" && n.version == cds.version_info)
    })
    .await;
    // Same content again: nothing. Then only the listener changes: LDS only.
    h.cache.set("n1", snapshot(&["a"], "2"));
    let mut b = Snapshot::builder();
    for (t, n, m) in [
        (&*CLUSTER_TYPE, "a", "2"),
        (&*ENDPOINT_TYPE, "a", "2"),
        (&*ROUTE_TYPE, "r", "2"),
    ] {
        b.insert(n, resource(t, n, m));
    }
    b.insert("l", resource(&LISTENER_TYPE, "l", "3"));
    h.cache.set("n1", Arc::new(b.build()));
    assert_eq!(ads.recv().await.type_url, *LISTENER_TYPE);
    assert!(h
        .metrics_text()
        .contains("trellis_xds_nacks_total{type=\"cds\"} 1"));
}

#[tokio::test]
async fn new_snapshot_is_pushed_in_cds_eds_lds_rds_order() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = settled(&h, "n1").await;
    h.cache.set("n1", snapshot(&["a", "b"], "2"));
    let order = [
        &*CLUSTER_TYPE,
        &*ENDPOINT_TYPE,
        &*LISTENER_TYPE,
        &*ROUTE_TYPE,
    ];
    for t in order {
        let resp = ads.recv().await;
        assert_eq!(resp.type_url, *t);
        assert!(entries(&resp).iter().all(|(_, mark)| mark == "2"));
        // LDS and RDS are held until CDS is ACKed (Envoy ACKs CDS once the
        // new clusters warmed), so ACK as Envoy would.
        let names: &[&str] = match t {
            t if *t == *ENDPOINT_TYPE => &["a", "b"],
            t if *t == *ROUTE_TYPE => &["r"],
            _ => &[],
        };
        ads.ack(&resp, names).await;
    }
}

#[tokio::test]
async fn stale_nonce_is_ignored() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = h.open("n1").await.unwrap();
    let cds = ads.recv().await;
    ads.ack(&cds, &[]).await;
    let old = ads.subscribe(&ENDPOINT_TYPE, &["a"]).await;
    h.cache.set("n1", snapshot(&["a", "b"], "2"));
    assert_eq!(ads.recv().await.type_url, *CLUSTER_TYPE);
    let fresh = ads.recv().await;
    assert_eq!(fresh.type_url, *ENDPOINT_TYPE);
    // Answers the older EDS response with new names: must be ignored.
    ads.send(req(&ENDPOINT_TYPE, &["a", "b"], &old.nonce)).await;
    // A request with the current nonce and new names is answered.
    ads.send(req(&ENDPOINT_TYPE, &["b"], &fresh.nonce)).await;
    let answer = ads.recv().await;
    assert_eq!(
        names(&answer),
        vec!["b"],
        "the stale request was not answered"
    );
}

#[tokio::test]
async fn reconnect_gets_current_state_and_close_is_reported_once() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a"], "1"));
    let ads = settled(&h, "n1").await;
    drop(ads);
    eventually("stream closed", || h.hooks.closed_count("n1") == 1).await;
    eventually("disconnected", || !h.status.get("n1").unwrap().connected).await;
    h.cache.set("n1", snapshot(&["a", "c"], "2"));
    let mut ads = h.open("n1").await.unwrap();
    let cds = ads.recv().await;
    assert_eq!(
        entries(&cds),
        vec![("a".into(), "2".into()), ("c".into(), "2".into())]
    );
    assert!(h.status.get("n1").unwrap().connected);
    assert_eq!(h.hooks.closed_count("n1"), 1);
    assert!(h.metrics_text().contains("trellis_xds_connected_proxies 1"));
}

#[tokio::test]
async fn hooks_refuse_a_stream_and_node_is_required() {
    let h = start().await;
    let err = h.open("refuse-me").await.err().expect("refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = h
        .open_with(req(&CLUSTER_TYPE, &[], ""))
        .await
        .err()
        .expect("no node");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        h.hooks.closed.lock().unwrap().is_empty(),
        "refused streams never opened"
    );
    let text = h.metrics_text();
    assert!(text.contains("trellis_xds_streams_refused_total{reason=\"refused\"} 1"));
    assert!(text.contains("trellis_xds_streams_refused_total{reason=\"no_node\"} 1"));
}

#[tokio::test]
async fn dropped_clusters_are_kept_until_routes_are_acked() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = settled(&h, "n1").await;
    // b goes, c comes, everything else changes too.
    let next = snapshot(&["a", "c"], "2");
    h.cache.set("n1", next.clone());
    let superset = ads.recv().await;
    assert_eq!(names(&superset), vec!["a", "b", "c"]);
    let version = next.version(&CLUSTER_TYPE).unwrap();
    assert_eq!(superset.version_info, format!("{version}+kept"));
    ads.ack(&superset, &[]).await;
    let eds = ads.recv().await;
    assert_eq!(
        names(&eds),
        vec!["a"],
        "EDS stays by name: b still subscribed, c not yet"
    );
    ads.ack(&eds, &["a", "b"]).await;
    let lds = ads.recv().await;
    let rds = ads.recv().await;
    assert_eq!(
        (lds.type_url.as_str(), rds.type_url.as_str()),
        (LISTENER_TYPE.as_str(), ROUTE_TYPE.as_str())
    );
    ads.ack(&lds, &[]).await;
    ads.ack(&rds, &["r"]).await;
    let pruned = ads.recv().await;
    assert_eq!(pruned.type_url, *CLUSTER_TYPE);
    assert_eq!(names(&pruned), vec!["a", "c"]);
    assert_eq!(pruned.version_info, version);
}

/// A slow or stuck stream never delays others (bounded per-stream state,
/// latest version wins). One stream subscribes and then
/// never reads while 200 versions of a large CDS are set, paced so that its
/// stream task sees most of them: its response queue and HTTP/2 window fill
/// and its task waits on its own send. Another stream on the same server
/// gets and ACKs every version meanwhile. When the stuck stream finally
/// reads, it gets what was already queued and then the newest version, far
/// fewer responses than versions set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_stream_delays_no_other_and_then_gets_the_latest() {
    const VERSIONS: usize = 200;
    let h = start().await;
    let big = "x".repeat(32 * 1024);
    // Four clusters of 32 KiB each: a CDS response is about 128 KiB.
    let version = |v: usize| snapshot(&["a", "b", "c", "d"], &format!("{v}:{big}"));
    for node in ["stuck", "healthy"] {
        h.cache.set(node, version(0));
    }
    let mut stuck = h.open("stuck").await.unwrap();
    let first = stuck.recv().await;
    stuck.ack(&first, &[]).await;
    let mut healthy = h.open("healthy").await.unwrap();
    assert_eq!(cds_version(&healthy.recv().await), 0);
    for v in 1..=VERSIONS {
        let snap = version(v);
        h.cache.set("stuck", snap.clone());
        h.cache.set("healthy", snap);
        let resp = until_version(&mut healthy, v).await;
        healthy.ack(&resp, &[]).await;
    }
    let acked = h.cache.get("healthy").unwrap();
    let acked = acked.version(&CLUSTER_TYPE).unwrap().to_string();
    eventually("healthy ACKed the latest", || {
        let p = h.status.get("healthy").unwrap();
        p.types[CLUSTER_TYPE.as_str()].last_acked_version.as_deref() == Some(&acked)
    })
    .await;
    // Now the stuck client reads: queued responses, then the newest.
    let mut received = 0;
    let mut seen = Vec::new();
    loop {
        let resp = tokio::time::timeout(PATIENCE, stuck.rx.message())
            .await
            .expect("the stuck stream never got the latest version")
            .unwrap()
            .expect("stream ended");
        received += 1;
        let v = cds_version(&resp);
        seen.push(v);
        if v == VERSIONS {
            break;
        }
    }
    assert!(
        received < VERSIONS / 2,
        "latest wins: {received} responses for {VERSIONS} versions: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "versions only go forward: {seen:?}"
    );
}

/// Bound of the stuck-stream test's waits: generous, the machine is shared.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The version number of a CDS response built by that test (`N:padding`).
fn cds_version(resp: &DiscoveryResponse) -> usize {
    assert_eq!(resp.type_url, *CLUSTER_TYPE);
    let (_, mark) = &entries(resp)[0];
    mark.split(':').next().unwrap().parse().unwrap()
}

/// Reads CDS responses until one of version `v` arrives (older ones may
/// come first); panics after [`PATIENCE`].
async fn until_version(ads: &mut Ads, v: usize) -> DiscoveryResponse {
    let wait = async {
        loop {
            let resp = ads.rx.message().await.unwrap().expect("stream ended");
            if cds_version(&resp) == v {
                return resp;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("version {v} not received within {PATIENCE:?}"))
}
