//! A rebuild keeps the snapshot of every proxy the change does not reach.

use super::*;
use crate::config::model::Labels;
use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE};

/// Services `a` (namespace `ns-a`) and `b` (`ns-b`); `a`'s endpoint is
/// `a_endpoint`.
fn mesh(dir: &std::path::Path, a_endpoint: &str) -> MeshConfig {
    let entry = |name: &str, ns: &str, address: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  hosts:\n  - {name}\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  resolution: STATIC\n  endpoints:\n  - address: {address}\n"
        )
    };
    let yaml = format!(
        "{}---\n{}",
        entry("a", "ns-a", a_endpoint),
        entry("b", "ns-b", "10.0.2.1")
    );
    std::fs::write(dir.join("mesh.yaml"), yaml).unwrap();
    crate::config::load_dir(dir).unwrap()
}

fn sidecar(id: &str, service: &str, namespace: &str, port: u16) -> Proxy {
    Proxy {
        id: id.into(),
        service: service.into(),
        namespace: namespace.into(),
        labels: Labels::new(),
        service_account: service.into(),
        app_port: 8080,
        inbound_address: "127.0.0.1".into(),
        inbound_port: port,
        outbound_port: 15001,
        stats_port: None,
        admin_port: None,
        gateway: None,
        topology: Default::default(),
    }
}

/// Each proxy's id and whether the build made it a new snapshot.
fn fresh(built: &Built) -> Vec<(&str, bool)> {
    built
        .snapshots
        .iter()
        .map(|(id, _, fresh)| (id.as_str(), *fresh))
        .collect()
}

#[test]
fn an_endpoint_change_reaches_only_the_proxies_whose_scope_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::new();
    registry.register(sidecar("a-1", "a", "ns-a", 15006));
    registry.register(sidecar("a-2", "a", "ns-a", 15007));
    registry.register(sidecar("b-1", "b", "ns-b", 15008));
    let mut state = BuildState::default();
    let first = build_with(&mut state, &mesh(dir.path(), "10.0.1.1"), &registry, None);
    assert!(first.snapshots.iter().all(|(_, _, fresh)| *fresh));

    let changed = build_with(&mut state, &mesh(dir.path(), "10.0.1.9"), &registry, None);
    // The default scope is the own namespace: only ns-a holds `a`.
    assert_eq!(
        fresh(&changed),
        [("a-1", true), ("a-2", true), ("b-1", false)]
    );
    let (a_before, a_after) = (&first.snapshots[0].1, &changed.snapshots[0].1);
    assert_ne!(
        a_before.version(&ENDPOINT_TYPE),
        a_after.version(&ENDPOINT_TYPE)
    );
    assert_eq!(
        a_before.version(&CLUSTER_TYPE),
        a_after.version(&CLUSTER_TYPE)
    );
    assert!(Arc::ptr_eq(&first.snapshots[2].1, &changed.snapshots[2].1));
    assert!(changed.gone.is_empty());

    // A proxy that left is reported once. It was an instance of `a`, so
    // `a`'s endpoints changed for a-1; b-1 keeps its snapshot.
    registry.deregister("a-2");
    let left = build_with(&mut state, &mesh(dir.path(), "10.0.1.9"), &registry, None);
    assert_eq!(left.gone, ["a-2"]);
    assert_eq!(fresh(&left), [("a-1", true), ("b-1", false)]);
}

mod determinism;

