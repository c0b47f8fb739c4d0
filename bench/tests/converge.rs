//! CI-sized correctness run of the benchmark: 200 simulated sidecars on 50
//! services converge to the same final versions per service after a route
//! and an endpoint change, in both protocols. Never asserts timing.

#[path = "support/run.rs"]
mod support;

use support::run_bench;

fn run(extra: &[&str]) -> serde_json::Value {
    let base = [
        "xds",
        "--proxies",
        "200",
        "--services",
        "50",
        "--endpoints",
        "3",
        "--duration",
        "240",
        "--check",
    ];
    run_bench(&[&base[..], extra].concat())
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
