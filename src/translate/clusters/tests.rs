use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};

use super::*;
use crate::config::model::{ClientTls, ClientTlsMode, Host, MeshConfig, Protocol};
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
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
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
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
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

fn tls_mesh(mode: Option<ClientTlsMode>) -> MeshConfig {
    let mut mesh = canary_mesh();
    let dr = mesh.destination_rules.values_mut().next().unwrap();
    let dr = std::sync::Arc::make_mut(dr);
    dr.traffic_policy.as_mut().unwrap().tls = mode.map(|mode| ClientTls {
        mode,
        client_certificate: None,
        private_key: None,
        ca_certificates: None,
        sni: None,
        subject_alt_names: vec![],
        insecure_skip_verify: true,
        credential_name: None,
    });
    mesh
}

fn build_tls(mode: Option<ClientTlsMode>) -> Vec<XdsCluster> {
    let mesh = tls_mesh(mode);
    let si = instances(&mesh, &two_versions(&["payment-service"]));
    let views: Vec<_> = si.services.values().collect();
    outbound(&mesh, &views).0
}

#[test]
fn auto_mtls_by_default_and_dr_modes_override() {
    for c in build_tls(None) {
        assert_eq!(c.transport_socket_matches.len(), 2, "{}", c.name);
        assert!(c.transport_socket.is_none());
    }
    for c in build_tls(Some(ClientTlsMode::Disable)) {
        assert!(c.transport_socket_matches.is_empty() && c.transport_socket.is_none());
    }
    for c in build_tls(Some(ClientTlsMode::IstioMutual)) {
        assert!(c.transport_socket_matches.is_empty());
        let ts = c.transport_socket.as_ref().unwrap();
        assert!(tls::uses_mesh_secrets(ts), "{}", c.name);
    }
    for c in build_tls(Some(ClientTlsMode::Simple)) {
        let ts = c.transport_socket.as_ref().unwrap();
        assert!(!tls::uses_mesh_secrets(ts), "{}", c.name);
    }
}

#[test]
fn sidecar_endpoints_are_labelled_tls_mode_istio() {
    let mesh = canary_mesh();
    let si = instances(&mesh, &two_versions(&["payment-service"]));
    let views: Vec<_> = si.services.values().collect();
    let (_, clas) = outbound(&mesh, &views);
    let e = &clas[0].endpoints[0].lb_endpoints[0];
    let md = e.metadata.as_ref().unwrap();
    assert_eq!(
        md.filter_metadata[tls::SOCKET_MATCH_KEY],
        tls::tls_mode_istio()
    );
}

/// The payment service's sidecars, v1 and v2, on `ports`, with `account`.
fn payment_sidecars(ports: [u16; 2], account: &str) -> crate::registry::Registry {
    let mut reg = crate::registry::Registry::new();
    for (version, port) in ["v1", "v2"].into_iter().zip(ports) {
        let mut p = sidecar("payment-service", &format!("p-{version}"), version, port);
        p.service_account = account.into();
        reg.register(p);
    }
    reg
}

/// Translates `reg` with `previous` as the memo, and from scratch.
fn retranslate(
    mesh: &MeshConfig,
    reg: &crate::registry::Registry,
    previous: &ServiceMemo,
) -> (ServiceMemo, ServiceMemo) {
    let si = instances(mesh, reg);
    let views: Vec<_> = si.services.values().collect();
    let reused = per_service(mesh, &views, previous);
    (reused, per_service(mesh, &views, &ServiceMemo::new()))
}

#[test]
fn moved_endpoints_reuse_the_clusters_and_match_a_fresh_translation() {
    let mesh = canary_mesh();
    let (first, _) = retranslate(
        &mesh,
        &payment_sidecars([16000, 16001], "pay"),
        &BTreeMap::new(),
    );
    let (moved, fresh) = retranslate(&mesh, &payment_sidecars([17000, 17001], "pay"), &first);
    assert_eq!(moved, fresh);
    let h = host("payment-service");
    assert!(moved[&h].same_clusters(&first[&h]));
    assert!(!fresh[&h].same_clusters(&first[&h]));
    assert_ne!(moved[&h].assignments(), first[&h].assignments());
}

#[test]
fn a_new_identity_translates_the_clusters_again() {
    let mesh = canary_mesh();
    let (first, _) = retranslate(
        &mesh,
        &payment_sidecars([16000, 16001], "pay"),
        &BTreeMap::new(),
    );
    let (other, fresh) = retranslate(&mesh, &payment_sidecars([16000, 16001], "bill"), &first);
    assert_eq!(other, fresh);
    let h = host("payment-service");
    assert!(!other[&h].same_clusters(&first[&h]));
    assert_ne!(other[&h].clusters(), first[&h].clusters());
}

#[test]
fn moved_endpoints_keep_locality_weights_and_per_client_endpoints() {
    use crate::config::model::{LocalityDistribute, LocalityLbSetting};
    let mut mesh = canary_mesh();
    let dr = mesh
        .destination_rules
        .get_mut(&host("payment-service"))
        .unwrap();
    let policy = Arc::make_mut(dr).traffic_policy.as_mut().unwrap();
    policy.outlier_detection = None;
    policy.locality_lb = Some(LocalityLbSetting {
        distribute: vec![LocalityDistribute {
            from: "*".into(),
            to: [("*".to_string(), 100)].into(),
        }],
        ..Default::default()
    });
    let (first, _) = retranslate(
        &mesh,
        &payment_sidecars([16000, 16001], "pay"),
        &BTreeMap::new(),
    );
    let h = host("payment-service");
    assert!(!first[&h].localities().is_empty());
    let (moved, fresh) = retranslate(&mesh, &payment_sidecars([17000, 17001], "pay"), &first);
    assert!(moved[&h].same_clusters(&first[&h]));
    assert_eq!(moved, fresh);
}

#[test]
fn no_auto_mtls_matches_without_a_sidecar_endpoint() {
    let mut mesh = canary_mesh();
    let svc = service(
        "payment-service",
        vec![port(80, "http", Protocol::Http)],
        vec![endpoint("10.0.0.1", &[("version", "v1")])],
    );
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
    let views_of = |reg: &crate::registry::Registry| instances(&mesh, reg);
    let plain = views_of(&crate::registry::Registry::new());
    let views: Vec<_> = plain.services.values().collect();
    let first = per_service(&mesh, &views, &ServiceMemo::new());
    let h = host("payment-service");
    // Only static endpoints without `tlsMode: istio`: plaintext, no TLS context.
    for c in first[&h].clusters() {
        assert!(c.transport_socket_matches.is_empty(), "{}", c.name);
        assert!(c.transport_socket.is_none(), "{}", c.name);
    }
    // A sidecar registers: the clusters are translated again, with the matches.
    let joined = views_of(&payment_sidecars([16000, 16001], "pay"));
    let views: Vec<_> = joined.services.values().collect();
    let second = per_service(&mesh, &views, &first);
    assert!(!second[&h].same_clusters(&first[&h]));
    assert_eq!(second, per_service(&mesh, &views, &ServiceMemo::new()));
    for c in second[&h].clusters() {
        assert_eq!(c.transport_socket_matches.len(), 2, "{}", c.name);
    }
}
