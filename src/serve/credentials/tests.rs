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
