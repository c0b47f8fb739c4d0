//! The canary config, Bookinfo's samples and every directory of
//! `config-examples/` load.

use std::path::PathBuf;
use std::time::Duration;

use super::{load, load_rel};
use crate::config::model::*;

const CANARY: &str = include_str!("../../../config-examples/canary/payment.yaml");

#[test]
fn canary_loads_as_written() {
    let mesh = load(&[("payment.yaml", CANARY)]).unwrap();
    let host = Host::canonical("payment-service", "default");
    let vs = &mesh.virtual_services[&host];
    let RouteAction::Route(dests) = &vs.http[0].action else {
        panic!("route")
    };
    let split: Vec<_> = dests
        .iter()
        .map(|d| (d.destination.subset.as_deref(), d.weight))
        .collect();
    assert_eq!(split, [(Some("stable"), 90), (Some("canary"), 10)]);
    let retries = vs.http[0].retries.as_ref().unwrap();
    assert_eq!(retries.attempts, 3);
    assert_eq!(retries.per_try_timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        retries.retry_on.as_deref().unwrap(),
        ["5xx", "reset", "connect-failure"]
    );
    let dr = &mesh.destination_rules[&host];
    let tp = dr.traffic_policy.as_ref().unwrap();
    let pool = tp.connection_pool.as_ref().unwrap();
    assert_eq!(pool.h2_upgrade, Some(true));
    assert_eq!(pool.max_requests_per_connection, Some(100));
    let od = tp.outlier_detection.as_ref().unwrap();
    assert_eq!(od.consecutive_5xx_errors, Some(5));
    assert_eq!(od.interval, Some(Duration::from_secs(30)));
    assert_eq!(od.base_ejection_time, Some(Duration::from_secs(60)));
    assert_eq!(dr.subsets.len(), 2);
    assert_eq!(dr.subsets[1].labels["version"], "v2");
}

/// Istio's Bookinfo samples are not part of the repository: these tests
/// run in `make test-istio-samples`, which names the directory holding
/// `bookinfo/` in `TRELLIS_ISTIO_SAMPLES`. They fail without it.
fn bookinfo() -> PathBuf {
    let Some(root) = std::env::var_os("TRELLIS_ISTIO_SAMPLES") else {
        panic!("TRELLIS_ISTIO_SAMPLES is not set: run `make test-istio-samples`");
    };
    let dir = PathBuf::from(root).join("bookinfo");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    dir
}

fn bookinfo_files(names: &[&str]) -> Result<MeshConfig, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(bookinfo().join(name), dir.path().join(name)).unwrap();
    }
    load_rel(dir.path())
}

#[test]
#[ignore = "needs Istio's samples: make test-istio-samples"]
fn bookinfo_virtual_services_load_with_their_destination_rules() {
    for vs in [
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-90-10.yaml",
        "virtual-service-reviews-50-v3.yaml",
        "virtual-service-reviews-test-v2.yaml",
        "virtual-service-reviews-jason-v2-v3.yaml",
        "virtual-service-ratings-test-delay.yaml",
    ] {
        let mesh = bookinfo_files(&["destination-rule-all.yaml", vs]);
        assert!(mesh.is_ok(), "{vs}: {mesh:?}");
    }
    let mesh = bookinfo_files(&["fault-injection-details-v1.yaml"]).unwrap();
    let details = Host::canonical("details", "default");
    let fault = mesh.virtual_services[&details].http[0]
        .fault
        .clone()
        .unwrap();
    let abort = fault.abort.unwrap();
    assert_eq!(
        (abort.error, abort.percentage),
        (AbortError::Http(555), 100.0)
    );
}

/// `percent` is still a (deprecated) field of Istio's `Delay`: accepted.
#[test]
#[ignore = "needs Istio's samples: make test-istio-samples"]
fn bookinfo_delay_percent_is_accepted() {
    let files = [
        "destination-rule-all.yaml",
        "virtual-service-ratings-test-delay.yaml",
    ];
    let mesh = bookinfo_files(&files).unwrap();
    let ratings = Host::canonical("ratings", "default");
    let delay = mesh.virtual_services[&ratings].http[0]
        .fault
        .clone()
        .unwrap()
        .delay
        .unwrap();
    assert_eq!(
        (delay.fixed_delay, delay.percentage),
        (Duration::from_secs(7), 100.0)
    );
}

/// Istio removed `percent` from `Abort` (reserved in its proto): rejected,
/// naming the form to use.
#[test]
#[ignore = "needs Istio's samples: make test-istio-samples"]
fn bookinfo_forms_istio_no_longer_accepts_are_named() {
    let files = [
        "destination-rule-all.yaml",
        "virtual-service-ratings-test-abort.yaml",
    ];
    let errors = bookinfo_files(&files).unwrap_err();
    assert_eq!(errors, ["virtual-service-ratings-test-abort.yaml:15:9: error: VirtualService/ratings: spec.http[0].fault.abort.percent: Istio's fault.abort has no `percent` field (it was removed): write `percentage: {value: 100}`"]);
}

/// Bookinfo's mTLS rules load: every host and subset gets ISTIO_MUTUAL.
#[test]
#[ignore = "needs Istio's samples: make test-istio-samples"]
fn bookinfo_mtls_destination_rules_load() {
    let mesh = bookinfo_files(&["destination-rule-all-mtls.yaml"]).unwrap();
    assert_eq!(mesh.destination_rules.len(), 4);
    for dr in mesh.destination_rules.values() {
        let tls = dr.traffic_policy.as_ref().and_then(|tp| tp.tls.as_ref());
        assert_eq!(
            tls.map(|t| t.mode),
            Some(crate::config::model::ClientTlsMode::IstioMutual),
            "{}",
            dr.host
        );
    }
}

#[test]
fn every_config_example_directory_validates() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config-examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += 1;
            let mesh = load_rel(&path);
            assert!(mesh.is_ok(), "{}: {mesh:#?}", path.display());
        }
    }
    assert!(count >= 5, "config-examples/ has {count} directories");
}

#[test]
fn empty_dir_is_an_empty_config_and_a_missing_dir_is_io() {
    let mesh = load(&[("notes.txt", "not config"), (".hidden/x.yaml", "bad: [")]).unwrap();
    assert!(mesh.virtual_services.is_empty() && mesh.files.is_empty());
    let missing = std::path::Path::new("/nonexistent/trellis-config");
    let err = crate::config::load_dir(missing).unwrap_err();
    assert!(matches!(err, crate::config::LoadError::Io { .. }), "{err}");
}

#[test]
fn files_are_listed_sorted_across_subfolders() {
    let rule = |name: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\nspec:\n  host: {name}\n")
    };
    let mesh = load(&[
        ("b.yml", &rule("b")),
        ("a/z.yaml", &rule("z")),
        ("c.yaml", &rule("c")),
    ])
    .unwrap();
    let names: Vec<_> = mesh
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["z.yaml", "b.yml", "c.yaml"]);
    assert_eq!(mesh.destination_rules.len(), 3);
}
