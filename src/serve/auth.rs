//! Authenticated xDS: every ADS stream must carry a workload token
//! (`authorization: Bearer TOKEN` in its gRPC metadata, which
//! `trellis bootstrap --token-file` puts into Envoy's `initial_metadata`).
//!
//! A token proves "the control plane's token key signed this namespace,
//! service and service account". The node's claimed identity must equal the
//! token's, so a token for A can neither register as B nor get B's
//! certificate. Refusals are logged with the node id and the reason, never
//! the token.

use std::sync::Arc;
use std::time::SystemTime;

use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::ca::token::{TokenAuthority, TokenClaims};
use crate::registry::Proxy;
use crate::xds::Refusal;

/// How streams are authenticated.
#[derive(Debug, Clone)]
pub(crate) enum StreamAuth {
    /// Tokens are required and verified.
    Tokens(Arc<TokenAuthority>),
    /// `--insecure-xds`: a stream without a token is accepted; one that
    /// carries a token still has it checked.
    Insecure(Arc<TokenAuthority>),
}

impl StreamAuth {
    /// The authority that verifies the tokens.
    pub(crate) fn tokens(&self) -> &Arc<TokenAuthority> {
        match self {
            StreamAuth::Tokens(t) | StreamAuth::Insecure(t) => t,
        }
    }

    /// Ok when `proxy` may open a stream with `metadata`: the claims of the
    /// token it presented (checked again while the stream is open), or
    /// `None` for a stream `--insecure-xds` accepted without one.
    pub(crate) fn check(
        &self,
        proxy: &Proxy,
        metadata: &MetadataMap,
    ) -> Result<Option<TokenClaims>, Refusal> {
        let (tokens, required) = match self {
            StreamAuth::Tokens(t) => (t, true),
            StreamAuth::Insecure(t) => (t, false),
        };
        let token = match bearer(metadata)? {
            Some(token) => token,
            None if required => {
                return Err(refuse(
                    Status::unauthenticated(
                        "no workload token: send `authorization: Bearer TOKEN` \
                         (trellis bootstrap --token-file)",
                    ),
                    "missing_token",
                ))
            }
            None => return Ok(None),
        };
        let claims = tokens
            .verify(token, SystemTime::now())
            .map_err(|e| refuse(Status::unauthenticated(e.to_string()), e.reason()))?;
        let claimed = (&proxy.namespace, &proxy.service, &proxy.service_account);
        if (&claims.ns, &claims.svc, &claims.sa) != claimed {
            let msg = format!(
                "the token is for namespace {:?}, service {:?}, service account {:?}; \
                 the node claims namespace {:?}, service {:?}, service account {:?}",
                claims.ns, claims.svc, claims.sa, claimed.0, claimed.1, claimed.2
            );
            return Err(refuse(Status::permission_denied(msg), "identity_mismatch"));
        }
        Ok(Some(claims))
    }
}

impl StreamAuth {
    /// Ok when a stream with `metadata` may be read at all: its token is
    /// valid (or it has none, under `--insecure-xds`). Checked from the
    /// headers, before any message is decoded; [`StreamAuth::check`] then
    /// matches the token to the node of the first request.
    pub(crate) fn check_metadata(&self, metadata: &MetadataMap) -> Result<(), Refusal> {
        let (tokens, required) = match self {
            StreamAuth::Tokens(t) => (t, true),
            StreamAuth::Insecure(t) => (t, false),
        };
        match bearer(metadata)? {
            Some(token) => tokens
                .verify(token, SystemTime::now())
                .map(drop)
                .map_err(|e| refuse(Status::unauthenticated(e.to_string()), e.reason())),
            None if required => Err(refuse(
                Status::unauthenticated(
                    "no workload token: send `authorization: Bearer TOKEN` \
                     (trellis bootstrap --token-file)",
                ),
                "missing_token",
            )),
            None => Ok(()),
        }
    }
}

/// The bearer token of the `authorization` metadata, if any.
fn bearer(metadata: &MetadataMap) -> Result<Option<&str>, Refusal> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let malformed = || {
        refuse(
            Status::unauthenticated("the authorization metadata must be `Bearer TOKEN`"),
            "malformed",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?.trim();
    // RFC 6750 §2.1: the scheme is case-insensitive.
    let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(malformed());
    }
    Ok(Some(token.trim()))
}

