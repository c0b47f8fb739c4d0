//! `Sidecar.ingress[]`: what converts, and one test per error (exact
//! `FILE:LINE:COL` lines).

use std::time::Duration;

use crate::config::model::{IngressEndpoint, Protocol, ServerTlsMode, TlsSource};
use crate::config::tests::{errors, load};

/// A Sidecar in namespace `shop` with `ingress` (its entries start on
/// line 8) and no egress.
fn sc(ingress: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: sc\n  namespace: shop\nspec:\n  ingress:\n{ingress}")
}

fn err(ingress: &str) -> Vec<String> {
    errors(&sc(ingress))
}

#[test]
fn ingress_ports_convert() {
    let ingress = concat!(
        "  - port: {number: 9080, protocol: HTTP, name: web}\n",
        "    defaultEndpoint: 127.0.0.1:8080\n",
        "    captureMode: NONE\n",
        "  - port: {number: 9443, protocol: HTTPS}\n",
        "    bind: 0.0.0.0\n",
        "    defaultEndpoint: 0.0.0.0:8443\n",
        "    tls: {mode: SIMPLE, credentialName: web-cert}\n",
        "    connectionPool: {tcp: {maxConnections: 5}}\n",
        "  - port: {number: 9000, protocol: TCP}\n",
        "    defaultEndpoint: unix:///run/app.sock\n",
        "  - port: {number: 9001, protocol: GRPC}\n",
        "    defaultEndpoint: \"[::1]:7000\"\n",
        "  inboundConnectionPool: {http: {idleTimeout: 5s}}\n"
    );
    let mesh = load(&[("f.yaml", &sc(ingress))]).unwrap();
    let [s] = mesh.sidecars.as_slice() else {
        panic!("{:?}", mesh.sidecars)
    };
    let [web, https, tcp, grpc] = s.ingress.as_slice() else {
        panic!("{:?}", s.ingress)
    };
    assert_eq!((web.number, web.name.as_str()), (9080, "web"));
    assert_eq!((web.protocol, web.bind.as_deref()), (Protocol::Http, None));
    let loopback = |ip: &str, port| IngressEndpoint::Loopback {
        ip: ip.into(),
        port,
    };
    assert_eq!(web.endpoint, loopback("127.0.0.1", 8080));
    // The Sidecar's inbound pool is every port's default.
    let idle = Some(Duration::from_secs(5));
    assert_eq!(web.connection_pool.as_ref().unwrap().idle_timeout, idle);
    assert_eq!(s.inbound_pool.as_ref().unwrap().idle_timeout, idle);
    // HTTPS ended by the sidecar is served as HTTP.
    assert_eq!(
        (https.protocol, https.name.as_str()),
        (Protocol::Http, "https-9443")
    );
    assert!(https.binds_any());
    assert_eq!(https.endpoint_address("10.0.0.7"), "10.0.0.7");
    assert_eq!(https.endpoint, IngressEndpoint::Instance(8443));
    let tls = https.tls.as_ref().unwrap();
    assert_eq!(tls.mode, Some(ServerTlsMode::Simple));
    assert_eq!(tls.source, Some(TlsSource::Credential("web-cert".into())));
    let pool = https.connection_pool.as_ref().unwrap();
    assert_eq!((pool.max_connections, pool.idle_timeout), (Some(5), None));
    assert_eq!(tcp.protocol, Protocol::Tcp);
    assert_eq!(tcp.endpoint, IngressEndpoint::Unix("/run/app.sock".into()));
    assert_eq!(grpc.endpoint, loopback("::1", 7000));
    // Without egress, a Sidecar with ingress reaches every service (Istio's
    // default egress listener).
    assert_eq!(s.egress.len(), 1);
}

#[test]
fn https_without_tls_is_opaque() {
    let ingress =
        "  - port: {number: 9443, protocol: HTTPS}\n    defaultEndpoint: 127.0.0.1:8443\n";
    let mesh = load(&[("f.yaml", &sc(ingress))]).unwrap();
    assert_eq!(mesh.sidecars[0].ingress[0].protocol, Protocol::Tls);
}

