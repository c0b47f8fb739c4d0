//! Leaf certificates issued per second on one thread.
//!
//! `cargo run --release --example ca_bench [SECONDS]` (default 3 s per figure).
//! Prints two figures:
//! - `issue`: `Ca::issue` as the control plane calls it: a new ECDSA P-256 key,
//!   a signed X.509-SVID (SPIFFE URI SAN, random serial, AKI) and PEM encoding
//!   of certificate and key;
//! - `sign only`: the same certificate parameters signed with rcgen for one
//!   pre-generated key, to show how the cost splits between key generation
//!   and signing.

use std::time::{Duration, Instant};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use trellis::ca::{Ca, CaConfig, SpiffeId};

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let window = Duration::from_secs(seconds);
    let dir = tempfile::tempdir()?;
    let ca = Ca::load_or_create(&CaConfig {
        state_dir: dir.path().to_path_buf(),
        plugin: None,
    })?;
    let id = SpiffeId::new("cluster.local", "bench", "workload")?;
    let ttl = Duration::from_secs(24 * 3600);

    let issue = per_second(window, || {
        ca.issue(&id, ttl).map(|c| c.chain_pem.len()).unwrap_or(0)
    });
    println!("issue (new P-256 key + sign + PEM): {issue:.0} certificates/s on one thread");

    let root_key = KeyPair::generate()?;
    let mut root_params = CertificateParams::default();
    root_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(root_params, root_key);
    let leaf_key = KeyPair::generate()?;
    let params = leaf_params(&id)?;
    let sign = per_second(window, || {
        params
            .signed_by(&leaf_key, &issuer)
            .map(|c| c.der().len())
            .unwrap_or(0)
    });
    println!("sign only (same parameters, one key):  {sign:.0} certificates/s on one thread");
    Ok(())
}

fn leaf_params(id: &SpiffeId) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(id.uri().try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Runs `f` repeatedly for `window` after a short warm-up; returns calls/s.
/// `f` returns a size so the work cannot be optimised away.
fn per_second(window: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let mut sink = 0usize;
    for _ in 0..200 {
        sink = sink.wrapping_add(f());
    }
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < window {
        for _ in 0..100 {
            sink = sink.wrapping_add(f());
        }
        count += 100;
    }
    std::hint::black_box(sink);
    count as f64 / start.elapsed().as_secs_f64()
}
