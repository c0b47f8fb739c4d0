//! Per-resource versions and what a delta client lacks.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::Resource;

use super::subscription::DeltaSubscription;
use crate::xds::{Resources, TypeResources, Versioned};

/// One resource the client holds.
#[derive(Debug, Clone)]
pub(crate) enum Held {
    /// Sent on this stream: the resource itself, whose version says whether
    /// a newer one differs (an `Arc` still current needs not even that).
    Sent(Arc<Versioned>),
    /// Reported by a reconnecting client (`initial_resource_versions`).
    Reported(String),
}

/// What the client holds of one type.
///
/// Kept as the set of the last response's snapshot plus the names where
/// the client differs from it, not as a map per resource: after a response
/// the client holds exactly the subscribed part of that set, so in steady
/// state a stream keeps one `Arc` per type instead of a name, a version and
/// an `Arc` per resource (thousands of streams hold the same sets).
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// The client holds every resource of this set that its subscription
    /// covers, unless `except` says otherwise.
    base: Option<Arc<TypeResources>>,
    /// Names held otherwise than in `base` (`Some`), or not held (`None`).
    except: BTreeMap<String, Option<Held>>,
}

impl Known {
    /// Versions a reconnecting client reported (`initial_resource_versions`).
    pub(crate) fn from_initial<'a>(
        initial: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        let except = initial
            .into_iter()
            .map(|(name, version)| (name.clone(), Some(Held::Reported(version.clone()))))
            .collect();
        Known { base: None, except }
    }

    /// What the client holds of `name`. Only asked of names the
    /// subscription covers (see [`Known::widen`]).
    pub(crate) fn get(&self, name: &str) -> Option<Held> {
        match self.except.get(name) {
            Some(held) => held.clone(),
            None => (self.base.as_ref())
                .and_then(|b| b.items().get(name))
                .map(|any| Held::Sent(Arc::clone(any))),
        }
    }

    /// The client no longer holds `name` (or must be sent it again).
    /// True when it held it under `sub`.
    pub(crate) fn forget(&mut self, name: &str, sub: &DeltaSubscription) -> bool {
        let held = sub.contains(name) && self.get(name).is_some();
        if self
            .base
            .as_ref()
            .is_some_and(|b| b.items().contains_key(name))
        {
            self.except.insert(name.to_string(), None);
        } else {
            self.except.remove(name);
        }
        held
    }

    /// Forgets what `sub` does not cover: an unsubscribed resource is
    /// dropped by the client ("Incremental xDS").
    pub(crate) fn retain_covered(&mut self, sub: &DeltaSubscription) {
        self.except.retain(|name, _| sub.contains(name));
    }

    /// Before `covered` (the subscription until now) grows by a wildcard:
    /// names of `base` it did not cover were never sent, so `base` is
    /// replaced by what the client held of it under `covered`.
    pub(crate) fn widen(&mut self, covered: &DeltaSubscription) {
        let Some(base) = self.base.take() else {
            return;
        };
        for (name, any) in covered.select(base.items()) {
            (self.except.entry(name.clone())).or_insert_with(|| Some(Held::Sent(Arc::clone(any))));
        }
        self.except.retain(|_, held| held.is_some());
    }

    /// Every name the client holds that `sub` covers, `items` lacks and
    /// `removals` does not remove: what it keeps after a response.
    fn held_outside<'a>(
        &'a self,
        sub: &'a DeltaSubscription,
        items: &'a Resources,
    ) -> impl Iterator<Item = &'a String> + 'a {
        let from_base = (self.base.iter())
            .flat_map(|b| b.items().keys())
            .filter(move |n| !self.except.contains_key(*n));
        let from_except = (self.except.iter())
            .filter(|(_, held)| held.is_some())
            .map(|(n, _)| n);
        from_base
            .chain(from_except)
            .filter(move |n| sub.contains(n) && !items.contains_key(*n))
    }

    /// Each held name with its version, for tests.
    #[cfg(test)]
    pub(crate) fn versions(&self) -> BTreeMap<String, String> {
        let names = (self.base.iter().flat_map(|b| b.items().keys())).chain(self.except.keys());
        names
            .filter_map(|n| {
                let version = match self.get(n)? {
                    Held::Sent(any) => any.version().to_string(),
                    Held::Reported(v) => v,
                };
                Some((n.clone(), version))
            })
            .collect()
    }
}

/// What one response must carry for one type.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    /// Resources the client lacks or holds at another version.
    pub(crate) updates: Vec<(String, Arc<Versioned>)>,
    /// Subscribed resources the client holds that the snapshot no longer has.
    pub(crate) removals: Vec<String>,
}

impl Diff {
    /// True when the client already holds exactly what it should.
    pub(crate) fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.removals.is_empty()
    }

    /// The `resources` of a `DeltaDiscoveryResponse`.
    pub(crate) fn wire_resources(&self) -> Vec<Resource> {
        let wire = |(name, r): &(String, Arc<Versioned>)| Resource {
            name: name.clone(),
            version: r.version().to_string(),
            resource: Some(r.any().clone()),
            ..Default::default()
        };
        self.updates.iter().map(wire).collect()
    }

    /// Records that the client now holds what this diff, made from `set`
    /// under `sub`, sent: every covered resource of `set`, and the covered
    /// names outside it that were not removed (deferred removals).
    pub(crate) fn apply_to(
        &self,
        known: &mut Known,
        set: &Arc<TypeResources>,
        sub: &DeltaSubscription,
    ) {
        let kept: BTreeMap<String, Option<Held>> = known
            .held_outside(sub, set.items())
            .filter(|n| !self.removals.contains(*n))
            .map(|n| (n.clone(), known.get(n)))
            .collect();
        *known = Known {
            base: Some(Arc::clone(set)),
            except: kept,
        };
    }
}