#[test]
fn a_port_twice_is_an_error() {
    let ingress = concat!(
        "  - port: {number: 9080, protocol: HTTP}\n",
        "    defaultEndpoint: 127.0.0.1:8080\n",
        "  - port: {number: 9080, protocol: TCP}\n",
        "    defaultEndpoint: 127.0.0.1:8081\n"
    );
    assert_eq!(
        err(ingress),
        ["f.yaml:10:12: error: Sidecar/sc: spec.ingress[1].port.number: ingress port 9080 is declared twice"]
    );
}

#[test]
fn ingress_and_egress_on_one_socket_is_an_error() {
    let spec = concat!(
        "  - port: {number: 9000, protocol: TCP}\n",
        "    bind: 127.0.0.1\n",
        "    defaultEndpoint: 127.0.0.1:8080\n",
        "  egress:\n",
        "  - port: {number: 9000, protocol: TCP}\n",
        "    hosts: [./db]\n"
    );
    assert_eq!(
        err(spec),
        ["f.yaml:8:12: error: Sidecar/sc: spec.ingress[0].port.number: ingress port 9000 on 127.0.0.1 takes the socket of egress port 9000 on 127.0.0.1"]
    );
}

#[test]
fn field_errors_are_positioned() {
    let cases = [
        (
            "  - defaultEndpoint: 127.0.0.1:8080\n",
            "f.yaml:8:5: error: Sidecar/sc: spec.ingress[0]: an ingress listener needs a port (port.number, port.protocol)",
        ),
        (
            "  - port: {number: 9080}\n    defaultEndpoint: 127.0.0.1:8080\n",
            "f.yaml:8:5: error: Sidecar/sc: spec.ingress[0].port.protocol: port.protocol is required (HTTP, HTTP2, GRPC, HTTPS, TLS or TCP)",
        ),
        (
            "  - port: {number: 9080, protocol: UDP}\n    defaultEndpoint: 127.0.0.1:8080\n",
            "f.yaml:8:26: error: Sidecar/sc: spec.ingress[0].port.protocol: unknown protocol \"UDP\": use HTTP, HTTP2, GRPC, HTTPS, TLS or TCP",
        ),
        (
            "  - port: {number: 70000, protocol: HTTP}\n    defaultEndpoint: 127.0.0.1:8080\n",
            "f.yaml:8:12: error: Sidecar/sc: spec.ingress[0].port.number: port number 70000 is not in 1..65535",
        ),
        (
            "  - port: {number: 9080, protocol: HTTP}\n",
            "f.yaml:8:5: error: Sidecar/sc: spec.ingress[0]: defaultEndpoint is required: Trellis sidecars have no interception, so there is no original destination to forward to (write 127.0.0.1:APP_PORT, 0.0.0.0:APP_PORT or unix:///PATH)",
        ),
        (
            "  - port: {number: 9080, protocol: HTTP}\n    defaultEndpoint: 10.0.0.5:8080\n",
            "f.yaml:9:5: error: Sidecar/sc: spec.ingress[0].defaultEndpoint: defaultEndpoint \"10.0.0.5:8080\" must be 127.0.0.1:PORT, [::1]:PORT, 0.0.0.0:PORT, [::]:PORT or unix:///PATH (other addresses are not the workload's)",
        ),
        (
            "  - port: {number: 9080, protocol: HTTP}\n    defaultEndpoint: unix://app.sock\n",
            "f.yaml:9:5: error: Sidecar/sc: spec.ingress[0].defaultEndpoint: defaultEndpoint \"unix://app.sock\": a Unix socket is unix:///ABSOLUTE/PATH or unix://@ABSTRACT_NAME",
        ),
        (
            "  - port: {number: 9080, protocol: HTTP}\n    defaultEndpoint: 127.0.0.1:8080\n    bind: unix:///run/l.sock\n",
            "f.yaml:10:5: error: Sidecar/sc: spec.ingress[0].bind: bind \"unix:///run/l.sock\" must be an IP address (Istio allows no Unix socket here either)",
        ),
        (
            "  - port: {number: 9080, protocol: HTTP}\n    defaultEndpoint: 127.0.0.1:8080\n    captureMode: IPTABLES\n",
            "f.yaml:10:5: error: Sidecar/sc: spec.ingress[0].captureMode: captureMode IPTABLES redirects traffic with iptables; Trellis sidecars have no interception: callers reach the listener on bind:port (use DEFAULT or NONE)",
        ),
        (
            "  - port: {number: 9080, protocol: HTTP, targetPort: 80}\n    defaultEndpoint: 127.0.0.1:8080\n",
            "f.yaml:8:42: error: Sidecar/sc: spec.ingress[0].port.targetPort: field `targetPort` is not supported yet",
        ),
        (
            "  - port: {number: 9443, protocol: HTTPS}\n    defaultEndpoint: 127.0.0.1:8080\n    tls: {mode: ISTIO_MUTUAL}\n",
            "f.yaml:10:11: error: Sidecar/sc: spec.ingress[0].tls.mode: tls mode \"ISTIO_MUTUAL\" on a sidecar ingress port: Istio and Trellis support SIMPLE and MUTUAL here (mesh mTLS comes from PeerAuthentication)",
        ),
        (
            "  - port: {number: 9443, protocol: HTTPS}\n    defaultEndpoint: 127.0.0.1:8080\n    tls: {credentialName: c}\n",
            "f.yaml:10:5: error: Sidecar/sc: spec.ingress[0].tls: tls.mode is required on a sidecar: SIMPLE or MUTUAL",
        ),
        (
            "  - port: {number: 9443, protocol: HTTPS}\n    defaultEndpoint: 127.0.0.1:8080\n    tls: {mode: SIMPLE}\n",
            "f.yaml:10:5: error: Sidecar/sc: spec.ingress[0].tls: mode SIMPLE, MUTUAL and OPTIONAL_MUTUAL need credentialName, or serverCertificate and privateKey",
        ),
        (
            "  - port: {number: 9080, protocol: HTTP}\n    defaultEndpoint: 127.0.0.1:8080\n    connectionPool: {http: {h2UpgradePolicy: UPGRADE}}\n",
            "f.yaml:10:29: error: Sidecar/sc: spec.ingress[0].connectionPool.http.h2UpgradePolicy: h2UpgradePolicy does not apply to an inbound cluster: it speaks the port's protocol (HTTP2 or GRPC for HTTP/2)",
        ),
    ];
    for (ingress, want) in cases {
        assert_eq!(err(ingress), [want], "{ingress}");
    }
}

