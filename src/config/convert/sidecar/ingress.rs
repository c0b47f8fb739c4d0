//! `Sidecar.ingress[]` → [`IngressPort`] (Istio's `IstioIngressListener`,
//! validated as `pkg/config/validation` `ValidateSidecar` does: a port and
//! a protocol, `defaultEndpoint` in one of its forms, no Unix `bind`, TLS
//! modes SIMPLE and MUTUAL only). Trellis sidecars have no interception,
//! so `captureMode` can only say what already happens.

use std::net::{IpAddr, SocketAddr};

use super::super::{destination_rule, gateway, join, Cx};
use crate::config::model::{
    ConnectionPool, GatewayProtocol, IngressEndpoint, IngressPort, Protocol, ServerTls,
    ServerTlsMode,
};
use crate::config::raw::{destination_rule as raw_dr, sidecar as raw};

/// Every ingress entry, `Err` after an error. A port number may appear
/// once: each entry is a listener, and the service endpoints name it.
pub(super) fn ingress_ports(
    cx: &mut Cx<'_>,
    sc: &raw::Sidecar,
    pool: Option<&ConnectionPool>,
) -> Result<Vec<IngressPort>, ()> {
    let before = cx.diags.len();
    let mut out: Vec<IngressPort> = Vec::new();
    for (i, l) in sc.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        let Some(p) = ingress_port(cx, &path, l, pool) else {
            continue;
        };
        if p.always_binds_its_app() {
            let msg = format!(
                "the listener would bind the address its defaultEndpoint names (port {}), where the app listens: without interception the two cannot share it; give the ingress port another number and make it the service's targetPort",
                p.number
            );
            cx.err(&format!("{path}.defaultEndpoint"), msg);
            continue;
        }
        if out.iter().any(|o| o.number == p.number) {
            let msg = format!("ingress port {} is declared twice", p.number);
            cx.err(&format!("{path}.port.number"), msg);
            continue;
        }
        out.push(p);
    }
    if cx.diags.len() > before {
        return Err(());
    }
    Ok(out)
}

/// The inbound connection pool: limits only (the inbound cluster's
/// protocol is the port's, so `h2UpgradePolicy` has nothing to choose).
pub(super) fn pool(cx: &mut Cx<'_>, path: &str, cp: &raw_dr::ConnectionPool) -> ConnectionPool {
    let out = destination_rule::connection_pool(cx, path, cp);
    if out.h2_upgrade.is_some() {
        let msg = "h2UpgradePolicy does not apply to an inbound cluster: it speaks the port's protocol (HTTP2 or GRPC for HTTP/2)";
        cx.err(&join(path, "http.h2UpgradePolicy"), msg);
    }
    out
}

fn ingress_port(
    cx: &mut Cx<'_>,
    path: &str,
    l: &raw::IngressListener,
    default_pool: Option<&ConnectionPool>,
) -> Option<IngressPort> {
    capture_mode(cx, path, l.capture_mode.as_deref());
    let bind = bind(cx, path, l.bind.as_deref());
    let Some(p) = &l.port else {
        cx.err(
            path,
            "an ingress listener needs a port (port.number, port.protocol)",
        );
        return None;
    };
    let at = join(path, "port");
    cx.unsupported(&at, "targetPort", &p.target_port);
    let number = cx.port(&join(&at, "number"), p.number);
    let tls = (l.tls.as_ref()).and_then(|t| tls(cx, &join(path, "tls"), t));
    let protocol = protocol(cx, &join(&at, "protocol"), &p.protocol, l.tls.is_some());
    let endpoint = endpoint(cx, path, l.default_endpoint.as_deref());
    let own_pool =
        (l.connection_pool.as_ref()).map(|cp| pool(cx, &join(path, "connectionPool"), cp));
    let number = number?;
    Some(IngressPort {
        number,
        name: (p.name.clone())
            .unwrap_or_else(|| format!("{}-{number}", p.protocol.to_ascii_lowercase())),
        protocol: protocol?,
        bind: bind?,
        endpoint: endpoint?,
        tls: match (&l.tls, tls) {
            (Some(_), None) => return None,
            (_, t) => t,
        },
        connection_pool: own_pool.or_else(|| default_pool.cloned()),
        credential_pos: (l.tls.as_ref().and_then(|t| t.credential_name.as_ref()))
            .map(|_| cx.doc.positions.lookup(&join(path, "tls.credentialName"))),
    })
}

/// `DEFAULT` and `NONE` both describe a Trellis sidecar: connections
/// arrive at `bind:port` because the caller connects there, nothing is
/// redirected. `IPTABLES` asks for interception, which there is none of.
fn capture_mode(cx: &mut Cx<'_>, path: &str, mode: Option<&str>) {
    let at = join(path, "captureMode");
    match mode {
        None | Some("DEFAULT" | "NONE") => {}
        Some("IPTABLES") => cx.err(
            &at,
            "captureMode IPTABLES redirects traffic with iptables; Trellis sidecars have no interception: callers reach the listener on bind:port (use DEFAULT or NONE)",
        ),
        Some(other) => {
            let msg = format!("unknown captureMode {other:?}: use DEFAULT or NONE");
            cx.err(&at, msg);
        }
    }
}

