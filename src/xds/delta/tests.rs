//! Protocol rules of [`DeltaStreamState`], without gRPC.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};

use super::*;
mod ordering;

use crate::xds::test_support::{any, base, rejection, snap};
use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn sub(type_url: &str, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names_subscribe: strings(names),
        ..Default::default()
    }
}

fn ack(type_url: &str, nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn nack(type_url: &str, nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        error_detail: Some(rejection("bad")),
        ..ack(type_url, nonce)
    }
}

/// Bodies of the resources of a response.
fn bodies(resp: &DeltaDiscoveryResponse) -> Vec<String> {
    resp.resources
        .iter()
        .map(|r| String::from_utf8(r.resource.as_ref().unwrap().value.clone()).unwrap())
        .collect()
}

fn types(out: &DeltaOutput) -> Vec<&str> {
    out.responses.iter().map(|r| r.type_url.as_str()).collect()
}

/// Subscribes and ACKs one type; returns the response.
fn sub_ack(s: &mut DeltaStreamState, t: &str, names: &[&str]) -> DeltaDiscoveryResponse {
    let out = s.on_request(&sub(t, names)).unwrap();
    let resp = out.responses[0].clone();
    assert!(s
        .on_request(&ack(t, &resp.nonce))
        .unwrap()
        .responses
        .is_empty());
    resp
}

/// A stream subscribed to all four types, everything ACKed.
fn settled(snapshot: Arc<Snapshot>) -> DeltaStreamState {
    let mut s = DeltaStreamState::new();
    s.on_snapshot(snapshot);
    sub_ack(&mut s, &CLUSTER_TYPE, &[]);
    sub_ack(&mut s, &ENDPOINT_TYPE, &["a", "b"]);
    sub_ack(&mut s, &LISTENER_TYPE, &[]);
    sub_ack(&mut s, &ROUTE_TYPE, &["r"]);
    s
}

#[test]
fn missing_type_url_is_an_error() {
    let err = DeltaStreamState::new().on_request(&sub("", &[]));
    assert_eq!(err.unwrap_err(), RequestError::MissingTypeUrl);
}

#[test]
fn wildcard_request_before_snapshot_is_answered_with_versions() {
    let mut s = DeltaStreamState::new();
    assert!(s
        .on_request(&sub(&CLUSTER_TYPE, &[]))
        .unwrap()
        .responses
        .is_empty());
    let out = s.on_snapshot(base());
    assert_eq!(types(&out), vec![CLUSTER_TYPE.as_str()]);
    let resp = &out.responses[0];
    assert_eq!(bodies(resp), vec!["a", "b"]);
    assert_eq!(
        resp.system_version_info,
        base().version(&CLUSTER_TYPE).unwrap()
    );
    let a = &resp.resources[0];
    assert_eq!(a.name, "a");
    assert_eq!(a.version, any(&CLUSTER_TYPE, "a").version());
}

#[test]
fn named_types_get_only_their_names_and_secrets_work_alike() {
    let mut s = DeltaStreamState::new();
    s.on_snapshot(snap(&[
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&SECRET_TYPE, "cert", "c"),
        (&SECRET_TYPE, "root", "r"),
    ]));
    let eds = sub_ack(&mut s, &ENDPOINT_TYPE, &["b"]);
    assert_eq!(bodies(&eds), vec!["eb"]);
    let sds = sub_ack(&mut s, &SECRET_TYPE, &["root"]);
    assert_eq!(bodies(&sds), vec!["r"]);
    let out = s.on_request(&sub(&SECRET_TYPE, &["cert"])).unwrap();
    assert_eq!(bodies(&out.responses[0]), vec!["c"], "only the new name");
}

#[test]
fn ack_is_recorded_and_not_answered() {
    let mut s = DeltaStreamState::new();
    s.on_snapshot(base());
    let out = s.on_request(&sub(&LISTENER_TYPE, &[])).unwrap();
    let nonce = out.responses[0].nonce.clone();
    let out = s.on_request(&ack(&LISTENER_TYPE, &nonce)).unwrap();
    assert!(out.responses.is_empty());
    assert!(matches!(&out.events[0], StreamEvent::Acked { nonce: n, .. } if *n == nonce));
}

#[test]
fn nack_is_recorded_and_rejected_content_not_resent() {
    let mut s = settled(base());
    let bad = snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "broken"),
        (&ROUTE_TYPE, "r", "r"),
    ]);
    let out = s.on_snapshot(bad.clone());
    assert_eq!(types(&out), vec![LISTENER_TYPE.as_str()]);
    let nonce = out.responses[0].nonce.clone();
    let out = s.on_request(&nack(&LISTENER_TYPE, &nonce)).unwrap();
    assert!(
        out.responses.is_empty(),
        "the rejected listener is not resent"
    );
    assert!(matches!(&out.events[0], StreamEvent::Nacked { message, .. } if message == "bad"));
    // An equal snapshot built again changes nothing; a fix is sent.
    assert!(s.on_snapshot(Arc::new((*bad).clone())).responses.is_empty());
    let out = s.on_snapshot(base());
    assert_eq!(bodies(&out.responses[0]), vec!["l"]);
}

#[test]
fn a_change_sends_only_the_changed_resource() {
    let mut s = settled(base());
    let next = snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb2"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r"),
    ]);
    let out = s.on_snapshot(next.clone());
    assert_eq!(types(&out), vec![ENDPOINT_TYPE.as_str()]);
    assert_eq!(bodies(&out.responses[0]), vec!["eb2"]);
    assert!(out.responses[0].removed_resources.is_empty());
    assert_eq!(
        out.responses[0].system_version_info,
        next.version(&ENDPOINT_TYPE).unwrap()
    );
}

