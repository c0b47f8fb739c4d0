//! What a state-of-the-world stream sends of one type.

use std::sync::Arc;

use crate::xds::{Resources, TypeResources, Versioned};

/// The resources of one type a stream sends or last sent: the snapshot's
/// whole set, shared (one `Arc` per stream however large the set), or a
/// subset by name.
#[derive(Debug, Clone)]
pub(crate) enum Selected {
    /// Every resource of the snapshot's set.
    All(Arc<TypeResources>),
    /// Some resources, by name.
    Some(Resources),
}

impl Selected {
    /// Number of resources.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// The resources by name.
    pub(crate) fn map(&self) -> &Resources {
        match self {
            Selected::All(all) => all.items(),
            Selected::Some(items) => items,
        }
    }

    /// Keeps only the names `keep` accepts.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        if self.map().keys().all(|n| keep(n)) {
            return;
        }
        let mut items = self.map().clone();
        items.retain(|n, _| keep(n));
        *self = Selected::Some(items);
    }

    /// Adds resources (names not already present).
    pub(crate) fn extend(&mut self, extra: Vec<(String, Arc<Versioned>)>) {
        if extra.is_empty() {
            return;
        }
        let mut items = self.map().clone();
        for (name, r) in extra {
            items.entry(name).or_insert(r);
        }
        *self = Selected::Some(items);
    }

    /// True when every resource of `self` is in `prev`, unchanged.
    pub(crate) fn within(&self, prev: &Selected) -> bool {
        let prev = prev.map();
        self.map()
            .iter()
            .all(|(name, r)| prev.get(name).is_some_and(|p| same(p, r)))
    }
}

/// Resource equality, by pointer first: unchanged resources are the same
/// `Arc` from one snapshot to the next; else by version (a content hash).
fn same(a: &Arc<Versioned>, b: &Arc<Versioned>) -> bool {
    Arc::ptr_eq(a, b) || a.version() == b.version()
}

impl PartialEq for Selected {
    fn eq(&self, other: &Self) -> bool {
        if let (Selected::All(a), Selected::All(b)) = (self, other) {
            // Versions are content hashes of the whole set.
            return Arc::ptr_eq(a, b) || a.version() == b.version();
        }
        self.len() == other.len() && self.within(other)
    }
}
