//! Which resources of one type a stream asked for.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::selected::Selected;
use crate::xds::types::{legacy_wildcard, WILDCARD};
use crate::xds::TypeResources;

/// The resource names a client subscribed to for one type (xDS spec, "How
/// the client specifies what resources to return").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subscription {
    /// Every resource of the type.
    Wildcard,
    /// Only these names.
    Names(BTreeSet<String>),
}

impl Subscription {
    /// From the first request for a type: no names means wildcard for
    /// Listener and Cluster (legacy wildcard), and `*` means wildcard always.
    pub(crate) fn initial(type_url: &str, names: &[String]) -> Self {
        if names.is_empty() && legacy_wildcard(type_url) {
            Subscription::Wildcard
        } else {
            Self::explicit(names)
        }
    }

    fn explicit(names: &[String]) -> Self {
        if names.iter().any(|n| n == WILDCARD) {
            Subscription::Wildcard
        } else {
            Subscription::Names(names.iter().cloned().collect())
        }
    }

    /// Applies a later request's names; true when names were added (only
    /// newly requested resources must be sent, xDS spec "How the client
    /// specifies what resources to return"). A legacy wildcard stays
    /// wildcard while later requests carry no names.
    pub(crate) fn update(&mut self, names: &[String]) -> bool {
        let next = if names.is_empty() && *self == Subscription::Wildcard {
            Subscription::Wildcard
        } else {
            Self::explicit(names)
        };
        let added = match (&*self, &next) {
            (Subscription::Names(old), Subscription::Names(new)) => !new.is_subset(old),
            (Subscription::Names(_), Subscription::Wildcard) => true,
            (Subscription::Wildcard, _) => false,
        };
        *self = next;
        added
    }

    /// Whether the client asked for `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        match self {
            Subscription::Wildcard => true,
            Subscription::Names(names) => names.contains(name),
        }
    }

    /// The subscribed subset of `all` (names that do not exist are left
    /// out: the client times out on them, xDS spec "Knowing When a Requested
    /// Resource Does Not Exist"). When that is the whole set, the set itself
    /// (shared, not copied): Envoy asks for every EDS and RDS name it knows.
    pub(crate) fn select(&self, all: &Arc<TypeResources>) -> Selected {
        let Subscription::Names(names) = self else {
            return Selected::All(Arc::clone(all));
        };
        let items = all.items();
        if names.len() >= items.len() && items.keys().all(|n| names.contains(n)) {
            return Selected::All(Arc::clone(all));
        }
        Selected::Some(
            names
                .iter()
                .filter_map(|n| items.get_key_value(n))
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE};

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_names_are_wildcard_only_for_cds_and_lds() {
        assert_eq!(
            Subscription::initial(&CLUSTER_TYPE, &[]),
            Subscription::Wildcard
        );
        assert_eq!(
            Subscription::initial(&ENDPOINT_TYPE, &[]),
            Subscription::Names(BTreeSet::new())
        );
        assert_eq!(
            Subscription::initial(&ENDPOINT_TYPE, &names(&["*"])),
            Subscription::Wildcard
        );
    }

    #[test]
    fn update_reports_added_names() {
        let mut sub = Subscription::initial(&CLUSTER_TYPE, &[]);
        assert!(!sub.update(&[]));
        let mut eds = Subscription::initial(&ENDPOINT_TYPE, &names(&["a"]));
        assert!(!eds.update(&names(&["a"])));
        assert!(eds.update(&names(&["a", "b"])));
        assert!(eds.contains("b"));
        assert!(!eds.update(&[]), "removals need no answer");
        assert!(!eds.contains("a"));
        assert!(eds.update(&names(&["*"])));
    }
}
