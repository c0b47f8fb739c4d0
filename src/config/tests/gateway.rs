//! `Gateway` and VirtualServices bound to gateways.

use super::{errors, load};
use crate::config::model::{GatewayProtocol, ServerTlsMode};

const GW: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selector:
    istio: ingressgateway
  servers:
";

const HTTPS: &str = "  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [\"*\"]
    tls:
      mode: SIMPLE
      credentialName: shop-cert
";

const SERVICE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: pay
spec:
  hosts: [pay]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
";

fn vs(gateways: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pay-in
spec:
  hosts: [\"*\"]
  gateways: {gateways}
  http:
  - route:
    - destination:
        host: pay
"
    )
}

#[test]
fn gateway_and_bound_virtual_service_load() {
    let http = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"./shop.example.com\"]\n    tls: {httpsRedirect: true}\n";
    let cfg = load(&[
        ("gw.yaml", &format!("{GW}{HTTPS}{http}")),
        ("se.yaml", SERVICE),
        ("vs.yaml", &vs("[gw]")),
    ])
    .unwrap();
    let gw = &cfg.gateways[0];
    assert_eq!(gw.qualified(), "default/gw");
    assert_eq!(gw.servers.len(), 2);
    assert_eq!(gw.servers[1].hosts[0].namespace.as_deref(), Some("default"));
    assert!(gw.servers[1].tls.as_ref().unwrap().https_redirect);
    assert!(
        cfg.virtual_services.is_empty(),
        "gateway-only: not for sidecars"
    );
    let bound = &cfg.gateway_virtual_services[0];
    assert_eq!(bound.gateways, ["default/gw"]);
    assert_eq!(bound.hosts[0].as_str(), "*");
}

#[test]
fn mesh_keyword_keeps_sidecar_routing() {
    let cfg = load(&[
        ("gw.yaml", &format!("{GW}{HTTPS}")),
        ("se.yaml", SERVICE),
        (
            "vs.yaml",
            &vs("[default/gw, mesh]").replace("[\"*\"]", "[pay]"),
        ),
    ])
    .unwrap();
    assert_eq!(cfg.virtual_services.len(), 1);
    assert_eq!(cfg.gateway_virtual_services.len(), 1);
}

#[test]
fn unknown_gateway_is_an_error() {
    let e = load(&[("se.yaml", SERVICE), ("vs.yaml", &vs("[other/gw]"))]).unwrap_err();
    assert_eq!(
        e,
        ["vs.yaml:7:14: error: VirtualService/pay-in: spec.gateways[0]: unknown gateway other/gw: no Gateway of that namespace and name"]
    );
}

#[test]
fn unsupported_protocols_and_modes_are_positioned() {
    let tcp = "  - port: {number: 31400, name: tcp, protocol: TCP}\n    hosts: [\"*\"]\n";
    let gw = load(&[("f.yaml", &format!("{GW}{tcp}"))]).unwrap();
    assert_eq!(gw.gateways[0].servers[0].protocol, GatewayProtocol::Tcp);
    let tls = "  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [\"*\"]\n";
    assert_eq!(
        errors(&format!("{GW}{tls}")),
        ["f.yaml:9:5: error: Gateway/gw: spec.servers[0]: a TLS server requires `tls` (mode PASSTHROUGH, AUTO_PASSTHROUGH, SIMPLE, MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL)"]
    );
    let pass = format!("{tls}    tls: {{mode: PASSTHROUGH}}\n");
    let gw = load(&[("f.yaml", &format!("{GW}{pass}"))]).unwrap();
    let t = gw.gateways[0].servers[0].tls.as_ref().unwrap();
    assert_eq!(t.mode, Some(ServerTlsMode::Passthrough));
    let pass_https = HTTPS.replace("SIMPLE", "PASSTHROUGH");
    assert_eq!(
        errors(&format!("{GW}{pass_https}")),
        [
            "f.yaml:12:7: error: Gateway/gw: spec.servers[0].tls.mode: tls mode PASSTHROUGH needs port protocol TLS, not HTTPS"
        ]
    );
    let pass_cert = format!("{tls}    tls: {{mode: PASSTHROUGH, credentialName: c}}\n");
    assert_eq!(
        errors(&format!("{GW}{pass_cert}")),
        ["f.yaml:11:30: error: Gateway/gw: spec.servers[0].tls.credentialName: `credentialName`: mode PASSTHROUGH forwards the client's TLS untouched"]
    );
    let crl = HTTPS.replace("      mode", "      caCrl: /x\n      mode");
    assert_eq!(
        errors(&format!("{GW}{crl}")),
        ["f.yaml:12:7: error: Gateway/gw: spec.servers[0].tls.caCrl: field `caCrl` is not supported yet"]
    );
}

