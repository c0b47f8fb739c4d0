//! Per-resource versions and what a delta client lacks.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::Resource;

use super::subscription::DeltaSubscription;
use crate::xds::{Resources, Versioned};

/// One resource the client holds: its version and, when this stream sent
/// it, the resource itself (an `Arc` still current in the snapshot needs no
/// hashing to know it is unchanged).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) version: String,
    sent: Option<Arc<Versioned>>,
}

/// What the client holds of one type, by name.
pub(crate) type Known = BTreeMap<String, Held>;

/// Versions a reconnecting client reported (`initial_resource_versions`).
pub(crate) fn known_from_initial<'a>(
    initial: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Known {
    initial
        .into_iter()
        .map(|(name, version)| {
            let held = Held {
                version: version.clone(),
                sent: None,
            };
            (name.clone(), held)
        })
        .collect()
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

    /// Records that the client now holds what this diff sent.
    pub(crate) fn apply_to(&self, known: &mut Known) {
        for (name, r) in &self.updates {
            let held = Held {
                version: r.version().to_string(),
                sent: Some(Arc::clone(r)),
            };
            known.insert(name.clone(), held);
        }
        for name in &self.removals {
            known.remove(name);
        }
    }
}

/// Compares what the client holds with the subscribed part of `items`.
pub(crate) fn diff(known: &Known, sub: &DeltaSubscription, items: &Resources) -> Diff {
    let mut out = Diff::default();
    for (name, any) in sub.select(items) {
        let held = known.get(name);
        if held
            .and_then(|h| h.sent.as_ref())
            .is_some_and(|s| Arc::ptr_eq(s, any))
        {
            continue;
        }
        // The version was hashed once, when the resource was encoded.
        if held.is_none_or(|h| h.version != any.version()) {
            out.updates.push((name.clone(), Arc::clone(any)));
        }
    }
    out.removals = known
        .keys()
        .filter(|name| sub.contains(name) && !items.contains_key(*name))
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::CLUSTER_TYPE;
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

    #[test]
    fn only_changed_and_removed_resources_differ() {
        let sub = DeltaSubscription::initial(&CLUSTER_TYPE, &[]);
        let items: Resources = [("a".to_string(), any("a")), ("b".to_string(), any("b"))].into();
        let mut known = Known::new();
        let first = diff(&known, &sub, &items);
        assert_eq!(first.updates.len(), 2);
        first.apply_to(&mut known);
        assert!(diff(&known, &sub, &items).is_empty());
        // Equal bytes in a new Arc: hashed, found equal, not sent.
        let same: Resources = [("a".to_string(), any("a")), ("c".to_string(), any("c"))].into();
        let next = diff(&known, &sub, &same);
        assert_eq!(next.updates.len(), 1);
        assert_eq!(next.updates[0].0, "c");
        assert_eq!(next.removals, vec!["b".to_string()]);
    }
}
