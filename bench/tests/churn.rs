//! CI-sized correctness run of the churn benchmark: sidecars registering
//! and leaving at 20 per second for 2 s while 3 observers ACK EDS; every
//! registration and deregistration must reach every observer, in both
//! protocols. Never asserts timing.

#[path = "support/run.rs"]
mod support;

use support::run_bench;

fn run(extra: &[&str]) -> serde_json::Value {
    let base = [
        "churn",
        "--rate",
        "20",
        "--duration",
        "2",
        "--services",
        "2",
        "--observers",
        "3",
        "--grace-ms",
        "0",
        "--check",
    ];
    run_bench(&[&base[..], extra].concat())
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
