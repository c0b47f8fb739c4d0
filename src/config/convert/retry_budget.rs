//! `retryBudget` of a `DestinationRule` and `defaultRetryBudget` of the
//! `Mesh`: Envoy's cluster retry budget
//! (`circuit_breakers.thresholds[].retry_budget`).

use super::{join, Cx};
use crate::config::model::RetryBudget;
use crate::config::raw::destination_rule as raw;
use crate::config::raw::peer_authentication::MeshRetryBudget;
use crate::config::raw::DurationText;

/// The fields a budget is made of, as written.
struct Fields<'a> {
    percent: Option<f64>,
    min_retry_concurrency: Option<i64>,
    budget_interval: Option<&'a DurationText>,
}

/// `trafficPolicy.retryBudget` at `path` (the budget's own path).
pub(super) fn retry_budget(
    cx: &mut Cx<'_>,
    path: &str,
    b: &raw::RetryBudget,
) -> Option<RetryBudget> {
    let fields = Fields {
        percent: b.percent,
        min_retry_concurrency: b.min_retry_concurrency,
        budget_interval: b.budget_interval.as_ref(),
    };
    convert(cx, path, &fields, RetryBudget::default())
}

/// `Mesh.spec.defaultRetryBudget`: `None` when `disabled: true`; the
/// fields it leaves out keep [`RetryBudget::mesh_default`].
pub(super) fn mesh_default(cx: &mut Cx<'_>, b: &MeshRetryBudget) -> Option<RetryBudget> {
    let path = "spec.defaultRetryBudget";
    let fields = Fields {
        percent: b.percent,
        min_retry_concurrency: b.min_retry_concurrency,
        budget_interval: b.budget_interval.as_ref(),
    };
    let any_field = fields.percent.is_some()
        || fields.min_retry_concurrency.is_some()
        || fields.budget_interval.is_some();
    match b.disabled {
        Some(true) if any_field => {
            let msg = "a disabled budget has no percent, minRetryConcurrency or budgetInterval: remove them or `disabled`";
            cx.err(&join(path, "disabled"), msg);
            None
        }
        Some(true) => None,
        _ => convert(cx, path, &fields, RetryBudget::mesh_default()),
    }
}

/// `f` over `base` (the defaults of the fields left out).
fn convert(cx: &mut Cx<'_>, path: &str, f: &Fields<'_>, base: RetryBudget) -> Option<RetryBudget> {
    let before = cx.diags.len();
    let mut out = base;
    if let Some(p) = f.percent {
        out.percent = cx.percent(&join(path, "percent"), p).unwrap_or_default();
    }
    if let Some(n) = f.min_retry_concurrency {
        let p = join(path, "minRetryConcurrency");
        // Istio's field is a plain uint32, so 0 there means "unset" (3):
        // refuse it rather than read it differently from Istio.
        if n == 0 {
            cx.err(
                &p,
                "minRetryConcurrency must be at least 1 (Istio reads 0 as the default, 3)",
            );
        } else if let Some(n) = cx.count(&p, n) {
            out.min_retry_concurrency = n;
        }
    }
    if let Some(t) = f.budget_interval {
        out.budget_interval = cx.duration(&join(path, "budgetInterval"), t);
    }
    (cx.diags.len() == before).then_some(out)
}

/// Envoy ignores `max_retries` when a cluster has a budget, and a
/// subset's cluster inherits the rule's budget or pool: a rule that writes
/// `retryBudget` anywhere and `maxRetries` anywhere would silently lose
/// some `maxRetries`, so that is an error at each `maxRetries`.
pub(super) fn check_max_retries(cx: &mut Cx<'_>, dr: &raw::DestinationRule) {
    let top = ("spec.trafficPolicy".to_string(), dr.traffic_policy.as_ref());
    let subsets = (dr.subsets.iter().enumerate()).map(|(i, s)| {
        (
            format!("spec.subsets[{i}].trafficPolicy"),
            s.traffic_policy.as_ref(),
        )
    });
    let policies: Vec<(String, &raw::TrafficPolicy)> = std::iter::once(top)
        .chain(subsets)
        .filter_map(|(p, tp)| Some((p, tp?)))
        .collect();
    if !policies.iter().any(|(_, tp)| tp.retry_budget.is_some()) {
        return;
    }
    for (path, tp) in policies {
        let ports = (tp.port_level_settings.iter().enumerate()).map(|(i, pl)| {
            (
                format!("{path}.portLevelSettings[{i}]"),
                &pl.connection_pool,
            )
        });
        for (p, pool) in std::iter::once((path.clone(), &tp.connection_pool)).chain(ports) {
            let http = pool.as_ref().and_then(|c| c.http.as_ref());
            if http.is_some_and(|h| h.max_retries.is_some()) {
                let msg = "maxRetries has no effect where a retryBudget applies (Envoy ignores max_retries when a budget is set), and this rule sets a retryBudget: remove one of them";
                cx.err(&join(&p, "connectionPool.http.maxRetries"), msg);
            }
        }
    }
}
