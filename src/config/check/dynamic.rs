//! Load balancing on a service that forwards each request to the host it
//! names (`Service::forwards_dynamically`): its clusters are Envoy dynamic
//! forward proxies, which pick the host themselves (`CLUSTER_PROVIDED`),
//! so a written balancer, locality setting or slow start would do
//! nothing. Each is an error rather than a field silently ignored.

use std::collections::BTreeMap;

use super::Claimed;
use crate::config::diag::Diagnostic;
use crate::config::model::{DestinationRule, Host, Service, TrafficPolicy};

/// Errors for balancing settings on rules of dynamically forwarded hosts.
pub(super) fn balancing(
    rules: &Claimed<DestinationRule>,
    services: &BTreeMap<Host, Service>,
    diags: &mut Vec<Diagnostic>,
) {
    for (host, (doc, dr)) in rules {
        let Some(service) = services.get(host).filter(|s| s.forwards_dynamically()) else {
            continue;
        };
        // A DNS service's locality setting has its own error (`locality`).
        for path in written(dr, !service.resolution.is_dns()) {
            let msg = format!("{path} has no effect on {host}: with resolution NONE, or a wildcard host without endpoints, each request goes to the host it names through a dynamic forward proxy cluster, which picks the host itself; remove it, or give the ServiceEntry endpoints (STATIC or DNS)");
            diags.push(doc.diagnostic(&path, msg));
        }
    }
}

/// Paths of the balancing settings `dr` writes (`localityLbSetting` too
/// with `locality`).
fn written(dr: &DestinationRule, locality: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut visit = |policy: Option<&TrafficPolicy>, base: String| {
        let Some(p) = policy else { return };
        let lb =
            |p: &TrafficPolicy| p.load_balancer.is_some() || (locality && p.locality_lb.is_some());
        let balances = |p: &TrafficPolicy| lb(p) || p.warmup.is_some();
        if lb(p) {
            out.push(format!("{base}.loadBalancer"));
        }
        if p.warmup.is_some() {
            out.push(format!("{base}.warmup"));
        }
        if p.port_level.values().any(balances) {
            out.push(format!("{base}.portLevelSettings"));
        }
    };
    visit(dr.traffic_policy.as_ref(), "spec.trafficPolicy".into());
    for (i, s) in dr.subsets.iter().enumerate() {
        let base = format!("spec.subsets[{i}].trafficPolicy");
        visit(s.traffic_policy.as_ref(), base);
    }
    out
}
