//! Push order and make-before-break on the delta stream.

use super::*;

#[test]
fn first_push_is_cds_eds_then_lds_rds_once_cds_is_acked() {
    let mut s = DeltaStreamState::new();
    s.on_request(&sub(&CLUSTER_TYPE, &[])).unwrap();
    s.on_request(&sub(&ENDPOINT_TYPE, &["a", "b"])).unwrap();
    s.on_request(&sub(&LISTENER_TYPE, &[])).unwrap();
    s.on_request(&sub(&ROUTE_TYPE, &["r"])).unwrap();
    let out = s.on_snapshot(base());
    assert_eq!(
        types(&out),
        vec![CLUSTER_TYPE.as_str(), ENDPOINT_TYPE.as_str()]
    );
    let cds = out.responses[0].nonce.clone();
    let out = s.on_request(&ack(&CLUSTER_TYPE, &cds)).unwrap();
    assert_eq!(
        types(&out),
        vec![LISTENER_TYPE.as_str(), ROUTE_TYPE.as_str()]
    );
}

#[test]
fn listener_subscribed_during_cds_flight_waits_and_is_owed() {
    let mut s = DeltaStreamState::new();
    s.on_snapshot(snap(&[(&CLUSTER_TYPE, "a", "a")]));
    let cds = s.on_request(&sub(&CLUSTER_TYPE, &[])).unwrap().responses[0]
        .nonce
        .clone();
    assert!(s
        .on_request(&sub(&LISTENER_TYPE, &[]))
        .unwrap()
        .responses
        .is_empty());
    let out = s.on_request(&nack(&CLUSTER_TYPE, &cds)).unwrap();
    assert_eq!(types(&out), vec![LISTENER_TYPE.as_str()]);
    assert!(
        out.responses[0].resources.is_empty(),
        "no listener, still answered"
    );
}

/// The base snapshot with cluster `b` and its users gone.
fn without_b() -> Arc<Snapshot> {
    snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&LISTENER_TYPE, "l", "l2"),
        (&ROUTE_TYPE, "r", "r2"),
    ])
}

#[test]
fn cluster_removal_waits_for_lds_and_rds_acks() {
    let mut s = settled(base());
    let out = s.on_snapshot(without_b());
    // EDS loses b at once (named: the cluster is kept and no endpoint
    // removal hurts); CDS keeps b; LDS and RDS change.
    assert_eq!(
        types(&out),
        vec![
            ENDPOINT_TYPE.as_str(),
            LISTENER_TYPE.as_str(),
            ROUTE_TYPE.as_str()
        ]
    );
    let lds = out.responses[1].nonce.clone();
    let rds = out.responses[2].nonce.clone();
    assert!(s
        .on_request(&ack(&LISTENER_TYPE, &lds))
        .unwrap()
        .responses
        .is_empty());
    let out = s.on_request(&ack(&ROUTE_TYPE, &rds)).unwrap();
    assert_eq!(types(&out), vec![CLUSTER_TYPE.as_str()]);
    assert_eq!(out.responses[0].removed_resources, strings(&["b"]));
    assert_eq!(
        out.responses[0].system_version_info,
        without_b().version(&CLUSTER_TYPE).unwrap()
    );
}

#[test]
fn cds_change_with_deferred_removal_is_marked_kept() {
    let mut s = settled(base());
    let next = snap(&[
        (&CLUSTER_TYPE, "a", "a2"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&LISTENER_TYPE, "l", "l2"),
        (&ROUTE_TYPE, "r", "r"),
    ]);
    let out = s.on_snapshot(next.clone());
    assert_eq!(types(&out)[0], CLUSTER_TYPE.as_str());
    let cds = &out.responses[0];
    assert_eq!(bodies(cds), vec!["a2"]);
    assert!(cds.removed_resources.is_empty());
    assert!(cds.system_version_info.ends_with("+kept"));
    let cds = cds.nonce.clone();
    let lds = s.on_request(&ack(&CLUSTER_TYPE, &cds)).unwrap();
    assert_eq!(types(&lds), vec![LISTENER_TYPE.as_str()]);
    let lds = lds.responses[0].nonce.clone();
    let out = s.on_request(&ack(&LISTENER_TYPE, &lds)).unwrap();
    assert_eq!(out.responses[0].removed_resources, strings(&["b"]));
    assert_eq!(
        out.responses[0].system_version_info,
        next.version(&CLUSTER_TYPE).unwrap()
    );
}
