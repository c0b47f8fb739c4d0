//! Delta (incremental) ADS protocol tests: the server on 127.0.0.1:0, driven
//! by a real tonic delta ADS client (what Envoy speaks with `DELTA_GRPC`).

#[path = "xds_delta/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "xds_protocol/support.rs"]
mod support;

use std::sync::Arc;

use client::*;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use envoy_types::util::pack_any;
use support::{eventually, resource, snapshot, start, Harness};
use tonic::Code;
use trellis::xds::{
    Snapshot, Versioned, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE,
};

/// A snapshot from (type, name, mark) triples.
fn snap(items: &[(&str, &str, &str)]) -> Arc<Snapshot> {
    let mut b = Snapshot::builder();
    for (t, name, mark) in items {
        let body = if *t == SECRET_TYPE.as_str() {
            Arc::new(Versioned::new(pack_any(Secret {
                name: format!("{name}{mark}"),
                ..Default::default()
            })))
        } else {
            resource(t, name, mark)
        };
        b.insert(*name, body);
    }
    Arc::new(b.build())
}

/// A stream for `node` subscribed to CDS, EDS a and b, LDS, RDS r, all ACKed.
async fn settled(h: &Harness, node: &str) -> Delta {
    let mut ads = open(h, node, sub(&CLUSTER_TYPE, &[])).await.unwrap();
    let cds = ads.recv().await;
    ads.ack(&cds).await;
    ads.subscribe(&ENDPOINT_TYPE, &["a", "b"]).await;
    ads.subscribe(&LISTENER_TYPE, &[]).await;
    ads.subscribe(&ROUTE_TYPE, &["r"]).await;
    // The last ACK is processed before the test changes the snapshot.
    eventually("RDS ACKed", || {
        let p = h.status.get(node).unwrap();
        p.types
            .get(ROUTE_TYPE.as_str())
            .is_some_and(|t| t.last_acked_version.is_some())
    })
    .await;
    ads
}

#[tokio::test]
async fn initial_wildcard_and_named_subscriptions() {
    let h = start().await;
    let snap = snapshot(&["a", "b"], "1");
    h.cache.set("n1", snap.clone());
    let mut ads = open(&h, "n1", sub(&CLUSTER_TYPE, &[])).await.unwrap();
    let cds = ads.recv().await;
    assert_eq!(names(&cds), vec!["a", "b"]);
    assert_eq!(
        cds.system_version_info,
        snap.version(&CLUSTER_TYPE).unwrap()
    );
    // 128 bits of SHA-256 in hex (`xds::version`).
    assert!(versions(&cds).values().all(|v| v.len() == 32));
    ads.ack(&cds).await;
    assert_eq!(
        names(&ads.subscribe(&ENDPOINT_TYPE, &["b"]).await),
        vec!["b"]
    );
    assert_eq!(names(&ads.subscribe(&LISTENER_TYPE, &[]).await), vec!["l"]);
    assert_eq!(names(&ads.subscribe(&ROUTE_TYPE, &["r"]).await), vec!["r"]);
    assert_eq!(h.hooks.opened.lock().unwrap().as_slice(), ["n1"]);
    let version = snap.version(&ROUTE_TYPE).unwrap().to_string();
    eventually("RDS ACK recorded", || {
        let p = h.status.get("n1").unwrap();
        p.connected && p.types[ROUTE_TYPE.as_str()].last_acked_version.as_deref() == Some(&version)
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
    h.cache.set("n1", snapshot(&["a"], "2"));
    let cds = ads.recv().await;
    assert_eq!(cds.type_url, *CLUSTER_TYPE);
    ads.send(DeltaDiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 3,
            message: "bad cluster a".into(),
            ..Default::default()
        }),
        ..nonce_reply(&cds.type_url, &cds.nonce)
    })
    .await;
    for t in [&*ENDPOINT_TYPE, &*LISTENER_TYPE, &*ROUTE_TYPE] {
        let resp = ads.recv().await;
        assert_eq!(resp.type_url, *t);
        ads.ack(&resp).await;
    }
    eventually("NACK recorded", || {
        let p = h.status.get("n1").unwrap();
        let nack = p.types[CLUSTER_TYPE.as_str()].last_nack.clone();
        nack.is_some_and(|n| n.message == "bad cluster a" && n.version == cds.system_version_info)
    })
    .await;
    h.cache.set("n1", snapshot(&["a"], "2"));
    assert!(ads.quiet().await, "the rejected content is not resent");
    assert!(h
        .metrics_text()
        .contains("trellis_xds_nacks_total{type=\"cds\"} 1"));
}

