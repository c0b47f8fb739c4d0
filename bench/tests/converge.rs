//! CI-sized correctness run of the benchmark: 200 simulated sidecars on 50
//! services converge to the same final versions per service after a route
//! and an endpoint change, in both protocols. Never asserts timing.

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
            "xds",
            "--proxies",
            "200",
            "--services",
            "50",
            "--endpoints",
            "3",
        ])
        .args(["--duration", "240", "--check", "--trellis"])
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
    assert_eq!(v["consistent"], true, "{v}");
    assert_eq!(v["stream_errors"], 0, "{v}");
    assert_eq!(v["route_change_acked"], 200, "{v}");
    assert_eq!(v["endpoint_change_acked"], 200, "{v}");
}

#[test]
fn sotw_clients_converge_to_the_same_versions() {
    check(&run(&[]));
}

#[test]
fn delta_clients_with_tokens_converge_to_the_same_versions() {
    check(&run(&["--delta", "--tokens"]));
}
