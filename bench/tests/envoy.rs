//! CI-sized correctness run of `trellis-bench envoy`: two real Envoy
//! sidecars on a five-service mesh both apply a route change (the new
//! weights show in their `/config_dump`), in both ADS protocols. Never
//! asserts timing. Needs `envoy` on PATH and `cargo build --workspace`.

use std::process::Command;

fn run(extra: &[&str]) -> serde_json::Value {
    let trellis = trellis_integration_tests::trellis::trellis_bin().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-bench"))
        .args(["envoy", "--sidecars", "2", "--services", "5"])
        .args(["--only", "convergence", "--duration", "120", "--check"])
        .arg("--trellis")
        .arg(trellis)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    serde_json::from_str(stdout.trim()).unwrap()
}

fn check(v: &serde_json::Value) {
    assert_eq!(v["bench"], "envoy", "{v}");
    assert_eq!(v["converged"], 2, "{v}");
    assert!(v["route_change_max_ms"].is_number(), "{v}");
}

#[test]
fn sotw_envoys_apply_the_route_change() {
    check(&run(&[]));
}

#[test]
fn delta_envoys_apply_the_route_change() {
    check(&run(&["--delta"]));
}
