//! `Sidecar.ingress[]`: the ports a sidecar serves (Istio's
//! `IstioIngressListener`). Trellis sidecars have no interception, so each
//! entry is a listener of its own on `bind:port.number`, and the services
//! that select the workload reach it there (the port is the endpoint port:
//! Istio's `targetPort`).

use super::{ConnectionPool, Protocol, ServerTls};

/// Where an ingress listener forwards connections (`defaultEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IngressEndpoint {
    /// `127.0.0.1:PORT` or `[::1]:PORT`: the loopback address given.
    Loopback {
        /// `127.0.0.1` or `::1`.
        ip: String,
        /// The app's port.
        port: u16,
    },
    /// `0.0.0.0:PORT` or `[::]:PORT`: the workload's own address (the
    /// sidecar's `inbound_address`, Istio's instance IP) on `PORT`.
    Instance(u16),
    /// `unix://PATH` (`unix://@NAME` for an abstract socket): the app's
    /// Unix domain socket.
    Unix(String),
}

/// One `ingress[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPort {
    /// `port.number`: the listener's port and the port the workload's
    /// service endpoints carry (a service port reaches it when its
    /// `targetPort`, else its number, equals it).
    pub number: u16,
    /// `port.name` (default `PROTOCOL-NUMBER`, lowercase).
    pub name: String,
    /// What the listener serves: HTTP protocols through the HTTP
    /// connection manager, `Tcp`/`Tls` through `tcp_proxy`. `HTTPS` with
    /// `tls` is `Http` (TLS ends here); without, `Tls` (the app ends it).
    pub protocol: Protocol,
    /// `bind`; `None`: the sidecar's inbound address.
    pub bind: Option<String>,
    /// `defaultEndpoint`.
    pub endpoint: IngressEndpoint,
    /// `tls`: server TLS (SIMPLE or MUTUAL) instead of the mesh mTLS.
    pub tls: Option<ServerTls>,
    /// `connectionPool`, else the Sidecar's `inboundConnectionPool`.
    pub connection_pool: Option<ConnectionPool>,
    /// Line and column of `tls.credentialName`, for errors about the
    /// credential found later (`trellis validate --credentials-dir`).
    pub credential_pos: Option<(usize, usize)>,
}

impl IngressPort {
    /// True when the listener binds every address (`0.0.0.0`, `::`).
    pub fn binds_any(&self) -> bool {
        matches!(self.bind.as_deref(), Some("0.0.0.0" | "::"))
    }

    /// The address the listener binds on a sidecar whose inbound address
    /// is `inbound_address`.
    pub fn bind_on<'a>(&'a self, inbound_address: &'a str) -> &'a str {
        self.bind.as_deref().unwrap_or(inbound_address)
    }

    /// The address `defaultEndpoint` names on a sidecar whose inbound
    /// address is `inbound_address`; `None` for a Unix socket.
    pub fn app_address<'a>(&'a self, inbound_address: &'a str) -> Option<(&'a str, u16)> {
        match &self.endpoint {
            IngressEndpoint::Loopback { ip, port } => Some((ip.as_str(), *port)),
            IngressEndpoint::Instance(port) => Some((inbound_address, *port)),
            IngressEndpoint::Unix(_) => None,
        }
    }

    /// True when the listener binds the address its own `defaultEndpoint`
    /// names on every sidecar, whatever its inbound address: the app
    /// listens there, and without interception the two cannot share it.
    pub fn always_binds_its_app(&self) -> bool {
        match (&self.endpoint, self.bind.as_deref()) {
            (IngressEndpoint::Instance(port), None) => *port == self.number,
            (IngressEndpoint::Loopback { ip, port }, Some(bind)) => {
                *port == self.number && addresses_overlap(bind, ip)
            }
            _ => false,
        }
    }

    /// The address other sidecars reach the listener on: `bind` unless it
    /// is a wildcard, else the sidecar's inbound address.
    pub fn endpoint_address<'a>(&'a self, inbound_address: &'a str) -> &'a str {
        match self.bind.as_deref() {
            Some(b) if !self.binds_any() => b,
            _ => inbound_address,
        }
    }
}

/// Two of a proxy's sockets on one address: the second could not bind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{first} ({first_at}) and {second} ({second_at}) cannot both listen")]
pub struct SharedSocket {
    /// What names one (a flag, a metadata key).
    pub first: &'static str,
    /// Its `ADDRESS:PORT`.
    pub first_at: String,
    /// What names the other.
    pub second: &'static str,
    /// Its `ADDRESS:PORT` (the same, or one a wildcard covers).
    pub second_at: String,
}

/// The first two of `sockets` (`(name, address, port)`, port 0 meaning
/// none) that cannot both listen.
pub fn shared_socket(sockets: &[(&'static str, &str, u16)]) -> Result<(), SharedSocket> {
    for (i, &(first, a, port)) in sockets.iter().enumerate() {
        let clash = (sockets[i + 1..].iter())
            .find(|&&(_, b, p)| p == port && port != 0 && addresses_overlap(a, b));
        if let Some(&(second, b, _)) = clash {
            return Err(SharedSocket {
                first,
                first_at: format!("{a}:{port}"),
                second,
                second_at: format!("{b}:{port}"),
            });
        }
    }
    Ok(())
}

/// True when listening on `a` and on `b` at one port cannot both succeed:
/// the same address, or a wildcard of the other's family.
pub fn addresses_overlap(a: &str, b: &str) -> bool {
    use std::net::IpAddr;
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => {
            a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
        }
        _ => a == b,
    }
}