fn nonce_reply(type_url: &str, nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_change_sends_only_the_changed_resource() {
    let h = start().await;
    let base = [
        (CLUSTER_TYPE.as_str(), "a", "1"),
        (CLUSTER_TYPE.as_str(), "b", "1"),
        (ENDPOINT_TYPE.as_str(), "a", "1"),
        (ENDPOINT_TYPE.as_str(), "b", "1"),
        (LISTENER_TYPE.as_str(), "l", "1"),
        (ROUTE_TYPE.as_str(), "r", "1"),
    ];
    h.cache.set("n1", snap(&base));
    let mut ads = settled(&h, "n1").await;
    let mut next = base;
    next[3].2 = "2";
    h.cache.set("n1", snap(&next));
    let eds = ads.recv().await;
    assert_eq!(eds.type_url, *ENDPOINT_TYPE);
    assert_eq!(entries(&eds), vec![("b".into(), "2".into())]);
    let one = resource(&ENDPOINT_TYPE, "b", "2").value.len();
    assert_eq!(
        resource_bytes(&eds),
        one,
        "one resource's bytes, not the mesh"
    );
    ads.ack(&eds).await;
    assert!(ads.quiet().await, "nothing else changed");
}

#[tokio::test]
async fn a_removal_arrives_in_removed_resources() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = settled(&h, "n1").await;
    // Listener and routes are unchanged, so the cluster goes at once.
    h.cache.set("n1", snapshot(&["a"], "1"));
    let cds = ads.recv().await;
    assert_eq!(
        (cds.type_url.as_str(), cds.resources.len()),
        (CLUSTER_TYPE.as_str(), 0)
    );
    assert_eq!(cds.removed_resources, vec!["b".to_string()]);
    ads.ack(&cds).await;
    let eds = ads.recv().await;
    assert_eq!(eds.removed_resources, vec!["b".to_string()]);
}

#[tokio::test]
async fn reconnect_with_initial_versions_gets_nothing_already_held() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = open(&h, "n1", sub(&CLUSTER_TYPE, &[])).await.unwrap();
    let held = versions(&ads.recv().await);
    drop(ads);
    eventually("stream closed", || h.hooks.closed_count("n1") == 1).await;
    let first = DeltaDiscoveryRequest {
        initial_resource_versions: held.clone(),
        ..sub(&CLUSTER_TYPE, &[])
    };
    let mut ads = open(&h, "n1", first).await.unwrap();
    let cds = ads.recv().await;
    assert!(cds.resources.is_empty() && cds.removed_resources.is_empty());
    ads.ack(&cds).await;
    // Only what changed while away is sent after the next reconnect.
    drop(ads);
    eventually("closed again", || h.hooks.closed_count("n1") == 2).await;
    h.cache.set("n1", snapshot(&["a", "c"], "1"));
    let first = DeltaDiscoveryRequest {
        initial_resource_versions: held,
        ..sub(&CLUSTER_TYPE, &[])
    };
    let mut ads = open(&h, "n1", first).await.unwrap();
    let cds = ads.recv().await;
    assert_eq!(names(&cds), vec!["c"]);
    assert_eq!(cds.removed_resources, vec!["b".to_string()]);
}

#[tokio::test]
async fn unsubscribed_names_are_not_sent() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = settled(&h, "n1").await;
    ads.send(DeltaDiscoveryRequest {
        resource_names_unsubscribe: vec!["a".into()],
        ..sub(&ENDPOINT_TYPE, &[])
    })
    .await;
    assert!(ads.quiet().await, "an unsubscribe needs no answer");
    let mut b = Snapshot::builder();
    b.insert("a", resource(&ENDPOINT_TYPE, "a", "2"));
    for (t, n) in [
        (&*CLUSTER_TYPE, "a"),
        (&*CLUSTER_TYPE, "b"),
        (&*ENDPOINT_TYPE, "b"),
    ] {
        b.insert(n, resource(t, n, "1"));
    }
    b.insert("l", resource(&LISTENER_TYPE, "l", "1"));
    b.insert("r", resource(&ROUTE_TYPE, "r", "1"));
    h.cache.set("n1", Arc::new(b.build()));
    assert!(ads.quiet().await, "a's endpoints are no longer wanted");
    let eds = ads.subscribe(&ENDPOINT_TYPE, &["a"]).await;
    assert_eq!(entries(&eds), vec![("a".into(), "2".into())]);
}

#[tokio::test]
async fn secrets_are_served_by_name_like_the_others() {
    let h = start().await;
    let sds = |mark| {
        snap(&[
            (&SECRET_TYPE, "default", mark),
            (&SECRET_TYPE, "ROOTCA", "1"),
        ])
    };
    h.cache.set("n1", sds("1"));
    let mut ads = open(&h, "n1", sub(&SECRET_TYPE, &["default"]))
        .await
        .unwrap();
    let first = ads.recv().await;
    assert_eq!(names(&first), vec!["default"]);
    ads.ack(&first).await;
    assert_eq!(
        names(&ads.subscribe(&SECRET_TYPE, &["ROOTCA"]).await),
        vec!["ROOTCA"]
    );
    h.cache.set("n1", sds("2"));
    let rotated = ads.recv().await;
    assert_eq!(names(&rotated), vec!["default"], "only the changed secret");
    ads.ack(&rotated).await;
    let version = sds("2").version(&SECRET_TYPE).unwrap().to_string();
    eventually("SDS ACK recorded", || {
        let p = h.status.get("n1").unwrap();
        p.types[SECRET_TYPE.as_str()].last_acked_version.as_deref() == Some(&version)
    })
    .await;
}

#[tokio::test]
async fn hooks_refuse_a_stream_and_node_is_required() {
    let h = start().await;
    let err = open(&h, "refuse-me", sub(&CLUSTER_TYPE, &[])).await.err();
    assert_eq!(err.expect("refused").code(), Code::PermissionDenied);
    let err = open(&h, "", sub(&CLUSTER_TYPE, &[])).await.err();
    assert_eq!(err.expect("no node").code(), Code::InvalidArgument);
    assert!(h.hooks.closed.lock().unwrap().is_empty());
    let text = h.metrics_text();
    assert!(text.contains("trellis_xds_streams_refused_total{reason=\"no_node\"} 1"));
}