fn refuse(status: Status, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn proxy(ns: &str, svc: &str, sa: &str) -> Proxy {
        Proxy {
            id: "n1".into(),
            service: svc.into(),
            namespace: ns.into(),
            service_account: sa.into(),
            labels: Default::default(),
            app_port: 1,
            inbound_address: "127.0.0.1".into(),
            inbound_port: 2,
            outbound_port: 3,
            stats_port: None,
            admin_port: None,
            gateway: None,
            topology: Default::default(),
        }
    }

    fn meta(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    fn authority() -> (tempfile::TempDir, Arc<TokenAuthority>) {
        let dir = tempfile::tempdir().unwrap();
        let t = TokenAuthority::load_or_create(dir.path()).unwrap();
        (dir, Arc::new(t))
    }

    fn reason<T>(r: Result<T, Refusal>) -> &'static str {
        r.err().map_or("ok", |r| r.reason)
    }

    #[test]
    fn tokens_must_match_the_node() {
        let (_d, t) = authority();
        let auth = StreamAuth::Tokens(t.clone());
        let tok = t
            .issue("payment", "default", "payment", Duration::from_secs(60))
            .unwrap();
        let good = proxy("default", "payment", "payment");
        assert_eq!(
            reason(auth.check(&good, &meta(&format!("Bearer {tok}")))),
            "ok"
        );
        assert_eq!(
            reason(auth.check(&good, &meta(&format!("bearer {tok}")))),
            "ok"
        );
        let other = proxy("default", "ledger", "ledger");
        let r = auth.check(&other, &meta(&format!("Bearer {tok}")));
        let refusal = r.unwrap_err();
        assert_eq!(refusal.reason, "identity_mismatch");
        assert!(!refusal.status.message().contains(&tok));
        let other_sa = proxy("default", "payment", "admin");
        assert_eq!(
            reason(auth.check(&other_sa, &meta(&format!("Bearer {tok}")))),
            "identity_mismatch"
        );
    }

    #[test]
    fn missing_forged_and_malformed_tokens_are_refused() {
        let (_d, t) = authority();
        let (_d2, other) = authority();
        let forged = other
            .issue("payment", "default", "payment", Duration::from_secs(60))
            .unwrap();
        let p = proxy("default", "payment", "payment");
        let auth = StreamAuth::Tokens(t.clone());
        assert_eq!(reason(auth.check(&p, &MetadataMap::new())), "missing_token");
        assert_eq!(
            reason(auth.check(&p, &meta(&format!("Bearer {forged}")))),
            "bad_signature"
        );
        assert_eq!(reason(auth.check(&p, &meta("Basic abc"))), "malformed");
        assert_eq!(reason(auth.check(&p, &meta("Bearer"))), "malformed");
        let insecure = StreamAuth::Insecure(t);
        assert_eq!(reason(insecure.check(&p, &MetadataMap::new())), "ok");
        assert_eq!(
            reason(insecure.check(&p, &meta(&format!("Bearer {forged}")))),
            "bad_signature"
        );
    }

    #[test]
    fn metadata_alone_is_checked_before_the_node_is_known() {
        let (_d, t) = authority();
        let (_d2, other) = authority();
        let tok = t
            .issue("payment", "default", "payment", Duration::from_secs(60))
            .unwrap();
        let forged = other
            .issue("payment", "default", "payment", Duration::from_secs(60))
            .unwrap();
        let auth = StreamAuth::Tokens(t.clone());
        let check = |m: &MetadataMap| auth.check_metadata(m).err().map_or("ok", |r| r.reason);
        assert_eq!(check(&meta(&format!("Bearer {tok}"))), "ok");
        assert_eq!(check(&MetadataMap::new()), "missing_token");
        assert_eq!(check(&meta(&format!("Bearer {forged}"))), "bad_signature");
        assert_eq!(check(&meta("Basic abc")), "malformed");
        let insecure = StreamAuth::Insecure(t);
        assert!(insecure.check_metadata(&MetadataMap::new()).is_ok());
        assert!(insecure
            .check_metadata(&meta(&format!("Bearer {forged}")))
            .is_err());
    }

    #[test]
    fn expired_and_revoked_tokens_are_refused() {
        let (_d, t) = authority();
        let p = proxy("default", "payment", "payment");
        let auth = StreamAuth::Tokens(t.clone());
        let tok = t
            .issue("payment", "default", "payment", Duration::from_secs(60))
            .unwrap();
        let mut claims = t.verify(&tok, SystemTime::now()).unwrap();
        claims.iat -= 7200;
        claims.exp -= 7200;
        let expired = t.sign(&claims);
        assert_eq!(
            reason(auth.check(&p, &meta(&format!("Bearer {expired}")))),
            "expired"
        );
        t.revoke(&claims.jti).unwrap();
        assert_eq!(
            reason(auth.check(&p, &meta(&format!("Bearer {tok}")))),
            "revoked"
        );
    }
}
