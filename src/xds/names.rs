//! Resource names shared by every stream that subscribes to them.
//!
//! Thousands of sidecars subscribe to the same few thousand names (each
//! sidecar of a namespace to the same load assignments): kept per stream as
//! `String`s, each stream would hold its own copy of every name. Interned,
//! a stream holds a pointer per name and each name exists once.

use foldhash::{HashSet, HashSetExt};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// The interned names, and how many there were after the last sweep.
struct Names {
    set: HashSet<Arc<str>>,
    swept: usize,
}

static NAMES: LazyLock<Mutex<Names>> = LazyLock::new(|| {
    Mutex::new(Names {
        set: HashSet::new(),
        swept: 0,
    })
});

/// Names below this count are never swept: the set stays small anyway.
const SWEEP_MIN: usize = 1024;

/// The shared copy of `name`. Names no stream holds any more are dropped
/// when the set has doubled since the last sweep, so the set stays within
/// twice the names in use and a sweep's cost is spread over the inserts.
pub(crate) fn intern(name: &str) -> Arc<str> {
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = names.set.get(name) {
        return Arc::clone(found);
    }
    if names.set.len() >= SWEEP_MIN.max(2 * names.swept) {
        names.set.retain(|n| Arc::strong_count(n) > 1);
        names.swept = names.set.len();
    }
    let shared: Arc<str> = Arc::from(name);
    names.set.insert(Arc::clone(&shared));
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_share_one_copy() {
        let a = intern("outbound|80||names-test.ns.svc.cluster.local");
        let b = intern(&String::from(
            "outbound|80||names-test.ns.svc.cluster.local",
        ));
        assert!(Arc::ptr_eq(&a, &b));
        assert_ne!(&*intern("names-test-other"), &*a);
    }

    #[test]
    fn unused_names_are_swept_once_the_set_doubled() {
        let kept = intern("names-test-kept");
        for i in 0..(4 * SWEEP_MIN) {
            intern(&format!("names-test-dropped-{i}"));
        }
        let len = NAMES.lock().unwrap().set.len();
        assert!(len < 4 * SWEEP_MIN, "unused names were dropped: {len}");
        assert!(
            Arc::ptr_eq(&kept, &intern("names-test-kept")),
            "a held name stays"
        );
    }
}
