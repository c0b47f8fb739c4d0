//! `ServiceEntry` resolution NONE, wildcard hosts, `addresses` and
//! `exportTo`, and the Sidecar's `egressProxy`: what is accepted, and the
//! positioned errors for what would need transparent interception.

use super::{errors, load};
use crate::config::model::{Cidr, Host, Resolution};

/// An entry for `api.example.com` with HTTP port 80; tests append from
/// line 10 on.
const HTTP: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: s
spec:
  hosts: [api.example.com]
  ports:
  - number: 80
    name: http
";

/// An entry for `db.example.com` with TCP port 5432; tests append from
/// line 10 on.
const TCP: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: s
spec:
  hosts: [db.example.com]
  ports:
  - number: 5432
    name: tcp
";

fn host(h: &str) -> Host {
    Host::canonical(h, "default")
}

#[test]
fn none_is_the_default_resolution_and_takes_no_endpoints() {
    let mesh = load(&[("f.yaml", HTTP)]).unwrap();
    assert_eq!(
        mesh.services[&host("api.example.com")].resolution,
        Resolution::None
    );
    assert_eq!(
        errors(&format!("{HTTP}  resolution: NONE\n  endpoints:\n  - address: 1.2.3.4\n")),
        ["f.yaml:11:3: error: ServiceEntry/s: spec.endpoints: resolution NONE (Istio's default) takes no endpoints (Istio's rule): write STATIC or DNS to use them"]
    );
    assert_eq!(
        errors(&format!("{HTTP}    targetPort: 8080\n")),
        ["f.yaml:10:5: error: ServiceEntry/s: spec.ports[0].targetPort: resolution NONE connects to the port the request names (with resolution NONE Istio forwards to the original port too): drop targetPort, or write DNS to connect to another port"]
    );
    assert_eq!(
        errors(&format!("{HTTP}  workloadSelector: {{labels: {{app: a}}}}\n")),
        ["f.yaml:10:3: error: ServiceEntry/s: spec.workloadSelector: resolution NONE forwards to the host a request names: use STATIC to select workloads"]
    );
}

#[test]
fn addresses_are_names_on_http_ports_and_matches_on_tcp_ports() {
    let vip = format!("{HTTP}  resolution: DNS\n  addresses: [10.0.0.5]\n");
    let mesh = load(&[("f.yaml", &vip)]).unwrap();
    let want = [Cidr::parse("10.0.0.5").unwrap()];
    assert_eq!(mesh.services[&host("api.example.com")].addresses, want);
    let tcp = format!("{TCP}  resolution: STATIC\n  addresses: [10.1.0.0/16, 127.0.0.10]\n  endpoints: [{{address: 127.0.0.1}}]\n");
    let mesh = load(&[("f.yaml", &tcp)]).unwrap();
    assert_eq!(mesh.services[&host("db.example.com")].addresses.len(), 2);
    assert_eq!(
        errors(&format!(
            "{HTTP}  resolution: DNS\n  addresses: [10.0.0.0/24]\n"
        )),
        [
            r#"f.yaml:11:15: error: ServiceEntry/s: spec.addresses[0]: CIDR block "10.0.0.0/24" on a service with HTTP port 80 (http): requests are routed by their Host, which can be one address but not a block; give single addresses, or declare the ports TCP"#
        ]
    );
    assert_eq!(
        errors(&format!("{HTTP}  resolution: DNS\n  addresses: [nope]\n")),
        [
            r#"f.yaml:11:15: error: ServiceEntry/s: spec.addresses[0]: "nope" is not an IP address or CIDR block"#
        ]
    );
}

