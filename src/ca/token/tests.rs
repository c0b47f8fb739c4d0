//! Every verification outcome of workload tokens.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn authority(dir: &Path) -> TokenAuthority {
    TokenAuthority::load_or_create(dir).unwrap()
}

fn claims_at(iat: SystemTime, ttl: Duration) -> TokenClaims {
    let iat = unix_secs(iat);
    TokenClaims {
        sub: "spiffe://cluster.local/ns/shop/sa/payment".into(),
        ns: "shop".into(),
        svc: "payment".into(),
        sa: "payment".into(),
        iat,
        exp: iat + ttl.as_secs(),
        jti: "00ff".into(),
    }
}

/// Checks the outcome and that the message never repeats the token.
fn verify(ta: &TokenAuthority, token: &str, now: SystemTime) -> Result<TokenClaims, TokenError> {
    let result = ta.verify(token, now);
    if let Err(e) = &result {
        let msg = e.to_string();
        for part in token.split('.').filter(|p| p.len() > 3) {
            assert!(!msg.contains(part), "{msg}");
        }
    }
    result
}

#[test]
fn a_valid_token_verifies_with_its_claims() {
    let dir = tempfile::tempdir().unwrap();
    let ta = authority(dir.path()).with_trust_domain("example.org");
    let token = ta.issue("payment", "shop", "payment-sa", HOUR).unwrap();
    let claims = verify(&ta, &token, SystemTime::now()).unwrap();
    assert_eq!(claims.sub, "spiffe://example.org/ns/shop/sa/payment-sa");
    assert_eq!(
        (claims.ns.as_str(), claims.svc.as_str(), claims.sa.as_str()),
        ("shop", "payment", "payment-sa")
    );
    assert_eq!(claims.exp - claims.iat, 3600);
    assert_eq!(claims.jti.len(), 32);
    // Same key after a restart.
    assert!(verify(&authority(dir.path()), &token, SystemTime::now()).is_ok());
}

#[test]
fn malformed_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ta = authority(dir.path());
    let good = ta.issue("a", "b", "c", HOUR).unwrap();
    let long = "a".repeat(5000);
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a.b.!!!",
        long.as_str(),
        &format!("{good}.x"),
    ] {
        assert!(
            matches!(
                verify(&ta, bad, SystemTime::now()),
                Err(TokenError::Malformed(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn forged_signatures_and_other_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let ta = authority(dir.path());
    let token = ta.issue("a", "b", "c", HOUR).unwrap();
    let (input, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
    assert_eq!(
        verify(&ta, &forged, SystemTime::now()),
        Err(TokenError::BadSignature)
    );
    let unsigned = format!("{input}.");
    assert_eq!(
        verify(&ta, &unsigned, SystemTime::now()),
        Err(TokenError::BadSignature)
    );
    let foreign = authority(other.path()).issue("a", "b", "c", HOUR).unwrap();
    assert_eq!(
        verify(&ta, &foreign, SystemTime::now()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn tampered_claims_and_alg_none_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ta = authority(dir.path());
    let token = ta.sign(&claims_at(SystemTime::now(), HOUR));
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = claims_at(SystemTime::now(), HOUR);
    claims.svc = "ledger".into();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_eq!(
        verify(&ta, &tampered, SystemTime::now()),
        Err(TokenError::BadSignature)
    );
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none}.{}.", parts[1]);
    assert_eq!(
        verify(&ta, &alg_none, SystemTime::now()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn time_limits_allow_a_small_documented_skew() {
    let dir = tempfile::tempdir().unwrap();
    let ta = authority(dir.path());
    let now = SystemTime::now();
    let expired = ta.sign(&claims_at(now - 2 * HOUR, HOUR));
    assert_eq!(verify(&ta, &expired, now), Err(TokenError::Expired));
    let just_expired = ta.sign(&claims_at(now - HOUR - Duration::from_secs(30), HOUR));
    assert!(verify(&ta, &just_expired, now).is_ok(), "within the leeway");
    let future = ta.sign(&claims_at(now + Duration::from_secs(600), HOUR));
    assert_eq!(verify(&ta, &future, now), Err(TokenError::NotYetValid));
    let slightly_ahead = ta.sign(&claims_at(now + Duration::from_secs(30), HOUR));
    assert!(
        verify(&ta, &slightly_ahead, now).is_ok(),
        "within the leeway"
    );
    assert_eq!(TokenError::Expired.reason(), "expired");
}

#[test]
fn revocation_is_persisted_and_seen_by_other_instances() {
    let dir = tempfile::tempdir().unwrap();
    let serving = authority(dir.path());
    let token = serving.issue("a", "b", "c", HOUR).unwrap();
    let claims = verify(&serving, &token, SystemTime::now()).unwrap();
    // Another process (`trellis token revoke`) revokes it.
    authority(dir.path()).revoke(&claims.jti).unwrap();
    assert_eq!(
        verify(&serving, &token, SystemTime::now()),
        Err(TokenError::Revoked)
    );
    assert_eq!(
        verify(&authority(dir.path()), &token, SystemTime::now()),
        Err(TokenError::Revoked)
    );
    let other = serving.issue("a", "b", "c", HOUR).unwrap();
    assert!(verify(&serving, &other, SystemTime::now()).is_ok());
    assert!(serving.revoke("bad\nline").is_err());
    let mode = std::fs::metadata(serving.revocation_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn accepted_claims_are_checked_again_for_expiry_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let serving = authority(dir.path());
    let token = serving.issue("a", "b", "c", HOUR).unwrap();
    let now = SystemTime::now();
    let claims = verify(&serving, &token, now).unwrap();
    assert_eq!(serving.still_valid(&claims, now), Ok(()));
    let at = expires_at(&claims);
    assert_eq!(at, UNIX_EPOCH + Duration::from_secs(claims.exp) + LEEWAY);
    assert_eq!(
        serving.still_valid(&claims, at - Duration::from_secs(1)),
        Ok(())
    );
    assert_eq!(serving.still_valid(&claims, at), Err(TokenError::Expired));
    // The generation moves when another process revokes, and only then.
    let before = serving.revocations_generation();
    assert_eq!(serving.revocations_generation(), before);
    authority(dir.path()).revoke(&claims.jti).unwrap();
    let after = serving.revocations_generation();
    assert!(after > before);
    assert_eq!(serving.revocations_generation(), after);
    assert_eq!(serving.still_valid(&claims, now), Err(TokenError::Revoked));
}

#[test]
fn the_key_file_is_private_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let ta = authority(dir.path());
    let path = dir.path().join("token.key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read(&path).unwrap().len(), 32);
    assert!(format!("{ta:?}").contains("[redacted]"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = TokenAuthority::load_or_create(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("token.key") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn bad_identities_are_not_issued() {
    let dir = tempfile::tempdir().unwrap();
    let ta = authority(dir.path());
    assert!(ta.issue("a", "b/c", "d", HOUR).is_err());
    assert!(ta.issue("a", "b", "", HOUR).is_err());
}

#[test]
fn authorities_created_at_once_share_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || authority(&path))
        })
        .collect();
    let authorities: Vec<TokenAuthority> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let token = authorities[0].issue("a", "b", "c", HOUR).unwrap();
    for ta in &authorities {
        assert!(verify(ta, &token, SystemTime::now()).is_ok());
    }
}
