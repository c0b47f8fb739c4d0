//! The local backend: the registry survives a control-plane restart: it is saved in
//! `STATE_DIR/registry.json` when it changes, and a restarted control plane
//! starts with those sidecars registered but disconnected: each stays an
//! endpoint until it reconnects or the restart grace period ends. Without
//! it, the first sidecar to reconnect would briefly see none of the others
//! as endpoints.
//!
//! Only what the sidecars' nodes said is saved (identities and ports); no
//! keys or tokens. Token revocations stay in `STATE_DIR/revoked-tokens`
//! (`ca::token`) and the root-rotation state in `STATE_DIR/ca`.

use std::path::{Path, PathBuf};

use super::record::Record;
use crate::registry::{Proxy, Registry};

const FILE: &str = "registry.json";

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Saves the registered sidecars (write a temporary file, then rename, so
/// a crash never leaves half a file). Failures are logged: the registry is
/// a convenience for restarts, not a reason to stop serving.
pub fn save(state_dir: &Path, registry: &Registry) {
    let saved: Vec<Record> = registry
        .sidecars()
        .values()
        // Only endpoints are kept for a restart; a gateway is none.
        .filter(|p| p.gateway.is_none())
        .map(|p| Record::from(&**p))
        .collect();
    let result = serde_json::to_vec_pretty(&saved)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            let tmp = state_dir.join(format!(".{FILE}.tmp"));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path(state_dir))
        });
    if let Err(e) = result {
        tracing::warn!("saving the registry in {}: {e}", state_dir.display());
    }
}

/// The sidecars saved by the previous run; none when there is no file or it
/// cannot be read (logged).
pub fn load(state_dir: &Path) -> Vec<Proxy> {
    let file = path(state_dir);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!("reading {}: {e}", file.display());
            return Vec::new();
        }
    };
    match serde_json::from_slice::<Vec<Record>>(&bytes) {
        Ok(saved) => saved.into_iter().map(Proxy::from).collect(),
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", file.display());
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Labels;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).is_empty());
        let mut reg = Registry::new();
        let mut labels = Labels::new();
        labels.insert("version".into(), "v1".into());
        reg.register(Proxy {
            id: "a-1".into(),
            service: "a".into(),
            namespace: "default".into(),
            labels,
            service_account: "a".into(),
            app_port: 1,
            inbound_address: "127.0.0.1".into(),
            inbound_port: 2,
            outbound_port: 3,
            stats_port: None,
            admin_port: None,
            gateway: None,
            topology: Default::default(),
        });
        save(dir.path(), &reg);
        let back = load(dir.path());
        assert_eq!(back.len(), 1);
        assert_eq!(&back[0], &*reg.sidecars()["a-1"]);
        std::fs::write(path(dir.path()), "nonsense").unwrap();
        assert!(load(dir.path()).is_empty());
    }
}
