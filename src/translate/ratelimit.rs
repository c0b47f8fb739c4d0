//! `RateLimit` → Envoy: one rate-limit HTTP filter per rule, before the
//! router of the target's inbound (or gateway) connection manager.
//!
//! - `local`: `envoy.filters.http.local_ratelimit` with one descriptor
//!   whose token bucket holds `requests + burst` tokens and gains
//!   `requests` every `unit`. No default bucket, so requests the rule does
//!   not match pass untouched.
//! - `global`: `envoy.filters.http.ratelimit` asks the rate-limit service
//!   (`trellis ratelimit`, `envoy.service.ratelimit.v3.RateLimitService`)
//!   about the same descriptor over the cluster [`service_cluster_name`],
//!   mTLS with the mesh certificates; it fails open
//!   (`failure_mode_deny: false`) when the service cannot answer.
//!
//! Both read the descriptor from rate-limit actions ([`actions`]): the
//! resource and rule names, then the match (path, method, headers as one
//! header match; the source as a CEL expression on the peer certificate).
//! A shadow rule is enabled on every request and enforced on none, so it
//! counts without refusing. The `x-ratelimit-*` headers follow draft 03.

mod actions;
mod filters;

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;

use super::Shared;
use crate::config::model::{RateLimit, RateLimitMode, RateLimitService, RateLimitTarget};
use crate::registry::Proxy;

pub use actions::{descriptor, DOMAIN};

/// The rules in force on `proxy`: each `RateLimit` whose target it is,
/// with its rules, in namespace and name order.
pub fn in_force<'a>(shared: &'a Shared, proxy: &Proxy) -> Vec<&'a Arc<RateLimit>> {
    (shared.rate_limits.iter())
        .filter(|rl| targets(shared, &rl.target, proxy))
        .collect()
}

fn targets(shared: &Shared, target: &RateLimitTarget, proxy: &Proxy) -> bool {
    match (target, &proxy.gateway) {
        (RateLimitTarget::Gateway(g), Some(_)) => {
            (shared.gateways.iter()).any(|gw| gw.qualified() == *g && gw.selects(&proxy.labels))
        }
        (RateLimitTarget::Service { host, subset }, None) => {
            if proxy.host() != *host {
                return false;
            }
            let Some(name) = subset else { return true };
            let dr = shared.destination_rules.get(host);
            let subset = dr.and_then(|dr| dr.subsets.iter().find(|s| s.name == *name));
            subset.is_some_and(|s| s.labels.iter().all(|(k, v)| proxy.labels.get(k) == Some(v)))
        }
        _ => false,
    }
}

/// The rate-limit filters of `proxy`'s inbound (or gateway) HTTP
/// connection manager, to go right before the router.
pub fn http_filters(shared: &Shared, proxy: &Proxy) -> Vec<HttpFilter> {
    let td = &shared.mesh.trust_domain;
    let mut out = Vec::new();
    for rl in in_force(shared, proxy) {
        for rule in &rl.rules {
            out.push(match &rl.mode {
                RateLimitMode::Local => filters::local(rl, rule, td),
                RateLimitMode::Global(svc) => filters::global(rl, rule, td, svc),
            });
        }
    }
    out
}

/// `ratelimit|HOST|PORT`: the cluster of a rate-limit service. Not an
/// `outbound|` name, so every sidecar scope keeps it.
pub fn service_cluster_name(svc: &RateLimitService) -> String {
    format!("ratelimit|{}|{}", svc.host, svc.port)
}

/// The clusters of every rate-limit service that a global `RateLimit`
/// names: HTTP/2 (gRPC), mesh mTLS with the service's SPIFFE ID as SAN
/// (any identity of the trust domain when none is written).
pub fn service_clusters(rate_limits: &[Arc<RateLimit>], trust_domain: &str) -> Vec<XdsCluster> {
    let mut services: Vec<&RateLimitService> = (rate_limits.iter())
        .filter_map(|rl| match &rl.mode {
            RateLimitMode::Global(s) => Some(s),
            RateLimitMode::Local => None,
        })
        .collect();
    services.sort();
    services.dedup();
    services
        .into_iter()
        .map(|s| service_cluster(s, trust_domain))
        .collect()
}

fn service_cluster(svc: &RateLimitService, trust_domain: &str) -> XdsCluster {
    let name = service_cluster_name(svc);
    let ids: Vec<String> = (svc.identity.iter())
        .map(|(ns, sa)| format!("spiffe://{trust_domain}/ns/{ns}/sa/{sa}"))
        .collect();
    let mut c = super::clusters::single_host(name, &svc.host, svc.port, true);
    c.transport_socket = Some(super::tls::istio_mutual(&ids, trust_domain, ""));
    c
}

#[cfg(test)]
mod tests;
