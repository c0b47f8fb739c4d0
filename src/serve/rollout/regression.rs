//! The error-rate and latency comparison of a rollout: the canary proxies'
//! outbound requests toward the destinations the change touches, since the
//! rollout started, against the other proxies' over the same time. Reads
//! the samples the sidecar stats scraper keeps (`graph::SampleStore`);
//! nothing here is in the push path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::model::{
    AbortThresholds, DestinationRule, Host, MeshConfig, RouteAction, VirtualService,
};
use crate::graph::{DestStats, ProxySample};

/// Why a rollout should be aborted: the metric's cause and the reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) cause: &'static str,
    pub(crate) reason: String,
}

/// Destination hosts whose routing, policy or declaration differs between
/// `new` and `old`, with every destination a changed route sends to (a
/// route change moves traffic to those). Empty when only other kinds
/// changed, or a rule for a wildcard host: then every destination is
/// compared.
pub(crate) fn touched_hosts(new: &MeshConfig, old: &MeshConfig) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let hosts: BTreeSet<&Host> = new
        .virtual_services
        .keys()
        .chain(old.virtual_services.keys())
        .collect();
    for host in hosts {
        let (a, b) = (
            new.virtual_services.get(host),
            old.virtual_services.get(host),
        );
        if !same_routes(a.map(|v| &**v), b.map(|v| &**v)) {
            out.insert(host.to_string());
            for vs in a.into_iter().chain(b) {
                out.extend(destinations(vs));
            }
        }
    }
    let rules: BTreeSet<&Host> = new
        .destination_rules
        .keys()
        .chain(old.destination_rules.keys())
        .collect();
    for host in rules {
        let (a, b) = (
            new.destination_rules.get(host),
            old.destination_rules.get(host),
        );
        let same = match (a, b) {
            (Some(a), Some(b)) => {
                let mut b = (**b).clone();
                b.origin = a.origin.clone();
                **a == b
            }
            (None, None) => true,
            _ => false,
        };
        if !same {
            out.insert(host.to_string());
        }
    }
    // A wildcard rule reaches every service it covers, whichever they
    // are by now: compare every destination.
    if wildcard_rules(new) != wildcard_rules(old) {
        return BTreeSet::new();
    }
    out
}

/// The rules whose host is a wildcard, wherever they were written.
fn wildcard_rules(mesh: &MeshConfig) -> Vec<DestinationRule> {
    let rules = (mesh.destination_rule_set.wildcards()).flat_map(|(_, rules)| &rules.rules);
    rules
        .map(|r| {
            let mut r = (**r).clone();
            (r.origin.file, r.origin.line) = (Default::default(), 0);
            r
        })
        .collect()
}

/// The same rules, wherever they were written.
fn same_routes(a: Option<&VirtualService>, b: Option<&VirtualService>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.http == b.http && a.tcp == b.tcp && a.tls == b.tls && a.mesh == b.mesh
        }
        (None, None) => true,
        _ => false,
    }
}

fn destinations(vs: &VirtualService) -> impl Iterator<Item = String> + '_ {
    vs.http.iter().flat_map(|r| match &r.action {
        RouteAction::Route(ws) => ws.iter().map(|w| w.destination.host.to_string()).collect(),
        _ => Vec::new(),
    })
}

/// What `proxies` sent toward `hosts` (every host when empty) between
/// their `baseline` sample and their latest one, summed. A proxy without
/// a baseline counts from its Envoy's start (it joined after the rollout
/// began).
pub(crate) fn totals<'a>(
    proxies: impl Iterator<Item = &'a String>,
    latest: &BTreeMap<String, Arc<ProxySample>>,
    baseline: &BTreeMap<String, Arc<ProxySample>>,
    hosts: &BTreeSet<String>,
) -> DestStats {
    let mut sum = DestStats::default();
    for id in proxies {
        let Some(now) = latest.get(id) else { continue };
        let none = DestStats::default();
        for (host, stats) in &now.outbound {
            if !hosts.is_empty() && !hosts.contains(host) {
                continue;
            }
            let before = baseline
                .get(id)
                .and_then(|b| b.outbound.get(host))
                .unwrap_or(&none);
            sum.add(&stats.since(before));
        }
    }
    sum
}

