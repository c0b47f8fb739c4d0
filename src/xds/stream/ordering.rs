//! Update ordering across types (xDS spec, "Eventual consistency
//! considerations"): CDS and EDS before the LDS and RDS that use them, and
//! stale clusters removed only after the routes that used them are gone.
//! Generic: nothing here knows which route uses which cluster.

use super::{Output, Reply, Selected, StreamState, TypeState};
use crate::xds::types::{routing_type, KEPT_SUFFIX};
use crate::xds::{CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};

impl StreamState {
    /// What the client should now hold of a type: (version, resources, kept
    /// clusters?). `None` without a snapshot or subscription.
    pub(super) fn current(&self, type_url: &str) -> Option<(String, Selected, bool)> {
        let snapshot = self.snapshot.as_ref()?;
        let state = self.types.get(type_url)?;
        let all = snapshot.shared(type_url);
        let fresh = state.sub.select(all);
        let version = all.version().to_string();
        if type_url != *CLUSTER_TYPE {
            return Some((version, fresh, false));
        }
        let (resources, kept) = self.keep_dropped_clusters(state, fresh);
        let version = if kept {
            format!("{version}{KEPT_SUFFIX}")
        } else {
            version
        };
        Some((version, resources, kept))
    }

    /// Make-before-break ("Eventual consistency considerations": stale CDS
    /// clusters are removed only after the LDS and RDS updates that stop
    /// referring to them). Clusters the client holds but the snapshot
    /// dropped stay in the CDS response until the client ACKed the current
    /// LDS and RDS. Generic: no knowledge of which route uses which cluster.
    fn keep_dropped_clusters(&self, state: &TypeState, fresh: Selected) -> (Selected, bool) {
        let Some(last) = &state.last else {
            return (fresh, false);
        };
        let dropped: Vec<_> = last
            .resources
            .map()
            .iter()
            .filter(|(name, _)| !fresh.map().contains_key(*name) && state.sub.contains(name))
            .map(|(name, r)| (name.clone(), r.clone()))
            .collect();
        if dropped.is_empty() || self.routing_settled() {
            return (fresh, false);
        }
        let mut all = fresh;
        all.extend(dropped);
        (all, true)
    }

    /// True when the client ACKed the current snapshot's LDS and RDS (or
    /// does not subscribe to them).
    fn routing_settled(&self) -> bool {
        [&*LISTENER_TYPE, &*ROUTE_TYPE]
            .into_iter()
            .all(|t| self.settled(t))
    }

    fn settled(&self, type_url: &str) -> bool {
        let (Some(state), Some(snapshot)) = (self.types.get(type_url), &self.snapshot) else {
            return true;
        };
        state.last.as_ref().is_some_and(|last| {
            last.reply == Reply::Acked
                && last.resources == state.sub.select(snapshot.shared(type_url))
        })
    }

    /// Once LDS and RDS settled, sends the CDS without the kept clusters.
    pub(super) fn release_kept_clusters(&mut self, out: &mut Output) {
        let kept = self
            .types
            .get(CLUSTER_TYPE.as_str())
            .and_then(|s| s.last.as_ref())
            .is_some_and(|last| last.kept);
        if kept && self.routing_settled() {
            self.respond(&CLUSTER_TYPE, out);
        }
    }

    /// True while a CDS response is unanswered. Envoy ACKs CDS only once the
    /// new clusters warmed (got their ClusterLoadAssignment, "Resource
    /// warming"), so until then a listener or route could name a cluster
    /// Envoy cannot use yet.
    fn cds_in_flight(&self) -> bool {
        self.types
            .get(CLUSTER_TYPE.as_str())
            .and_then(|s| s.last.as_ref())
            .is_some_and(|last| last.reply == Reply::Pending)
    }

    /// Holds an LDS or RDS response back while CDS is in flight; true when
    /// held. `forced`: the response is owed even if nothing changed.
    pub(super) fn hold_back(&mut self, type_url: &str, forced: bool) -> bool {
        if !routing_type(type_url) || !self.cds_in_flight() {
            return false;
        }
        if let Some(state) = self.types.get_mut(type_url) {
            state.held = true;
            state.forced |= forced;
        }
        true
    }

    /// Sends the held LDS, then RDS, once CDS is answered (ACK or NACK: a
    /// rejected CDS must not hold routing updates forever).
    pub(super) fn release_held(&mut self, out: &mut Output) {
        if self.cds_in_flight() {
            return;
        }
        for type_url in [&*LISTENER_TYPE, &*ROUTE_TYPE] {
            let Some(state) = self.types.get_mut(type_url.as_str()) else {
                continue;
            };
            if !std::mem::take(&mut state.held) {
                continue;
            }
            if std::mem::take(&mut state.forced) {
                self.respond(type_url, out);
            } else {
                self.push_if_changed(type_url, out);
            }
        }
    }
}
