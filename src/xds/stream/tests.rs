//! Protocol rules of [`StreamState`], without gRPC.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::*;
use crate::xds::test_support::{base, rejection, snap};
use crate::xds::{Snapshot, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};

fn req(type_url: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn nack(type_url: &str, names: &[&str], nonce: &str, message: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(rejection(message)),
        ..req(type_url, names, nonce)
    }
}

fn names(resp: &DiscoveryResponse) -> Vec<String> {
    resp.resources
        .iter()
        .map(|r| String::from_utf8(r.value.clone()).unwrap())
        .collect()
}

fn types(out: &Output) -> Vec<&str> {
    out.responses.iter().map(|r| r.type_url.as_str()).collect()
}

/// A stream subscribed to all four types, everything ACKed; returns the
/// last nonce per type in CDS, EDS, LDS, RDS order.
fn settled_stream(snapshot: Arc<Snapshot>) -> (StreamState, [String; 4]) {
    let mut s = StreamState::new();
    s.on_snapshot(snapshot);
    let subs: [(&str, &[&str]); 4] = [
        (&CLUSTER_TYPE, &[]),
        (&ENDPOINT_TYPE, &["a", "b"]),
        (&LISTENER_TYPE, &[]),
        (&ROUTE_TYPE, &["r"]),
    ];
    let mut nonces: [String; 4] = Default::default();
    for (i, (t, n)) in subs.iter().enumerate() {
        let out = s.on_request(&req(t, n, "")).unwrap();
        nonces[i] = out.responses[0].nonce.clone();
        let ack = s.on_request(&req(t, n, &nonces[i])).unwrap();
        assert!(ack.responses.is_empty());
    }
    (s, nonces)
}

#[test]
fn missing_type_url_is_an_error() {
    let mut s = StreamState::new();
    assert_eq!(
        s.on_request(&req("", &[], "")).unwrap_err(),
        RequestError::MissingTypeUrl
    );
}

#[test]
fn request_before_snapshot_is_answered_when_it_arrives() {
    let mut s = StreamState::new();
    assert!(s
        .on_request(&req(&CLUSTER_TYPE, &[], ""))
        .unwrap()
        .responses
        .is_empty());
    let out = s.on_snapshot(base());
    assert_eq!(types(&out), vec![CLUSTER_TYPE.as_str()]);
    assert_eq!(names(&out.responses[0]), vec!["a", "b"]);
    assert_eq!(
        out.responses[0].version_info,
        base().version(&CLUSTER_TYPE).unwrap()
    );
}

#[test]
fn eds_is_answered_by_name_and_name_changes_are_answered() {
    let mut s = StreamState::new();
    s.on_snapshot(base());
    let out = s.on_request(&req(&ENDPOINT_TYPE, &["b"], "")).unwrap();
    assert_eq!(names(&out.responses[0]), vec!["eb"]);
    let nonce = out.responses[0].nonce.clone();
    let out = s
        .on_request(&req(&ENDPOINT_TYPE, &["a", "b"], &nonce))
        .unwrap();
    assert_eq!(names(&out.responses[0]), vec!["ea", "eb"]);
    assert!(matches!(out.events[0], StreamEvent::Acked { .. }));
}

#[test]
fn ack_is_recorded_and_not_answered() {
    let mut s = StreamState::new();
    s.on_snapshot(base());
    let out = s.on_request(&req(&LISTENER_TYPE, &[], "")).unwrap();
    let sent = &out.responses[0];
    let ack = s
        .on_request(&req(&LISTENER_TYPE, &[], &sent.nonce))
        .unwrap();
    assert!(ack.responses.is_empty());
    assert_eq!(
        ack.events,
        vec![StreamEvent::Acked {
            type_url: LISTENER_TYPE.clone(),
            version: sent.version_info.clone(),
            nonce: sent.nonce.clone(),
        }]
    );
}

