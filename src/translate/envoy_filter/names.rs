//! Istio's resource names in matches, read as Trellis's.
//!
//! Istio's sidecar has a `virtualInbound` listener, an inline inbound
//! route configuration `inbound|PORT||` with the virtual host
//! `inbound|http|PORT` (PORT: the workload's port), and outbound route
//! configurations named by port. Trellis's sidecar has the `inbound`
//! listener with the inline route configuration and virtual host
//! `inbound`, and one `outbound` route configuration whose virtual hosts
//! are `HOST:PORT`. A match by Istio's name selects Trellis's object.

use crate::registry::Proxy;

/// One proxy's inbound ports: its listener port, its app's port and its
/// service's ports, any of which Istio's inbound names may carry.
pub(super) struct IstioNames {
    inbound_ports: Vec<u32>,
}

impl IstioNames {
    pub(super) fn new(proxy: &Proxy, service_ports: &[u16]) -> Self {
        let mut inbound_ports = vec![u32::from(proxy.inbound_port), u32::from(proxy.app_port)];
        inbound_ports.extend(service_ports.iter().map(|p| u32::from(*p)));
        IstioNames { inbound_ports }
    }

    /// True when `port` names this proxy's inbound side.
    pub(super) fn inbound_port(&self, port: u32) -> bool {
        self.inbound_ports.contains(&port)
    }

    /// True when a match for the listener named `want` selects `actual`.
    pub(super) fn listener(&self, want: &str, actual: &str) -> bool {
        want == actual
            || matches!(
                (want, actual),
                ("virtualInbound", "inbound") | ("virtualOutbound", "outbound")
            )
    }

    /// True when a match for the route configuration named `want`
    /// selects `actual`; the port is a restriction to the virtual hosts
    /// of that port (Istio's outbound configurations are per port).
    pub(super) fn route_configuration(&self, want: &str, actual: &str) -> Option<Option<u32>> {
        if want == actual {
            return Some(None);
        }
        if actual == "inbound" {
            let port = want.strip_prefix("inbound|")?.strip_suffix("||")?;
            return port
                .parse()
                .ok()
                .filter(|p| self.inbound_port(*p))
                .map(|_| None);
        }
        if actual == crate::translate::OUTBOUND_ROUTE {
            return want.parse::<u32>().ok().map(Some);
        }
        None
    }

    /// True when a match for the virtual host named `want` selects the
    /// inbound virtual host or the one named `actual`.
    pub(super) fn virtual_host(&self, want: &str, actual: &str) -> bool {
        if want == actual {
            return true;
        }
        actual == "inbound"
            && (want.strip_prefix("inbound|http|"))
                .and_then(|p| p.parse().ok())
                .is_some_and(|p| self.inbound_port(p))
    }
}

/// The port of an outbound virtual host `HOST:PORT`.
pub(super) fn vhost_port(name: &str) -> Option<u32> {
    name.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}
