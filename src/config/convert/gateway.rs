//! `Gateway` conversion: servers, their ports, hosts and TLS settings,
//! following Istio's validation (`pkg/config/validation`: `ValidateGateway`,
//! `validateServer`, `validateTLSOptions`).

use super::values::check_host;
use super::{is_dns_label, join, Cx};
use crate::config::model::{
    Gateway, GatewayHost, GatewayProtocol, GatewayServer, ServerTls, ServerTlsMode, TlsSource,
    TlsVersion,
};
use crate::config::raw::gateway as raw;

/// Converts a `Gateway`; `None` when it is unusable.
pub(crate) fn gateway(cx: &mut Cx<'_>, gw: &raw::Gateway) -> Option<Gateway> {
    cx.labels("spec.selector", &gw.selector);
    if gw.servers.is_empty() {
        cx.err("spec.servers", "at least one server is required");
        return None;
    }
    let before = cx.diags.len();
    let servers: Vec<_> = (gw.servers.iter().enumerate())
        .filter_map(|(i, s)| server(cx, &format!("spec.servers[{i}]"), s))
        .collect();
    (cx.diags.len() == before).then(|| Gateway {
        selector: gw.selector.clone(),
        servers,
        origin: cx.doc.origin(),
    })
}

fn server(cx: &mut Cx<'_>, path: &str, s: &raw::Server) -> Option<GatewayServer> {
    cx.unsupported(path, "bind", &s.bind);
    cx.unsupported(path, "defaultEndpoint", &s.default_endpoint);
    let Some(port) = &s.port else {
        cx.err(path, "port is required");
        return None;
    };
    let port_path = join(path, "port");
    cx.unsupported(&port_path, "targetPort", &port.target_port);
    let number = cx.port(&join(&port_path, "number"), port.number);
    let protocol = protocol(cx, &join(&port_path, "protocol"), &port.protocol);
    if port.name.is_empty() {
        cx.err(&join(&port_path, "name"), "port name is required");
    }
    let hosts = hosts(cx, path, &s.hosts);
    let tls = match (&s.tls, protocol) {
        (Some(t), Some(p)) => server_tls(cx, &join(path, "tls"), t, p),
        (None, Some(GatewayProtocol::Https)) => {
            cx.err(
                path,
                "an HTTPS server requires `tls` (mode SIMPLE, MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL)",
            );
            None
        }
        (None, Some(GatewayProtocol::Tls)) => {
            let msg = "a TLS server requires `tls` (mode PASSTHROUGH, AUTO_PASSTHROUGH, SIMPLE, MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL)";
            cx.err(path, msg);
            None
        }
        _ => None,
    };
    Some(GatewayServer {
        port: number?,
        port_name: port.name.clone(),
        protocol: protocol?,
        hosts: hosts?,
        credential_pos: (tls.as_ref())
            .and_then(|t| t.source.as_ref())
            .filter(|src| matches!(src, TlsSource::Credential(_)))
            .map(|_| cx.doc.positions.lookup(&join(path, "tls.credentialName"))),
        tls,
        name: s.name.clone(),
    })
}

fn protocol(cx: &mut Cx<'_>, path: &str, text: &str) -> Option<GatewayProtocol> {
    match text.to_ascii_uppercase().as_str() {
        "HTTP" => Some(GatewayProtocol::Http),
        "HTTPS" => Some(GatewayProtocol::Https),
        "HTTP2" => Some(GatewayProtocol::Http2),
        "GRPC" => Some(GatewayProtocol::Grpc),
        "TCP" | "MONGO" | "REDIS" | "MYSQL" => Some(GatewayProtocol::Tcp),
        "TLS" => Some(GatewayProtocol::Tls),
        "" => {
            cx.err(
                path,
                "protocol is required (HTTP, HTTPS, HTTP2, GRPC, TCP or TLS)",
            );
            None
        }
        _ => {
            let msg =
                format!("unknown protocol {text:?}: use HTTP, HTTPS, HTTP2, GRPC, TCP or TLS");
            cx.err(path, msg);
            None
        }
    }
}

/// `hosts`: `[NAMESPACE/]HOST` with NAMESPACE `*`, `.` (the Gateway's) or
/// a name, HOST `*`, `*.SUFFIX` or a DNS name.
fn hosts(cx: &mut Cx<'_>, path: &str, raw: &[String]) -> Option<Vec<GatewayHost>> {
    if raw.is_empty() {
        cx.err(&join(path, "hosts"), "at least one host is required");
        return None;
    }
    let mut out = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        match gateway_host(text, &cx.doc.namespace) {
            Ok(h) if out.contains(&h) => cx.err(
                &format!("{path}.hosts[{i}]"),
                format!("duplicate host {text:?}"),
            ),
            Ok(h) => out.push(h),
            Err(msg) => cx.err(&format!("{path}.hosts[{i}]"), msg),
        }
    }
    (out.len() == raw.len()).then_some(out)
}

