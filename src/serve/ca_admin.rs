//! `/debug/ca` and `POST /ca/rotate`: the admin API's view of the CA.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde_json::{json, Value};

use super::certs::unix;
use super::core::{lock, Core};
use super::rotation;
use crate::admin::CaControl;

/// The admin API's handle on the CA runtime. Holds the core weakly: the
/// core owns the admin state, which owns this.
pub(crate) struct CaAdmin {
    core: Weak<Core>,
    running: Arc<AtomicBool>,
    last: Arc<Mutex<Value>>,
}

impl CaAdmin {
    pub(crate) fn new(core: &Arc<Core>) -> Self {
        CaAdmin {
            core: Arc::downgrade(core),
            running: Arc::new(AtomicBool::new(false)),
            last: Arc::new(Mutex::new(Value::Null)),
        }
    }
}

impl CaControl for CaAdmin {
    fn debug(&self) -> Value {
        let Some(core) = self.core.upgrade() else {
            return Value::Null;
        };
        let ca = &core.certs.ca;
        let roots: Vec<Value> = ca
            .roots()
            .iter()
            .map(|r| {
                json!({
                    "fingerprint_sha256": r.fingerprint_sha256,
                    "subject": r.subject,
                    "not_before": unix(r.not_before),
                    "not_after": unix(r.not_after),
                    "signing": r.signing,
                })
            })
            .collect();
        json!({
            "plugin": ca.is_plugin(),
            "phase": ca.rotation_phase().as_str(),
            "rotation_running": self.running.load(Ordering::SeqCst),
            "last_rotation": lock(&self.last).clone(),
            "roots": roots,
            "leaves": core.certs.leaves(),
        })
    }

    fn rotate(&self, begin_only: bool) -> Result<Value, String> {
        let core = self.core.upgrade().ok_or("the control plane is stopping")?;
        if core.certs.ca.is_plugin() {
            return Err(
                "the plug-in CA is managed by the operator: rotate it by replacing its files"
                    .into(),
            );
        }
        if self.running.swap(true, Ordering::SeqCst) {
            return Err("a root rotation is already running".into());
        }
        let (running, last) = (self.running.clone(), self.last.clone());
        let from = core.certs.ca.rotation_phase().as_str();
        tokio::spawn(async move {
            let started = unix(std::time::SystemTime::now());
            let outcome = rotation::rotate(core, begin_only).await;
            let finished = unix(std::time::SystemTime::now());
            let record = match &outcome {
                Ok(()) => json!({ "ok": true, "started": started, "finished": finished }),
                Err(e) => {
                    tracing::error!("root rotation stopped: {e}");
                    json!({ "ok": false, "error": e.to_string(), "started": started, "finished": finished })
                }
            };
            *lock(&last) = record;
            running.store(false, Ordering::SeqCst);
        });
        Ok(json!({ "started": true, "from_phase": from, "begin_only": begin_only }))
    }
}
