//! `Sidecar.egress[].port` and `bind`: a listener of its own for TCP and
//! TLS traffic (Istio's `IstioEgressListener`; sidecars here have no
//! transparent interception, so an app reaches TCP services through it).

use std::net::IpAddr;

use super::super::{join, Cx};
use crate::config::model::{EgressHost, EgressPort, EgressProtocol};
use crate::config::raw::sidecar as raw;

/// The address an egress port binds when `bind` is omitted.
pub(crate) const DEFAULT_BIND: &str = "127.0.0.1";

/// The listener of `l`, `Ok(None)` when it has no `port`; `Err` after an error.
pub(super) fn egress_port(
    cx: &mut Cx<'_>,
    path: &str,
    l: &raw::EgressListener,
    hosts: Vec<EgressHost>,
) -> Result<Option<EgressPort>, ()> {
    let Some(p) = &l.port else {
        if l.bind.is_some() {
            cx.err(&join(path, "bind"), "bind needs a port");
            return Err(());
        }
        return Ok(None);
    };
    let before = cx.diags.len();
    let at = join(path, "port");
    cx.unsupported(&at, "targetPort", &p.target_port);
    let number = cx.port(&join(&at, "number"), p.number);
    let protocol = protocol(cx, &join(&at, "protocol"), &p.protocol);
    let bind = match l.bind.as_deref() {
        None => DEFAULT_BIND.to_string(),
        Some(b) if b.parse::<IpAddr>().is_ok() => b.to_string(),
        Some(b) => {
            let msg = format!("bind {b:?} must be an IP address (unix sockets are not supported)");
            cx.err(&join(path, "bind"), msg);
            String::new()
        }
    };
    match (number, protocol) {
        (Some(number), Some(protocol)) if cx.diags.len() == before => Ok(Some(EgressPort {
            number,
            name: (p.name.clone())
                .unwrap_or_else(|| format!("{}-{number}", p.protocol.to_ascii_lowercase())),
            protocol,
            bind,
            hosts,
        })),
        _ => Err(()),
    }
}

/// TCP-family protocols get a `tcp_proxy`; HTTP ones are served by the
/// sidecar's outbound HTTP listener already.
fn protocol(cx: &mut Cx<'_>, path: &str, text: &str) -> Option<EgressProtocol> {
    match text.to_ascii_uppercase().as_str() {
        "TCP" | "MONGO" | "MYSQL" | "REDIS" | "THRIFT" | "DUBBO" => Some(EgressProtocol::Tcp),
        "TLS" | "HTTPS" => Some(EgressProtocol::Tls),
        "HTTP" | "HTTP2" | "GRPC" => {
            let msg = format!(
                "protocol {text}: HTTP traffic goes through the sidecar's outbound listener; \
                 an egress port takes TCP, TLS, HTTPS, MONGO, MYSQL or REDIS"
            );
            cx.err(path, msg);
            None
        }
        _ => {
            let msg = format!(
                "protocol {text:?}: an egress port takes TCP, TLS, HTTPS, MONGO, MYSQL or REDIS"
            );
            cx.err(path, msg);
            None
        }
    }
}
