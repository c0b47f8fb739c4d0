use super::*;

fn pair(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, ns: &str, name: &str, cert: &str, key: &str) {
    let d = dir.join(ns).join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("tls.crt"), cert).unwrap();
    std::fs::write(d.join("tls.key"), key).unwrap();
}

#[test]
fn loads_pairs_by_namespace_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = pair("shop.example.com");
    write(dir.path(), "default", "shop", &c, &k);
    let (creds, errors) = load(dir.path(), &Credentials::new());
    assert!(errors.is_empty(), "{errors:?}");
    let got = &creds[&("default".to_string(), "shop".to_string())];
    assert_eq!(got.cert_pem, c);
    assert!(got.ca_pem.is_none());
}

#[test]
fn a_mismatched_key_is_never_served_and_the_old_pair_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, k1) = pair("a");
    write(dir.path(), "default", "shop", &c1, &k1);
    let (good, _) = load(dir.path(), &Credentials::new());
    let (c2, _) = pair("a");
    write(dir.path(), "default", "shop", &c2, &k1);
    let (after, errors) = load(dir.path(), &good);
    assert_eq!(errors.len(), 1);
    let msg = errors[0].to_string();
    assert!(msg.contains("does not match"), "{msg}");
    assert!(
        !msg.contains("PRIVATE KEY"),
        "errors never show a key: {msg}"
    );
    assert_eq!(after, good, "the last good pair stays");
    let (fresh, _) = load(dir.path(), &Credentials::new());
    assert!(fresh.is_empty(), "never served without a good pair");
}

#[test]
fn validate_names_gateway_server_and_file() {
    let config = tempfile::tempdir().unwrap();
    let gw = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [\"*\"]
    tls:
      mode: MUTUAL
      credentialName: shop-cert
";
    std::fs::write(config.path().join("gw.yaml"), gw).unwrap();
    let mesh = crate::config::load_dir(config.path()).unwrap();
    let creds = tempfile::tempdir().unwrap();
    let d = &validate(&mesh, creds.path())[0];
    assert_eq!((d.line, d.col), (10, 7));
    assert_eq!(d.field, "spec.servers[0].tls.credentialName");
    assert!(d.message.contains("server 0 (port 443)"), "{}", d.message);
    assert!(
        d.message.contains("shop/shop-cert/tls.crt"),
        "{}",
        d.message
    );
    // A good pair without ca.crt is still an error for MUTUAL.
    let (c, k) = pair("x");
    write(creds.path(), "shop", "shop-cert", &c, &k);
    let d = &validate(&mesh, creds.path())[0];
    assert!(d.message.contains("ca.crt: missing"), "{}", d.message);
    std::fs::write(creds.path().join("shop/shop-cert/ca.crt"), &c).unwrap();
    assert!(validate(&mesh, creds.path()).is_empty());
    // A certificate without its key.
    std::fs::remove_file(creds.path().join("shop/shop-cert/tls.key")).unwrap();
    let d = &validate(&mesh, creds.path())[0];
    assert!(
        d.message.contains("shop/shop-cert/tls.key"),
        "{}",
        d.message
    );
}

#[test]
fn validate_names_sidecar_ingress_port_and_file() {
    let config = tempfile::tempdir().unwrap();
    let sc = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: api, namespace: shop}
spec:
  ingress:
  - port: {number: 9443, protocol: HTTPS}
    defaultEndpoint: 127.0.0.1:8443
    tls:
      mode: SIMPLE
      credentialName: api-cert
";
    std::fs::write(config.path().join("sc.yaml"), sc).unwrap();
    let mesh = crate::config::load_dir(config.path()).unwrap();
    let creds = tempfile::tempdir().unwrap();
    let d = &validate(&mesh, creds.path())[0];
    assert_eq!((d.line, d.col), (10, 7));
    assert_eq!(d.field, "spec.ingress[0].tls.credentialName");
    assert!(d.message.contains("ingress port 9443"), "{}", d.message);
    assert!(d.message.contains("shop/api-cert/tls.crt"), "{}", d.message);
    let (c, k) = pair("api");
    write(creds.path(), "shop", "api-cert", &c, &k);
    assert!(validate(&mesh, creds.path()).is_empty());
}
