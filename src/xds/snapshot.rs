//! Immutable, versioned resource sets.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use super::type_map::TypeMap;
use super::types::{type_key, TypeKey};
use super::version::{VersionHasher, Versioned};

/// Resources of one type by name. `Arc` so that one encoded resource (and
/// its version) is shared by every snapshot and stream that carries it.
pub type Resources = BTreeMap<String, Arc<Versioned>>;

/// The resources of one type in a [`Snapshot`], with their version.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeResources {
    version: String,
    items: Resources,
}

impl TypeResources {
    /// A set with its content version. Build one once and share it (`Arc`)
    /// between the snapshots of every proxy that gets the same resources.
    pub fn new(items: Resources) -> Self {
        TypeResources {
            version: content_version(&items),
            items,
        }
    }

    /// An empty set (what a type absent from a snapshot holds).
    pub fn empty() -> &'static TypeResources {
        Self::empty_shared()
    }

    /// The empty set, shared.
    pub fn empty_shared() -> &'static Arc<TypeResources> {
        static EMPTY: LazyLock<Arc<TypeResources>> =
            LazyLock::new(|| Arc::new(TypeResources::new(Resources::new())));
        &EMPTY
    }

    /// The version: a hash of every name and encoded resource, so the same
    /// content always gets the same version and unchanged types are not
    /// pushed again (xDS spec, "When to send an update").
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The resources by name.
    pub fn items(&self) -> &Resources {
        &self.items
    }
}

/// The hash ([`VersionHasher`]: XXH3-128, stable across builds and runs) of
/// every resource's name and version, in name order. A resource's version
/// already hashes its type URL and bytes, once when it was made, so a set
/// of large resources costs a hash of names and short versions.
fn content_version(items: &Resources) -> String {
    let mut hasher = VersionHasher::new();
    for (name, r) in items {
        hasher.field(name.as_bytes()).field(r.version().as_bytes());
    }
    hasher.finish()
}

/// An immutable set of resources for one node: per type URL, a version and
/// the resources by name.
///
/// One per connected proxy: its types are a [`TypeMap`] (a `BTreeMap`
/// allocated a 384-byte node per snapshot for at most five types).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    types: TypeMap<TypeKey, Arc<TypeResources>>,
}

impl Snapshot {
    /// Starts building a snapshot.
    pub fn builder() -> SnapshotBuilder {
        SnapshotBuilder::default()
    }

    /// The version of one type, or `None` when the snapshot has no resource
    /// of that type.
    pub fn version(&self, type_url: &str) -> Option<&str> {
        self.types.get(type_url).map(|t| t.version())
    }

    /// The resources of one type; a type the snapshot lacks is empty.
    pub fn resources(&self, type_url: &str) -> &TypeResources {
        match self.types.get(type_url) {
            Some(t) => t,
            None => TypeResources::empty(),
        }
    }

    /// The shared set of one type (empty when the snapshot lacks it).
    /// Streams keep it: one `Arc` per stream instead of a copy of the set.
    pub fn shared(&self, type_url: &str) -> &Arc<TypeResources> {
        self.types
            .get(type_url)
            .unwrap_or_else(|| TypeResources::empty_shared())
    }

    /// True when the snapshot's set of `type_url` is `set` itself (the same
    /// `Arc`), or both are absent.
    pub fn holds(&self, type_url: &str, set: Option<&Arc<TypeResources>>) -> bool {
        match (self.types.get(type_url), set) {
            (Some(mine), Some(set)) => Arc::ptr_eq(mine, set),
            (None, None) => true,
            _ => false,
        }
    }

    /// True when every type has the same version in both snapshots.
    pub fn same_versions(&self, other: &Snapshot) -> bool {
        self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .all(|(url, t)| other.version(url) == Some(t.version()))
    }

    /// The type URLs that have at least one resource.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(|t| &**t)
    }
}

/// Collects resources for a [`Snapshot`]. The type of each resource is its
/// `Any::type_url`; a later resource with the same type and name replaces an
/// earlier one.
#[derive(Debug, Clone, Default)]
pub struct SnapshotBuilder {
    types: BTreeMap<String, Resources>,
    shared: BTreeMap<String, Arc<TypeResources>>,
}

impl SnapshotBuilder {
    /// Adds one named resource (chaining form).
    pub fn add(mut self, name: impl Into<String>, resource: Arc<Versioned>) -> Self {
        self.insert(name, resource);
        self
    }

    /// Adds one named resource.
    pub fn insert(&mut self, name: impl Into<String>, resource: Arc<Versioned>) -> &mut Self {
        self.shared.remove(&resource.type_url);
        self.types
            .entry(resource.type_url.clone())
            .or_default()
            .insert(name.into(), resource);
        self
    }

    /// Sets a whole type to a set built once and shared with other
    /// snapshots; resources of that type added one by one are dropped.
    pub fn set_type(&mut self, type_url: &str, resources: Arc<TypeResources>) -> &mut Self {
        self.types.remove(type_url);
        self.shared.insert(type_url.to_string(), resources);
        self
    }

    /// Computes each type's version and freezes the set.
    pub fn build(self) -> Snapshot {
        let own = (self.types.into_iter())
            .map(|(url, items)| (type_key(&url), Arc::new(TypeResources::new(items))));
        let shared = (self.shared.into_iter()).map(|(url, set)| (type_key(&url), set));
        Snapshot {
            types: own.chain(shared).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    fn any(type_url: &str, bytes: &[u8]) -> Arc<Versioned> {
        Arc::new(Versioned::new(Any {
            type_url: type_url.to_string(),
            value: bytes.to_vec(),
        }))
    }

    #[test]
    fn same_content_same_version() {
        let a = Snapshot::builder().add("x", any("t/a", b"1")).build();
        let b = Snapshot::builder().add("x", any("t/a", b"1")).build();
        assert_eq!(a.version("t/a"), b.version("t/a"));
        assert!(a.version("t/a").is_some());
    }

    #[test]
    fn changed_bytes_or_name_change_version_of_that_type_only() {
        let base = Snapshot::builder()
            .add("x", any("t/a", b"1"))
            .add("y", any("t/b", b"2"))
            .build();
        let bytes = Snapshot::builder()
            .add("x", any("t/a", b"9"))
            .add("y", any("t/b", b"2"))
            .build();
        let renamed = Snapshot::builder()
            .add("z", any("t/a", b"1"))
            .add("y", any("t/b", b"2"))
            .build();
        assert_ne!(base.version("t/a"), bytes.version("t/a"));
        assert_ne!(base.version("t/a"), renamed.version("t/a"));
        assert_eq!(base.version("t/b"), bytes.version("t/b"));
    }

    #[test]
    fn absent_type_is_empty() {
        let snap = Snapshot::builder().add("x", any("t/a", b"1")).build();
        assert_eq!(snap.version("t/none"), None);
        assert!(snap.resources("t/none").items().is_empty());
        assert_eq!(snap.type_urls().collect::<Vec<_>>(), vec!["t/a"]);
    }
}
