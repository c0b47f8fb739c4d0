//! `localityLbSetting` on a service whose endpoints resolve by DNS: its
//! endpoints are inline in one cluster that every sidecar shares, so
//! per-client locality priorities cannot apply. A written setting is an
//! error rather than a field that silently does nothing.

use std::collections::BTreeMap;

use super::Claimed;
use crate::config::diag::Diagnostic;
use crate::config::model::{DestinationRule, Host, LocalityLbSetting, Service, TrafficPolicy};

const WHY: &str = "localityLbSetting has no effect on a DNS-resolved service (resolution: DNS): \
its endpoints are resolved inside one cluster every sidecar shares; use STATIC endpoints \
(ServiceEntry endpoints or WorkloadEntries with `locality`) or remove the setting";

/// Errors for `localityLbSetting` written on rules of DNS-resolved hosts.
pub(super) fn dns_hosts(
    rules: &Claimed<DestinationRule>,
    services: &BTreeMap<Host, Service>,
    diags: &mut Vec<Diagnostic>,
) {
    for (host, (doc, dr)) in rules {
        let dns = services.get(host).is_some_and(|s| s.resolution.is_dns());
        if !dns {
            continue;
        }
        for path in written(dr) {
            diags.push(doc.diagnostic(&path, WHY.to_string()));
        }
    }
}

/// Paths of the policies of `dr` that write a `localityLbSetting` asking
/// for something (a bare `enabled: false` asks for nothing).
fn written(dr: &DestinationRule) -> Vec<String> {
    let mut out = Vec::new();
    let mut visit = |policy: Option<&TrafficPolicy>, base: String| {
        let Some(p) = policy else { return };
        if p.locality_lb.as_ref().is_some_and(asks) {
            out.push(format!("{base}.loadBalancer.localityLbSetting"));
        }
        if p.port_level
            .values()
            .any(|l| l.locality_lb.as_ref().is_some_and(asks))
        {
            out.push(format!("{base}.portLevelSettings"));
        }
    };
    visit(dr.traffic_policy.as_ref(), "spec.trafficPolicy".into());
    for (i, s) in dr.subsets.iter().enumerate() {
        visit(
            s.traffic_policy.as_ref(),
            format!("spec.subsets[{i}].trafficPolicy"),
        );
    }
    out
}

fn asks(s: &LocalityLbSetting) -> bool {
    s.enabled == Some(true)
        || !s.distribute.is_empty()
        || !s.failover.is_empty()
        || !s.failover_priority.is_empty()
}
