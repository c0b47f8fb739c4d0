//! The same config and sidecars encode to the same bytes and versions.
//!
//! Two builds from fresh state differ in every `HashMap` seed, so bytes
//! that follow a map's iteration order (a `Struct`'s fields, metadata, a
//! filter's policy map) differ between them and the test fails.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::model::Labels;
use crate::serve::certs::Certs;
use crate::xds::Snapshot;

/// Every directory of `config-examples/`.
fn example_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no examples under {}", root.display());
    dirs
}

/// A workload: service name, namespace and labels.
type Workload = (String, String, Labels);

/// Every cluster-local host the config names (services, routes,
/// destination rules), once with `app: NAME` and once per subset, and
/// every workload a policy selects, so each selector matches a sidecar.
fn workloads(mesh: &MeshConfig) -> Vec<Workload> {
    let hosts = (mesh.services.keys())
        .chain(mesh.virtual_services.keys())
        .chain(mesh.destination_rules.keys());
    let mut out: Vec<Workload> = Vec::new();
    for host in hosts {
        let Some((name, ns)) = host.cluster_local_parts() else {
            continue;
        };
        let app = Labels::from([("app".to_string(), name.to_string())]);
        out.push((name.into(), ns.into(), app.clone()));
        let subsets = mesh.destination_rules.get(host).map(|d| &d.subsets);
        for subset in subsets.into_iter().flatten() {
            let mut labels = app.clone();
            labels.extend(subset.labels.clone());
            out.push((name.into(), ns.into(), labels));
        }
    }
    let selected = (mesh.authorization_policies.iter())
        .filter_map(|p| Some((&p.origin, p.selector.as_ref()?)))
        .chain(
            (mesh.peer_authentications.iter())
                .filter_map(|p| Some((&p.origin, p.selector.as_ref()?))),
        )
        .chain((mesh.telemetries.iter()).filter_map(|t| Some((&t.origin, t.selector.as_ref()?))))
        .chain(
            (mesh.request_authentications.iter())
                .filter_map(|r| Some((&r.origin, r.selector.as_ref()?))),
        );
    for (origin, labels) in selected {
        let name = labels.get("app").map_or("workload", String::as_str);
        out.push((name.into(), origin.namespace.clone(), labels.clone()));
    }
    // An example of external hosts only declares no workload: a client
    // in the default namespace is the proxy that would use it.
    if out.is_empty() {
        let app = Labels::from([("app".to_string(), "client".to_string())]);
        out.push(("client".into(), "default".into(), app));
    }
    out.sort();
    out.dedup();
    out
}

/// One sidecar per workload, each with its own ports.
fn registry_of(workloads: &[Workload]) -> Registry {
    let mut registry = Registry::new();
    for (i, (name, namespace, labels)) in workloads.iter().enumerate() {
        let port = 20000 + 10 * u16::try_from(i).unwrap();
        registry.register(Proxy {
            id: format!("{name}.{namespace}-{i}"),
            service: name.clone(),
            namespace: namespace.clone(),
            labels: labels.clone(),
            service_account: name.clone(),
            app_port: 8080,
            inbound_address: "127.0.0.1".into(),
            inbound_port: port,
            outbound_port: port + 1,
            stats_port: None,
            admin_port: None,
            gateway: None,
            topology: Default::default(),
        });
    }
    registry
}

/// Every type's version and every resource's bytes of two snapshots.
fn assert_same(example: &str, id: &str, a: &Snapshot, b: &Snapshot) {
    let urls: Vec<&str> = a.type_urls().collect();
    assert_eq!(urls, b.type_urls().collect::<Vec<_>>(), "{example} {id}");
    for url in urls {
        let (ra, rb) = (a.resources(url), b.resources(url));
        let names: Vec<&String> = ra.items().keys().collect();
        assert_eq!(names, rb.items().keys().collect::<Vec<_>>());
        for (name, any) in ra.items() {
            assert!(
                any.value == rb.items()[name].value,
                "{example}: proxy {id}: {url} {name} encodes differently"
            );
        }
        assert_eq!(ra.version(), rb.version(), "{example}: proxy {id}: {url}");
    }
}

/// Every example, built twice through the server's path (with mTLS: the
/// same CA and cached leaves, so certificates are equal too).
#[test]
fn every_example_encodes_the_same_twice() {
    let state = tempfile::tempdir().unwrap();
    let ca = crate::ca::Ca::load_or_create(&crate::ca::CaConfig {
        state_dir: state.path().to_path_buf(),
        plugin: None,
    })
    .unwrap();
    let certs = Certs::new(Arc::new(ca), None);
    for dir in example_dirs() {
        let example = dir.file_name().unwrap().to_string_lossy().to_string();
        let mesh = crate::config::load_dir(&dir).unwrap();
        let registry = registry_of(&workloads(&mesh));
        assert!(!registry.sidecars().is_empty(), "{example}: no sidecar");
        let build = || build_with(&mut BuildState::default(), &mesh, &registry, Some(&certs));
        let (first, second) = (build(), build());
        assert_eq!(first.snapshots.len(), second.snapshots.len());
        for ((id, a, _), (_, b, _)) in first.snapshots.iter().zip(&second.snapshots) {
            assert!(a.version(&crate::xds::LISTENER_TYPE).is_some(), "{id}");
            assert_same(&example, id, a, b);
        }
    }
}
