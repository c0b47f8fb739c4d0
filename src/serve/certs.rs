//! Workload certificates of registered sidecars, issued by the mesh CA.
//!
//! A sidecar gets its leaf when its (authenticated) stream opens: the
//! connect marks the snapshots dirty and the rebuild asks [`Certs::for_proxy`],
//! which issues on first use and caches per proxy id. A cached leaf is
//! re-issued when it reaches half its life (as Istio does), when the proxy's
//! SPIFFE ID or the workload TTL changed, or after [`Certs::reissue_all`]
//! (root rotation). [`renew_loop`] wakes the rebuild when the soonest leaf is
//! due, so the new secret is pushed over SDS without restarting Envoy.
//!
//! Before each issuance the token the node's stream presented is checked
//! again ([`Certs::presented`]): a node whose token was revoked or expired
//! gets no new leaf, even from a rebuild that started before its stream was
//! cut.

use std::collections::{hash_map, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};

use super::core::{lock, Core};
use crate::ca::token::{TokenAuthority, TokenClaims, TokenError};
use crate::ca::{Ca, CaError, IssuedCert, SpiffeId};
use crate::config::model::MeshSettings;
use crate::registry::Proxy;
use crate::translate::WorkloadCerts;

/// One proxy's current leaf and what it was issued for.
struct Entry {
    spiffe_id: String,
    ttl: Duration,
    cert: IssuedCert,
    /// What the last rebuild got: the leaf's PEMs with the trust bundle of
    /// that moment, made again only when the bundle changes (root rotation).
    handed_out: Option<Arc<WorkloadCerts>>,
}

/// Public facts about a proxy's leaf, for `/debug/ca` (no key).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct LeafInfo {
    pub(crate) spiffe_id: String,
    pub(crate) serial: String,
    pub(crate) not_after: u64,
    pub(crate) renew_at: u64,
}

/// Why a proxy got no certificate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertError {
    /// The CA could not issue.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The token the node's stream presented is no longer valid.
    #[error("not issued, the node's workload token is no longer valid: {0}")]
    Token(TokenError),
}

/// The CA and the leaves it issued to sidecars, by node id.
pub(crate) struct Certs {
    pub(crate) ca: Arc<Ca>,
    leaves: Mutex<HashMap<String, Entry>>,
    /// Verifies the tokens in `credentials` again.
    tokens: Option<Arc<TokenAuthority>>,
    /// The claims of the token each node's latest stream presented.
    credentials: Mutex<HashMap<String, TokenClaims>>,
    /// Fired when a leaf is issued, so [`renew_loop`] recomputes its timer.
    issued: Notify,
    /// Leaves issued since the start (`trellis_ca_certificates_issued_total`).
    pub(crate) issued_total: std::sync::atomic::AtomicU64,
}

