//! Per-type state by type URL, for the few types one proxy uses.

use std::borrow::Borrow;

/// A map from type URL to `V`, kept as a `Vec` sorted by key and sized to
/// its entries.
///
/// A stream or a proxy's status has at most a handful of types (CDS, EDS,
/// LDS, RDS, SDS). A `BTreeMap` allocates a node of eleven slots for the
/// first entry, so with values of 150–200 bytes each such map cost a 2 KB or
/// 2.5 KB block per connected proxy for four or five entries; here it costs
/// what the entries take. Lookups are a binary search over at most a few
/// entries; iteration is in key order, as a `BTreeMap`'s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypeMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for TypeMap<K, V> {
    fn default() -> Self {
        TypeMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Borrow<str>, V> TypeMap<K, V> {
    fn find(&self, type_url: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(k, _)| k.borrow().cmp(type_url))
    }

    /// The value of `type_url`.
    pub(crate) fn get(&self, type_url: &str) -> Option<&V> {
        let i = self.find(type_url).ok()?;
        Some(&self.entries[i].1)
    }

    /// The value of `type_url`, to change.
    pub(crate) fn get_mut(&mut self, type_url: &str) -> Option<&mut V> {
        let i = self.find(type_url).ok()?;
        Some(&mut self.entries[i].1)
    }

    /// Sets the value of `key`, replacing (and returning) an older one.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(key.borrow()) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                // One more slot, not the doubling `Vec` does: a type is
                // added a handful of times per stream, and the map lives as
                // long as the stream.
                self.entries.reserve_exact(1);
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `type_url`, inserted with `make` if missing.
    pub(crate) fn get_or_insert_with(
        &mut self,
        type_url: &str,
        key: impl FnOnce() -> K,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        let i = match self.find(type_url) {
            Ok(i) => i,
            Err(i) => {
                self.entries.reserve_exact(1);
                self.entries.insert(i, (key(), make()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// How many types there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The type URLs, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The entries, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

/// Collects entries sized at once (no growth one insert at a time); of
/// entries with the same key the last wins, as `BTreeMap::extend`'s.
impl<K: Borrow<str>, V> FromIterator<(K, V)> for TypeMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        fn key<K: Borrow<str>, V>((k, _): &(K, V)) -> &str {
            k.borrow()
        }
        let mut entries: Vec<(K, V)> = items.into_iter().collect();
        // Reversed, then sorted stably: the last of equal keys comes first
        // and is the one `dedup_by` keeps.
        entries.reverse();
        entries.sort_by(|a, b| key(a).cmp(key(b)));
        entries.dedup_by(|later, kept| key(later) == key(kept));
        entries.shrink_to_fit();
        TypeMap { entries }
    }
}

/// `map[type_url]`, as a `BTreeMap`'s, for tests (panics when missing).
#[cfg(test)]
impl<K: Borrow<str>, V> std::ops::Index<&str> for TypeMap<K, V> {
    type Output = V;

    fn index(&self, type_url: &str) -> &V {
        match self.get(type_url) {
            Some(v) => v,
            None => panic!("no type {type_url}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_sorted_map_sized_to_its_entries() {
        let mut map: TypeMap<String, u32> = TypeMap::default();
        assert_eq!(map.insert("b".into(), 2), None);
        assert_eq!(map.insert("a".into(), 1), None);
        assert_eq!(map.insert("c".into(), 3), None);
        assert_eq!(map.insert("b".into(), 20), Some(2));
        assert_eq!(map.get("b"), Some(&20));
        assert_eq!(map.get("d"), None);
        *map.get_mut("a").unwrap() += 10;
        *map.get_or_insert_with("d", || "d".into(), || 4) += 1;
        *map.get_or_insert_with("a", || "a".into(), || 0) += 1;
        let all: Vec<(&str, u32)> = map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(all, [("a", 12), ("b", 20), ("c", 3), ("d", 5)]);
        let keys: Vec<&String> = map.keys().collect();
        assert_eq!(keys, ["a", "b", "c", "d"]);
        assert_eq!(map.entries.capacity(), 4, "no room beyond the entries");
    }

    #[test]
    fn collects_in_key_order_the_last_of_a_key_winning() {
        let items = [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)];
        let map: TypeMap<&str, u32> = items.into_iter().collect();
        let all: Vec<(&str, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(all, [("a", 5), ("b", 3), ("c", 4)]);
        assert_eq!(map.entries.capacity(), 3, "no room beyond the entries");
    }
}
