//! Workload tokens that authenticate xDS streams.
//!
//! A token is a JWT (RFC 7519) signed with HS256 (HMAC-SHA-256, RFC 7518
//! §3.2): `base64url(header).base64url(claims).base64url(mac)`. The key is 32
//! random bytes in `STATE_DIR/token.key` (0600), so only this control plane
//! (and whoever can read its state directory) can mint tokens. A token proves
//! "the holder was given a token for this namespace/service/service account";
//! revocation is by `jti`, listed one per line in `STATE_DIR/revoked-tokens`.
//!
//! Clock skew: `exp` and `iat` are checked with [`LEEWAY`] (60 s) of
//! tolerance, so a token made on a host whose clock is slightly ahead is not
//! refused as "not yet valid", and one just past `exp` still works briefly.

mod revoked;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::store::{create_once, ensure_private_dir, read_secret, SECRET_MODE};
use super::{CaError, SpiffeId};
use revoked::Revocations;

/// Tolerated clock difference between token issuer and verifier.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// Longest token accepted; longer input is malformed (it bounds the work an
/// unauthenticated caller can cause).
const MAX_TOKEN_LEN: usize = 4096;
/// The only header we issue and accept: pinning `alg` refuses `none` and
/// algorithm confusion (RFC 8725 §3.1).
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The claims of a workload token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenClaims {
    /// The workload's SPIFFE ID (`spiffe://TD/ns/NS/sa/SA`).
    pub sub: String,
    /// Namespace.
    pub ns: String,
    /// Service name.
    pub svc: String,
    /// Service account.
    pub sa: String,
    /// Issued at (seconds since the Unix epoch).
    pub iat: u64,
    /// Expires at (seconds since the Unix epoch).
    pub exp: u64,
    /// Unique token id, used to revoke it.
    pub jti: String,
}

/// Why a token was refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, bad JSON, wrong header or claims.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The signature does not match (forged, tampered or another key).
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// Its `jti` is in the revocation list.
    #[error("token revoked")]
    Revoked,
    /// `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
}

impl TokenError {
    /// A short stable label for metrics (`reason="expired"`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::NotYetValid => "not_yet_valid",
        }
    }
}

/// Issues and verifies workload tokens. Debug prints `[redacted]` for the key.
pub struct TokenAuthority {
    key: hmac::Key,
    trust_domain: String,
    revocations: Revocations,
}

impl fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("key", &"[redacted]")
            .field("trust_domain", &self.trust_domain)
            .finish()
    }
}

impl TokenAuthority {
    /// Loads `STATE_DIR/token.key`, creating it (32 random bytes, 0600) on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, CaError> {
        ensure_state_dir(state_dir)?;
        let path = state_dir.join("token.key");
        if !path.exists() {
            let mut fresh = [0u8; 32];
            SystemRandom::new()
                .fill(&mut fresh)
                .map_err(|_| CaError::Random)?;
            create_once(&path, &fresh, SECRET_MODE)?;
        }
        let bytes = read_secret(&path)?;
        if bytes.len() < 32 {
            return Err(CaError::BadFile {
                path,
                problem: "is shorter than 32 bytes".into(),
            });
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            trust_domain: "cluster.local".into(),
            revocations: Revocations::new(state_dir.join("revoked-tokens")),
        })
    }

    /// Sets the trust domain written into `sub` (default `cluster.local`).
    pub fn with_trust_domain(mut self, trust_domain: &str) -> Self {
        self.trust_domain = trust_domain.to_owned();
        self
    }

    /// A signed token for a workload, valid from now for `ttl`.
    pub fn issue(
        &self,
        service: &str,
        namespace: &str,
        service_account: &str,
        ttl: Duration,
    ) -> Result<String, CaError> {
        let sub = SpiffeId::new(&self.trust_domain, namespace, service_account)
            .map_err(|e| CaError::BadName(e.to_string()))?;
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| CaError::Random)?;
        let iat = unix_secs(SystemTime::now());
        let claims = TokenClaims {
            sub: sub.to_string(),
            ns: namespace.to_owned(),
            svc: service.to_owned(),
            sa: service_account.to_owned(),
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
            jti: super::signer::hex(&jti),
        };
        Ok(self.sign(&claims))
    }

    /// Signs arbitrary claims (tests build expired or future tokens with it).
    pub fn sign(&self, claims: &TokenClaims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks a token: shape, signature (constant time), then time and
    /// revocation. Claims are read only after the signature verifies.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<TokenClaims, TokenError> {
        let claims = self.verify_signature(token)?;
        if claims.iat > unix_secs(now).saturating_add(LEEWAY.as_secs()) {
            return Err(TokenError::NotYetValid);
        }
        self.still_valid(&claims, now)?;
        Ok(claims)
    }

    /// Checks claims that [`TokenAuthority::verify`] accepted earlier again:
    /// whether they expired or were revoked since (an open stream, or a
    /// certificate about to be issued to its holder).
    pub fn still_valid(&self, claims: &TokenClaims, now: SystemTime) -> Result<(), TokenError> {
        if now >= expires_at(claims) {
            return Err(TokenError::Expired);
        }
        if self.revocations.contains(&claims.jti) {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }

    /// Re-reads the revocation list if its file changed; the number grows
    /// whenever the list may have changed, so a watcher can wake the streams.
    pub fn revocations_generation(&self) -> u64 {
        self.revocations.generation()
    }

    fn verify_signature(&self, token: &str) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part);
        let sig = decode(sig).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let signing_input = &token[..header.len() + 1 + payload.len()];
        // ring::hmac::verify compares in constant time.
        hmac::verify(&self.key, signing_input.as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let header =
            decode(header).map_err(|_| TokenError::Malformed("header is not base64url"))?;
        if header != HEADER.as_bytes() {
            return Err(TokenError::Malformed("header is not HS256 JWT"));
        }
        let payload =
            decode(payload).map_err(|_| TokenError::Malformed("claims are not base64url"))?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed("claims are not valid"))
    }

    /// Revokes a token by its `jti` (appended to `STATE_DIR/revoked-tokens`).
    pub fn revoke(&self, jti: &str) -> Result<(), CaError> {
        self.revocations.add(jti)
    }

    /// True if `jti` is on the revocation list.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revocations.contains(jti)
    }

    /// Every revoked `jti` (to share them with other replicas).
    pub fn revoked_ids(&self) -> Vec<String> {
        self.revocations.list()
    }

    /// A value that tells whether two replicas hold the same key without
    /// telling anything of the key: the HMAC of a fixed string, hex.
    pub fn key_check(&self) -> String {
        let tag = hmac::sign(&self.key, b"trellis token key check v1");
        super::signer::hex(tag.as_ref())
    }

    /// The revocation list's path (for logs and docs).
    pub fn revocation_file(&self) -> PathBuf {
        self.revocations.path().to_path_buf()
    }
}

fn ensure_state_dir(dir: &Path) -> Result<(), CaError> {
    if dir.is_dir() {
        return Ok(());
    }
    ensure_private_dir(dir)
}

/// When a token stops verifying: its `exp` plus [`LEEWAY`].
pub fn expires_at(claims: &TokenClaims) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(claims.exp.saturating_add(LEEWAY.as_secs()))
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}
