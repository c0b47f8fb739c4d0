//! The generated mesh as the control plane's own loader reads it.

use trellis::config::model::Host;
use trellis::registry::Proxy;

use super::*;
use crate::client::node_in;

fn mesh(services: usize, scope: Option<usize>) -> Mesh {
    Mesh {
        services,
        endpoints: 2,
        scope,
    }
}

fn load(layout: &Layout) -> trellis::config::MeshConfig {
    let dir = tempfile::tempdir().unwrap();
    layout.write_all(dir.path()).unwrap();
    trellis::config::load_dir(dir.path()).unwrap()
}

#[test]
fn one_namespace_is_the_old_mesh_in_default() {
    let layout = Layout::new(mesh(3, None), 1, false);
    assert_eq!(layout.yaml(2, 70, 1), service_yaml(2, 2, 70, 1));
    assert_eq!(layout.namespace(2), "default");
    let cfg = load(&layout);
    assert!(cfg
        .services
        .contains_key(&Host("svc-2.default.svc.cluster.local".into())));
}

#[test]
fn services_spread_over_namespaces_in_contiguous_blocks() {
    let layout = Layout::new(mesh(10, None), 3, false);
    let ns: Vec<String> = (0..10).map(|i| layout.namespace(i)).collect();
    assert_eq!(
        ns,
        ["ns-0", "ns-0", "ns-0", "ns-0", "ns-1", "ns-1", "ns-1", "ns-2", "ns-2", "ns-2"]
    );
    let cfg = load(&layout);
    for (i, ns) in ns.iter().enumerate() {
        let host = Host(format!("svc-{i}.{ns}.svc.cluster.local"));
        assert!(cfg.services.contains_key(&host), "{host:?}");
        assert!(cfg.destination_rules.contains_key(&host), "{host:?}");
    }
    assert_eq!(cfg.virtual_services.len(), 10);
    // More namespaces than services: one service each.
    assert_eq!(Layout::new(mesh(2, None), 5, false).namespaces, 2);
}

#[test]
fn a_sidecar_node_joins_its_service_in_its_namespace() {
    let layout = Layout::new(mesh(4, None), 2, false);
    let cfg = load(&layout);
    for i in 0..4 {
        let node = node_in(7, &service_name(i), &layout.namespace(i));
        let proxy = Proxy::from_node(&node).unwrap();
        assert!(
            cfg.services.contains_key(&proxy.host()),
            "{:?}",
            proxy.host()
        );
    }
}

#[test]
fn scope_with_namespaces_is_one_sidecar_in_the_root_namespace() {
    let cfg = load(&Layout::new(mesh(6, Some(4)), 3, false));
    assert_eq!(cfg.sidecars.len(), 1);
    let sc = &cfg.sidecars[0];
    assert_eq!(sc.namespace, ROOT_NAMESPACE);
    assert!(sc.selector.is_none());
    let admitted: Vec<usize> = (0..6)
        .filter(|&i| {
            let ns = format!("ns-{}", i * 3 / 6);
            sc.admits(&Host(format!("svc-{i}.{ns}.svc.cluster.local")), &ns)
        })
        .collect();
    assert_eq!(admitted, [0, 1, 2, 3]);

    let one = load(&Layout::new(mesh(6, Some(2)), 1, false));
    assert_eq!(one.sidecars[0].namespace, "default");
}

#[test]
fn all_services_writes_the_mesh_setting() {
    let dir = tempfile::tempdir().unwrap();
    Layout::new(mesh(2, None), 1, true)
        .write_all(dir.path())
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("mesh.yaml")).unwrap();
    assert!(text.contains("kind: Mesh"), "{text}");
    assert!(text.contains("apiVersion: trellis.dev/v1alpha1"), "{text}");
    assert!(
        text.contains("spec:\n  defaultSidecarScope: ALL_SERVICES\n"),
        "{text}"
    );
    let cfg = trellis::config::load_dir(dir.path()).unwrap();
    assert_eq!(
        cfg.mesh.default_sidecar_scope,
        trellis::config::model::DefaultSidecarScope::AllServices
    );
    let without = tempfile::tempdir().unwrap();
    Layout::new(mesh(2, None), 1, false)
        .write_all(without.path())
        .unwrap();
    assert!(!without.path().join("mesh.yaml").exists());
}
