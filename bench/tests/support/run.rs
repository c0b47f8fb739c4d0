//! Runs `trellis-bench` against the workspace's `trellis` binary and
//! returns its JSON line (shared by the CI-sized bench tests).

use std::process::Command;

/// `trellis-bench ARGS... --trellis BIN`, which must succeed; its stdout
/// line as JSON.
pub fn run_bench(args: &[&str]) -> serde_json::Value {
    let trellis = trellis_integration_tests::trellis::trellis_bin().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-bench"))
        .args(args)
        .arg("--trellis")
        .arg(trellis)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    serde_json::from_str(stdout.trim()).unwrap()
}
