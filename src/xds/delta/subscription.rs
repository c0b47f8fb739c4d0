//! Which resources of one type a delta stream subscribed to.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::xds::names::intern;
use crate::xds::types::{legacy_wildcard, WILDCARD};
use crate::xds::Resources;

/// Names a delta client subscribed to for one type. Unlike state of the
/// world, a delta client may hold a wildcard subscription and explicit
/// names at once, and changes them with `resource_names_subscribe` and
/// `resource_names_unsubscribe` (xDS spec, "Incremental xDS" and "How the
/// client specifies what resources to return").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeltaSubscription {
    wildcard: bool,
    /// Interned: every stream subscribed to a name shares its one copy.
    names: BTreeSet<Arc<str>>,
}

impl DeltaSubscription {
    /// From the first request of a type: `*` subscribes to the wildcard;
    /// no names at all is the legacy wildcard, for Listener and Cluster only
    /// ("How the client specifies what resources to return").
    pub(crate) fn initial(type_url: &str, subscribe: &[String]) -> Self {
        let mut sub = DeltaSubscription {
            wildcard: subscribe.is_empty() && legacy_wildcard(type_url),
            names: BTreeSet::new(),
        };
        sub.apply(subscribe, &[]);
        sub
    }

    /// Applies a later request's subscribe and unsubscribe lists; returns
    /// the names to send again even if the client holds them: those it
    /// subscribed to, new or not (it waits for each), and those it
    /// unsubscribed that the wildcard still covers (it must learn whether
    /// they still exist). go-control-plane's delta server does the same.
    pub(crate) fn apply(&mut self, subscribe: &[String], unsubscribe: &[String]) -> Vec<String> {
        let mut resend = Vec::new();
        for name in subscribe {
            if name == WILDCARD {
                self.wildcard = true;
            } else {
                self.names.insert(intern(name));
                resend.push(name.clone());
            }
        }
        for name in unsubscribe {
            if name == WILDCARD {
                self.wildcard = false;
            } else {
                self.names.remove(name.as_str());
            }
        }
        let covered = unsubscribe
            .iter()
            .filter(|n| *n != WILDCARD && self.contains(n));
        resend.extend(covered.cloned());
        resend
    }

    /// Whether the subscription covers `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// True when subscribed to every resource of the type.
    pub(crate) fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The subscribed subset of `items`.
    pub(crate) fn select<'a>(
        &'a self,
        items: &'a Resources,
    ) -> Box<dyn Iterator<Item = (&'a String, &'a std::sync::Arc<crate::xds::Versioned>)> + 'a>
    {
        if self.wildcard {
            Box::new(items.iter())
        } else {
            Box::new(self.names.iter().filter_map(|n| items.get_key_value(&**n)))
        }
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
    fn legacy_wildcard_only_for_cds_and_lds_star_for_any_type() {
        assert!(DeltaSubscription::initial(&CLUSTER_TYPE, &[]).is_wildcard());
        assert!(!DeltaSubscription::initial(&ENDPOINT_TYPE, &[]).is_wildcard());
        assert!(DeltaSubscription::initial(&ENDPOINT_TYPE, &names(&["*"])).is_wildcard());
        assert!(!DeltaSubscription::initial(&CLUSTER_TYPE, &names(&["a"])).is_wildcard());
    }

    #[test]
    fn subscribe_and_unsubscribe_report_changes() {
        let mut sub = DeltaSubscription::initial(&ENDPOINT_TYPE, &names(&["a"]));
        assert_eq!(sub.apply(&names(&["b"]), &[]), names(&["b"]));
        assert!(sub.apply(&[], &names(&["a"])).is_empty());
        assert!(!sub.contains("a") && sub.contains("b"));
    }

    #[test]
    fn wildcard_and_names_coexist() {
        let mut sub = DeltaSubscription::initial(&CLUSTER_TYPE, &[]);
        sub.apply(&names(&["x"]), &[]);
        let resend = sub.apply(&[], &names(&["x"]));
        assert_eq!(resend, names(&["x"]), "still covered by the wildcard");
        sub.apply(&names(&["y"]), &names(&["*"]));
        assert!(!sub.contains("x") && sub.contains("y"));
    }
}