#[test]
fn nack_is_recorded_and_the_version_is_not_resent() {
    let mut s = StreamState::new();
    s.on_snapshot(base());
    let sent = s
        .on_request(&req(&CLUSTER_TYPE, &[], ""))
        .unwrap()
        .responses[0]
        .clone();
    let out = s
        .on_request(&nack(&CLUSTER_TYPE, &[], &sent.nonce, "bad cluster"))
        .unwrap();
    assert!(out.responses.is_empty());
    assert!(matches!(&out.events[0],
        StreamEvent::Nacked { message, version, .. } if message == "bad cluster" && *version == sent.version_info));
    // Envoy repeats the NACKed nonce without error_detail: not an ACK.
    let again = s.on_request(&req(&CLUSTER_TYPE, &[], &sent.nonce)).unwrap();
    assert!(again.responses.is_empty() && again.events.is_empty());
    // The same content again (new Arc) is not resent; new content is.
    assert!(s.on_snapshot(base()).responses.is_empty());
    let out = s.on_snapshot(snap(&[(&CLUSTER_TYPE, "a", "a2")]));
    assert_eq!(names(&out.responses[0]), vec!["a2"]);
}

#[test]
fn stale_nonce_is_ignored() {
    let (mut s, n) = settled_stream(base());
    let out = s.on_snapshot(snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea2"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r"),
    ]));
    assert_eq!(types(&out), vec![ENDPOINT_TYPE.as_str()]);
    // A request answering the older EDS response, even with new names.
    let stale = s.on_request(&req(&ENDPOINT_TYPE, &["a"], &n[1])).unwrap();
    assert!(stale.responses.is_empty());
    assert!(matches!(stale.events[0], StreamEvent::Stale { .. }));
}

#[test]
fn push_is_ordered_and_skips_unchanged_types() {
    let (mut s, _) = settled_stream(base());
    let changed = snap(&[
        (&CLUSTER_TYPE, "a", "a2"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "l2"),
        (&ROUTE_TYPE, "r", "r2"),
    ]);
    let out = s.on_snapshot(changed);
    assert_eq!(
        types(&out),
        vec![CLUSTER_TYPE.as_str()],
        "LDS, RDS wait for CDS"
    );
    let cds = &out.responses[0];
    let out = s.on_request(&req(&CLUSTER_TYPE, &[], &cds.nonce)).unwrap();
    assert_eq!(
        types(&out),
        vec![LISTENER_TYPE.as_str(), ROUTE_TYPE.as_str()]
    );
}

#[test]
fn a_nacked_cds_releases_held_routing() {
    let (mut s, _) = settled_stream(base());
    let out = s.on_snapshot(snap(&[
        (&CLUSTER_TYPE, "a", "a2"),
        (&CLUSTER_TYPE, "b", "b"),
        (&LISTENER_TYPE, "l", "l2"),
    ]));
    assert_eq!(types(&out), vec![CLUSTER_TYPE.as_str()]);
    let nonce = out.responses[0].nonce.clone();
    // A routing request while CDS is in flight is held, then answered.
    let nonce_r = s.types[ROUTE_TYPE.as_str()]
        .last
        .as_ref()
        .unwrap()
        .nonce
        .clone();
    let held = s
        .on_request(&req(&ROUTE_TYPE, &["r", "r9"], &nonce_r))
        .unwrap();
    assert!(held.responses.is_empty());
    let out = s
        .on_request(&nack(&CLUSTER_TYPE, &[], &nonce, "no"))
        .unwrap();
    assert_eq!(
        types(&out),
        vec![LISTENER_TYPE.as_str(), ROUTE_TYPE.as_str()]
    );
}

#[test]
fn removals_alone_are_not_pushed_for_named_types() {
    let (mut s, _) = settled_stream(base());
    let out = s.on_snapshot(snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r"),
    ]));
    assert!(
        out.responses.is_empty(),
        "EDS b vanished: a no-op for Envoy"
    );
}

#[test]
fn unsubscribed_changes_are_not_pushed() {
    let (mut s, _) = settled_stream(base());
    let mut items = vec![
        (&*CLUSTER_TYPE, "a", "a"),
        (&*CLUSTER_TYPE, "b", "b"),
        (&*ENDPOINT_TYPE, "a", "ea"),
        (&*ENDPOINT_TYPE, "b", "eb"),
        (&*LISTENER_TYPE, "l", "l"),
        (&*ROUTE_TYPE, "r", "r"),
    ];
    items.push((&*ROUTE_TYPE, "other", "x"));
    let items: Vec<(&str, &str, &str)> =
        items.iter().map(|(t, n, b)| (t.as_str(), *n, *b)).collect();
    assert!(s.on_snapshot(snap(&items)).responses.is_empty());
}

