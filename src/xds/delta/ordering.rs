//! Update ordering across types for the delta stream (xDS spec, "Eventual
//! consistency considerations"), with the same rules as the state-of-the-
//! world stream: LDS and RDS wait while a CDS response is unanswered, and
//! cluster removals wait until the client ACKed the LDS and RDS that stop
//! using them. Generic: nothing here knows which route uses which cluster.

use super::{DeltaOutput, DeltaStreamState, Diff, Reply};
use crate::xds::types::{routing_type, KEPT_SUFFIX};
use crate::xds::{CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};

/// `system_version_info` of a response: the snapshot's version of the type,
/// marked while cluster removals are deferred.
pub(super) fn response_version(version: &str, kept: bool) -> String {
    if kept {
        format!("{version}{KEPT_SUFFIX}")
    } else {
        version.to_string()
    }
}

impl DeltaStreamState {
    /// True while a CDS response is unanswered: Envoy ACKs CDS once the new
    /// clusters warmed ("Resource warming"), and until then a listener or
    /// route could name a cluster it cannot use yet.
    fn cds_in_flight(&self) -> bool {
        self.types
            .get(CLUSTER_TYPE.as_str())
            .and_then(|s| s.last.as_ref())
            .is_some_and(|last| last.reply == Reply::Pending)
    }

    /// Holds an LDS or RDS push back while CDS is in flight; true when held.
    pub(super) fn hold_back(&mut self, type_url: &str) -> bool {
        if !routing_type(type_url) || !self.cds_in_flight() {
            return false;
        }
        if let Some(state) = self.types.get_mut(type_url) {
            state.held = true;
        }
        true
    }

    /// Pushes the held LDS, then RDS, once CDS is answered (ACK or NACK: a
    /// rejected CDS must not hold routing updates forever).
    pub(super) fn release_held(&mut self, out: &mut DeltaOutput) {
        if self.cds_in_flight() {
            return;
        }
        for type_url in [&*LISTENER_TYPE, &*ROUTE_TYPE] {
            let held = self
                .types
                .get_mut(type_url.as_str())
                .is_some_and(|s| std::mem::take(&mut s.held));
            if held {
                self.push(type_url, out);
            }
        }
    }

    /// Make-before-break: a CDS push leaves out cluster removals until the
    /// client ACKed the snapshot's LDS and RDS; true when it did.
    pub(super) fn defer_removals(&self, type_url: &str, diff: &mut Diff) -> bool {
        if type_url != *CLUSTER_TYPE || diff.removals.is_empty() || self.routing_settled() {
            return false;
        }
        diff.removals.clear();
        true
    }

    /// True when the client ACKed the current LDS and RDS and lacks nothing
    /// of them (or does not subscribe to them).
    fn routing_settled(&self) -> bool {
        [&*LISTENER_TYPE, &*ROUTE_TYPE].into_iter().all(|t| {
            let Some(state) = self.types.get(t.as_str()) else {
                return true;
            };
            let acked = state.last.as_ref().is_some_and(|l| l.reply == Reply::Acked);
            acked && !state.held && self.diff(t).is_some_and(|d| d.is_empty())
        })
    }

    /// Once LDS and RDS settled, sends the deferred cluster removals.
    pub(super) fn release_kept_clusters(&mut self, out: &mut DeltaOutput) {
        let kept = self
            .types
            .get(CLUSTER_TYPE.as_str())
            .is_some_and(|s| s.kept);
        if kept && self.routing_settled() {
            self.push(&CLUSTER_TYPE, out);
        }
    }
}
