//! CI-sized correctness run of the churn benchmark: sidecars registering
//! and leaving at 20 per second for 2 s while 3 observers ACK EDS; every
//! registration and deregistration must reach every observer, in both
//! protocols. Never asserts timing.

use std::path::PathBuf;
use std::process::Command;

/// The trellis binary: $TRELLIS_BIN, else next to this test's profile dir
/// (`cargo build --workspace` builds it).
fn trellis_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRELLIS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = profile.join("trellis");
    assert!(
        bin.is_file(),
        "no {bin:?}: run `cargo build --workspace` first"
    );
    bin
}

fn run(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-bench"))
        .args([
            "churn",
            "--rate",
            "20",
            "--duration",
            "2",
            "--services",
            "2",
        ])
        .args([
            "--observers",
            "3",
            "--grace-ms",
            "0",
            "--check",
            "--trellis",
        ])
        .arg(trellis_bin())
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    serde_json::from_str(stdout.trim()).unwrap()
}

fn check(v: &serde_json::Value) {
    let registrations = v["registrations"].as_u64().unwrap();
    assert!(registrations >= 20, "{v}");
    assert_eq!(v["registrations_observed"], registrations, "{v}");
    assert_eq!(v["deregistrations_observed"], v["deregistrations"], "{v}");
    assert!(v["deregistrations"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["flaps"], 0, "{v}");
    assert_eq!(v["stream_errors"], 0, "{v}");
}

#[test]
fn every_registration_and_deregistration_reaches_every_observer() {
    check(&run(&[]));
    check(&run(&["--delta"]));
}
