//! Outlier detection that can never eject. Envoy ejects a host only while
//! `100 × (ejected + 1) / hosts ≤ maxEjectionPercent`, also for the first
//! ejection (runtime guard `check_mep_on_first_eject`, on by default since
//! Envoy 1.28): with fewer than `100 / maxEjectionPercent` hosts no host is
//! ever ejected. Envoy's default is 10%, so any service with fewer than 10
//! hosts, which is the mesh notes' own example.

use std::collections::BTreeSet;

use super::{Check, Finding, Input, Severity};
use crate::config::model::{DestinationRule, Labels, OutlierDetection, TrafficPolicy};
use crate::registry::{labels_match, ServiceInstances};

/// Envoy's `max_ejection_percent` when none is set (Trellis sends none for 0).
const ENVOY_DEFAULT_PERCENT: u32 = 10;

/// Every outlier detection that cannot eject one of its service's hosts.
pub fn check(input: &Input<'_>, instances: &ServiceInstances) -> Vec<Finding> {
    let mut out = Vec::new();
    for dr in input.mesh.destination_rule_set.all() {
        let Some(view) = instances.services.get(&dr.host) else {
            continue;
        };
        let hosts = |selector: &Labels| -> usize {
            let first = view.ports.first().map(|p| p.number);
            (view.instances.iter())
                .filter(|i| Some(i.service_port) == first && labels_match(selector, &i.labels))
                .map(|i| (&i.address, i.port))
                .collect::<BTreeSet<_>>()
                .len()
        };
        let all = hosts(&Labels::new());
        if let Some(tp) = &dr.traffic_policy {
            out.extend(policy(input, dr, tp, "spec.trafficPolicy", all));
        }
        for (i, subset) in dr.subsets.iter().enumerate() {
            let Some(tp) = &subset.traffic_policy else {
                continue;
            };
            let at = format!("spec.subsets[{i}].trafficPolicy");
            out.extend(policy(input, dr, tp, &at, hosts(&subset.labels)));
        }
    }
    out
}

fn policy(
    input: &Input<'_>,
    dr: &DestinationRule,
    tp: &TrafficPolicy,
    at: &str,
    hosts: usize,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(od) = &tp.outlier_detection {
        out.extend(never_ejects(
            input,
            dr,
            od,
            &format!("{at}.outlierDetection"),
            hosts,
        ));
    }
    for (port, ptp) in &tp.port_level {
        if let Some(od) = &ptp.outlier_detection {
            // portLevelSettings is a list; its index is not in the model, so
            // the finding points at the list.
            let path = format!("{at}.portLevelSettings");
            let f = never_ejects(input, dr, od, &path, hosts);
            out.extend(f.map(|mut f| {
                f.message = format!("port {port}: {}", f.message);
                f
            }));
        }
    }
    out
}

fn never_ejects(
    input: &Input<'_>,
    dr: &DestinationRule,
    od: &OutlierDetection,
    at: &str,
    hosts: usize,
) -> Option<Finding> {
    let (percent, set) = match od.max_ejection_percent.filter(|p| *p > 0) {
        Some(p) => (p, true),
        None => (ENVOY_DEFAULT_PERCENT, false),
    };
    let at_least = 100u32.div_ceil(percent) as usize;
    let which = match set {
        true => "maxEjectionPercent",
        false => "Envoy's default maxEjectionPercent",
    };
    let path = match set {
        true => format!("{at}.maxEjectionPercent"),
        false => at.to_string(),
    };
    let why = "Envoy ejects a host only while the ejected share stays within maxEjectionPercent, \
               so a failing host keeps receiving its share of requests: circuit breaking that never trips.";
    let (severity, msg, fix) = match hosts {
        // Instances that are sidecars register at run time: lint cannot
        // count them, so it says what the setting needs.
        0 if at_least > 1 => (
            Severity::Info,
            format!("{which} {percent}% ejects nothing unless the service has at least {at_least} instances (its instances are sidecars, not counted by lint)"),
            "Set `maxEjectionPercent` to at least 100 / instances, rounded up (50 for 2 instances, 34 for 3).".to_string(),
        ),
        n if n > 0 && n < at_least => (
            Severity::Warning,
            format!("{which} {percent}% of {n} host(s) is less than one host: this outlier detection can never eject"),
            format!("Set `maxEjectionPercent: {}` or more (100 / {n} hosts, rounded up), or remove outlierDetection if ejection is not wanted.", 100u32.div_ceil(n as u32)),
        ),
        _ => return None,
    };
    let f = input.finding(Check::OutlierNeverEjects, severity, &dr.origin, &path);
    Some(f.says(msg, why, fix))
}
