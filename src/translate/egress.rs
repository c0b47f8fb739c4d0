//! A sidecar's egress port listeners (`Sidecar.egress[].port`): sidecars
//! have no transparent interception, so a TCP or TLS client reaches a
//! service through `bind:port`, where the `tcp`/`tls` rules of the
//! VirtualServices of that listener's hosts pick the destination.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};

use super::l4::{self, Place};
use super::telemetry::Direction;
use super::util::socket;
use super::{scope, Shared};
use crate::config::model::{
    Destination, EgressPort, EgressProtocol, Host, VirtualService, WeightedDestination,
};
use crate::registry::Proxy;

/// The proxy's egress port listeners, named `BIND_PORT` as istiod names
/// them; a port where nothing routes (no rule applies and its hosts do
/// not name exactly one service with that port) gets no listener.
pub fn listeners(shared: &Shared, proxy: &Proxy) -> Vec<Listener> {
    let Some(scope) = scope::scope_of(shared, proxy) else {
        return Vec::new();
    };
    (scope.ports.iter())
        .filter_map(|p| listener(shared, proxy, p))
        .collect()
}

fn listener(shared: &Shared, proxy: &Proxy, port: &EgressPort) -> Option<Listener> {
    let vss = virtual_services(shared, port);
    let place = Place {
        port: port.number,
        labels: &proxy.labels,
        namespace: &proxy.namespace,
        gateway: None,
    };
    let sni = port.protocol == EgressProtocol::Tls;
    let mut chains = l4::chains(&vss, &place, sni, &shared.service_ports);
    if !chains.iter().any(|c| c.filter_chain_match.is_none()) {
        chains.extend(default_chain(shared, port));
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
fn virtual_services<'a>(shared: &'a Shared, port: &EgressPort) -> Vec<&'a VirtualService> {
    let mut out: Vec<&VirtualService> = Vec::new();
    for (host, vs) in &shared.virtual_services {
        if admitted(shared, port, host) && !out.iter().any(|o| std::ptr::eq(*o, vs.as_ref())) {
            out.push(vs);
        }
    }
    out.sort_by(|a, b| {
        let key = |v: &VirtualService| (v.origin.namespace.clone(), v.origin.name.clone());
        key(a).cmp(&key(b))
    });
    out
}

/// Without a rule, the one service of the port's hosts that has that
/// port takes every connection; with none or several it is ambiguous.
fn default_chain(shared: &Shared, port: &EgressPort) -> Option<FilterChain> {
    let mut hosts = (shared.service_ports.iter())
        .filter(|(h, ps)| ps.iter().any(|p| p.number == port.number) && admitted(shared, port, h));
    let (host, _) = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    let route = [WeightedDestination {
        destination: Destination {
            host: host.clone(),
            subset: None,
            port: Some(port.number),
        },
        weight: 100,
        headers: Default::default(),
    }];
    Some(l4::chain(None, &route, port.number, &shared.service_ports))
}

fn admitted(shared: &Shared, port: &EgressPort, host: &Host) -> bool {
    (shared.service_namespaces.get(host))
        .is_some_and(|ns| port.hosts.iter().any(|e| e.admits(host, ns)))
}

#[cfg(test)]
mod tests;
