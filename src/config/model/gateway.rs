//! `Gateway`: the servers (ports, hosts, TLS) that gateway proxies chosen
//! by a label selector expose.

use super::{Labels, Origin};

/// A `Gateway`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// Labels a gateway proxy must carry (all of them) to get these servers.
    pub selector: Labels,
    /// The servers, in order.
    pub servers: Vec<GatewayServer>,
    /// The declaring resource.
    pub origin: Origin,
}

impl Gateway {
    /// True when a proxy with `labels` is selected (an empty selector
    /// selects every gateway proxy, as in Istio).
    pub fn selects(&self, labels: &Labels) -> bool {
        self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// `namespace/name`, how VirtualServices refer to it.
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.origin.namespace, self.origin.name)
    }
}

/// Protocol of a gateway server port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GatewayProtocol {
    /// Plain HTTP/1.1 (and h2c).
    Http,
    /// HTTP over TLS terminated at the gateway.
    Https,
    /// HTTP/2 with prior knowledge.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Opaque TCP (also `MONGO`, `MYSQL`, `REDIS`): `tcp` rules.
    Tcp,
    /// TLS: passed through by SNI (`tls` rules) or terminated (`tcp` rules).
    Tls,
}

impl GatewayProtocol {
    /// The name as Istio spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayProtocol::Http => "HTTP",
            GatewayProtocol::Https => "HTTPS",
            GatewayProtocol::Http2 => "HTTP2",
            GatewayProtocol::Grpc => "GRPC",
            GatewayProtocol::Tcp => "TCP",
            GatewayProtocol::Tls => "TLS",
        }
    }
}

/// One `servers[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayServer {
    /// `port.number`: the port clients connect to (a gateway proxy may
    /// listen elsewhere, see its bootstrap `--port-map`).
    pub port: u16,
    /// `port.name`.
    pub port_name: String,
    /// `port.protocol`.
    pub protocol: GatewayProtocol,
    /// `hosts`, parsed.
    pub hosts: Vec<GatewayHost>,
    /// `tls`, if any.
    pub tls: Option<ServerTls>,
    /// `name`, if given.
    pub name: Option<String>,
    /// Line and column of `tls.credentialName`, for errors about the
    /// credential found later (`trellis validate --credentials-dir`).
    pub credential_pos: Option<(usize, usize)>,
}

/// A `hosts` entry: `[NAMESPACE/]HOST`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayHost {
    /// Namespace whose VirtualServices may bind this host; `None` for `*`
    /// (any; also what an omitted namespace means).
    pub namespace: Option<String>,
    /// `*`, `*.SUFFIX` or a DNS name, lowercase.
    pub host: String,
}

impl GatewayHost {
    /// True when a VirtualService host `vs_host` of namespace `vs_ns`
    /// falls under this entry: namespaces agree, and the host equals it,
    /// or falls under its wildcard (Istio: `*.example.com` also takes the
    /// more specific `*.api.example.com`).
    pub fn admits(&self, vs_ns: &str, vs_host: &str) -> bool {
        if self.namespace.as_deref().is_some_and(|ns| ns != vs_ns) {
            return false;
        }
        host_matches(&self.host, vs_host) || host_matches(vs_host, &self.host)
    }
}

/// True when `host` is `pattern` or falls under it (`*`, `*.SUFFIX`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => pattern == host,
    }
}

/// `tls` of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// `httpsRedirect`: answer plain HTTP with a 301 to `https`.
    pub https_redirect: bool,
    /// `mode`; `None` only on a plain-text server that redirects.
    pub mode: Option<ServerTlsMode>,
    /// Where the server's certificate comes from (`None` for the
    /// passthrough modes and ISTIO_MUTUAL, whose certificate is the
    /// gateway's mesh workload certificate).
    pub source: Option<TlsSource>,
    /// `minProtocolVersion`.
    pub min_version: Option<TlsVersion>,
    /// `maxProtocolVersion`.
    pub max_version: Option<TlsVersion>,
    /// `cipherSuites` (OpenSSL names, as Envoy takes them).
    pub cipher_suites: Vec<String>,
    /// `subjectAltNames` a client certificate must carry (MUTUAL,
    /// OPTIONAL_MUTUAL, ISTIO_MUTUAL).
    pub subject_alt_names: Vec<String>,
}

/// `tls.mode` values Trellis supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerTlsMode {
    /// TLS with the server's certificate.
    Simple,
    /// TLS that requires a client certificate signed by the server's CA.
    Mutual,
    /// The client's TLS goes untouched to the backend, chosen by SNI
    /// (protocol TLS only).
    Passthrough,
    /// Like MUTUAL, but a client without a certificate is accepted too (a
    /// certificate it presents is verified).
    OptionalMutual,
    /// Mesh mTLS: the gateway presents its own SPIFFE workload certificate
    /// (SDS `default`) and requires a client certificate from the mesh CA
    /// (SDS `ROOTCA`), as a sidecar's inbound listener does.
    IstioMutual,
    /// The client's TLS goes untouched to the mesh service its SNI names,
    /// `outbound_.PORT_.SUBSET_.HOST` (protocol TLS only; no
    /// VirtualService needed).
    AutoPassthrough,
}

impl ServerTlsMode {
    /// The mode as Istio spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerTlsMode::Simple => "SIMPLE",
            ServerTlsMode::Mutual => "MUTUAL",
            ServerTlsMode::Passthrough => "PASSTHROUGH",
            ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
            ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
            ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
        }
    }

    /// True when the gateway forwards the client's TLS without
    /// terminating it.
    pub fn passes_through(self) -> bool {
        matches!(
            self,
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
        )
    }

    /// True when the server verifies client certificates against a CA of
    /// its credential (MUTUAL, OPTIONAL_MUTUAL).
    pub fn verifies_clients(self) -> bool {
        matches!(self, ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual)
    }
}

/// The server's certificate (and, for MUTUAL, the client CA).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TlsSource {
    /// `credentialName`: `DIR/NAMESPACE/NAME/{tls.crt,tls.key[,ca.crt]}`
    /// under the control plane's `--credentials-dir`, served over SDS.
    Credential(String),
    /// `serverCertificate`, `privateKey` (and `caCertificates`): files on
    /// the gateway proxy's host, read by Envoy itself.
    Files {
        /// `serverCertificate`.
        cert: String,
        /// `privateKey`.
        key: String,
        /// `caCertificates`.
        ca: Option<String>,
    },
}

/// A TLS protocol version (`TLSV1_2`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// `TLS_AUTO`: Envoy's default.
    Auto,
    /// `TLSV1_0`.
    V1_0,
    /// `TLSV1_1`.
    V1_1,
    /// `TLSV1_2`.
    V1_2,
    /// `TLSV1_3`.
    V1_3,
}
