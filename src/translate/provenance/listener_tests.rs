//! Listeners, gateway routes, secrets and `EnvoyFilter` patches.

use std::path::Path;

use super::*;
use crate::config::load_dir;

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// Line 17: the principal; line 3: the policy.
const AUTHZ: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: payment-allow
  namespace: default
spec:
  selector:
    matchLabels:
      app: payment
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/default/sa/frontend
        - cluster.local/ns/default/sa/payment-admin-tool
";

/// Line 9: server 0 (port 443, credential on line 17); line 27: the
/// gateway VirtualService's regex.
const GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: default
spec:
  selector: {istio: ingressgateway}
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - shop.example.com
    tls:
      mode: SIMPLE
      credentialName: shop-cert
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.example.com]
  gateways: [edge]
  http:
  - match:
    - uri: {regex: \"/(north|south|east|west){1,40}\"}
    route:
    - destination: {host: shop}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
";

/// Patch 0 on line 6, its stat prefix on line 15.
const FILTER: &str = "apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: limit, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: limiter_of_payment
";

fn provenance(dir: &Path, files: &[(&str, &str)]) -> Provenance {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mesh = load_dir(dir).unwrap();
    let source = SourceIndex::read(&mesh.files).unwrap();
    Provenance::build(&mesh, &source)
}

fn at(b: &Blame) -> (&str, &str, usize, usize, &str) {
    (&b.kind, &b.name, b.line, b.column, &b.field)
}

fn rejecter(ns: &str, patched: Vec<PatchRef>) -> Rejecter {
    Rejecter {
        namespace: Some(ns.into()),
        patched,
        ..Default::default()
    }
}

#[test]
fn a_listener_nack_quoting_a_principal_points_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = provenance(dir.path(), &[("authz.yaml", AUTHZ)]);
    let msg = "Error adding/updating listener(s) inbound: invalid principal 'cluster.local/ns/default/sa/payment-admin-tool': bad";
    let b = p.blame(LISTENER, msg).unwrap();
    assert_eq!(
        at(&b),
        (
            "AuthorizationPolicy",
            "payment-allow",
            16,
            11,
            "spec.rules[0].from[0].source.principals[1]"
        )
    );
    assert_eq!(b.resource, "inbound");
    // A proxy of another namespace cannot have this policy's filter.
    let other = p.blame_for(LISTENER, msg, &rejecter("shop", vec![]));
    assert_eq!(other, None);
    let own = p.blame_for(LISTENER, msg, &rejecter("default", vec![]));
    assert_eq!(own.unwrap().line, 16);
    // Named but nothing quoted: the policy itself.
    let b = p
        .blame(LISTENER, "Error adding/updating listener(s) inbound: no")
        .unwrap();
    assert_eq!(at(&b), ("AuthorizationPolicy", "payment-allow", 1, 1, ""));
}

#[test]
fn a_gateway_s_routes_listener_and_secret_point_at_their_objects() {
    let dir = tempfile::tempdir().unwrap();
    let p = provenance(dir.path(), &[("edge.yaml", GATEWAY)]);
    let msg =
        "regex '/(north|south|east|west){1,40}' RE2 program size of 900 > max program size of 100";
    let b = p.blame(ROUTES, msg).unwrap();
    assert_eq!(
        at(&b),
        (
            "VirtualService",
            "shop",
            27,
            13,
            "spec.http[0].match[0].uri.regex"
        )
    );
    assert_eq!(b.resource, "http.443");
    let vhost = p.virtual_host("http.443", "default/shop:443").unwrap();
    assert_eq!(vhost.objects[1].path, "spec.servers[0]");
    let msg = "Error adding/updating listener(s) 127.0.0.1_443: something";
    let b = p.blame(LISTENER, msg).unwrap();
    assert_eq!(at(&b), ("Gateway", "edge", 9, 5, "spec.servers[0]"));
    assert_eq!(p.blame(LISTENER, "listener(s) 127.0.0.1_4430: x"), None);
    let msg = "Failed to load certificate chain from secret kubernetes://shop-cert";
    let b = p.blame(SECRET, msg).unwrap();
    assert_eq!(
        at(&b),
        (
            "Gateway",
            "edge",
            17,
            7,
            "spec.servers[0].tls.credentialName"
        )
    );
}

