//! `/debug/rollout` and the admin API's rollout commands.

use std::sync::Weak;

use futures::future::BoxFuture;

use serde_json::{json, Value};

use super::state::{unix, State};
use crate::admin::RolloutControl;
use crate::config::model::{CanarySelector, RolloutPolicy};
use crate::serve::core::Core;

/// The `/debug/rollout` JSON: `{policy, current, history, last_good}`.
pub(crate) fn render(state: &State, policy: Option<&RolloutPolicy>) -> Value {
    let current = state.current.as_ref().map(|c| {
        json!({
            "generation": c.generation.number,
            "state": "baking",
            "canary": c.canary,
            "started_at": unix(c.started_at),
            "bake_ends_at": unix(c.bake_ends_at),
            "reason": Value::Null,
        })
    });
    json!({
        "policy": policy.map(policy_json),
        "current": current,
        "history": state.history,
        "last_good": state.good.as_ref().map(|g| g.number),
    })
}

fn policy_json(p: &RolloutPolicy) -> Value {
    let canary = match &p.canary {
        CanarySelector::Labels(l) => json!({ "selector": { "matchLabels": l } }),
        CanarySelector::Service(s) => json!({ "service": s }),
        CanarySelector::Percent(n) => json!({ "percent": n }),
    };
    json!({
        "name": format!("{}/{}", p.origin.namespace, p.origin.name),
        "source": format!("{}:{}", p.origin.file.display(), p.origin.line),
        "canary": canary,
        "bake_time_seconds": p.bake_time.as_secs_f64(),
        "abort": {
            "max_error_rate_increase": p.abort.max_error_rate_increase,
            "max_latency_ratio": p.abort.max_latency_ratio,
            "min_requests": p.abort.min_requests,
        },
    })
}

/// The admin API's handle on the rollout (holds the core weakly: the core
/// owns the admin state, which owns this).
pub(crate) struct RolloutAdmin(pub(crate) Weak<Core>);

impl RolloutControl for RolloutAdmin {
    fn debug(&self) -> Value {
        let Some(core) = self.0.upgrade() else {
            return Value::Null;
        };
        let state = core.rollout.snapshot();
        // The policy of the generation rolling out, else of the good one.
        let policy = match &state.current {
            Some(c) => Some(c.policy.clone()),
            None => core.config.load().rollout.clone(),
        };
        let mut view = render(&state, policy.as_deref());
        // With replicas: which one keeps the bake time (any one takes the
        // commands).
        if core.rollout.shared.is_some() {
            view["driver"] = json!(core.rollout.driver());
        }
        view
    }

    fn promote(&self) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let core = self.0.upgrade().ok_or("the control plane is stopping")?;
            (core.rollout_promote("promoted by the operator", "operator")).await?;
            Ok(self.debug())
        })
    }

    fn abort(&self) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let core = self.0.upgrade().ok_or("the control plane is stopping")?;
            (core.rollout_abort("aborted by the operator", "operator")).await?;
            Ok(self.debug())
        })
    }
}
