//! Key names under `PREFIX/v1/`.

/// The schema version in every key; a change of layout gets a new one, so
/// replicas of two versions never read each other's values.
pub const SCHEMA: &str = "v1";

/// Key names of one store prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `/trellis`).
    pub fn new(prefix: &str) -> Self {
        Keys {
            root: format!("{}/{SCHEMA}/", prefix.trim_end_matches('/')),
        }
    }

    /// Everything this schema version holds (what a replica watches).
    pub fn all(&self) -> String {
        self.root.clone()
    }

    /// A sidecar's key.
    pub fn sidecar(&self, id: &str) -> String {
        format!("{}sidecars/{id}", self.root)
    }

    /// A revoked token's key.
    pub fn revoked(&self, jti: &str) -> String {
        format!("{}revoked/{jti}", self.root)
    }

    /// A piece of trust material's check value.
    pub fn trust(&self, what: &str) -> String {
        format!("{}trust/{what}", self.root)
    }

    /// A key of the staged config rollout (`state`, `lock`).
    pub fn rollout(&self, what: &str) -> String {
        format!("{}rollout/{what}", self.root)
    }

    /// The rotation tag all of `replica`'s proxies ACKed.
    pub fn settled(&self, replica: &str) -> String {
        format!("{}trust/settled/{}", self.root, replica.replace('/', "_"))
    }

    /// The xDS status of a proxy served by `replica`. A `/` in the
    /// replica's name would make the key ambiguous, so it becomes `_`.
    pub fn status(&self, replica: &str, node: &str) -> String {
        format!("{}status/{}/{node}", self.root, replica.replace('/', "_"))
    }

    /// What a key under [`Keys::all`] names.
    pub fn parse<'k>(&self, key: &'k str) -> Option<KeyKind<'k>> {
        let rest = key.strip_prefix(&self.root)?;
        if let Some(id) = rest.strip_prefix("sidecars/") {
            return Some(KeyKind::Sidecar(id));
        }
        if let Some(rest) = rest.strip_prefix("status/") {
            let (replica, node) = rest.split_once('/')?;
            return Some(KeyKind::Status { replica, node });
        }
        if let Some(replica) = rest.strip_prefix("trust/settled/") {
            return Some(KeyKind::Settled(replica));
        }
        match rest {
            "trust/rotation" => return Some(KeyKind::Rotation),
            "trust/lock" => return Some(KeyKind::Lock),
            "rollout/state" => return Some(KeyKind::Rollout),
            "rollout/lock" => return Some(KeyKind::RolloutLock),
            _ => {}
        }
        rest.strip_prefix("revoked/").map(KeyKind::Revoked)
    }
}

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind<'k> {
    /// A sidecar, by node id.
    Sidecar(&'k str),
    /// A revoked token, by `jti`.
    Revoked(&'k str),
    /// A proxy's xDS status, published by the replica serving it.
    Status {
        /// The replica's name (as in [`Keys::status`]).
        replica: &'k str,
        /// The proxy's node id.
        node: &'k str,
    },
    /// The shared root rotation (`trust/rotation`).
    Rotation,
    /// Which replica drives it (`trust/lock`, on the driver's lease).
    Lock,
    /// The staged config rollout (`rollout/state`).
    Rollout,
    /// Which replica drives it (`rollout/lock`, on the driver's lease).
    RolloutLock,
    /// The rotation tag every proxy of a replica has ACKed
    /// (`trust/settled/REPLICA`, on that replica's lease).
    Settled(&'k str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_schema_version() {
        let keys = Keys::new("/trellis/");
        assert_eq!(keys.sidecar("a-1"), "/trellis/v1/sidecars/a-1");
        assert_eq!(keys.revoked("ab"), "/trellis/v1/revoked/ab");
        assert_eq!(
            keys.parse("/trellis/v1/sidecars/a/b"),
            Some(KeyKind::Sidecar("a/b"))
        );
        assert_eq!(
            keys.parse("/trellis/v1/revoked/ab"),
            Some(KeyKind::Revoked("ab"))
        );
        assert_eq!(
            keys.status("127.0.0.1:15010", "a/b"),
            "/trellis/v1/status/127.0.0.1:15010/a/b"
        );
        assert_eq!(
            keys.parse("/trellis/v1/status/127.0.0.1:15010/a/b"),
            Some(KeyKind::Status {
                replica: "127.0.0.1:15010",
                node: "a/b"
            })
        );
        assert_eq!(keys.parse("/trellis/v1/trust/roots"), None);
        assert_eq!(keys.parse(&keys.trust("rotation")), Some(KeyKind::Rotation));
        assert_eq!(keys.parse(&keys.trust("lock")), Some(KeyKind::Lock));
        assert_eq!(
            keys.parse(&keys.settled("127.0.0.1:1")),
            Some(KeyKind::Settled("127.0.0.1:1"))
        );
        assert_eq!(keys.parse(&keys.rollout("state")), Some(KeyKind::Rollout));
        assert_eq!(
            keys.parse("/trellis/v1/rollout/lock"),
            Some(KeyKind::RolloutLock)
        );
        assert_eq!(keys.parse("/trellis/v2/sidecars/a"), None);
    }
}
