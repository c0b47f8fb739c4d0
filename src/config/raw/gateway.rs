//! `Gateway` (`networking.istio.io`), as written.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Unsupported;

/// `Gateway.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Gateway {
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub servers: Vec<Server>,
}

/// `Server`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Server {
    pub port: Option<Port>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub tls: Option<ServerTls>,
    pub name: Option<String>,
    /// The bind address of the server: not supported yet.
    pub bind: Option<Unsupported>,
    /// Istio's default endpoint (`127.0.0.1:PORT`): not supported yet.
    pub default_endpoint: Option<Unsupported>,
}

/// `Port`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Port {
    pub number: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub protocol: String,
    /// Deprecated in Istio and ignored by it for gateways; not supported.
    pub target_port: Option<Unsupported>,
}

/// `ServerTLSSettings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ServerTls {
    #[serde(default)]
    pub https_redirect: bool,
    pub mode: Option<String>,
    pub server_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    pub ca_crl: Option<Unsupported>,
    pub credential_name: Option<String>,
    pub credential_names: Option<Unsupported>,
    pub tls_certificates: Option<Unsupported>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    pub verify_certificate_spki: Option<Unsupported>,
    pub verify_certificate_hash: Option<Unsupported>,
    pub min_protocol_version: Option<String>,
    pub max_protocol_version: Option<String>,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}
