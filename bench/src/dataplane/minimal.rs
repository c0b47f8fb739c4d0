//! The reference path: two hand-written Envoys with mTLS and nothing else
//! (client Envoy → server Envoy → app), from static bootstraps, with a test
//! CA and two leaves made at run time in a temporary directory.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{json, Value};
use trellis_integration_tests::{free_port, Envoy};

/// The server's DNS name in its certificate; the client checks it.
const SERVER_NAME: &str = "server.dataplane.bench";

/// The two Envoys; both are killed and reaped when this is dropped.
pub struct MinimalPair {
    /// Client-side Envoy: plaintext HTTP listener, mTLS upstream.
    pub client: Envoy,
    /// Server-side Envoy: mTLS listener, the app upstream.
    pub server: Envoy,
    /// The client Envoy's listener port (where the load goes).
    pub port: u16,
    _certs: tempfile::TempDir,
}

impl MinimalPair {
    /// Makes the certificates and starts both Envoys (each waited for with
    /// `/ready`).
    pub async fn start(app_port: u16) -> anyhow::Result<MinimalPair> {
        let certs = tempfile::tempdir()?;
        write_certs(certs.path())?;
        let file = |n: &str| certs.path().join(n).display().to_string();
        let (port, server_port) = (free_port(), free_port());
        let mut server_tls = tls("DownstreamTlsContext", &file("server"));
        server_tls["typed_config"]["require_client_certificate"] = json!(true);
        server_tls["typed_config"]["common_tls_context"]["validation_context"] =
            json!({"trusted_ca": {"filename": file("ca.pem")}});
        let admin = free_port();
        let server_yaml =
            bootstrap(admin, (server_port, Some(server_tls)), (app_port, None)).to_string();
        let server = Envoy::start_yaml("minimal server envoy", &server_yaml, admin).await?;
        let mut client_tls = tls("UpstreamTlsContext", &file("client"));
        client_tls["typed_config"]["sni"] = json!(SERVER_NAME);
        client_tls["typed_config"]["common_tls_context"]["validation_context"] = json!({
            "trusted_ca": {"filename": file("ca.pem")},
            "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": SERVER_NAME}}],
        });
        let admin = free_port();
        let client_yaml =
            bootstrap(admin, (port, None), (server_port, Some(client_tls))).to_string();
        let client = Envoy::start_yaml("minimal client envoy", &client_yaml, admin).await?;
        Ok(MinimalPair {
            client,
            server,
            port,
            _certs: certs,
        })
    }
}

/// A TLS transport socket of `kind` presenting `NAME.pem` with `NAME.key`.
fn tls(kind: &str, name: &str) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": format!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{kind}"),
            "common_tls_context": {"tls_certificates": [{
                "certificate_chain": {"filename": format!("{name}.pem")},
                "private_key": {"filename": format!("{name}.key")},
            }]},
        },
    })
}

/// One Envoy (as JSON, which Envoy reads as YAML): admin on `admin`, an
/// HTTP listener on a port (its chain with the given transport socket)
/// routing everything to one STATIC upstream on 127.0.0.1 (with its
/// transport socket). No access log, no stats tags, no filter but the
/// router.
fn bootstrap(admin: u16, listener: (u16, Option<Value>), upstream: (u16, Option<Value>)) -> Value {
    let addr = |port: u16| json!({"socket_address": {"address": "127.0.0.1", "port_value": port}});
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "listener",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
            {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    });
    let mut chain = json!({"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]});
    if let Some(t) = listener.1 {
        chain["transport_socket"] = t;
    }
    let mut cluster = json!({
        "name": "upstream", "type": "STATIC", "connect_timeout": "5s",
        "load_assignment": {"cluster_name": "upstream",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": addr(upstream.0)}}]}]},
    });
    if let Some(t) = upstream.1 {
        cluster["transport_socket"] = t;
    }
    json!({
        "admin": {"address": addr(admin)},
        "static_resources": {
            "listeners": [{"name": "listener", "address": addr(listener.0), "filter_chains": [chain]}],
            "clusters": [cluster],
        },
    })
}

/// Writes `ca.pem`, `server.{pem,key}` (DNS SAN [`SERVER_NAME`]) and
/// `client.{pem,key}` into `dir`. P-256 keys, as the mesh CA issues.
fn write_certs(dir: &Path) -> anyhow::Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "dataplane bench CA");
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key)?.pem())?;
    let issuer = Issuer::from_params(&ca, &ca_key);
    for (name, san, usage) in [
        ("server", SERVER_NAME, ExtendedKeyUsagePurpose::ServerAuth),
        (
            "client",
            "client.dataplane.bench",
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(vec![san.to_string()])?;
        leaf.distinguished_name.push(DnType::CommonName, san);
        leaf.extended_key_usages = vec![usage];
        std::fs::write(
            dir.join(format!("{name}.pem")),
            leaf.signed_by(&key, &issuer)?.pem(),
        )?;
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem())?;
    }
    Ok(())
}
