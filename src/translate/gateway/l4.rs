//! TCP and TLS servers of a gateway: `tcp_proxy` chains from the `tcp`
//! and `tls` rules of the VirtualServices bound to their Gateways. A
//! PASSTHROUGH server routes the client's TLS by SNI untouched; a SIMPLE,
//! MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL one terminates TLS and proxies
//! the plain bytes with the `tcp` rules (Istio:
//! `buildGatewayNetworkFiltersFromTCPRoutes`); an AUTO_PASSTHROUGH one
//! routes by SNI to mesh services without any rule (`sni`). Every chain
//! starts with the network RBAC filters of the AuthorizationPolicies that
//! select the gateway.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch};

use super::super::l4::{self as rules, Place};
use super::{server_names, tls, GatewayResources};
use crate::config::model::{host_matches, Gateway, GatewayServer, ServerTlsMode, VirtualService};
use crate::registry::Proxy;
use crate::translate::Shared;

/// The filter chains of one TCP or TLS port; a server that routes nothing
/// adds none, one whose certificate is missing is recorded as skipped.
pub(super) fn chains(
    shared: &Shared,
    proxy: &Proxy,
    (port, tls_cx): (u16, &tls::Ctx<'_>),
    servers: &[&(&Gateway, usize, &GatewayServer)],
    out: &mut GatewayResources,
) -> Vec<FilterChain> {
    let mut chains: Vec<FilterChain> = Vec::new();
    for (gw, i, s) in servers.iter().map(|s| **s) {
        let qualified = gw.qualified();
        let place = Place {
            port,
            labels: &proxy.labels,
            namespace: &proxy.namespace,
            gateway: Some(&qualified),
        };
        if super::sni::is_auto_passthrough(s) {
            let scope = crate::translate::scope::Scope::of(shared, proxy);
            let profile = shared.rule_variants.profile(proxy);
            let exposed = super::sni::exposed(shared, scope.as_ref(), s, &profile);
            for c in &exposed {
                if !out.clusters.iter().any(|x| x.name == c.cluster.name) {
                    out.clusters.push(c.cluster.clone());
                }
            }
            chains.extend(super::sni::chains(&exposed));
            continue;
        }
        let vss = bound(&shared.gateway_virtual_services, &qualified);
        let terminate = (s.tls.as_ref()).filter(|t| t.mode != Some(ServerTlsMode::Passthrough));
        let Some(t) = terminate else {
            let sni = s.tls.is_some();
            let found = rules::chains(&vss, &place, sni, &shared.service_ports);
            chains.extend(found.into_iter().filter_map(|c| within_hosts(c, s)));
            continue;
        };
        let built = tls::downstream(t, &gw.origin.namespace, tls_cx, false);
        let (socket, secrets) = match built {
            Ok(b) => b,
            Err(why) => {
                out.skipped.push((qualified.clone(), i, why));
                continue;
            }
        };
        let tcp = rules::chains(&vss, &place, false, &shared.service_ports);
        for mut c in tcp {
            let names = server_names(s);
            c.filter_chain_match = (!names.is_empty()).then(|| FilterChainMatch {
                server_names: names,
                ..Default::default()
            });
            c.transport_socket = Some(socket.clone());
            chains.push(c);
        }
        for secret in secrets {
            if !out.secrets.iter().any(|x| x.name == secret.name) {
                out.secrets.push(secret);
            }
        }
    }
    let mut chains = distinct(chains);
    // The AuthorizationPolicies selecting the gateway guard every
    // connection (`ports` name the server port); logs as on its HTTP
    // servers (the gateway is the client of what it proxies to).
    let rbac = crate::translate::rbac::network_filters(&shared.authz, proxy, port);
    let logs = crate::translate::telemetry::tcp_access_logs(
        shared,
        proxy,
        crate::translate::telemetry::Direction::Outbound,
    );
    rules::guard_and_log(&mut chains, &rbac, &logs);
    chains
}

/// A chain keeps only the SNI names the server's hosts admit (Istio
/// serves a passthrough server's hosts only); one left with none is dropped.
fn within_hosts(mut c: FilterChain, s: &GatewayServer) -> Option<FilterChain> {
    let Some(m) = c.filter_chain_match.as_mut() else {
        return Some(c);
    };
    let admitted = |name: &String| {
        (s.hosts.iter()).any(|h| host_matches(&h.host, name) || host_matches(name, &h.host))
    };
    m.server_names.retain(admitted);
    (!m.server_names.is_empty()).then_some(c)
}

/// The VirtualServices bound to `gateway`.
fn bound<'a>(all: &'a [std::sync::Arc<VirtualService>], gateway: &str) -> Vec<&'a VirtualService> {
    (all.iter())
        .filter(|vs| vs.binds_gateway(gateway))
        .map(|vs| vs.as_ref())
        .collect()
}

/// Envoy refuses two chains with the same match: the first keeps it.
fn distinct(chains: Vec<FilterChain>) -> Vec<FilterChain> {
    let mut seen = BTreeSet::new();
    chains
        .into_iter()
        .filter(|c| {
            let key = (c.filter_chain_match.as_ref())
                .map(|m| m.server_names.clone())
                .unwrap_or_default();
            seen.insert(key)
        })
        .collect()
}