/// Compares what the client holds with the subscribed part of `items`.
pub(crate) fn diff(known: &Known, sub: &DeltaSubscription, items: &Resources) -> Diff {
    let mut out = Diff::default();
    for (name, any) in sub.select(items) {
        // The version was hashed once, when the resource was encoded.
        let held = match known.get(name) {
            Some(Held::Sent(sent)) => Arc::ptr_eq(&sent, any) || sent.version() == any.version(),
            Some(Held::Reported(version)) => version == any.version(),
            None => false,
        };
        if !held {
            out.updates.push((name.clone(), Arc::clone(any)));
        }
    }
    out.removals = known.held_outside(sub, items).cloned().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE};
    use envoy_types::pb::google::protobuf::Any;

    fn any(body: &str) -> Arc<Versioned> {
        Arc::new(Versioned::new(Any {
            type_url: CLUSTER_TYPE.clone(),
            value: body.as_bytes().to_vec(),
        }))
    }

    #[test]
    fn identical_content_has_identical_version() {
        assert_eq!(any("a").version(), any("a").version());
        assert_ne!(any("a").version(), any("b").version());
    }

    fn set(items: &[(&str, &Arc<Versioned>)]) -> Arc<TypeResources> {
        let items = items.iter().map(|(n, a)| (n.to_string(), Arc::clone(a)));
        Arc::new(TypeResources::new(items.collect()))
    }

    #[test]
    fn only_changed_and_removed_resources_differ() {
        let sub = DeltaSubscription::initial(&CLUSTER_TYPE, &[]);
        let first_set = set(&[("a", &any("a")), ("b", &any("b"))]);
        let mut known = Known::default();
        let first = diff(&known, &sub, first_set.items());
        assert_eq!(first.updates.len(), 2);
        first.apply_to(&mut known, &first_set, &sub);
        assert!(diff(&known, &sub, first_set.items()).is_empty());
        // Equal bytes in a new Arc: compared, found equal, not sent.
        let same = set(&[("a", &any("a")), ("c", &any("c"))]);
        let next = diff(&known, &sub, same.items());
        assert_eq!(next.updates.len(), 1);
        assert_eq!(next.updates[0].0, "c");
        assert_eq!(next.removals, vec!["b".to_string()]);
    }

    #[test]
    fn deferred_removals_stay_held_until_removed() {
        let sub = DeltaSubscription::initial(&CLUSTER_TYPE, &[]);
        let (a, b) = (any("a"), any("b"));
        let first = set(&[("a", &a), ("b", &b)]);
        let mut known = Known::default();
        diff(&known, &sub, first.items()).apply_to(&mut known, &first, &sub);
        let next = set(&[("a", &a)]);
        let mut d = diff(&known, &sub, next.items());
        assert_eq!(d.removals, vec!["b".to_string()]);
        d.removals.clear();
        d.apply_to(&mut known, &next, &sub);
        assert!(matches!(known.get("b"), Some(Held::Sent(s)) if Arc::ptr_eq(&s, &b)));
        let later = diff(&known, &sub, next.items());
        assert!(later.updates.is_empty());
        assert_eq!(later.removals, vec!["b".to_string()]);
        later.apply_to(&mut known, &next, &sub);
        assert!(known.get("b").is_none());
        assert!(diff(&known, &sub, next.items()).is_empty());
    }

    #[test]
    fn forgotten_and_newly_covered_names_are_sent_again() {
        let mut sub = DeltaSubscription::initial(&ENDPOINT_TYPE, &["a".to_string()]);
        let all = set(&[("a", &any("a")), ("b", &any("b"))]);
        let mut known = Known::default();
        let first = diff(&known, &sub, all.items());
        assert_eq!(first.updates.len(), 1, "only the subscribed name");
        first.apply_to(&mut known, &all, &sub);
        assert!(known.forget("a", &sub));
        assert!(!known.forget("b", &sub), "never sent");
        assert_eq!(diff(&known, &sub, all.items()).updates.len(), 1);
        // A wildcard now covers `b`, which the client never got.
        diff(&known, &sub, all.items()).apply_to(&mut known, &all, &sub);
        known.widen(&sub);
        sub.apply(&["*".to_string()], &[]);
        let wide = diff(&known, &sub, all.items());
        assert_eq!(wide.updates.len(), 1);
        assert_eq!(wide.updates[0].0, "b");
    }

    #[test]
    fn reported_versions_are_compared_by_hash() {
        let sub = DeltaSubscription::initial(&CLUSTER_TYPE, &[]);
        let (a, b) = (any("a"), any("b"));
        let reported = [
            ("a".to_string(), a.version().to_string()),
            ("b".to_string(), "stale".to_string()),
            ("gone".to_string(), "1".to_string()),
        ];
        let known = Known::from_initial(reported.iter().map(|(n, v)| (n, v)));
        let d = diff(&known, &sub, set(&[("a", &a), ("b", &b)]).items());
        assert_eq!(d.updates.len(), 1);
        assert_eq!(d.updates[0].0, "b");
        assert_eq!(d.removals, vec!["gone".to_string()]);
    }
}