fn gateway_host(text: &str, own_ns: &str) -> Result<GatewayHost, String> {
    let (ns, host) = match text.split_once('/') {
        Some((ns, host)) => (Some(ns), host),
        None => (None, text),
    };
    let namespace = match ns {
        None | Some("*") => None,
        Some(".") => Some(own_ns.to_string()),
        Some(ns) if is_dns_label(ns) => Some(ns.to_string()),
        Some(ns) => {
            return Err(format!(
                "namespace {ns:?} in host {text:?} is not `*`, `.` or a DNS-1123 label"
            ))
        }
    };
    let host = host.trim().to_ascii_lowercase();
    let valid = match host.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => suffix
            .strip_prefix('.')
            .is_some_and(|s| check_host(s).is_ok()),
        None => check_host(&host).is_ok(),
    };
    if !valid {
        return Err(format!(
            "host {text:?} is not `*`, `*.SUFFIX` or a DNS name"
        ));
    }
    Ok(GatewayHost { namespace, host })
}

pub(super) fn server_tls(
    cx: &mut Cx<'_>,
    path: &str,
    t: &raw::ServerTls,
    protocol: GatewayProtocol,
) -> Option<ServerTls> {
    unsupported_tls_fields(cx, path, t);
    let mode = tls_mode(cx, path, t, protocol)?;
    let source = match mode {
        Some(m @ (ServerTlsMode::Passthrough | ServerTlsMode::IstioMutual)) => {
            has_no_certificate(cx, path, t, m);
            None
        }
        Some(m @ ServerTlsMode::AutoPassthrough) => {
            has_no_certificate(cx, path, t, m);
            auto_passthrough_has_no_tls_settings(cx, path, t);
            None
        }
        Some(m) => tls_source(cx, path, t, m),
        None => {
            plaintext_has_no_tls_fields(cx, path, t);
            None
        }
    };
    let version = |cx: &mut Cx<'_>, field: &str, v: &Option<String>| {
        v.as_deref()
            .and_then(|v| tls_version(cx, &join(path, field), v))
    };
    let min_version = version(cx, "minProtocolVersion", &t.min_protocol_version);
    let max_version = version(cx, "maxProtocolVersion", &t.max_protocol_version);
    if let (Some(min), Some(max)) = (min_version, max_version) {
        if min > max && max != TlsVersion::Auto {
            cx.err(
                &join(path, "maxProtocolVersion"),
                "maxProtocolVersion is below minProtocolVersion",
            );
        }
    }
    let checks_clients =
        mode.is_some_and(|m| m.verifies_clients()) || mode == Some(ServerTlsMode::IstioMutual);
    if !t.subject_alt_names.is_empty() && !checks_clients {
        let msg = "subjectAltNames check client certificates: only with mode MUTUAL, \
                   OPTIONAL_MUTUAL or ISTIO_MUTUAL";
        cx.err(&join(path, "subjectAltNames"), msg);
    }
    Some(ServerTls {
        https_redirect: t.https_redirect,
        mode,
        source: match mode {
            Some(m) if m.passes_through() || m == ServerTlsMode::IstioMutual => None,
            None => None,
            Some(_) => Some(source?),
        },
        min_version,
        max_version,
        cipher_suites: t.cipher_suites.clone(),
        subject_alt_names: t.subject_alt_names.clone(),
    })
}

fn unsupported_tls_fields(cx: &mut Cx<'_>, path: &str, t: &raw::ServerTls) {
    cx.unsupported(path, "caCrl", &t.ca_crl);
    cx.unsupported(path, "credentialNames", &t.credential_names);
    cx.unsupported(path, "tlsCertificates", &t.tls_certificates);
    cx.unsupported(path, "verifyCertificateSpki", &t.verify_certificate_spki);
    cx.unsupported(path, "verifyCertificateHash", &t.verify_certificate_hash);
}

/// The TLS mode, `Some(None)` for a plain-text server (HTTP, HTTP2, GRPC:
/// `tls` may only redirect), `None` when invalid.
fn tls_mode(
    cx: &mut Cx<'_>,
    path: &str,
    t: &raw::ServerTls,
    protocol: GatewayProtocol,
) -> Option<Option<ServerTlsMode>> {
    let at = join(path, "mode");
    let https = matches!(protocol, GatewayProtocol::Https | GatewayProtocol::Tls);
    let mode = match t.mode.as_deref() {
        None if https => return Some(Some(ServerTlsMode::Simple)),
        None => return Some(None),
        Some("SIMPLE") => ServerTlsMode::Simple,
        Some("MUTUAL") => ServerTlsMode::Mutual,
        Some("OPTIONAL_MUTUAL") => ServerTlsMode::OptionalMutual,
        Some("ISTIO_MUTUAL") => ServerTlsMode::IstioMutual,
        Some("PASSTHROUGH") => ServerTlsMode::Passthrough,
        Some("AUTO_PASSTHROUGH") => ServerTlsMode::AutoPassthrough,
        Some(m) => {
            let msg = format!(
                "unknown tls mode {m:?}: use SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL, \
                 PASSTHROUGH or AUTO_PASSTHROUGH"
            );
            cx.err(&at, msg);
            return None;
        }
    };
    let (fits, needs) = if mode.passes_through() {
        (protocol == GatewayProtocol::Tls, "TLS")
    } else {
        (https, "HTTPS or TLS")
    };
    if !fits {
        let msg = format!(
            "tls mode {} needs port protocol {needs}, not {}",
            mode.as_str(),
            protocol.as_str()
        );
        cx.err(&at, msg);
        return None;
    }
    Some(Some(mode))
}