#[test]
fn a_patched_listener_is_blamed_on_the_patch_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = provenance(
        dir.path(),
        &[("authz.yaml", AUTHZ), ("filter.yaml", FILTER)],
    );
    let patched = vec![PatchRef {
        type_url: LISTENER.into(),
        resource: "inbound".into(),
        envoy_filter: "default/limit".into(),
        patch: 0,
    }];
    let who = rejecter("default", patched);
    let msg = "Error adding/updating listener(s) inbound: Proto constraint validation failed (LocalRateLimitValidationError.TokenBucket: value is required)";
    let b = p.blame_for(LISTENER, msg, &who).unwrap();
    assert_eq!(
        at(&b),
        ("EnvoyFilter", "limit", 6, 5, "spec.configPatches[0]")
    );
    assert_eq!(b.file, dir.path().join("filter.yaml"));
    let g = b.generated_by.as_deref().unwrap();
    assert_eq!(
        (g.kind.as_str(), g.name.as_str()),
        ("AuthorizationPolicy", "payment-allow")
    );
    let report = b.report("p-1", msg);
    assert!(
        report.contains(": error: EnvoyFilter/limit: spec.configPatches[0]: Envoy rejected inbound, patched over AuthorizationPolicy/payment-allow at "),
        "{report}"
    );
    // A string of the patch's value that Envoy quotes.
    let msg = "Error adding/updating listener(s) inbound: stat prefix 'limiter_of_payment' taken";
    let b = p.blame_for(LISTENER, msg, &who).unwrap();
    assert_eq!(
        b.field,
        "spec.configPatches[0].patch.value.typed_config.stat_prefix"
    );
    assert_eq!((b.line, b.column), (16, 11));
    // Nothing named nor quoted (Envoy checking a bootstrap): the patch.
    let b = p.blame_for(LISTENER, "Proto constraint validation failed", &who);
    assert_eq!(b.unwrap().field, "spec.configPatches[0]");
    // The same rejection by a proxy the patch did not change.
    let b = p
        .blame_for(LISTENER, msg, &rejecter("default", vec![]))
        .unwrap();
    assert_eq!(b.kind, "AuthorizationPolicy");
}

#[test]
fn the_patch_index_keeps_each_change_once() {
    use crate::translate::envoy_filter::Patched;
    let one = Patched {
        type_url: LISTENER.into(),
        resource: "inbound".into(),
        envoy_filter: "default/limit".into(),
        patch: 0,
        file: "f.yaml".into(),
        line: 6,
    };
    let index = PatchIndex::new(&[one.clone(), one]);
    let proxy = crate::registry::Proxy {
        namespace: "default".into(),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("filter.yaml"), FILTER).unwrap();
    let mesh = load_dir(dir.path()).unwrap();
    let who = index.rejecter(&mesh, &proxy);
    assert_eq!(who.patched.len(), 1);
    let elsewhere = crate::registry::Proxy {
        namespace: "shop".into(),
        ..Default::default()
    };
    let who = index.rejecter(&mesh, &elsewhere);
    assert!(who.patched.is_empty());
}

/// Line 10: `credentialName` of the host-wide policy (MUTUAL origination).
const CLIENT_TLS: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: billing
spec:
  host: billing.example.com
  trafficPolicy:
    tls:
      mode: MUTUAL
      credentialName: billing-client
";

#[test]
fn a_client_credential_secret_points_at_the_destination_rule() {
    let dir = tempfile::tempdir().unwrap();
    let se = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: billing
spec:
  hosts: [billing.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
";
    let p = provenance(dir.path(), &[("se.yaml", se), ("dr.yaml", CLIENT_TLS)]);
    for secret in ["billing-client", "billing-client-cacert"] {
        let msg = format!("Failed to load certificate chain from secret kubernetes://{secret}");
        let b = p.blame(SECRET, &msg).unwrap();
        assert_eq!(
            at(&b),
            (
                "DestinationRule",
                "billing",
                10,
                7,
                "spec.trafficPolicy.tls.credentialName"
            )
        );
    }
}

/// Line 8: ingress entry 0; line 14: entry 1's private key.
const INGRESS: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: api, namespace: default}
spec:
  workloadSelector:
    labels: {app: api}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: web}
    defaultEndpoint: 127.0.0.1:8080
  - port: {number: 9443, protocol: HTTPS, name: https}
    defaultEndpoint: 127.0.0.1:8080
    tls:
      mode: SIMPLE
      privateKey: /etc/api/tls.key
      serverCertificate: /etc/api/tls.crt
";

#[test]
fn an_ingress_listener_nack_points_at_its_sidecar_entry() {
    let dir = tempfile::tempdir().unwrap();
    let p = provenance(dir.path(), &[("sidecar.yaml", INGRESS)]);
    // What Envoy 1.40 says when the file is missing on the sidecar's host.
    let msg = "Error adding/updating listener(s) inbound_9443: Failed to load incomplete private key from path: /etc/api/tls.key";
    let b = p.blame(LISTENER, msg).unwrap();
    assert_eq!(
        at(&b),
        ("Sidecar", "api", 14, 7, "spec.ingress[1].tls.privateKey")
    );
    assert_eq!(b.resource, "inbound_9443");
    // Nothing quoted: the entry of that port.
    let msg = "Error adding/updating listener(s) inbound_9080: something";
    let b = p.blame(LISTENER, msg).unwrap();
    assert_eq!(at(&b), ("Sidecar", "api", 8, 5, "spec.ingress[0]"));
}
