//! The mesh certificate authority: workload identities (SPIFFE X.509 SVIDs),
//! the xDS server certificate, the trust bundle and root rotation; plus the
//! workload tokens that authenticate xDS streams (`token`).
//!
//! Keys live under `STATE_DIR/ca/` (directories 0700, key files 0600) unless
//! an operator plugs in their own CA (Istio's `cacerts` layout). Nothing in
//! this module prints key material: key-holding types show `[redacted]`.

mod issue;
mod keys;
mod plugin;
mod rotation;
mod selfsigned;
mod signer;
mod spiffe;
mod store;
pub mod token;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

pub use plugin::PluginCa;
pub use spiffe::{SpiffeId, SpiffeIdError};
pub use token::{TokenAuthority, TokenClaims, TokenError};

use signer::Signer;

/// Validity of a self-signed root: ten years, as Istio's self-signed root.
pub const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far back a leaf's `notBefore` goes, so peers whose clocks lag a little
/// accept a fresh certificate.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// Where the CA keeps its state and which CA signs.
#[derive(Debug, Clone)]
pub struct CaConfig {
    /// `--state-dir`: the self-signed CA lives in `STATE_DIR/ca/`.
    pub state_dir: PathBuf,
    /// An operator's CA (Istio plug-in CA files); when set it signs instead.
    pub plugin: Option<PluginCa>,
}

/// Errors of the CA; messages name the file and the problem, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file or directory operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A CA file exists but is unusable.
    #[error("{}: {problem}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Building or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A name for a certificate is not valid (e.g. a DNS SAN).
    #[error("invalid certificate name `{0}`")]
    BadName(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A rotation step was asked for in the wrong phase.
    #[error("cannot {step} while the root rotation phase is {phase}")]
    WrongPhase {
        /// The step asked for.
        step: &'static str,
        /// The current phase.
        phase: RotationPhase,
    },
    /// A plug-in CA cannot generate its own new root: the operator supplies
    /// new CA files to rotate to ([`Ca::begin_rotation_to`]).
    #[error("the plug-in CA is managed by the operator: supply new CA files to rotate to")]
    PluginManaged,
}

/// PEM text holding a private key. Debug and Display print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(String);

impl SecretPem {
    /// Wraps key PEM text.
    pub fn new(pem: String) -> Self {
        Self(pem)
    }

    /// The PEM text, for the one place that must send it (an SDS secret).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A certificate issued by the CA with its fresh private key.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The leaf, then the intermediates up to (for a plug-in CA, possibly
    /// including) the root, as PEM.
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8 PEM).
    pub key: SecretPem,
    /// The leaf's serial number, lowercase hex (as Envoy's `/certs` shows it).
    pub serial_hex: String,
    /// Start of validity (backdated by [`BACKDATE`]).
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// When it was issued: `not_before + BACKDATE`.
    pub issued_at: SystemTime,
}

impl IssuedCert {
    /// When to re-issue: half-way through the lifetime from issuance, as Istio.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.issued_at)
            .unwrap_or_default();
        self.issued_at + life / 2
    }
}

/// Where a root rotation stands (`begin` → `activate` → `finish`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationPhase {
    /// One root, trusted and signing.
    Idle,
    /// A new root is in the trust bundle; the old root still signs.
    NewRootTrusted,
    /// The new root signs; the old root is still trusted.
    NewRootActive,
}

impl RotationPhase {
    /// A stable lower-case name for logs and `/debug/ca`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::NewRootTrusted => "new-root-trusted",
            Self::NewRootActive => "new-root-active",
        }
    }
}

impl fmt::Display for RotationPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Public facts about a trusted root, for `/debug/ca` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootInfo {
    /// SHA-256 of the certificate DER, lowercase hex.
    pub fingerprint_sha256: String,
    /// The subject, e.g. `O=Trellis, CN=Trellis mesh root 1a2b3c4d`.
    pub subject: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Whether this root's key (self-signed CA) signs new leaves now.
    pub signing: bool,
}

/// One trusted root: its PEM and facts, and (self-signed CA) its signer.
#[derive(Clone)]
struct Root {
    id: String,
    cert_pem: String,
    info: RootInfo,
    signer: Option<Arc<Signer>>,
}