#[test]
fn tls_settings_are_checked() {
    let no_tls = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n";
    assert_eq!(
        errors(&format!("{GW}{no_tls}")),
        ["f.yaml:9:5: error: Gateway/gw: spec.servers[0]: an HTTPS server requires `tls` (mode SIMPLE, MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL)"]
    );
    let mutual_files = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n    tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}\n";
    assert_eq!(
        errors(&format!("{GW}{mutual_files}")),
        ["f.yaml:11:5: error: Gateway/gw: spec.servers[0].tls: mode MUTUAL requires caCertificates (or a credentialName with ca.crt)"]
    );
    let version = HTTPS.replace("      mode", "      minProtocolVersion: TLSV9\n      mode");
    assert_eq!(
        errors(&format!("{GW}{version}")),
        [
            r#"f.yaml:12:7: error: Gateway/gw: spec.servers[0].tls.minProtocolVersion: unknown TLS version "TLSV9": use TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2 or TLSV1_3"#
        ]
    );
    let bad_host = HTTPS.replace("[\"*\"]", "[\"a/b/*x\"]");
    assert_eq!(errors(&format!("{GW}{bad_host}")).len(), 1);
}

#[test]
fn servers_sharing_a_port_must_agree() {
    let http = "  - port: {number: 443, name: web, protocol: HTTP}\n    hosts: [\"*\"]\n";
    let other = format!("{GW}{http}").replace("name: gw", "name: gw2");
    let e = load(&[("a.yaml", &format!("{GW}{HTTPS}")), ("b.yaml", &other)]).unwrap_err();
    assert_eq!(
        e,
        ["b.yaml:9:36: error: Gateway/gw2: spec.servers[0].port.protocol: port 443 is HTTP here but HTTPS in server 0 of Gateway default/gw (a.yaml:1): servers sharing a port need one protocol"]
    );
    let other_cert = format!("{GW}{HTTPS}")
        .replace("name: gw", "name: gw2")
        .replace("shop-cert", "other");
    let e = load(&[("a.yaml", &format!("{GW}{HTTPS}")), ("b.yaml", &other_cert)]).unwrap_err();
    assert_eq!(
        e,
        [
            r#"b.yaml:10:13: error: Gateway/gw2: spec.servers[0].hosts[0]: host "*" on port 443 has other TLS settings in server 0 of Gateway default/gw (a.yaml:1): one host, one TLS setting per port"#
        ]
    );
    // Disjoint selectors never share a proxy: no conflict.
    let elsewhere = other.replace("ingressgateway", "egressgateway");
    load(&[("a.yaml", &format!("{GW}{HTTPS}")), ("b.yaml", &elsewhere)]).unwrap();
}

#[test]
fn mesh_modes_are_accepted_and_misuse_is_positioned() {
    let tls = "  - port: {number: 15443, name: tls, protocol: TLS}\n    hosts: [\"*.local\"]\n";
    let auto = format!("{tls}    tls: {{mode: AUTO_PASSTHROUGH}}\n");
    let gw = load(&[("f.yaml", &format!("{GW}{auto}"))]).unwrap();
    let t = gw.gateways[0].servers[0].tls.as_ref().unwrap();
    assert_eq!(t.mode, Some(ServerTlsMode::AutoPassthrough));
    assert_eq!(t.source, None);
    let istio = HTTPS.replace("SIMPLE", "ISTIO_MUTUAL").replace(
        "      credentialName: shop-cert\n",
        "      subjectAltNames: [spiffe://cluster.local/ns/default/sa/client]\n",
    );
    let gw = load(&[("f.yaml", &format!("{GW}{istio}"))]).unwrap();
    let t = gw.gateways[0].servers[0].tls.as_ref().unwrap();
    assert_eq!(t.mode, Some(ServerTlsMode::IstioMutual));
    assert_eq!(t.source, None);

    let auto_cert = format!("{tls}    tls: {{mode: AUTO_PASSTHROUGH, credentialName: c}}\n");
    assert_eq!(
        errors(&format!("{GW}{auto_cert}")),
        ["f.yaml:11:35: error: Gateway/gw: spec.servers[0].tls.credentialName: `credentialName`: mode AUTO_PASSTHROUGH forwards the client's TLS untouched"]
    );
    let auto_https = HTTPS.replace("SIMPLE", "AUTO_PASSTHROUGH");
    assert_eq!(
        errors(&format!("{GW}{auto_https}")),
        ["f.yaml:12:7: error: Gateway/gw: spec.servers[0].tls.mode: tls mode AUTO_PASSTHROUGH needs port protocol TLS, not HTTPS"]
    );
    let auto_cipher =
        format!("{tls}    tls: {{mode: AUTO_PASSTHROUGH, cipherSuites: [ECDHE-RSA-AES128-SHA]}}\n");
    assert_eq!(
        errors(&format!("{GW}{auto_cipher}")),
        ["f.yaml:11:35: error: Gateway/gw: spec.servers[0].tls.cipherSuites: `cipherSuites`: mode AUTO_PASSTHROUGH forwards the client's TLS untouched"]
    );
    let istio_cert = HTTPS.replace("SIMPLE", "ISTIO_MUTUAL");
    assert_eq!(
        errors(&format!("{GW}{istio_cert}")),
        ["f.yaml:13:7: error: Gateway/gw: spec.servers[0].tls.credentialName: `credentialName`: mode ISTIO_MUTUAL uses the gateway's mesh workload certificate and the mesh CA"]
    );
    let istio_http = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n    tls: {mode: ISTIO_MUTUAL}\n";
    assert_eq!(
        errors(&format!("{GW}{istio_http}")),
        ["f.yaml:11:11: error: Gateway/gw: spec.servers[0].tls.mode: tls mode ISTIO_MUTUAL needs port protocol HTTPS or TLS, not HTTP"]
    );
    let optional_files = HTTPS.replace("SIMPLE", "OPTIONAL_MUTUAL").replace(
        "      credentialName: shop-cert\n",
        "      serverCertificate: /c.pem\n      privateKey: /k.pem\n",
    );
    assert_eq!(
        errors(&format!("{GW}{optional_files}")),
        ["f.yaml:11:5: error: Gateway/gw: spec.servers[0].tls: mode OPTIONAL_MUTUAL requires caCertificates (or a credentialName with ca.crt)"]
    );
    let simple_sans = HTTPS.replace(
        "      credentialName: shop-cert\n",
        "      credentialName: shop-cert\n      subjectAltNames: [a]\n",
    );
    assert_eq!(
        errors(&format!("{GW}{simple_sans}")),
        ["f.yaml:14:7: error: Gateway/gw: spec.servers[0].tls.subjectAltNames: subjectAltNames check client certificates: only with mode MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL"]
    );
}

