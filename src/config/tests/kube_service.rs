//! Kubernetes `v1 Service` manifests as service definitions.

use super::{errors, load};
use crate::config::model::{Host, Location, Protocol, Resolution};

const HEAD: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: shop\nspec:\n";

#[test]
fn a_service_manifest_defines_a_mesh_service() {
    let yaml = format!("{HEAD}  type: ClusterIP\n  clusterIP: 10.0.0.7\n  selector:\n    app: reviews\n  ports:\n  - name: http-web\n    port: 9080\n    targetPort: 8080\n    protocol: TCP\n  - name: grpc\n    port: 9090\n  - name: metrics\n    port: 15020\n    appProtocol: http\n  - name: db\n    port: 5432\n    appProtocol: kubernetes.io/h2c\n");
    let mesh = load(&[("f.yaml", &yaml)]).unwrap();
    let svc = &mesh.services[&Host::canonical("reviews", "shop")];
    assert_eq!(svc.host.as_str(), "reviews.shop.svc.cluster.local");
    assert_eq!(svc.namespace, "shop");
    assert_eq!(svc.resolution, Resolution::Static);
    let ports: Vec<_> = svc
        .ports
        .iter()
        .map(|p| (p.number, p.protocol, p.target_port))
        .collect();
    assert_eq!(
        ports,
        [
            (9080, Protocol::Http, Some(8080)),
            (9090, Protocol::Grpc, None),
            (15020, Protocol::Http, None),
            (5432, Protocol::Http2, None),
        ]
    );
    let selector = svc.workload_selector.as_ref().unwrap();
    assert_eq!(selector.get("app").map(String::as_str), Some("reviews"));
}

#[test]
fn an_external_name_service_is_a_dns_service() {
    let yaml = format!("{HEAD}  type: ExternalName\n  externalName: api.example.com\n  ports:\n  - name: https\n    port: 443\n");
    let mesh = load(&[("f.yaml", &yaml)]).unwrap();
    let svc = &mesh.services[&Host::canonical("reviews", "shop")];
    assert_eq!(
        (svc.resolution, svc.location),
        (Resolution::Dns, Location::MeshExternal)
    );
    assert_eq!(svc.endpoints[0].address, "api.example.com");
}

#[test]
fn what_only_kubernetes_can_do_is_a_positioned_error() {
    let e = |spec: &str| errors(&format!("{HEAD}{spec}"));
    assert_eq!(
        e("  ports:\n  - port: 80\n"),
        ["f.yaml:8:5: error: Service/reviews: spec.ports[0]: the protocol of port 80 cannot be told: Istio would sniff it, Trellis does not; name the port `http-…`, `http2-…`, `grpc-…`, `tcp-…`, `tls-…` or `https-…`, or set appProtocol"]
    );
    assert_eq!(
        e("  ports:\n  - name: http\n    port: 80\n    targetPort: web\n"),
        [
            r#"f.yaml:10:5: error: Service/reviews: spec.ports[0].targetPort: a named targetPort ("web") needs the pod's container ports, which only Kubernetes knows: write the port number"#
        ]
    );
    assert_eq!(
        e("  ports:\n  - name: dns\n    port: 53\n    protocol: UDP\n"),
        ["f.yaml:10:5: error: Service/reviews: spec.ports[0].protocol: protocol UDP is not supported: Envoy's sidecar proxies TCP only (Kubernetes' TCP, the default)"]
    );
    assert_eq!(
        e("  ports:\n  - name: x\n    port: 80\n    appProtocol: example.com/custom\n"),
        [
            r#"f.yaml:10:5: error: Service/reviews: spec.ports[0].appProtocol: appProtocol "example.com/custom" is not one Istio knows: use http, http2, grpc, grpc-web, tcp, tls, https, mongo, mysql, redis, kubernetes.io/h2c, kubernetes.io/ws or kubernetes.io/wss"#
        ]
    );
    assert_eq!(
        e("  sessionAffinity: ClientIP\n  ports:\n  - name: http\n    port: 80\n"),
        ["f.yaml:7:3: error: Service/reviews: spec.sessionAffinity: sessionAffinity ClientIP is kube-proxy's: write a DestinationRule with loadBalancer.consistentHash.useSourceIp: true"]
    );
    assert_eq!(
        e("  internalTrafficPolicy: Local\n  ports:\n  - name: http\n    port: 80\n"),
        ["f.yaml:7:3: error: Service/reviews: spec.internalTrafficPolicy: internalTrafficPolicy Local needs the node of each endpoint, which Trellis does not know: use Cluster, or a DestinationRule localityLbSetting"]
    );
}

#[test]
fn other_core_kinds_say_why_they_are_not_read() {
    let doc = |kind: &str| format!("apiVersion: v1\nkind: {kind}\nmetadata:\n  name: x\n");
    assert_eq!(
        errors(&doc("ConfigMap")),
        ["f.yaml:2:1: error: ConfigMap/x: kind: kind ConfigMap (v1) carries no mesh config: of Kubernetes' core kinds Trellis reads Service only"]
    );
    assert_eq!(
        errors(&doc("Endpoints")),
        ["f.yaml:2:1: error: Endpoints/x: kind: kind Endpoints (v1) is Kubernetes' own view of instances: Trellis learns them from the sidecars that connect, and from WorkloadEntry resources"]
    );
}

const SE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: s\nspec:\n  hosts: [a.example.com]\n  ports:\n  - {number: 443, name: tls, protocol: TLS}\n";

#[test]
fn service_entry_resolutions_and_sans() {
    let yaml = format!("{SE}  resolution: DNS_ROUND_ROBIN\n  subjectAltNames: [spiffe://td/ns/x/sa/y, a.example.com]\n");
    let mesh = load(&[("f.yaml", &yaml)]).unwrap();
    let svc = &mesh.services[&Host::canonical("a.example.com", "default")];
    assert_eq!(svc.resolution, Resolution::DnsRoundRobin);
    assert_eq!(
        svc.subject_alt_names,
        ["spiffe://td/ns/x/sa/y", "a.example.com"]
    );
    assert_eq!(
        errors(&format!("{SE}  resolution: DNS_ROUND_ROBIN\n  endpoints:\n  - address: a.example.com\n  - address: b.example.com\n")),
        ["f.yaml:10:3: error: ServiceEntry/s: spec.endpoints: resolution DNS_ROUND_ROBIN takes at most one endpoint (Istio's rule: Envoy connects to one name)"]
    );
    assert_eq!(
        errors(&format!(
            "{SE}  resolution: DNS\n  subjectAltNames: [\"\"]\n"
        )),
        [
            r#"f.yaml:10:21: error: ServiceEntry/s: spec.subjectAltNames[0]: subject alt name "" must be a non-empty name without spaces"#
        ]
    );
}
