//! The addresses a sidecar's listeners take. Envoy refuses every listener
//! of an update that binds an address another listener holds ("has
//! duplicate address", `listener_manager_impl.cc`; an overlapping
//! wildcard fails to bind) and keeps the ones before it, so a `Sidecar`
//! port on the sidecar's own outbound address would take that listener's
//! place and leave the app no way out. As istiod leaves out listeners
//! that clash with its own (`15001`, `15006`), such a port is left out,
//! with a reason the control plane logs, and the other listeners stand.

use crate::config::model::addresses_overlap as overlaps;
use crate::registry::Proxy;

/// Addresses already taken, each with what holds it.
#[derive(Debug, Default)]
pub struct Taken(Vec<(String, u16, String)>);

impl Taken {
    /// The addresses of `proxy`'s own listeners: admin and stats (when
    /// known), outbound and, when `default_inbound`, the inbound one (a Sidecar with
    /// `ingress` replaces it).
    pub fn sidecar(proxy: &Proxy, default_inbound: bool) -> Self {
        let mut taken = Taken::admin(proxy);
        let outbound = "the sidecar's outbound listener";
        taken.hold("127.0.0.1", proxy.outbound_port, outbound);
        if let Some(port) = proxy.stats_port {
            taken.hold(&proxy.inbound_address, port, "the sidecar's stats listener");
        }
        if default_inbound {
            let inbound = "the sidecar's inbound listener";
            taken.hold(&proxy.inbound_address, proxy.inbound_port, inbound);
        }
        taken
    }

    /// The addresses of a gateway proxy's own listeners: admin and stats
    /// (when known).
    pub fn gateway(proxy: &Proxy) -> Self {
        let mut taken = Taken::admin(proxy);
        if let Some(port) = proxy.stats_port {
            taken.hold(&proxy.inbound_address, port, "the proxy's stats listener");
        }
        taken
    }

    /// Envoy's admin interface, when the node said where it is.
    fn admin(proxy: &Proxy) -> Self {
        let mut taken = Taken::default();
        if let Some(port) = proxy.admin_port {
            taken.hold("127.0.0.1", port, "Envoy's admin interface");
        }
        taken
    }

    /// Takes `address:port` for `what`; `Err` names what holds it already.
    pub fn claim(&mut self, address: &str, port: u16, what: &str) -> Result<(), String> {
        let holder = (self.0.iter()).find(|(a, p, _)| *p == port && overlaps(a, address));
        if let Some((a, p, holder)) = holder {
            return Err(format!(
                "{what} on {address}:{port} would take {a}:{p}, which {holder} listens on"
            ));
        }
        self.hold(address, port, what);
        Ok(())
    }

    /// [`Self::claim`] for a listener that forwards to `app`: also `Err`
    /// when it would bind the app's own address, which the app listens on
    /// (or, were the app down, the listener would forward to itself).
    pub fn claim_before(
        &mut self,
        (address, port): (&str, u16),
        app: Option<(&str, u16)>,
        what: &str,
    ) -> Result<(), String> {
        if let Some((ip, p)) = app.filter(|(ip, p)| *p == port && overlaps(ip, address)) {
            return Err(format!(
                "{what} on {address}:{port} would take {ip}:{p}, where its defaultEndpoint listens"
            ));
        }
        self.claim(address, port, what)
    }

    fn hold(&mut self, address: &str, port: u16, what: &str) {
        self.0.push((address.to_string(), port, what.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy() -> Proxy {
        Proxy {
            inbound_address: "10.0.0.5".into(),
            inbound_port: 15006,
            outbound_port: 15001,
            stats_port: Some(15090),
            ..Default::default()
        }
    }

    #[test]
    fn the_sidecars_own_addresses_are_taken() {
        let mut taken = Taken::sidecar(&proxy(), true);
        let why = taken
            .claim("127.0.0.1", 15001, "ingress port web")
            .unwrap_err();
        assert!(why.contains("outbound listener"), "{why}");
        let why = taken
            .claim("10.0.0.5", 15090, "ingress port web")
            .unwrap_err();
        assert!(why.contains("stats listener"), "{why}");
        let why = taken
            .claim("0.0.0.0", 15006, "egress port tcp")
            .unwrap_err();
        assert!(why.contains("inbound listener"), "{why}");
        // Another address, another family's wildcard, another port: free.
        taken.claim("127.0.0.2", 15001, "a").unwrap();
        taken.claim("::", 15001, "b").unwrap();
        taken.claim("127.0.0.1", 8080, "c").unwrap();
    }

    #[test]
    fn a_listener_cannot_take_the_address_it_forwards_to() {
        let mut taken = Taken::sidecar(&proxy(), false);
        let app = Some(("127.0.0.1", 8080));
        let why = (taken.claim_before(("127.0.0.1", 8080), app, "ingress port web")).unwrap_err();
        assert!(why.contains("defaultEndpoint"), "{why}");
        let why = (taken.claim_before(("0.0.0.0", 8080), app, "ingress port web")).unwrap_err();
        assert!(why.contains("127.0.0.1:8080"), "{why}");
        // The workload's own address, the app on loopback: both listen.
        taken.claim_before(("10.0.0.5", 8080), app, "web").unwrap();
        taken
            .claim_before(("10.0.0.5", 9090), None, "unix")
            .unwrap();
    }

    #[test]
    fn with_ingress_the_inbound_port_is_free_and_claims_hold() {
        let mut taken = Taken::sidecar(&proxy(), false);
        taken.claim("10.0.0.5", 15006, "ingress port web").unwrap();
        let why = taken
            .claim("10.0.0.5", 15006, "egress port tcp")
            .unwrap_err();
        assert!(why.contains("ingress port web"), "{why}");
        let why = taken
            .claim("::1", 9000, "x")
            .and(taken.claim("::", 9000, "y"));
        assert!(why.is_err());
    }
}