#[test]
fn a_listener_on_its_own_default_endpoint_is_an_error() {
    let msg = "the listener would bind the address its defaultEndpoint names (port 9080), where the app listens: without interception the two cannot share it; give the ingress port another number and make it the service's targetPort";
    let instance = "  - port: {number: 9080, protocol: HTTP}\n    defaultEndpoint: 0.0.0.0:9080\n";
    let want = format!("f.yaml:9:5: error: Sidecar/sc: spec.ingress[0].defaultEndpoint: {msg}");
    assert_eq!(err(instance), [want]);
    let bound = concat!(
        "  - port: {number: 9080, protocol: HTTP}\n",
        "    bind: 127.0.0.1\n",
        "    defaultEndpoint: 127.0.0.1:9080\n"
    );
    let want = format!("f.yaml:10:5: error: Sidecar/sc: spec.ingress[0].defaultEndpoint: {msg}");
    assert_eq!(err(bound), [want]);
    // Without `bind` the listener is on the sidecar's inbound address:
    // known when it connects (`translate` leaves the port out there).
    let loopback =
        "  - port: {number: 9080, protocol: HTTP}\n    defaultEndpoint: 127.0.0.1:9080\n";
    assert!(load(&[("f.yaml", &sc(loopback))]).is_ok());
}