/// Compares the canary's totals with the others' per the thresholds.
pub(crate) fn judge(
    canary: &DestStats,
    others: &DestStats,
    abort: &AbortThresholds,
) -> Option<Verdict> {
    if canary.requests < abort.min_requests {
        return None;
    }
    let rate = |s: &DestStats| {
        if s.requests == 0 {
            0.0
        } else {
            s.errors as f64 / s.requests as f64
        }
    };
    let (mine, theirs) = (rate(canary), rate(others));
    if mine - theirs > abort.max_error_rate_increase {
        return Some(Verdict {
            cause: "error_rate",
            reason: format!(
                "canary error rate {:.1}% ({} of {} requests) against {:.1}% on the other proxies ({} of {}): more than {:.1} points worse",
                mine * 100.0, canary.errors, canary.requests, theirs * 100.0, others.errors, others.requests,
                abort.max_error_rate_increase * 100.0
            ),
        });
    }
    let ratio = abort.max_latency_ratio?;
    let mean =
        |s: &DestStats| (s.latency.count > 0).then(|| s.latency.sum_ms / s.latency.count as f64);
    let (Some(mine), Some(theirs)) = (mean(canary), mean(others)) else {
        return None;
    };
    let enough =
        canary.latency.count >= abort.min_requests && others.latency.count >= abort.min_requests;
    (enough && mine > ratio * theirs.max(1.0)).then(|| Verdict {
        cause: "latency",
        reason: format!(
            "canary mean latency {mine:.1} ms against {theirs:.1} ms on the other proxies: more than {ratio}x"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(requests: u64, errors: u64, latency_ms: f64) -> DestStats {
        let mut s = DestStats {
            requests,
            errors,
            ..Default::default()
        };
        s.latency.count = requests;
        s.latency.sum_ms = latency_ms * requests as f64;
        s
    }

    #[test]
    fn error_rate_over_the_threshold_aborts() {
        let t = AbortThresholds::default();
        assert_eq!(
            judge(&stats(10, 10, 1.0), &stats(100, 0, 1.0), &t),
            None,
            "too few requests"
        );
        let v = judge(&stats(100, 50, 1.0), &stats(100, 1, 1.0), &t).unwrap();
        assert_eq!(v.cause, "error_rate");
        assert!(
            v.reason.contains("50.0% (50 of 100 requests)"),
            "{}",
            v.reason
        );
        // As bad as the others: not the change's fault.
        assert_eq!(judge(&stats(100, 50, 1.0), &stats(100, 48, 1.0), &t), None);
    }

    #[test]
    fn latency_is_compared_only_with_a_ratio() {
        let mut t = AbortThresholds::default();
        assert_eq!(judge(&stats(100, 0, 90.0), &stats(100, 0, 10.0), &t), None);
        t.max_latency_ratio = Some(2.0);
        assert_eq!(
            judge(&stats(100, 0, 90.0), &stats(100, 0, 10.0), &t)
                .unwrap()
                .cause,
            "latency"
        );
        assert_eq!(judge(&stats(100, 0, 15.0), &stats(100, 0, 10.0), &t), None);
    }

    #[test]
    fn totals_count_since_the_baseline_toward_touched_hosts() {
        let sample = |proxy: &str, pay: (u64, u64), other: (u64, u64)| {
            Arc::new(ProxySample {
                proxy: proxy.into(),
                service: None,
                at: std::time::SystemTime::now(),
                outbound: [
                    ("pay".to_string(), stats(pay.0, pay.1, 1.0)),
                    ("other".to_string(), stats(other.0, other.1, 1.0)),
                ]
                .into(),
            })
        };
        let baseline = [("a".to_string(), sample("a", (10, 0), (5, 5)))].into();
        let latest = [
            ("a".to_string(), sample("a", (30, 8), (50, 50))),
            ("b".to_string(), sample("b", (4, 4), (0, 0))),
        ]
        .into();
        let hosts: BTreeSet<String> = ["pay".to_string()].into();
        let ids = ["a".to_string(), "b".to_string()];
        let t = totals(ids.iter(), &latest, &baseline, &hosts);
        assert_eq!((t.requests, t.errors), (24, 12));
        let all = totals(ids.iter(), &latest, &baseline, &BTreeSet::new());
        assert_eq!((all.requests, all.errors), (69, 57));
    }

    #[test]
    fn a_route_change_touches_its_hosts_and_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let load = |weights: (u32, u32)| {
            let vs = format!(
                "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: pay}}
spec:
  hosts: [pay]
  http:
  - route:
    - {{destination: {{host: pay, subset: v1}}, weight: {}}}
    - {{destination: {{host: ledger}}, weight: {}}}
",
                weights.0, weights.1
            );
            let svc = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s}
spec:
  hosts: [pay, ledger]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay}
spec:
  host: pay
  subsets: [{name: v1, labels: {version: v1}}]
";
            std::fs::write(dir.path().join("vs.yaml"), vs).unwrap();
            std::fs::write(dir.path().join("svc.yaml"), svc).unwrap();
            crate::config::load_dir(dir.path()).unwrap()
        };
        let (old, new) = (load((100, 0)), load((50, 50)));
        let touched = touched_hosts(&new, &old);
        let want: BTreeSet<String> = [
            "ledger.default.svc.cluster.local",
            "pay.default.svc.cluster.local",
        ]
        .map(String::from)
        .into();
        assert_eq!(touched, want);
        assert!(touched_hosts(&new, &load((50, 50))).is_empty());
        // A wildcard rule that changes may reach any destination.
        let wide = |max: u32| {
            format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: wide}}\nspec:\n  host: \"*\"\n  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: {max}}}}}}}\n")
        };
        std::fs::write(dir.path().join("wide.yaml"), wide(10)).unwrap();
        let before = load((50, 50));
        std::fs::write(dir.path().join("wide.yaml"), wide(20)).unwrap();
        assert!(touched_hosts(&load((100, 0)), &before).is_empty());
    }
}