#[test]
fn repeated_ack_of_eds_is_answered_but_not_of_wildcard_cds() {
    let (mut s, n) = settled_stream(base());
    let again = s
        .on_request(&req(&ENDPOINT_TYPE, &["a", "b"], &n[1]))
        .unwrap();
    assert_eq!(types(&again), vec![ENDPOINT_TYPE.as_str()]);
    let cds = s.on_request(&req(&CLUSTER_TYPE, &[], &n[0])).unwrap();
    assert!(cds.responses.is_empty());
}

#[test]
fn dropped_clusters_are_kept_until_lds_and_rds_are_acked() {
    let (mut s, _) = settled_stream(base());
    // Cluster a changes, b is dropped, c is new; the route moves off b.
    let v2 = snap(&[
        (&CLUSTER_TYPE, "a", "a2"),
        (&CLUSTER_TYPE, "c", "c"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r-without-b"),
    ]);
    let out = s.on_snapshot(v2.clone());
    assert_eq!(types(&out), vec![CLUSTER_TYPE.as_str()]);
    let superset = &out.responses[0];
    assert_eq!(names(superset), vec!["a2", "b", "c"]);
    let version = v2.version(&CLUSTER_TYPE).unwrap();
    assert_eq!(superset.version_info, format!("{version}+kept"));
    let ack_cds = s
        .on_request(&req(&CLUSTER_TYPE, &[], &superset.nonce))
        .unwrap();
    assert_eq!(types(&ack_cds), vec![ROUTE_TYPE.as_str()], "then routing");
    let rds = &ack_cds.responses[0];
    let out = s.on_request(&req(&ROUTE_TYPE, &["r"], &rds.nonce)).unwrap();
    assert_eq!(types(&out), vec![CLUSTER_TYPE.as_str()]);
    assert_eq!(names(&out.responses[0]), vec!["a2", "c"]);
    assert_eq!(out.responses[0].version_info, version);
}

#[test]
fn dropped_clusters_alone_wait_for_routing_without_a_resend() {
    let (mut s, _) = settled_stream(base());
    let out = s.on_snapshot(snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r2"),
    ]));
    // Envoy already holds a and b: the superset is not resent.
    assert_eq!(types(&out), vec![ROUTE_TYPE.as_str()]);
    let out = s
        .on_request(&req(&ROUTE_TYPE, &["r"], &out.responses[0].nonce))
        .unwrap();
    assert_eq!(types(&out), vec![CLUSTER_TYPE.as_str()]);
    assert_eq!(names(&out.responses[0]), vec!["a"]);
}

#[test]
fn dropped_clusters_go_at_once_when_routing_is_unchanged() {
    let (mut s, _) = settled_stream(base());
    let v2 = snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r"),
    ]);
    let out = s.on_snapshot(v2);
    assert_eq!(types(&out), vec![CLUSTER_TYPE.as_str()]);
    assert_eq!(names(&out.responses[0]), vec!["a"]);
}

#[test]
fn nacked_rds_keeps_dropped_clusters() {
    let (mut s, _) = settled_stream(base());
    let out = s.on_snapshot(snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r2"),
    ]));
    assert_eq!(types(&out), vec![ROUTE_TYPE.as_str()]);
    let rds = out.responses[0].nonce.clone();
    let out = s
        .on_request(&nack(&ROUTE_TYPE, &["r"], &rds, "bad route"))
        .unwrap();
    assert!(
        out.responses.is_empty(),
        "clusters stay while Envoy keeps old routes"
    );
}

#[test]
fn nonces_are_unique() {
    let (mut s, n) = settled_stream(base());
    let out = s.on_snapshot(snap(&[(&CLUSTER_TYPE, "z", "z")]));
    let mut all: Vec<String> = n.to_vec();
    all.extend(out.responses.iter().map(|r| r.nonce.clone()));
    let unique: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len());
}
