//! The security resources: `PeerAuthentication`, `Mesh` and
//! `DestinationRule` `trafficPolicy.tls`, loaded and rejected.

use std::time::Duration;

use super::{dr, errors, load};
use crate::config::model::{effective_mtls, ClientTlsMode, DefaultSidecarScope, Labels, MtlsMode};

fn pa(name: &str, ns: &str, spec: &str) -> String {
    format!("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}")
}

fn mesh(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

#[test]
fn peer_authentications_load_with_istio_precedence() {
    let files = [
        ("mesh.yaml", pa("default", "istio-system", "  mtls:\n    mode: STRICT\n")),
        ("ns.yaml", pa("default", "legacy", "  mtls:\n    mode: PERMISSIVE\n")),
        (
            "wl.yaml",
            pa(
                "pay",
                "legacy",
                "  selector:\n    matchLabels:\n      app: pay\n  mtls:\n    mode: UNSET\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n",
            ),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let mesh = load(&files).unwrap();
    assert_eq!(mesh.peer_authentications.len(), 3);
    let pay: Labels = [("app".to_string(), "pay".to_string())].into();
    let mode = |ns: &str, labels: &Labels, port: u16| {
        effective_mtls(&mesh.peer_authentications, "istio-system", ns, labels, port)
    };
    assert_eq!(mode("default", &pay, 8080), MtlsMode::Strict, "mesh-wide");
    assert_eq!(mode("legacy", &Labels::new(), 8080), MtlsMode::Permissive);
    assert_eq!(mode("legacy", &pay, 8080), MtlsMode::Disable, "port level");
    assert_eq!(
        mode("legacy", &pay, 9090),
        MtlsMode::Permissive,
        "UNSET inherits"
    );
}

#[test]
fn mesh_resource_sets_trust_domain_and_ttls() {
    let spec = "  trustDomain: example.org\n  rootNamespace: mesh-root\n  certificates:\n    workloadTTL: 1h\n";
    let m = load(&[("m.yaml", &mesh("mesh", spec))]).unwrap().mesh;
    assert_eq!(m.trust_domain, "example.org");
    assert_eq!(m.root_namespace, "mesh-root");
    assert_eq!(m.workload_ttl, Duration::from_secs(3600));
    let defaults = load(&[("d.yaml", &dr("d", "x"))]).unwrap().mesh;
    assert_eq!(defaults.trust_domain, "cluster.local");
    assert_eq!(defaults.root_namespace, "istio-system");
    assert_eq!(defaults.workload_ttl, Duration::from_secs(24 * 3600));
}

#[test]
fn mesh_default_sidecar_scope() {
    let scope = |spec: &str| load(&[("m.yaml", &mesh("mesh", spec))]).unwrap().mesh;
    let ns = scope("  defaultSidecarScope: NAMESPACE\n");
    assert_eq!(ns.default_sidecar_scope, DefaultSidecarScope::Namespace);
    let all = scope("  defaultSidecarScope: ALL_SERVICES\n");
    assert_eq!(all.default_sidecar_scope, DefaultSidecarScope::AllServices);
    let default = scope("  trustDomain: example.org\n");
    assert_eq!(
        default.default_sidecar_scope,
        DefaultSidecarScope::Namespace
    );
    assert_eq!(
        errors(&mesh(
            "m",
            "  trustDomain: a.org\n  defaultSidecarScope: all\n"
        )),
        [
            r#"f.yaml:7:3: error: Mesh/m: spec.defaultSidecarScope: unknown default sidecar scope "all": use NAMESPACE or ALL_SERVICES"#
        ]
    );
}

#[test]
fn mesh_outbound_traffic_policy() {
    let policy = |spec: &str| {
        let m = load(&[("m.yaml", &mesh("mesh", spec))]).unwrap().mesh;
        m.outbound_traffic_policy
    };
    use crate::config::model::OutboundTrafficPolicy::*;
    assert_eq!(
        policy("  trustDomain: a.org\n"),
        AllowAny,
        "Istio's default"
    );
    let registry = policy("  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n");
    assert_eq!(registry, RegistryOnly);
    assert_eq!(
        policy("  outboundTrafficPolicy: {mode: ALLOW_ANY}\n"),
        AllowAny
    );
    assert_eq!(
        errors(&mesh(
            "m",
            "  outboundTrafficPolicy:\n    mode: allow_any\n"
        )),
        [
            r#"f.yaml:7:5: error: Mesh/m: spec.outboundTrafficPolicy.mode: unknown outbound traffic policy mode "allow_any": use REGISTRY_ONLY or ALLOW_ANY"#
        ]
    );
    assert_eq!(
        errors(&mesh("m", "  outboundTrafficPolicy: {}\n")),
        ["f.yaml:6:3: error: Mesh/m: spec.outboundTrafficPolicy: `mode` must be set: REGISTRY_ONLY or ALLOW_ANY"]
    );
    assert_eq!(
        errors(&mesh("m", "  outboundTrafficPolicy:\n    egressProxy: {host: x}\n")),
        ["f.yaml:7:5: error: Mesh/m: spec.outboundTrafficPolicy.egressProxy: unknown field `egressProxy`, expected `mode`"]
    );
}

#[test]
fn bad_peer_authentications() {
    assert_eq!(
        errors(&pa("a", "ns", "  mtls:\n    mode: STRICTER\n")),
        [
            r#"f.yaml:8:5: error: PeerAuthentication/a: spec.mtls.mode: unknown mTLS mode "STRICTER": use UNSET, DISABLE, PERMISSIVE or STRICT"#
        ]
    );
    assert_eq!(
        errors(&pa("a", "ns", "  portLevelMtls:\n    8080:\n      mode: STRICT\n")),
        ["f.yaml:7:3: error: PeerAuthentication/a: spec.portLevelMtls: portLevelMtls requires a workload selector (spec.selector.matchLabels)"]
    );
    let sel = "  selector:\n    matchLabels:\n      app: a\n";
    assert_eq!(
        errors(&pa("a", "ns", &format!("{sel}  portLevelMtls:\n    0:\n      mode: STRICT\n    http:\n      mode: STRICT\n"))),
        [
            "f.yaml:11:5: error: PeerAuthentication/a: spec.portLevelMtls.0: port number 0 is not in 1..65535",
            r#"f.yaml:13:5: error: PeerAuthentication/a: spec.portLevelMtls.http: "http" is not a port number"#,
        ]
    );
}

#[test]
fn two_mesh_wide_or_namespace_wide_policies() {
    let strict = "  mtls:\n    mode: STRICT\n";
    let text = format!(
        "{}---\n{}",
        pa("a", "istio-system", strict),
        pa("b", "istio-system", strict)
    );
    assert_eq!(
        errors(&text),
        ["f.yaml:13:3: error: PeerAuthentication/b: metadata.name: a mesh-wide (root namespace) PeerAuthentication already exists: istio-system/a (f.yaml:1); keep one, or add a selector"]
    );
    let text = format!(
        "{}---\n{}",
        pa("a", "shop", strict),
        pa("b", "shop", strict)
    );
    assert_eq!(
        errors(&text),
        ["f.yaml:13:3: error: PeerAuthentication/b: metadata.name: a namespace-wide in namespace shop PeerAuthentication already exists: shop/a (f.yaml:1); keep one, or add a selector"]
    );
}

#[test]
fn bad_mesh_resources() {
    assert_eq!(
        errors(&format!("{}---\n{}", mesh("a", "  trustDomain: a.org\n"), mesh("b", "  trustDomain: b.org\n"))),
        ["f.yaml:9:1: error: Mesh/b: kind: only one Mesh resource is allowed: the first is at f.yaml:1"]
    );
    assert_eq!(
        errors(&mesh("m", "  trustDomain: spiffe://Example.org\n")),
        [
            r#"f.yaml:6:3: error: Mesh/m: spec.trustDomain: invalid trust domain "spiffe://Example.org": use lowercase letters, digits, '.', '-' and '_' (no scheme, no path), e.g. example.org"#
        ]
    );
    assert_eq!(
        errors(&mesh("m", "  certificates:\n    workloadTTL: 1s\n    rootTTL: 2s\n")),
        [
            "f.yaml:7:5: error: Mesh/m: spec.certificates.workloadTTL: workloadTTL must be at least 10s",
            "f.yaml:8:5: error: Mesh/m: spec.certificates.rootTTL: rootTTL is not supported yet: generated roots live ten years; bring your own CA for another lifetime",
        ]
    );
    assert_eq!(
        errors(&mesh("m", "  rootNamespace: Root\n")),
        [
            r#"f.yaml:6:3: error: Mesh/m: spec.rootNamespace: root namespace "Root" is not a valid DNS-1123 label"#
        ]
    );
    assert_eq!(
        errors("apiVersion: trellis.dev/v1\nkind: Mesh\nmetadata:\n  name: m\nspec: {}\n"),
        [
            r#"f.yaml:1:1: error: Mesh/m: apiVersion: unknown apiVersion "trellis.dev/v1": trellis.dev serves v1alpha1"#
        ]
    );
}

fn dr_tls(tls: &str) -> String {
    format!("{}  trafficPolicy:\n    tls:\n{tls}", dr("d", "x"))
}

#[test]
fn destination_rule_tls_modes_load() {
    let text = format!(
        "{}  subsets:\n  - name: v1\n    labels:\n      version: v1\n    trafficPolicy:\n      tls:\n        mode: DISABLE\n",
        dr_tls("      mode: MUTUAL\n      clientCertificate: /c.pem\n      privateKey: /k.pem\n      caCertificates: /ca.pem\n      sni: x.example\n      subjectAltNames: [x.example]\n")
    );
    let mesh = load(&[("f.yaml", &text)]).unwrap();
    let rule = mesh.destination_rules.values().next().unwrap();
    let tls = rule.traffic_policy.as_ref().unwrap().tls.as_ref().unwrap();
    assert_eq!(tls.mode, ClientTlsMode::Mutual);
    assert_eq!(tls.private_key.as_deref(), Some("/k.pem"));
    assert_eq!(tls.subject_alt_names, ["x.example"]);
    let sub = rule.subsets[0].traffic_policy.as_ref().unwrap();
    assert_eq!(sub.tls.as_ref().unwrap().mode, ClientTlsMode::Disable);
}

#[test]
fn bad_destination_rule_tls() {
    assert_eq!(
        errors(&dr_tls("      mode: MTLS\n")),
        [
            r#"f.yaml:9:7: error: DestinationRule/d: spec.trafficPolicy.tls.mode: unknown TLS mode "MTLS": use DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL"#
        ]
    );
    assert_eq!(
        errors(&dr_tls("      mode: MUTUAL\n      caCertificates: /ca.pem\n")),
        [
            "f.yaml:8:5: error: DestinationRule/d: spec.trafficPolicy.tls: clientCertificate (a file path) is required for mode MUTUAL",
            "f.yaml:8:5: error: DestinationRule/d: spec.trafficPolicy.tls: privateKey (a file path) is required for mode MUTUAL",
        ]
    );
    assert_eq!(
        errors(&dr_tls("      mode: ISTIO_MUTUAL\n      caCertificates: /ca.pem\n")),
        ["f.yaml:10:7: error: DestinationRule/d: spec.trafficPolicy.tls.caCertificates: caCertificates cannot be set with mode ISTIO_MUTUAL (ISTIO_MUTUAL uses the mesh certificates)"]
    );
    assert_eq!(
        errors(&dr_tls("      mode: SIMPLE\n      insecureSkipVerify: true\n      subjectAltNames: [a]\n")),
        ["f.yaml:10:7: error: DestinationRule/d: spec.trafficPolicy.tls.insecureSkipVerify: insecureSkipVerify cannot be combined with caCertificates or subjectAltNames"]
    );
    let mutual = dr_tls("      mode: MUTUAL\n      credentialName: my-secret\n");
    let errs = load(&[("f.yaml", &mutual)]).err().unwrap_or_default();
    assert!(errs.iter().all(|e| !e.contains(".tls")), "{errs:?}");
    assert_eq!(
        errors(&dr_tls("      mode: ISTIO_MUTUAL\n      credentialName: my-secret\n")),
        ["f.yaml:10:7: error: DestinationRule/d: spec.trafficPolicy.tls.credentialName: credentialName needs mode SIMPLE or MUTUAL (ISTIO_MUTUAL uses the mesh certificates)"]
    );
    assert_eq!(
        errors(&dr_tls("      mode: MUTUAL\n      credentialName: my-secret\n      caCertificates: /ca.pem\n")),
        ["f.yaml:10:7: error: DestinationRule/d: spec.trafficPolicy.tls.credentialName: credentialName and clientCertificate/privateKey/caCertificates exclude each other"]
    );
    assert_eq!(
        errors(&dr_tls("      mode: SIMPLE\n      credentialName: My_Secret\n")),
        ["f.yaml:10:7: error: DestinationRule/d: spec.trafficPolicy.tls.credentialName: credentialName \"My_Secret\" is not a valid DNS-1123 subdomain"]
    );
    let port_level = format!("{}  trafficPolicy:\n    portLevelSettings:\n    - port:\n        number: 443\n      tls:\n        mode: BOGUS\n", dr("d", "x"));
    assert_eq!(
        errors(&port_level),
        [
            r#"f.yaml:12:9: error: DestinationRule/d: spec.trafficPolicy.portLevelSettings[0].tls.mode: unknown TLS mode "BOGUS": use DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL"#
        ]
    );
}
