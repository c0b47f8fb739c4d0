//! `loadBalancer.localityLbSetting`, checked as istiod's validation does
//! (`validateLocalityLbSetting`), plus Trellis's rule that failover needs
//! `outlierDetection`: Istio silently turns failover off without it
//! (Envoy would never see a locality unhealthy), Trellis rejects it.

use std::collections::{BTreeMap, BTreeSet};

use super::super::{join, values, Cx};
use crate::config::model::{
    LocalityDistribute, LocalityFailover, LocalityLbSetting, CLUSTER_LABEL, NETWORK_LABEL,
    REGION_LABEL, SUBZONE_LABEL, ZONE_LABEL,
};
use crate::config::raw::destination_rule as raw;

/// Converts the setting at `path` (`...loadBalancer.localityLbSetting`).
pub(super) fn setting(
    cx: &mut Cx<'_>,
    path: &str,
    s: &raw::LocalityLbSetting,
) -> Option<LocalityLbSetting> {
    let distribute = distribute(cx, &join(path, "distribute"), &s.distribute);
    let failover = failover(cx, &join(path, "failover"), &s.failover);
    let failover_priority = priority(cx, &join(path, "failoverPriority"), &s.failover_priority);
    let out = LocalityLbSetting {
        enabled: s.enabled,
        distribute: distribute?,
        failover: failover?,
        failover_priority: failover_priority?,
    };
    exclusive(cx, path, &out).then_some(out)
}

/// Which fields may go together; false after an error.
fn exclusive(cx: &mut Cx<'_>, path: &str, s: &LocalityLbSetting) -> bool {
    let others = !s.distribute.is_empty() || !s.failover.is_empty();
    if s.enabled == Some(false) && (others || !s.failover_priority.is_empty()) {
        cx.err(
            &join(path, "enabled"),
            "enabled: false turns locality load balancing off: remove distribute, failover and failoverPriority",
        );
        return false;
    }
    if !s.distribute.is_empty() && !s.failover.is_empty() {
        cx.err(path, "distribute and failover are mutually exclusive: distribute sets fixed shares per locality, failover orders localities by priority");
        return false;
    }
    if !s.distribute.is_empty() && !s.failover_priority.is_empty() {
        cx.err(path, "distribute and failoverPriority are mutually exclusive: with distribute, Istio applies no failover");
        return false;
    }
    let topology = [
        REGION_LABEL,
        ZONE_LABEL,
        SUBZONE_LABEL,
        NETWORK_LABEL,
        CLUSTER_LABEL,
    ];
    let key = |p: &String| p.split('=').next().unwrap_or_default().to_string();
    if let Some(p) = (!s.failover.is_empty())
        .then(|| {
            s.failover_priority
                .iter()
                .find(|p| topology.contains(&key(p).as_str()))
        })
        .flatten()
    {
        let msg = format!("failover cannot be combined with the topology label {p:?} in failoverPriority: the two would order localities twice");
        cx.err(&join(path, "failoverPriority"), msg);
        return false;
    }
    true
}

/// True when the setting asks for priority failover (the default when
/// locality load balancing is on and nothing is distributed).
pub(crate) fn wants_failover(s: &LocalityLbSetting) -> bool {
    s.enabled != Some(false) && s.distribute.is_empty()
}

/// The error for a failover setting without `outlierDetection` to drive it.
pub(super) fn needs_outlier(cx: &mut Cx<'_>, path: &str) {
    cx.err(path, "locality failover needs outlierDetection in this traffic policy (or, for a subset, in the top-level one): without it Envoy never sees a locality fail, so Istio silently disables failover. Add outlierDetection, use distribute, or set enabled: false");
}

fn distribute(
    cx: &mut Cx<'_>,
    path: &str,
    list: &[raw::LocalityDistribute],
) -> Option<Vec<LocalityDistribute>> {
    let mut ok = true;
    let mut froms = BTreeSet::new();
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        ok &= pattern(cx, &join(&p, "from"), &d.from);
        if !froms.insert(d.from.as_str()) {
            cx.err(
                &join(&p, "from"),
                format!("locality {:?} appears twice", d.from),
            );
            ok = false;
        }
        let mut to = BTreeMap::new();
        for (loc, w) in &d.to {
            let lp = join(&join(&p, "to"), loc);
            ok &= pattern(cx, &lp, loc);
            match u32::try_from(*w).ok().filter(|w| (1..=100).contains(w)) {
                Some(w) => drop(to.insert(loc.clone(), w)),
                None => {
                    cx.err(&lp, format!("weight {w} is not in 1..100"));
                    ok = false;
                }
            }
        }
        let total: u32 = to.values().sum();
        if ok && total != 100 {
            let msg = format!("the weights sum to {total}, not 100");
            cx.err(&join(&p, "to"), msg);
            ok = false;
        }
        out.push(LocalityDistribute {
            from: d.from.clone(),
            to,
        });
    }
    ok.then_some(out)
}

/// A locality pattern: `REGION[/ZONE[/SUBZONE]]`, `*` only as the whole
/// last part (Istio's `validateLocalities`).
fn pattern(cx: &mut Cx<'_>, path: &str, text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    let bad_wildcard = parts
        .iter()
        .enumerate()
        .any(|(i, p)| p.contains('*') && (*p != "*" || i + 1 != parts.len()));
    let msg = if text.is_empty() {
        "locality is required".to_string()
    } else if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        format!("locality {text:?} is not REGION[/ZONE[/SUBZONE]]")
    } else if bad_wildcard {
        format!("locality {text:?}: the wildcard `*` may only be the whole last part")
    } else {
        return true;
    };
    cx.err(path, msg);
    false
}

fn failover(
    cx: &mut Cx<'_>,
    path: &str,
    list: &[raw::LocalityFailover],
) -> Option<Vec<LocalityFailover>> {
    let mut ok = true;
    for (i, f) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        for (field, v) in [("from", &f.from), ("to", &f.to)] {
            let msg = if v.is_empty() {
                "a region is required"
            } else if v.contains('/') || v.contains('*') {
                "failover names a region only (no `/`, no `*`)"
            } else {
                continue;
            };
            cx.err(&join(&p, field), msg);
            ok = false;
        }
        if !f.from.is_empty() && f.from == f.to {
            cx.err(&join(&p, "to"), "failover must name two different regions");
            ok = false;
        }
    }
    let out = list.iter().map(|f| LocalityFailover {
        from: f.from.clone(),
        to: f.to.clone(),
    });
    ok.then(|| out.collect())
}

/// Label keys, each `KEY` or `KEY=VALUE` (the value overrides the
/// client's, Istio 1.19+).
fn priority(cx: &mut Cx<'_>, path: &str, list: &[String]) -> Option<Vec<String>> {
    let mut ok = true;
    let mut seen = BTreeSet::new();
    for (i, entry) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        if let Err(e) = values::check_label(key, value) {
            cx.err(&p, e);
            ok = false;
        } else if !seen.insert(key) {
            cx.err(&p, format!("label {key:?} appears twice"));
            ok = false;
        }
    }
    ok.then(|| list.to_vec())
}
