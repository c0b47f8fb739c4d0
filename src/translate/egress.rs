//! A sidecar's egress port listeners (`Sidecar.egress[].port`): sidecars
//! have no transparent interception, so a TCP or TLS client reaches a
//! service through `bind:port`, where the `tcp`/`tls` rules of the
//! VirtualServices of that listener's hosts pick the destination.

use envoy_types::pb::envoy::config::core::v3::{CidrRange, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::addresses::Taken;
use super::l4::{self, Place};
use super::telemetry::Direction;
use super::util::socket;
use super::{scope, Shared};
use crate::config::model::{
    Cidr, Destination, EgressPort, EgressProtocol, Host, VirtualService, WeightedDestination,
};
use crate::registry::Proxy;

/// A proxy's egress port listeners, and the ports left out.
#[derive(Default)]
pub struct Built {
    /// One listener per port where something routes.
    pub listeners: Vec<Listener>,
    /// Ports on an address already taken: `(Sidecar, port index, why)`.
    pub skipped: Vec<(String, usize, String)>,
}

/// The proxy's egress port listeners, named `BIND_PORT` as istiod names
/// them; a port where nothing routes (no rule applies and its hosts do
/// not name exactly one service with that port) gets no listener, and
/// one on an address `taken` holds is left out ([`Taken`]).
pub fn listeners(shared: &Shared, proxy: &Proxy, taken: &mut Taken) -> Built {
    let mut out = Built::default();
    let Some(scope) = scope::scope_of(shared, proxy) else {
        return out;
    };
    for (i, port) in scope.ports.iter().enumerate() {
        let Some(listener) = listener(shared, proxy, port) else {
            continue;
        };
        let what = format!("egress port {} ({})", port.name, port.number);
        match taken.claim(&port.bind, port.number, &what) {
            Ok(()) => out.listeners.push(listener),
            Err(why) => {
                let origin = &scope.origin;
                let name = format!("Sidecar {}/{}", origin.namespace, origin.name);
                out.skipped.push((name, i, why));
            }
        }
    }
    out
}

fn listener(shared: &Shared, proxy: &Proxy, port: &EgressPort) -> Option<Listener> {
    let admitted = |h: &Host| admitted(shared, port, h, &proxy.namespace);
    let vss = virtual_services(shared, &admitted);
    let place = Place {
        port: port.number,
        labels: &proxy.labels,
        namespace: &proxy.namespace,
        gateway: None,
    };
    let sni = port.protocol == EgressProtocol::Tls;
    let mut chains = address_chains(shared, port, &admitted);
    chains.extend(l4::chains(&vss, &place, sni, &shared.service_ports));
    if !chains.iter().any(|c| c.filter_chain_match.is_none()) {
        chains.extend(default_chain(shared, port, &admitted));
    }
    if chains.is_empty() {
        return None;
    }
    // The client side: AuthorizationPolicy applies where the server is.
    let logs = super::telemetry::tcp_access_logs(shared, proxy, Direction::Outbound);
    l4::guard_and_log(&mut chains, &[], &logs);
    let listener_filters = match sni {
        true => vec![super::inbound::tls_inspector()],
        false => Vec::new(),
    };
    Some(Listener {
        name: format!("{}_{}", port.bind, port.number),
        address: Some(socket(&port.bind, port.number)),
        listener_filters,
        filter_chains: chains,
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    })
}

/// The mesh VirtualServices with a host among the port's hosts, each once,
/// by namespace and name (the order rules are tried in).
fn virtual_services<'a>(
    shared: &'a Shared,
    admitted: &dyn Fn(&Host) -> bool,
) -> Vec<&'a VirtualService> {
    let mut out: Vec<&VirtualService> = Vec::new();
    for (host, vs) in &shared.virtual_services {
        if admitted(host) && !out.iter().any(|o| std::ptr::eq(*o, vs.as_ref())) {
            out.push(vs);
        }
    }
    out.sort_by(|a, b| {
        let key = |v: &VirtualService| (v.origin.namespace.clone(), v.origin.name.clone());
        key(a).cmp(&key(b))
    });
    out
}

/// The port's hosts that have the port (and are not dynamic forward
/// proxies, which need a request to name their destination).
fn port_services<'a>(
    shared: &'a Shared,
    port: &'a EgressPort,
    admitted: &'a dyn Fn(&Host) -> bool,
) -> impl Iterator<Item = &'a Host> + 'a {
    (shared.service_ports.iter())
        .filter(|(h, ps)| ps.iter().any(|p| p.number == port.number) && admitted(h))
        .map(|(h, _)| h)
}

/// One chain per service of the port with `addresses`, matching the
/// connection's destination address (`FilterChainMatch`
/// `prefix_ranges`, the address the app connected to: the listener must
/// be reachable there, e.g. `bind: 0.0.0.0` for loopback addresses). An
/// address claimed by two services goes to the first by host.
fn address_chains(
    shared: &Shared,
    port: &EgressPort,
    admitted: &dyn Fn(&Host) -> bool,
) -> Vec<FilterChain> {
    let mut used: Vec<Cidr> = Vec::new();
    let mut out = Vec::new();
    for host in port_services(shared, port, admitted) {
        let Some(addresses) = shared.service_addresses.get(host) else {
            continue;
        };
        let ranges: Vec<CidrRange> = (addresses.iter())
            .filter(|a| !used.contains(a))
            .map(cidr_range)
            .collect();
        used.extend(addresses);
        if ranges.is_empty() {
            continue;
        }
        let mut chain = l4::chain(
            None,
            &to(host, port.number),
            port.number,
            &shared.service_ports,
        );
        chain.filter_chain_match = Some(FilterChainMatch {
            prefix_ranges: ranges,
            ..Default::default()
        });
        out.push(chain);
    }
    out
}

fn cidr_range(c: &Cidr) -> CidrRange {
    CidrRange {
        address_prefix: c.addr.to_string(),
        prefix_len: Some(UInt32Value {
            value: u32::from(c.prefix_len),
        }),
    }
}

/// Without a rule, the one service of the port's hosts that has that
/// port and no `addresses` takes every other connection; with none or
/// several it is ambiguous.
fn default_chain(
    shared: &Shared,
    port: &EgressPort,
    admitted: &dyn Fn(&Host) -> bool,
) -> Option<FilterChain> {
    let mut hosts = port_services(shared, port, admitted)
        .filter(|h| !shared.service_addresses.contains_key(*h));
    let host = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    let route = to(host, port.number);
    Some(l4::chain(None, &route, port.number, &shared.service_ports))
}

fn to(host: &Host, port: u16) -> [WeightedDestination; 1] {
    [WeightedDestination {
        destination: Destination {
            host: host.clone(),
            subset: None,
            port: Some(port),
        },
        weight: 100,
        headers: Default::default(),
    }]
}

/// A service of the port's hosts, exported to the proxy's namespace, and
/// not a dynamic forward proxy (`tcp_proxy` has no request to name the
/// destination).
fn admitted(shared: &Shared, port: &EgressPort, host: &Host, namespace: &str) -> bool {
    let exported = (shared.service_exports.get(host)).is_none_or(|e| e.admits(namespace));
    let dynamic = shared.dynamic_hosts.contains(host);
    exported
        && !dynamic
        && (shared.service_namespaces.get(host))
            .is_some_and(|ns| port.hosts.iter().any(|e| e.admits(host, ns)))
}

#[cfg(test)]
mod tests;
