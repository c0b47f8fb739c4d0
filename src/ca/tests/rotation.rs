//! Root rotation: phases, what signs, what is trusted, resuming after restart.

use std::time::Duration;

use super::{ca_in, ders, id, verifies};
use crate::ca::signer::parse_cert;
use crate::ca::{CaError, RotationPhase};

fn leaf_verifies_with(ca: &crate::ca::Ca, root_der: &[u8]) -> bool {
    let leaf = ders(&ca.issue(&id(), Duration::from_secs(60)).unwrap().chain_pem).remove(0);
    verifies(&parse_cert(&leaf).unwrap(), root_der)
}

#[test]
fn rotation_moves_trust_then_signing_then_drops_the_old_root() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let old = ders(&ca.trust_bundle_pem()).remove(0);
    assert_eq!(ca.rotation_phase(), RotationPhase::Idle);

    ca.begin_rotation().unwrap();
    assert_eq!(ca.rotation_phase(), RotationPhase::NewRootTrusted);
    let bundle = ders(&ca.trust_bundle_pem());
    assert_eq!(bundle.len(), 2);
    assert_eq!(bundle[0], old, "old root first");
    let new = bundle[1].clone();
    assert!(leaf_verifies_with(&ca, &old), "the old root still signs");
    assert_eq!(ca.roots().iter().filter(|r| r.signing).count(), 1);
    assert!(ca.roots()[0].signing);

    ca.activate_new_root().unwrap();
    assert_eq!(ca.rotation_phase(), RotationPhase::NewRootActive);
    assert_eq!(ders(&ca.trust_bundle_pem()), vec![old.clone(), new.clone()]);
    assert!(leaf_verifies_with(&ca, &new), "the new root signs");
    assert!(ca.roots()[1].signing);

    ca.finish_rotation().unwrap();
    assert_eq!(ca.rotation_phase(), RotationPhase::Idle);
    assert_eq!(ders(&ca.trust_bundle_pem()), vec![new.clone()]);
    assert!(
        !dir.path().join("ca/roots/root-1").exists(),
        "old key deleted"
    );
    assert!(leaf_verifies_with(&ca, &new));
}

#[test]
fn a_restart_mid_rotation_resumes_the_phase() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    ca.begin_rotation().unwrap();
    let bundle = ca.trust_bundle_pem();
    drop(ca);

    let ca = ca_in(dir.path());
    assert_eq!(ca.rotation_phase(), RotationPhase::NewRootTrusted);
    assert_eq!(ca.trust_bundle_pem(), bundle);
    ca.activate_new_root().unwrap();
    drop(ca);

    let ca = ca_in(dir.path());
    assert_eq!(ca.rotation_phase(), RotationPhase::NewRootActive);
    assert!(leaf_verifies_with(&ca, &ders(&bundle)[1]));
    ca.finish_rotation().unwrap();
    drop(ca);

    let ca = ca_in(dir.path());
    assert_eq!(ca.rotation_phase(), RotationPhase::Idle);
    assert_eq!(ders(&ca.trust_bundle_pem()), vec![ders(&bundle)[1].clone()]);
    // A second rotation picks a fresh id.
    ca.begin_rotation().unwrap();
    assert!(dir.path().join("ca/roots/root-3/key.pem").exists());
}

#[test]
fn steps_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let err = ca.activate_new_root().unwrap_err();
    assert!(matches!(
        err,
        CaError::WrongPhase {
            phase: RotationPhase::Idle,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "cannot activate the new root while the root rotation phase is idle"
    );
    assert!(ca.finish_rotation().is_err());
    ca.begin_rotation().unwrap();
    assert!(ca.begin_rotation().is_err());
    assert!(ca.finish_rotation().is_err());
    assert_eq!(ca.rotation_phase(), RotationPhase::NewRootTrusted);
}

#[test]
fn rotation_to_a_supplied_ca_moves_from_self_signed_to_plug_in() {
    let dir = tempfile::tempdir().unwrap();
    let files_dir = tempfile::tempdir().unwrap();
    let files = super::plugin::operator_ca();
    let plugin = super::plugin::write(files_dir.path(), &files, &files.ca_key.serialize_pem());
    let ca = ca_in(dir.path());
    let old = ders(&ca.trust_bundle_pem()).remove(0);
    let operator_root = ders(&files.root_pem).remove(0);

    ca.begin_rotation_to(&plugin).unwrap();
    assert_eq!(ca.rotation_phase(), RotationPhase::NewRootTrusted);
    assert_eq!(
        ders(&ca.trust_bundle_pem()),
        vec![old.clone(), operator_root.clone()]
    );
    assert!(leaf_verifies_with(&ca, &old));

    ca.activate_new_root().unwrap();
    let chain = ders(&ca.issue(&id(), Duration::from_secs(60)).unwrap().chain_pem);
    assert_eq!(chain[1], ders(&files.ca_pem)[0], "the intermediate signs");
    assert!(verifies(&parse_cert(&chain[0]).unwrap(), &chain[1]));
    assert!(ca.roots().iter().all(|r| !r.signing));

    ca.finish_rotation().unwrap();
    assert_eq!(ca.rotation_phase(), RotationPhase::Idle);
    assert_eq!(ders(&ca.trust_bundle_pem()), vec![operator_root]);
    assert!(ca.is_plugin());
    assert!(matches!(ca.begin_rotation(), Err(CaError::PluginManaged)));
    // Bad supplied files are refused before anything changes.
    std::fs::write(files_dir.path().join("ca-key.pem"), "x").unwrap();
    assert!(ca.begin_rotation_to(&plugin).is_err());
    assert_eq!(ca.rotation_phase(), RotationPhase::Idle);
}
