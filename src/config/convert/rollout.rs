//! `RolloutPolicy` → [`RolloutPolicy`]: every field checked, one error per
//! bad field.

use super::{join, Cx};
use crate::config::model::{AbortThresholds, CanarySelector, RolloutPolicy};
use crate::config::raw::rollout as raw;

/// Converts a `RolloutPolicy`; `None` when any field is wrong.
pub(crate) fn rollout_policy(cx: &mut Cx<'_>, rp: &raw::RolloutPolicy) -> Option<RolloutPolicy> {
    let before = cx.diags.len();
    let canary = match &rp.canary {
        Some(c) => canary(cx, c),
        None => {
            cx.err(
                "spec",
                "canary is required (a `selector`, a `service` or a `percent`)",
            );
            None
        }
    };
    let bake_time = match &rp.bake_time {
        Some(t) => cx.duration("spec.bakeTime", t),
        None => {
            cx.err("spec", "bakeTime is required (e.g. 5m)");
            None
        }
    };
    let abort = rp
        .abort
        .as_ref()
        .map_or(Some(AbortThresholds::default()), |a| abort(cx, a));
    if cx.diags.len() != before {
        return None;
    }
    Some(RolloutPolicy {
        canary: canary?,
        bake_time: bake_time?,
        abort: abort?,
        origin: cx.doc.origin(),
    })
}

fn canary(cx: &mut Cx<'_>, c: &raw::Canary) -> Option<CanarySelector> {
    let at = "spec.canary";
    match (&c.selector, &c.service, c.percent) {
        (Some(s), None, None) => {
            if s.match_labels.is_empty() {
                cx.err(
                    &join(at, "selector.matchLabels"),
                    "matchLabels must name at least one label",
                );
                return None;
            }
            let before = cx.diags.len();
            cx.labels(&join(at, "selector.matchLabels"), &s.match_labels);
            (cx.diags.len() == before).then(|| CanarySelector::Labels(s.match_labels.clone()))
        }
        (None, Some(name), None) => {
            if super::is_dns_label(name) {
                Some(CanarySelector::Service(name.clone()))
            } else {
                let msg = format!("service name {name:?} is not a valid DNS-1123 label");
                cx.err(&join(at, "service"), msg);
                None
            }
        }
        (None, None, Some(p)) => {
            let p = cx.percent(&join(at, "percent"), p)?;
            if p == 0.0 {
                cx.err(&join(at, "percent"), "percent must be above 0");
                return None;
            }
            Some(CanarySelector::Percent(p))
        }
        (None, None, None) => {
            cx.err(at, "give one of `selector`, `service` or `percent`");
            None
        }
        _ => {
            cx.err(at, "give only one of `selector`, `service` or `percent`");
            None
        }
    }
}

fn abort(cx: &mut Cx<'_>, a: &raw::Abort) -> Option<AbortThresholds> {
    let at = "spec.abort";
    let mut out = AbortThresholds::default();
    let before = cx.diags.len();
    if let Some(v) = a.max_error_rate_increase {
        if (0.0..=1.0).contains(&v) {
            out.max_error_rate_increase = v;
        } else {
            let msg = format!("maxErrorRateIncrease {v} is not a fraction in 0..1");
            cx.err(&join(at, "maxErrorRateIncrease"), msg);
        }
    }
    if let Some(v) = a.max_latency_ratio {
        if v.is_finite() && v >= 1.0 {
            out.max_latency_ratio = Some(v);
        } else {
            let msg = format!("maxLatencyRatio {v} must be at least 1 (canary latency / others')");
            cx.err(&join(at, "maxLatencyRatio"), msg);
        }
    }
    if let Some(n) = a.min_requests {
        match u64::try_from(n) {
            Ok(n) if n > 0 => out.min_requests = n,
            _ => cx.err(
                &join(at, "minRequests"),
                format!("minRequests {n} must be at least 1"),
            ),
        }
    }
    (cx.diags.len() == before).then_some(out)
}
