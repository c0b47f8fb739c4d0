use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};

use super::*;
use crate::config::model::{Host, Protocol};
use crate::registry::instances;
use crate::translate::fixtures::*;

fn names(clusters: &[XdsCluster]) -> Vec<&str> {
    clusters.iter().map(|c| c.name.as_str()).collect()
}

fn endpoint_count(cla: &ClusterLoadAssignment) -> usize {
    cla.endpoints.iter().map(|l| l.lb_endpoints.len()).sum()
}

#[test]
fn canary_clusters_and_subset_endpoints() {
    let mesh = canary_mesh();
    let si = instances(&mesh, &two_versions(&["payment-service"]));
    let views: Vec<_> = si.services.values().collect();
    let (clusters, clas) = outbound(&mesh, &views);
    let h = "payment-service.default.svc.cluster.local";
    assert_eq!(
        names(&clusters),
        vec![
            format!("outbound|80||{h}"),
            format!("outbound|80|stable|{h}"),
            format!("outbound|80|canary|{h}"),
        ]
    );
    let counts: Vec<usize> = clas.iter().map(endpoint_count).collect();
    assert_eq!(counts, vec![2, 1, 1]);
    for c in &clusters {
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        );
        let eds = c.eds_cluster_config.as_ref().unwrap();
        assert_eq!(eds.service_name, c.name);
        // Subsets inherit the host's policy.
        assert_eq!(
            c.outlier_detection
                .as_ref()
                .unwrap()
                .consecutive_5xx
                .unwrap()
                .value,
            5
        );
        assert_eq!(c.typed_extension_protocol_options.len(), 1);
    }
}

#[test]
fn dns_services_inline_their_endpoints() {
    let mut svc = service("ext", vec![port(443, "https", Protocol::Tls)], vec![]);
    svc.host = Host("api.example.com".into());
    svc.resolution = Resolution::Dns;
    let mut mesh = MeshConfig::default();
    mesh.services.insert(svc.host.clone(), svc);
    let si = instances(&mesh, &Default::default());
    let views: Vec<_> = si.services.values().collect();
    let (clusters, clas) = outbound(&mesh, &views);
    assert!(clas.is_empty(), "no EDS for DNS clusters");
    let c = &clusters[0];
    assert_eq!(c.name, "outbound|443||api.example.com");
    assert_eq!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
    );
    assert_eq!(endpoint_count(c.load_assignment.as_ref().unwrap()), 1);
    assert!(c.eds_cluster_config.is_none());
}

#[test]
fn one_cluster_per_port() {
    let svc = service(
        "multi",
        vec![
            port(80, "http", Protocol::Http),
            port(9090, "grpc", Protocol::Grpc),
        ],
        vec![endpoint("10.0.0.1", &[])],
    );
    let mut mesh = MeshConfig::default();
    mesh.services.insert(svc.host.clone(), svc);
    let si = instances(&mesh, &Default::default());
    let views: Vec<_> = si.services.values().collect();
    let (clusters, _) = outbound(&mesh, &views);
    let h = "multi.default.svc.cluster.local";
    assert_eq!(
        names(&clusters),
        vec![format!("outbound|80||{h}"), format!("outbound|9090||{h}")]
    );
    assert!(clusters[0].typed_extension_protocol_options.is_empty());
    assert_eq!(
        clusters[1].typed_extension_protocol_options.len(),
        1,
        "gRPC is h2"
    );
}