#[test]
fn tcp_to_addresses_with_resolution_none_needs_interception() {
    assert_eq!(
        errors(&format!("{TCP}  addresses: [10.0.0.0/24]\n")),
        ["f.yaml:10:3: error: ServiceEntry/s: spec.addresses: with resolution NONE, a TCP connection to these addresses (port 5432 tcp) goes to its original destination address, which only transparent interception gives and Trellis sidecars do not have: tunnel with CONNECT HOST:5432 through the outbound listener (https_proxy), or write resolution STATIC or DNS with endpoints so that a Sidecar egress port listener matches the addresses"]
    );
    // Without addresses, NONE on a TCP port is reached by CONNECT.
    assert!(load(&[("f.yaml", TCP)]).is_ok());
}

#[test]
fn wildcard_hosts() {
    let wild = HTTP.replace("[api.example.com]", "[\"*.example.com\"]");
    let dr = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: \"*.example.com\"\n  trafficPolicy: {tls: {mode: SIMPLE}}\n";
    let mesh = load(&[("f.yaml", &format!("{wild}  resolution: DNS\n{dr}"))]).unwrap();
    let h = Host("*.example.com".into());
    assert!(mesh.services[&h].host.is_wildcard());
    assert!(mesh.destination_rules.contains_key(&h));
    assert_eq!(
        errors(&HTTP.replace("[api.example.com]", "[\"*\"]")),
        ["f.yaml:6:11: error: ServiceEntry/s: spec.hosts[0]: host `*` would take every host: unknown hosts are what outboundTrafficPolicy decides (ALLOW_ANY forwards them)"]
    );
    assert_eq!(
        errors(&HTTP.replace("[api.example.com]", "[\"*.-x\"]")),
        [
            r#"f.yaml:6:11: error: ServiceEntry/s: spec.hosts[0]: wildcard host "*.-x" has no valid domain after `*.`"#
        ]
    );
}

#[test]
fn export_to_names_namespaces() {
    let yaml = format!("{HTTP}  exportTo: [\".\", other]\n");
    let mesh = load(&[("f.yaml", &yaml)]).unwrap();
    let export = &mesh.services[&host("api.example.com")].export_to;
    assert!(export.admits("default") && export.admits("other"));
    assert!(!export.admits("third"));
    assert_eq!(
        errors(&format!("{HTTP}  exportTo: [\"~\", other]\n")),
        ["f.yaml:10:14: error: ServiceEntry/s: spec.exportTo[0]: `~` (exported nowhere) must be alone"]
    );
}

#[test]
fn sidecar_egress_proxy() {
    let sidecar = "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc}\nspec:\n  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: api.example.com, port: {number: 80}}\n";
    let mesh = load(&[("f.yaml", &format!("{HTTP}{sidecar}"))]).unwrap();
    let proxy = mesh.sidecars[0].egress_proxy.as_ref().unwrap();
    assert_eq!(
        (proxy.host.as_str(), proxy.port),
        ("api.example.com", Some(80))
    );
    let unknown = sidecar.replace("api.example.com", "nowhere.example.com");
    let errs = load(&[("f.yaml", &format!("{HTTP}{unknown}"))]).unwrap_err();
    assert!(
        errs.len() == 1 && errs[0].contains("egressProxy") && errs[0].contains("nowhere"),
        "{errs:?}"
    );
}

#[test]
fn balancing_a_dynamic_forward_proxy_is_an_error() {
    let dr = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: api.example.com\n  trafficPolicy:\n    loadBalancer: {simple: LEAST_REQUEST}\n";
    assert_eq!(
        load(&[("f.yaml", &format!("{HTTP}{dr}"))]).unwrap_err(),
        ["f.yaml:17:5: error: DestinationRule/d: spec.trafficPolicy.loadBalancer: spec.trafficPolicy.loadBalancer has no effect on api.example.com: with resolution NONE, or a wildcard host without endpoints, each request goes to the host it names through a dynamic forward proxy cluster, which picks the host itself; remove it, or give the ServiceEntry endpoints (STATIC or DNS)"]
    );
    let dns = format!("{HTTP}  resolution: DNS\n{dr}");
    assert!(load(&[("f.yaml", &dns)]).is_ok());
}