/// `bind`: an IP address; `Some(None)` when omitted (the sidecar's
/// inbound address), `None` after an error.
fn bind(cx: &mut Cx<'_>, path: &str, text: Option<&str>) -> Option<Option<String>> {
    match text {
        None => Some(None),
        Some(b) if b.parse::<IpAddr>().is_ok() => Some(Some(b.to_string())),
        Some(b) => {
            let msg = format!(
                "bind {b:?} must be an IP address (Istio allows no Unix socket here either)"
            );
            cx.err(&join(path, "bind"), msg);
            None
        }
    }
}

/// The listener's protocol; `tls` tells `HTTPS` ended here (served as
/// HTTP) from `HTTPS` the app ends (opaque, like `TLS`).
fn protocol(cx: &mut Cx<'_>, path: &str, text: &str, tls: bool) -> Option<Protocol> {
    Some(match text.to_ascii_uppercase().as_str() {
        "HTTP" => Protocol::Http,
        "HTTP2" => Protocol::Http2,
        "GRPC" | "GRPC-WEB" => Protocol::Grpc,
        "HTTPS" if tls => Protocol::Http,
        "HTTPS" | "TLS" => Protocol::Tls,
        "TCP" | "MONGO" | "MYSQL" | "REDIS" | "THRIFT" | "DUBBO" => Protocol::Tcp,
        "" => {
            cx.err(
                path,
                "port.protocol is required (HTTP, HTTP2, GRPC, HTTPS, TLS or TCP)",
            );
            return None;
        }
        _ => {
            let msg =
                format!("unknown protocol {text:?}: use HTTP, HTTP2, GRPC, HTTPS, TLS or TCP");
            cx.err(path, msg);
            return None;
        }
    })
}

/// `defaultEndpoint`: Istio's forms `127.0.0.1:PORT`, `[::1]:PORT`,
/// `0.0.0.0:PORT`, `[::]:PORT` and `unix://PATH`. Required: without
/// interception there is no original destination to forward to.
fn endpoint(cx: &mut Cx<'_>, path: &str, text: Option<&str>) -> Option<IngressEndpoint> {
    let at = join(path, "defaultEndpoint");
    let Some(text) = text else {
        let msg = "defaultEndpoint is required: Trellis sidecars have no interception, so there is no original destination to forward to (write 127.0.0.1:APP_PORT, 0.0.0.0:APP_PORT or unix:///PATH)";
        cx.err(path, msg);
        return None;
    };
    match parse_endpoint(text) {
        Ok(e) => Some(e),
        Err(msg) => {
            cx.err(&at, msg);
            None
        }
    }
}

fn parse_endpoint(text: &str) -> Result<IngressEndpoint, String> {
    if let Some(path) = text.strip_prefix("unix://") {
        let ok = path.starts_with('/') || (path.starts_with('@') && path.len() > 1);
        return match ok {
            true => Ok(IngressEndpoint::Unix(path.to_string())),
            false => Err(format!(
                "defaultEndpoint {text:?}: a Unix socket is unix:///ABSOLUTE/PATH or unix://@ABSTRACT_NAME"
            )),
        };
    }
    let bad = || {
        format!("defaultEndpoint {text:?} must be 127.0.0.1:PORT, [::1]:PORT, 0.0.0.0:PORT, [::]:PORT or unix:///PATH (other addresses are not the workload's)")
    };
    let addr: SocketAddr = text.parse().map_err(|_| bad())?;
    let port = addr.port();
    if port == 0 {
        return Err(format!("defaultEndpoint {text:?}: port 0 is not a port"));
    }
    match addr.ip() {
        ip if ip.is_loopback() && ip.to_string() != "127.0.0.1" && ip.to_string() != "::1" => {
            Err(bad())
        }
        ip if ip.is_loopback() => Ok(IngressEndpoint::Loopback {
            ip: ip.to_string(),
            port,
        }),
        ip if ip.is_unspecified() => Ok(IngressEndpoint::Instance(port)),
        _ => Err(bad()),
    }
}

/// `tls`: the gateway's server TLS, limited to the modes Istio allows on
/// a sidecar (SIMPLE, MUTUAL), with `mode` required as Istio's zero value
/// (PASSTHROUGH) is not one of them.
fn tls(
    cx: &mut Cx<'_>,
    path: &str,
    t: &crate::config::raw::gateway::ServerTls,
) -> Option<ServerTls> {
    let at = join(path, "mode");
    match t.mode.as_deref() {
        Some("SIMPLE" | "MUTUAL") => {}
        None => {
            cx.err(path, "tls.mode is required on a sidecar: SIMPLE or MUTUAL");
            return None;
        }
        Some(m) => {
            let msg = format!("tls mode {m:?} on a sidecar ingress port: Istio and Trellis support SIMPLE and MUTUAL here (mesh mTLS comes from PeerAuthentication)");
            cx.err(&at, msg);
            return None;
        }
    }
    if t.https_redirect {
        let msg = "httpsRedirect applies to a gateway's plain-text server; an ingress port with tls serves TLS only";
        cx.err(&join(path, "httpsRedirect"), msg);
        return None;
    }
    let out = gateway::server_tls(cx, path, t, GatewayProtocol::Https)?;
    match out.mode {
        Some(ServerTlsMode::Simple | ServerTlsMode::Mutual) if out.source.is_some() => Some(out),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