/// The passthrough modes never terminate TLS, and ISTIO_MUTUAL uses the
/// gateway's mesh workload certificate: a certificate given would be
/// ignored.
fn has_no_certificate(cx: &mut Cx<'_>, path: &str, t: &raw::ServerTls, mode: ServerTlsMode) {
    let given = [
        ("credentialName", t.credential_name.is_some()),
        ("serverCertificate", t.server_certificate.is_some()),
        ("privateKey", t.private_key.is_some()),
        ("caCertificates", t.ca_certificates.is_some()),
    ];
    let why = match mode {
        ServerTlsMode::IstioMutual => {
            "uses the gateway's mesh workload certificate and the mesh CA"
        }
        _ => "forwards the client's TLS untouched",
    };
    for (field, _) in given.iter().filter(|(_, set)| *set) {
        let msg = format!("`{field}`: mode {} {why}", mode.as_str());
        cx.err(&join(path, field), msg);
    }
}

/// AUTO_PASSTHROUGH neither terminates TLS nor redirects: TLS settings
/// would be ignored.
fn auto_passthrough_has_no_tls_settings(cx: &mut Cx<'_>, path: &str, t: &raw::ServerTls) {
    let given = [
        ("cipherSuites", !t.cipher_suites.is_empty()),
        ("minProtocolVersion", t.min_protocol_version.is_some()),
        ("maxProtocolVersion", t.max_protocol_version.is_some()),
        ("httpsRedirect", t.https_redirect),
    ];
    for (field, _) in given.iter().filter(|(_, set)| *set) {
        let msg = format!("`{field}`: mode AUTO_PASSTHROUGH forwards the client's TLS untouched");
        cx.err(&join(path, field), msg);
    }
}

fn plaintext_has_no_tls_fields(cx: &mut Cx<'_>, path: &str, t: &raw::ServerTls) {
    let given = [
        ("credentialName", t.credential_name.is_some()),
        ("serverCertificate", t.server_certificate.is_some()),
        ("privateKey", t.private_key.is_some()),
        ("caCertificates", t.ca_certificates.is_some()),
        ("cipherSuites", !t.cipher_suites.is_empty()),
        ("minProtocolVersion", t.min_protocol_version.is_some()),
        ("maxProtocolVersion", t.max_protocol_version.is_some()),
    ];
    for (field, _) in given.iter().filter(|(_, set)| *set) {
        let msg = format!("`{field}` needs a TLS server (port protocol HTTPS)");
        cx.err(&join(path, field), msg);
    }
    if !t.https_redirect {
        cx.err(
            path,
            "a plain-text server's `tls` may only set httpsRedirect",
        );
    }
}

fn tls_source(
    cx: &mut Cx<'_>,
    path: &str,
    t: &raw::ServerTls,
    mode: ServerTlsMode,
) -> Option<TlsSource> {
    let files = (&t.server_certificate, &t.private_key, &t.ca_certificates);
    match (&t.credential_name, files) {
        (Some(_), (Some(_), _, _) | (_, Some(_), _) | (_, _, Some(_))) => {
            let msg =
                "credentialName and serverCertificate/privateKey/caCertificates exclude each other";
            cx.err(&join(path, "credentialName"), msg);
            None
        }
        (Some(name), _) if !super::is_dns_subdomain(name) => {
            let msg = format!("credentialName {name:?} is not a valid DNS-1123 subdomain");
            cx.err(&join(path, "credentialName"), msg);
            None
        }
        (Some(name), _) => Some(TlsSource::Credential(name.clone())),
        (None, (Some(cert), Some(key), ca)) => {
            if mode.verifies_clients() && ca.is_none() {
                let msg = format!(
                    "mode {} requires caCertificates (or a credentialName with ca.crt)",
                    mode.as_str()
                );
                cx.err(path, msg);
                return None;
            }
            Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            })
        }
        (None, _) => {
            let msg =
                "mode SIMPLE, MUTUAL and OPTIONAL_MUTUAL need credentialName, or serverCertificate and privateKey";
            cx.err(path, msg);
            None
        }
    }
}

fn tls_version(cx: &mut Cx<'_>, path: &str, text: &str) -> Option<TlsVersion> {
    Some(match text {
        "TLS_AUTO" => TlsVersion::Auto,
        "TLSV1_0" => TlsVersion::V1_0,
        "TLSV1_1" => TlsVersion::V1_1,
        "TLSV1_2" => TlsVersion::V1_2,
        "TLSV1_3" => TlsVersion::V1_3,
        _ => {
            let msg = format!(
                "unknown TLS version {text:?}: use TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2 or TLSV1_3"
            );
            cx.err(path, msg);
            return None;
        }
    })
}