/// What the CA holds now; replaced as a whole by rotation steps.
#[derive(Clone)]
struct State {
    /// `STATE_DIR/ca` while the self-signed CA signs; `None` for a plug-in CA.
    dir: Option<PathBuf>,
    /// Trusted roots, old first during a rotation.
    roots: Vec<Root>,
    signer: Arc<Signer>,
    phase: RotationPhase,
    /// During a rotation to a supplied CA: the CA that takes over at `finish`.
    next: Option<Box<State>>,
}

/// The mesh CA. Cheap to share (`Arc<Ca>`); every method takes `&self`.
pub struct Ca {
    state: RwLock<State>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("plugin", &self.is_plugin())
            .field("phase", &self.rotation_phase())
            .field("roots", &self.roots())
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl Ca {
    /// Loads the plug-in CA if configured, else the self-signed CA in
    /// `STATE_DIR/ca/`, creating it on first start (and resuming a rotation).
    pub fn load_or_create(config: &CaConfig) -> Result<Ca, CaError> {
        let state = match &config.plugin {
            Some(plugin) => plugin::load(plugin)?,
            None => selfsigned::load_or_create(&config.state_dir)?,
        };
        Ok(Ca {
            state: RwLock::new(state),
        })
    }

    /// Issues a workload leaf for `id`, valid from now − [`BACKDATE`] for `ttl`
    /// (cut at the signing certificate's own expiry).
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> Result<IssuedCert, CaError> {
        issue::leaf(&self.signer(), id, ttl)
    }

    /// Issues a server certificate (serverAuth) for the xDS TLS listener with
    /// DNS names and IP addresses as SANs.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ips: &[std::net::IpAddr],
        ttl: Duration,
    ) -> Result<IssuedCert, CaError> {
        issue::server(&self.signer(), dns_names, ips, ttl)
    }

    /// Every trusted root as PEM, concatenated (old root first during a rotation).
    pub fn trust_bundle_pem(&self) -> String {
        self.read()
            .roots
            .iter()
            .map(|r| r.cert_pem.as_str())
            .collect()
    }

    /// Facts about each trusted root (no keys).
    pub fn roots(&self) -> Vec<RootInfo> {
        self.read().roots.iter().map(|r| r.info.clone()).collect()
    }

    /// The soonest expiry among the trusted roots.
    pub fn root_expiry(&self) -> Option<SystemTime> {
        self.read().roots.iter().map(|r| r.info.not_after).min()
    }

    /// The expiry of the certificate that signs leaves (root or intermediate).
    pub fn signing_cert_expiry(&self) -> SystemTime {
        self.signer().not_after()
    }

    /// SHA-256 (hex) of the certificate that signs now; it changes when a
    /// root rotation hands signing to the new root.
    pub fn signer_fingerprint(&self) -> String {
        self.signer().fingerprint().to_string()
    }

    /// The sorted SHA-256 fingerprints of the trusted roots, comma-joined:
    /// equal on every replica trusting the same roots.
    pub fn roots_mark(&self) -> String {
        let mut roots: Vec<String> = (self.roots().into_iter())
            .map(|r| r.fingerprint_sha256)
            .collect();
        roots.sort();
        roots.join(",")
    }

    /// The trusted roots and the signing certificate, as fingerprints
    /// (`ROOTS/SIGNER`): equal on every replica holding the same CA files,
    /// and different after a move to a new intermediate of the same root.
    pub fn identity(&self) -> String {
        format!("{}/{}", self.roots_mark(), self.signer_fingerprint())
    }

    /// The [`Ca::identity`] and [`Ca::roots_mark`] of plug-in CA files,
    /// checked as at start-up but not used.
    pub fn identity_of(files: &PluginCa) -> Result<(String, String), CaError> {
        let state = plugin::load(files)?;
        let ca = Ca {
            state: RwLock::new(state),
        };
        Ok((ca.identity(), ca.roots_mark()))
    }

    /// Whether an operator's plug-in CA is in use (from start, or once a
    /// rotation to one has finished).
    pub fn is_plugin(&self) -> bool {
        self.read().dir.is_none()
    }

    /// The current root rotation phase.
    pub fn rotation_phase(&self) -> RotationPhase {
        self.read().phase
    }

    fn signer(&self) -> Arc<Signer> {
        self.read().signer.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written: it is
        // replaced whole, so a poisoned lock is still consistent.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}
