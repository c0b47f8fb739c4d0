//! The ledger's bookkeeping, fed load assignments as observers ACK them.

use envoy_types::pb::envoy::config::core::v3::{
    socket_address::PortSpecifier, Address, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{Endpoint, LbEndpoint, LocalityLbEndpoints};

use super::*;

fn cla(name: &str, addrs: &[&str]) -> ClusterLoadAssignment {
    let lb = addrs.iter().map(|a| LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(AddressKind::SocketAddress(SocketAddress {
                    address: a.to_string(),
                    port_specifier: Some(PortSpecifier::PortValue(15006)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    });
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: lb.collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn a_registration_counts_once_every_observer_saw_it() {
    let ledger = Arc::new(Ledger::new(2));
    let (a, b) = (
        Observer::new(0, ledger.clone()),
        Observer::new(1, ledger.clone()),
    );
    ledger.opened("127.1.0.5");
    a.acked(&[cla("c", &["10.0.0.1", "127.1.0.5"])], &[]);
    assert_eq!(ledger.registration("127.1.0.5").unwrap().lag, None);
    // Another cluster holding it too, then the second observer.
    a.acked(&[cla("c-v1", &["127.1.0.5"])], &[]);
    b.acked(&[cla("c", &["127.1.0.5"])], &[]);
    assert!(ledger.registration("127.1.0.5").unwrap().lag.is_some());
    // Addresses the ledger never opened (static endpoints) are ignored.
    assert!(ledger.registration("10.0.0.1").is_none());
}

#[test]
fn a_deregistration_counts_when_it_left_every_cluster_of_every_observer() {
    let ledger = Arc::new(Ledger::new(1));
    let a = Observer::new(0, ledger.clone());
    ledger.opened("127.1.0.6");
    a.acked(
        &[cla("c", &["127.1.0.6"]), cla("c-v1", &["127.1.0.6"])],
        &[],
    );
    assert!(
        ledger.deregistration("127.1.0.6").is_none(),
        "not closed yet"
    );
    ledger.closed("127.1.0.6", Duration::ZERO);
    a.acked(&[cla("c", &[])], &[]);
    assert_eq!(ledger.deregistration("127.1.0.6").unwrap().lag, None);
    // Delta: the other cluster is removed.
    a.acked(&[], &["c-v1".to_string()]);
    assert!(ledger.deregistration("127.1.0.6").unwrap().lag.is_some());
    assert_eq!(ledger.flaps(), 0);
}

#[test]
fn leaving_before_the_close_is_a_flap() {
    let ledger = Arc::new(Ledger::new(1));
    let a = Observer::new(0, ledger.clone());
    ledger.opened("127.1.0.7");
    a.acked(&[cla("c", &["127.1.0.7"])], &[]);
    a.acked(&[cla("c", &[])], &[]);
    assert_eq!(ledger.flaps(), 1);
}
