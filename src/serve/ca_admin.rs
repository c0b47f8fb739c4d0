//! `/debug/ca` and `POST /ca/rotate`: the admin API's view of the CA.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde_json::{json, Value};

use super::certs::unix;
use super::core::{lock, Core};
use super::rotation;
use super::rotation::shared::Stored;
use crate::admin::CaControl;
use crate::store::{SharedPhase, Store};

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
        let mut view = json!({
            "plugin": ca.is_plugin(),
            "phase": ca.rotation_phase().as_str(),
            "rotation_running": self.running.load(Ordering::SeqCst),
            "last_rotation": lock(&self.last).clone(),
            "roots": roots,
            "leaves": core.certs.leaves(),
        });
        if core.store.is_shared() {
            self.shared_view(&core, &mut view);
        }
        view
    }

    fn rotate(&self, begin_only: bool) -> Result<Value, String> {
        let core = self.core.upgrade().ok_or("the control plane is stopping")?;
        if core.store.is_shared() {
            return self.request_shared(core, begin_only);
        }
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

impl CaAdmin {
    /// With replicas: the shared rotation, its driver, and whether this
    /// replica could follow it; `rotation_running` and `last_rotation` as
    /// `trellis ca rotate` reads them, for whichever replica it asks.
    fn shared_view(&self, core: &Core, view: &mut Value) {
        let shared = &core.shared_rotation;
        let stored = shared.current();
        let record = stored.as_ref().map(|s| &s.record);
        let running = record.is_some_and(|r| r.in_progress());
        let requesting = self.running.load(Ordering::SeqCst);
        view["rotation_running"] = Value::from(running || requesting);
        view["shared_rotation"] = serde_json::to_value(record).unwrap_or_default();
        view["driver"] = shared.driver.borrow().clone().into();
        view["follow_error"] = shared.error().into();
        let Some(record) = record.filter(|_| lock(&self.last).is_null()) else {
            return;
        };
        view["last_rotation"] = match (&record.stalled, record.phase) {
            (None, SharedPhase::Finished) => json!({ "ok": true, "started": record.started }),
            (Some(why), _) => json!({ "ok": record.begin_only, "error": why }),
            (None, _) => Value::Null,
        };
    }

    /// `POST /ca/rotate` with replicas: writes the rotation request to the
    /// store (any replica will do); the elected driver takes it from there.
    fn request_shared(&self, core: Arc<Core>, begin_only: bool) -> Result<Value, String> {
        let Store::Etcd(_) = &core.store else {
            return Err("no shared store".into());
        };
        let me = core.shared_rotation.me();
        let op = rotation::proposal(&core, &me, begin_only).map_err(|e| e.to_string())?;
        if self.running.swap(true, Ordering::SeqCst) {
            return Err("a root rotation request is already being written".into());
        }
        *lock(&self.last) = Value::Null;
        let (running, last) = (self.running.clone(), self.last.clone());
        tokio::spawn(async move {
            if let Err(e) = propose(&core, op).await {
                tracing::error!("root rotation request: {e}");
                *lock(&last) = json!({ "ok": false, "error": e });
            }
            running.store(false, Ordering::SeqCst);
        });
        Ok(json!({ "started": true, "shared": true, "begin_only": begin_only }))
    }
}

/// Writes the request, then waits (briefly) until this replica's watch
/// shows it, so `rotation_running` never reads false in between.
async fn propose(core: &Core, op: crate::store::TrustOp) -> Result<(), String> {
    let Store::Etcd(etcd) = &core.store else {
        return Err("no shared store".into());
    };
    let crate::store::TrustOp::Propose { record, .. } = &op else {
        return Err("not a request".into());
    };
    let written = record.clone();
    if !etcd.trust(op).await.map_err(|e| e.to_string())? {
        return Err("another replica changed the rotation at the same time; ask again".into());
    }
    let mut records = core.shared_rotation.record.subscribe();
    let seen = |s: &Option<Stored>| s.as_ref().is_some_and(|s| s.raw == written);
    let wait = records.wait_for(seen);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
    Ok(())
}