impl Certs {
    /// Leaves from `ca`; with `tokens`, the tokens nodes presented are
    /// checked again before each issuance.
    pub(crate) fn new(ca: Arc<Ca>, tokens: Option<Arc<TokenAuthority>>) -> Self {
        Certs {
            ca,
            leaves: Mutex::new(HashMap::new()),
            tokens,
            credentials: Mutex::new(HashMap::new()),
            issued: Notify::new(),
            issued_total: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The proxy's certificate, key and `bundle` (the CA's trust bundle,
    /// read once per rebuild); issues a new leaf when there is none, it is
    /// due, or it was issued for another identity. An unchanged leaf and
    /// bundle give the same `Arc` as the last call.
    pub(crate) fn for_proxy(
        &self,
        proxy: &Proxy,
        mesh: &MeshSettings,
        now: SystemTime,
        bundle: &str,
    ) -> Result<Arc<WorkloadCerts>, CertError> {
        let spiffe_id = proxy.spiffe_id(&mesh.trust_domain);
        let fresh = |e: &Entry| {
            e.spiffe_id == spiffe_id && e.ttl == mesh.workload_ttl && e.cert.renew_at() > now
        };
        let mut leaves = lock(&self.leaves);
        let entry = match leaves.entry(proxy.id.clone()) {
            hash_map::Entry::Occupied(o) if fresh(o.get()) => o.into_mut(),
            other => {
                self.may_issue(&proxy.id, now).map_err(CertError::Token)?;
                other
                    .insert_entry(self.issue(proxy, mesh, spiffe_id.clone())?)
                    .into_mut()
            }
        };
        let shared = match entry.handed_out.take() {
            Some(h) if h.trust_bundle_pem == bundle => h,
            _ => Arc::new(WorkloadCerts {
                cert_chain_pem: entry.cert.chain_pem.clone(),
                key_pem: entry.cert.key.expose_secret().to_string(),
                trust_bundle_pem: bundle.to_string(),
            }),
        };
        entry.handed_out = Some(Arc::clone(&shared));
        Ok(shared)
    }

    /// Records the claims of the token a node's new stream presented
    /// (`None`: accepted without one, by `--insecure-xds`).
    pub(crate) fn presented(&self, node_id: &str, claims: Option<TokenClaims>) {
        let mut credentials = lock(&self.credentials);
        match claims {
            Some(c) => credentials.insert(node_id.to_owned(), c),
            None => credentials.remove(node_id),
        };
    }

    /// Whether `jti` is the token the node's latest stream presented.
    pub(crate) fn presented_jti(&self, node_id: &str, jti: &str) -> bool {
        lock(&self.credentials)
            .get(node_id)
            .is_some_and(|c| c.jti == jti)
    }

    /// Ok unless the node presented a token that is now revoked or expired.
    /// Called under the `leaves` lock (lock order: leaves, credentials).
    fn may_issue(&self, node_id: &str, now: SystemTime) -> Result<(), TokenError> {
        let (Some(tokens), Some(claims)) =
            (&self.tokens, lock(&self.credentials).get(node_id).cloned())
        else {
            return Ok(());
        };
        tokens.still_valid(&claims, now)
    }

    /// Drops a node's leaf (its token was refused): nothing of it is handed
    /// out again, and a new one is issued only for a valid token.
    pub(crate) fn drop_leaf(&self, node_id: &str) {
        lock(&self.leaves).remove(node_id);
    }

    /// Issues a new leaf for `proxy`.
    fn issue(
        &self,
        proxy: &Proxy,
        mesh: &MeshSettings,
        spiffe_id: String,
    ) -> Result<Entry, CaError> {
        let id = SpiffeId::new(&mesh.trust_domain, &proxy.namespace, &proxy.service_account)
            .map_err(|e| CaError::BadName(e.to_string()))?;
        let cert = self.ca.issue(&id, mesh.workload_ttl)?;
        tracing::info!(
            node = %proxy.id,
            spiffe_id,
            serial = cert.serial_hex,
            ttl = ?mesh.workload_ttl,
            "workload certificate issued"
        );
        self.issued_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.issued.notify_one();
        Ok(Entry {
            spiffe_id,
            ttl: mesh.workload_ttl,
            cert,
            handed_out: None,
        })
    }

    /// Forgets the leaves and tokens of proxies that are no longer registered.
    pub(crate) fn forget(&self, gone: &[String]) {
        let mut leaves = lock(&self.leaves);
        let mut credentials = lock(&self.credentials);
        for id in gone {
            leaves.remove(id);
            credentials.remove(id);
        }
    }

    /// Drops every leaf so the next rebuild issues new ones (root rotation).
    pub(crate) fn reissue_all(&self) {
        lock(&self.leaves).clear();
    }

    /// When the soonest leaf is due for renewal.
    fn next_renewal(&self) -> Option<SystemTime> {
        lock(&self.leaves).values().map(|e| e.cert.renew_at()).min()
    }

    /// Facts about every leaf, by node id.
    pub(crate) fn leaves(&self) -> std::collections::BTreeMap<String, LeafInfo> {
        lock(&self.leaves)
            .iter()
            .map(|(id, e)| {
                let info = LeafInfo {
                    spiffe_id: e.spiffe_id.clone(),
                    serial: e.cert.serial_hex.clone(),
                    not_after: unix(e.cert.not_after),
                    renew_at: unix(e.cert.renew_at()),
                };
                (id.clone(), info)
            })
            .collect()
    }
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Wakes the rebuild whenever the soonest leaf reaches its renewal time.
pub(crate) async fn renew_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    loop {
        let wait = core
            .certs
            .next_renewal()
            .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default());
        let due = async {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = due => {
                core.dirty.notify_one();
                // The rebuild re-issues and fires `issued`; the timeout
                // keeps a failed issuance from spinning.
                let _ = tokio::time::timeout(Duration::from_secs(1), core.certs.issued.notified()).await;
            }
            () = core.certs.issued.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