const MATCHED: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pay-in
spec:
  hosts: [pay]
  gateways: [gw]
  http:
  - match:
    - gateways: [mesh]
      port: 80
      sourceLabels: {app: web}
      sourceNamespace: shop
    route:
    - destination: {host: pay}
  - match:
    - gateways: [nowhere]
    route:
    - destination: {host: pay}
";

#[test]
fn http_match_gateways_port_and_source_load_and_are_checked() {
    let gw = format!("{GW}{HTTPS}");
    let e = load(&[("gw.yaml", &gw), ("se.yaml", SERVICE), ("vs.yaml", MATCHED)]).unwrap_err();
    assert_eq!(
        e,
        ["vs.yaml:17:18: error: VirtualService/pay-in: spec.http[1].match[0].gateways[0]: unknown gateway default/nowhere: no Gateway of that namespace and name"]
    );
    let valid = MATCHED.replace("nowhere", "gw");
    let cfg = load(&[("gw.yaml", &gw), ("se.yaml", SERVICE), ("vs.yaml", &valid)]).unwrap();
    // A match naming `mesh` brings a gateway-bound VirtualService to sidecars.
    assert_eq!(cfg.virtual_services.len(), 1);
    assert_eq!(cfg.gateway_virtual_services.len(), 1);
    let m = &cfg.gateway_virtual_services[0].http[0].matches[0];
    assert_eq!(m.gateways.as_deref(), Some(&["mesh".to_string()][..]));
    assert_eq!(
        (m.port, m.source_namespace.as_deref()),
        (Some(80), Some("shop"))
    );
    assert_eq!(m.source_labels.get("app").map(String::as_str), Some("web"));
    let bad = valid.replace("sourceNamespace: shop", "sourceNamespace: Not_A_Namespace");
    let e = load(&[("gw.yaml", &gw), ("se.yaml", SERVICE), ("vs.yaml", &bad)]).unwrap_err();
    assert!(
        e[0].contains("sourceNamespace \"Not_A_Namespace\" is not a namespace name"),
        "{e:?}"
    );
}

#[test]
fn a_gateway_no_virtual_service_binds_is_a_warning() {
    let redirect = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n    tls: {httpsRedirect: true}\n";
    let cfg = load(&[("gw.yaml", &format!("{GW}{HTTPS}")), ("se.yaml", SERVICE)]).unwrap();
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.warning()).collect();
    assert_eq!(len_and_prefix(&w), (1, true), "{w:?}");
    assert!(
        w[0].contains(": warning: Gateway/gw: metadata.name: no VirtualService binds this Gateway"),
        "{w:?}"
    );
    // Bound (here by a match's gateways), or only redirecting: no warning.
    let cfg = load(&[
        ("gw.yaml", &format!("{GW}{HTTPS}")),
        ("se.yaml", SERVICE),
        (
            "vs.yaml",
            &MATCHED
                .replace("nowhere", "gw")
                .replace("  gateways: [gw]\n", ""),
        ),
    ])
    .unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let cfg = load(&[("gw.yaml", &format!("{GW}{redirect}"))]).unwrap();
    assert!(cfg.warnings.is_empty());
}

fn len_and_prefix(w: &[String]) -> (usize, bool) {
    (w.len(), w.iter().all(|l| l.contains("gw.yaml:")))
}