#[test]
fn a_sidecar_served_elsewhere_is_an_endpoint_without_a_snapshot_here() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::new();
    registry.register(sidecar("a-1", "a", "ns-a", 15006));
    registry.register(sidecar("a-2", "a", "ns-a", 15007));
    registry.register(sidecar("b-1", "b", "ns-b", 15008));
    let mesh = mesh(dir.path(), "10.0.1.1");
    let here = |id: &str| id != "a-2";
    let mut state = BuildState::default();
    let served = build_served(&mut state, &mesh, &registry, None, &here);
    assert_eq!(fresh(&served), [("a-1", true), ("b-1", true)]);
    // a-2 still counts as an instance of `a`: a-1's endpoints are those of
    // a build that serves everyone, and change when a-2 leaves.
    let all = build_with(&mut BuildState::default(), &mesh, &registry, None);
    let version = |b: &Built| b.snapshots[0].1.version(&ENDPOINT_TYPE).map(str::to_string);
    assert_eq!(version(&served), version(&all));
    registry.deregister("a-2");
    let left = build_served(&mut state, &mesh, &registry, None, &here);
    assert_ne!(version(&left), version(&served));
    assert!(left.gone.is_empty(), "a-2 never had a snapshot here");

    // A sidecar that moves away loses its snapshot here.
    let only_a = |id: &str| id == "a-1";
    let moved = build_served(&mut state, &mesh, &registry, None, &only_a);
    assert_eq!(moved.gone, ["b-1"]);
}

static RELEASED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_release() {
    RELEASED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[tokio::test]
async fn memory_is_released_only_once_the_streams_stopped_pushing() {
    let status = crate::xds::ProxyStatusTable::new();
    let seen = status.responses_sent();
    status.sent("a", &CLUSTER_TYPE, "v1", "1");
    let again = release_when_quiet(&status, seen, count_release).await;
    assert_eq!(again.map(|(_, n)| n), Some(seen + 1), "still pushing");
    assert_eq!(RELEASED.load(std::sync::atomic::Ordering::SeqCst), 0);
    let done = release_when_quiet(&status, seen + 1, count_release).await;
    assert!(done.is_none());
    assert_eq!(RELEASED.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// The `max_connections` of the cluster named `name` in `snapshot`.
fn max_connections(snapshot: &crate::xds::Snapshot, name: &str) -> u32 {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use prost::Message;
    let any = &snapshot.resources(&CLUSTER_TYPE).items()[name];
    let cluster = Cluster::decode(any.value.as_slice()).unwrap();
    let breakers = cluster.circuit_breakers.unwrap();
    breakers.thresholds[0].max_connections.unwrap().value
}

#[test]
fn wildcard_rules_apply_to_the_services_they_cover_most_specific_first() {
    let dir = tempfile::tempdir().unwrap();
    mesh(dir.path(), "10.0.1.1");
    let rule = |name: &str, ns: &str, host: &str, max: u32| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  host: \"{host}\"\n  trafficPolicy:\n    connectionPool:\n      tcp:\n        maxConnections: {max}\n")
    };
    let rules = [
        rule("everything", "istio-system", "*", 9),
        rule("namespace-wide", "ns-a", "*.ns-a.svc.cluster.local", 7),
        rule("own", "ns-a", "a", 3),
    ];
    std::fs::write(dir.path().join("rules.yaml"), rules.join("---\n")).unwrap();
    let mesh = crate::config::load_dir(dir.path()).unwrap();
    let mut registry = Registry::new();
    registry.register(sidecar("a-1", "a", "ns-a", 15006));
    // `c` has no ServiceEntry: its sidecar makes it a service.
    registry.register(sidecar("c-1", "c", "ns-a", 15007));
    registry.register(sidecar("b-1", "b", "ns-b", 15008));
    let built = build_all(&mesh, &registry, None);
    let snapshot = |id: &str| {
        let found = built.iter().find(|(node, _, _)| node == id);
        Arc::clone(&found.unwrap().1)
    };
    let (a, b) = (snapshot("a-1"), snapshot("b-1"));
    // The service's own rule beats the namespace's wildcard.
    assert_eq!(
        max_connections(&a, "outbound|80||a.ns-a.svc.cluster.local"),
        3
    );
    let c = (a.resources(&CLUSTER_TYPE).items().keys())
        .find(|n| n.ends_with("||c.ns-a.svc.cluster.local"))
        .unwrap();
    assert_eq!(max_connections(&a, c), 7);
    // No rule of ns-b: the root namespace's `*` applies.
    assert_eq!(
        max_connections(&b, "outbound|80||b.ns-b.svc.cluster.local"),
        9
    );
}
