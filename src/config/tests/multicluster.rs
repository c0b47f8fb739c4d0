//! `Mesh.spec.multiCluster`: loaded, defaulted and rejected at its fields.

use super::{errors, load};
use crate::config::model::RemoteCluster;

fn mesh(spec: &str) -> String {
    format!("apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: m\nspec:\n  multiCluster:\n{spec}")
}

#[test]
fn remote_clusters_load_with_defaults() {
    let spec = "    clusterName: east\n    network: net-1\n    remoteClusters:\n    - name: west\n      store: etcd://10.0.0.1:2379,10.0.0.2:2379\n      storePrefix: /west\n    - name: north\n      network: net-2\n      store: etcd://n:2379\n";
    let m = load(&[("m.yaml", &mesh(spec))]).unwrap().mesh.multi_cluster;
    assert_eq!(
        (m.cluster_name.as_str(), m.network.as_str()),
        ("east", "net-1")
    );
    assert_eq!(
        m.remotes,
        [
            RemoteCluster {
                name: "west".into(),
                network: "net-1".into(),
                endpoints: vec!["10.0.0.1:2379".into(), "10.0.0.2:2379".into()],
                prefix: "/west".into(),
            },
            RemoteCluster {
                name: "north".into(),
                network: "net-2".into(),
                endpoints: vec!["n:2379".into()],
                prefix: "/trellis".into(),
            },
        ]
    );
}

#[test]
fn wrong_fields_are_errors_at_their_place() {
    let spec = "    clusterName: East_1\n    remoteClusters:\n    - name: west\n      store: http://x:1\n    - name: west\n      store: etcd://w:2379\n      storePrefix: west\n    - network: n\n";
    assert_eq!(
        errors(&mesh(spec)),
        [
            r#"f.yaml:7:5: error: Mesh/m: spec.multiCluster.clusterName: "East_1" is not a valid DNS-1123 label"#,
            r#"f.yaml:10:7: error: Mesh/m: spec.multiCluster.remoteClusters[0].store: expected etcd://HOST:PORT[,HOST:PORT...] (the remote cluster's --store)"#,
            r#"f.yaml:13:7: error: Mesh/m: spec.multiCluster.remoteClusters[1].storePrefix: "west": expected an absolute key prefix such as /trellis"#,
            r#"f.yaml:14:7: error: Mesh/m: spec.multiCluster.remoteClusters[2]: `name` must be set"#,
            r#"f.yaml:14:7: error: Mesh/m: spec.multiCluster.remoteClusters[2]: `store` must be set: etcd://HOST:PORT[,HOST:PORT...]"#,
        ]
    );
    let own = "    clusterName: east\n    remoteClusters:\n    - name: east\n      store: etcd://w:2379\n";
    assert_eq!(
        errors(&mesh(own)),
        [
            r#"f.yaml:9:7: error: Mesh/m: spec.multiCluster.remoteClusters[0].name: "east" is this cluster's own name"#
        ]
    );
    let unnamed = "    network: n\n";
    assert_eq!(
        errors(&mesh(unnamed)),
        [
            r#"f.yaml:6:3: error: Mesh/m: spec.multiCluster: `clusterName` must be set: the name of this cluster"#
        ]
    );
}
