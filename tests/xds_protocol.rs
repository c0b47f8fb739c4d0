//! ADS protocol tests: the server on 127.0.0.1:0, driven by a real tonic ADS
//! client (what Envoy speaks), with a fake `StreamHooks`.

#[path = "xds_protocol/support.rs"]
mod support;

use std::sync::Arc;

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

#[tokio::test]
async fn a_stream_that_does_not_read_blocks_no_other() {
    let h = start().await;
    h.cache.set("slow", snapshot(&["a"], "0"));
    let _slow = h.open("slow").await.unwrap();
    // Far more than the stream's flow-control window and response queue:
    // the slow stream's task blocks on its own send.
    let big = "x".repeat(64 * 1024);
    for i in 0..40 {
        h.cache.set("slow", snapshot(&["a"], &format!("{i}{big}")));
        tokio::task::yield_now().await;
    }
    h.cache.set("fast", snapshot(&["a"], "1"));
    let mut fast = h.open("fast").await.unwrap();
    assert_eq!(names(&fast.recv().await), vec!["a"]);
    h.cache.set("fast", snapshot(&["a"], "2"));
    assert_eq!(entries(&fast.recv().await), vec![("a".into(), "2".into())]);
}
