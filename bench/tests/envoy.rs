//! CI-sized correctness run of `trellis-bench envoy`: two real Envoy
//! sidecars on a five-service mesh both apply a route change (the new
//! weights show in their `/config_dump`). Never asserts timing. Needs
//! `envoy` on PATH and `cargo build --workspace`.

#[path = "support/run.rs"]
mod support;

use support::run_bench;

fn run(extra: &[&str]) -> serde_json::Value {
    let base = [
        "envoy",
        "--sidecars",
        "2",
        "--services",
        "5",
        "--only",
        "convergence",
        "--duration",
        "120",
        "--change-timeout",
        "30",
        "--check",
    ];
    run_bench(&[&base[..], extra].concat())
}

fn check(v: &serde_json::Value) {
    assert_eq!(v["bench"], "envoy", "{v}");
    assert_eq!(v["converged"], 2, "{v}");
    assert!(v["route_change_max_ms"].is_number(), "{v}");
}

/// The sidecars start one after the other, so the second one's
/// registration updates the first one's clusters before the change.
#[test]
fn sotw_envoys_started_one_after_another_apply_the_route_change() {
    check(&run(&["--start-concurrency", "1"]));
}

/// When the second sidecar registers, the first one's clusters of that
/// service change and Envoy re-warms them until it gets their
/// ClusterLoadAssignment again ("Resource warming"), which a delta client
/// does not re-request: the delta server resends it after the CDS push
/// (`DeltaStreamState::rewarm_endpoints`). Before that fix the route change
/// waited behind the warming clusters forever.
#[test]
fn delta_envoys_started_one_after_another_apply_the_route_change() {
    check(&run(&["--delta", "--start-concurrency", "1"]));
}