#[test]
fn removed_resources_name_what_left_the_snapshot() {
    let mut s = settled(base());
    let next = snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r"),
    ]);
    let out = s.on_snapshot(next);
    assert_eq!(types(&out), vec![ENDPOINT_TYPE.as_str()]);
    assert!(out.responses[0].resources.is_empty());
    assert_eq!(out.responses[0].removed_resources, strings(&["b"]));
}

#[test]
fn reconnect_with_initial_versions_gets_only_what_differs() {
    let mut first = settled(base());
    let held: std::collections::HashMap<String, String> = first.types[CLUSTER_TYPE.as_str()]
        .known
        .versions()
        .into_iter()
        .collect();
    let _ = first.on_snapshot(base());
    let mut s = DeltaStreamState::new();
    s.on_snapshot(base());
    let req = DeltaDiscoveryRequest {
        initial_resource_versions: held.clone(),
        ..sub(&CLUSTER_TYPE, &[])
    };
    let out = s.on_request(&req).unwrap();
    assert_eq!(out.responses.len(), 1, "the first request is answered");
    assert!(out.responses[0].resources.is_empty(), "nothing re-sent");
    // A stale version and a cluster the snapshot no longer has.
    let mut old = held;
    old.insert("a".into(), "0".into());
    old.insert("gone".into(), "1".into());
    let mut s = DeltaStreamState::new();
    s.on_snapshot(base());
    let req = DeltaDiscoveryRequest {
        initial_resource_versions: old,
        ..sub(&CLUSTER_TYPE, &[])
    };
    let resp = s.on_request(&req).unwrap().responses.remove(0);
    assert_eq!(bodies(&resp), vec!["a"]);
    assert_eq!(resp.removed_resources, strings(&["gone"]));
}

#[test]
fn unsubscribe_needs_no_removal_and_resubscribe_resends() {
    let mut s = settled(base());
    let req = DeltaDiscoveryRequest {
        resource_names_unsubscribe: strings(&["a"]),
        ..sub(&ENDPOINT_TYPE, &[])
    };
    assert!(s.on_request(&req).unwrap().responses.is_empty());
    let next = snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea2"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r"),
    ]);
    assert!(
        s.on_snapshot(next).responses.is_empty(),
        "a is not subscribed"
    );
    let out = s.on_request(&sub(&ENDPOINT_TYPE, &["a"])).unwrap();
    assert_eq!(bodies(&out.responses[0]), vec!["ea2"]);
    // Subscribing again to a held name sends it again: Envoy does so for
    // the endpoints of a re-created cluster, which wait to warm.
    let nonce = out.responses[0].nonce.clone();
    let again = DeltaDiscoveryRequest {
        response_nonce: nonce,
        ..sub(&ENDPOINT_TYPE, &[])
    };
    assert!(s.on_request(&again).unwrap().responses.is_empty());
    let out = s.on_request(&sub(&ENDPOINT_TYPE, &["b"])).unwrap();
    assert_eq!(bodies(&out.responses[0]), vec!["eb"]);
}

#[test]
fn stale_nonce_is_ignored() {
    let mut s = settled(base());
    let out = s.on_request(&ack(&CLUSTER_TYPE, "999")).unwrap();
    assert!(out.responses.is_empty());
    assert!(matches!(out.events[0], StreamEvent::Stale { .. }));
}

#[test]
fn leaving_and_rejoining_the_wildcard_resends_everything() {
    let mut s = settled(base());
    let leave = DeltaDiscoveryRequest {
        resource_names_unsubscribe: strings(&["*"]),
        ..sub(&CLUSTER_TYPE, &["a"])
    };
    let out = s.on_request(&leave).unwrap();
    assert_eq!(bodies(&out.responses[0]), vec!["a"], "explicit a is resent");
    assert!(
        out.responses[0].removed_resources.is_empty(),
        "b is forgotten, not removed"
    );
    let nonce = out.responses[0].nonce.clone();
    s.on_request(&ack(&CLUSTER_TYPE, &nonce)).unwrap();
    let out = s.on_request(&sub(&CLUSTER_TYPE, &["*"])).unwrap();
    assert_eq!(bodies(&out.responses[0]), vec!["b"]);
}

#[test]
fn unsubscribing_a_name_the_wildcard_covers_resends_it() {
    let mut s = settled(base());
    let req = DeltaDiscoveryRequest {
        resource_names_unsubscribe: strings(&["b"]),
        ..sub(&CLUSTER_TYPE, &[])
    };
    let out = s.on_request(&req).unwrap();
    assert_eq!(bodies(&out.responses[0]), vec!["b"]);
}

#[test]
fn an_updated_cluster_gets_its_unchanged_endpoints_again() {
    // Envoy warms an updated cluster until it receives its endpoints again
    // ("Resource warming"), and a delta client does not re-request them.
    let mut s = settled(base());
    let next = snap(&[
        (&CLUSTER_TYPE, "a", "a2"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r"),
    ]);
    let out = s.on_snapshot(next);
    assert_eq!(types(&out), [&*CLUSTER_TYPE, &*ENDPOINT_TYPE]);
    assert_eq!(bodies(&out.responses[0]), ["a2"]);
    assert_eq!(
        bodies(&out.responses[1]),
        ["ea"],
        "only the updated cluster's"
    );
}
