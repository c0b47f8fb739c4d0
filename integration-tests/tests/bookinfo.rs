//! Istio's Bookinfo traffic samples, read as written from
//! `$TRELLIS_ISTIO_SAMPLES/bookinfo/`, with test backends and sidecars
//! standing in for Bookinfo's services. The samples are not part of the
//! repository, so every test here is ignored by `make test` and run by
//! `make test-istio-samples`.

use std::path::PathBuf;
use std::time::Duration;

use trellis_integration_tests::*;

fn sample(name: &str) -> PathBuf {
    bookinfo_dir().join(name)
}

/// A config dir holding the given sample files, and a control plane on it.
async fn mesh(files: &[&str]) -> (ConfigDir, Trellis) {
    let config = ConfigDir::new().unwrap();
    for f in files {
        config.copy_from(&sample(f)).unwrap();
    }
    let trellis = Trellis::start(config.path()).await.unwrap();
    (config, trellis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Istio's samples: make test-istio-samples"]
async fn reviews_90_10() {
    let (_c, t) = mesh(&[
        "destination-rule-all.yaml",
        "virtual-service-reviews-90-10.yaml",
    ])
    .await;
    let _v1 = Instance::start(&t, "reviews", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&t, "reviews", "v2", Behavior::Ok)
        .await
        .unwrap();
    let _v3 = Instance::start(&t, "reviews", "v3", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&t).await.unwrap();
    for v in ["v1", "v2"] {
        client
            .wait_endpoints(&subset_cluster(v, "reviews"), 1)
            .await
            .unwrap();
    }
    let tally = client.tally("reviews", &[], 1000, 8).await;
    assert_eq!(tally.ok(), 1000, "{tally:?}");
    assert_eq!(tally.get("reviews v3"), 0, "{tally:?}");
    let v2 = tally.get("reviews v2");
    assert!(
        (65..=135).contains(&v2),
        "v2 should get about 10%: {tally:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Istio's samples: make test-istio-samples"]
async fn reviews_jason_to_v2() {
    let files = [
        "destination-rule-all.yaml",
        "virtual-service-reviews-test-v2.yaml",
    ];
    let (_c, t) = mesh(&files).await;
    let _v1 = Instance::start(&t, "reviews", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&t, "reviews", "v2", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&t).await.unwrap();
    for v in ["v1", "v2"] {
        client
            .wait_endpoints(&subset_cluster(v, "reviews"), 1)
            .await
            .unwrap();
    }
    let jason = client
        .tally("reviews", &[("end-user", "jason")], 100, 4)
        .await;
    assert_eq!(jason.get("reviews v2"), 100, "{jason:?}");
    let others = client.tally("reviews", &[], 100, 4).await;
    assert_eq!(others.get("reviews v1"), 100, "{others:?}");
}

/// `virtual-service-ratings-test-abort.yaml` writes `fault.abort.percent`,
/// which Istio's API no longer has (`reserved "percent"` in `Abort`; see the
/// config reference): Trellis rejects it and names the form to use. With
/// that one line in Istio's current form, jason's calls get HTTP 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Istio's samples: make test-istio-samples"]
async fn ratings_abort_500_for_jason() {
    let (code, out, err) = validate_with_rules("virtual-service-ratings-test-abort.yaml");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("fault.abort.percent") && out.contains("percentage"),
        "the error names the field and the form to use:\n{out}"
    );

    let text = std::fs::read_to_string(sample("virtual-service-ratings-test-abort.yaml")).unwrap();
    assert!(text.contains("percent: 100"), "the sample changed:\n{text}");
    let current = text.replace("percent: 100", "percentage: {value: 100}");
    let config = ConfigDir::with(&[("ratings-abort.yaml", &current)]).unwrap();
    config
        .copy_from(&sample("destination-rule-all.yaml"))
        .unwrap();
    let t = Trellis::start(config.path()).await.unwrap();
    let ratings = Instance::start(&t, "ratings", "v1", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&t).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("v1", "ratings"), 1)
        .await
        .unwrap();
    let jason = client
        .tally("ratings", &[("end-user", "jason")], 50, 4)
        .await;
    assert_eq!(jason.get("HTTP 500"), 50, "{jason:?}");
    let others = client.tally("ratings", &[], 50, 4).await;
    assert_eq!(others.get("ratings v1"), 50, "{others:?}");
    assert_eq!(
        ratings.backend.hits(),
        50,
        "jason's requests never reach ratings"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Istio's samples: make test-istio-samples"]
async fn ratings_delay_7s_for_jason() {
    let files = [
        "destination-rule-all.yaml",
        "virtual-service-ratings-test-delay.yaml",
    ];
    let (_c, t) = mesh(&files).await;
    let _ratings = Instance::start(&t, "ratings", "v1", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&t).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("v1", "ratings"), 1)
        .await
        .unwrap();
    let (jason, other) = tokio::join!(
        client.get("ratings", &[("end-user", "jason")]),
        client.get("ratings", &[])
    );
    let (jason, other) = (jason.unwrap(), other.unwrap());
    assert_eq!((jason.status, other.status), (200, 200));
    assert!(
        // Envoy's timers tick in milliseconds: allow the fault delay to end
        // a hair before the client's own clock says 7 s.
        jason.elapsed >= Duration::from_millis(6_995),
        "jason: {:?}",
        jason.elapsed
    );
    assert!(
        other.elapsed < Duration::from_secs(2),
        "others: {:?}",
        other.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Istio's samples: make test-istio-samples"]
async fn details_abort_555() {
    // The file carries its own `details` DestinationRule (see the samples' README).
    let (_c, t) = mesh(&["fault-injection-details-v1.yaml"]).await;
    let _details = Instance::start(&t, "details", "v1", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&t).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("v1", "details"), 1)
        .await
        .unwrap();
    let tally = client.tally("details", &[], 50, 4).await;
    assert_eq!(tally.get("HTTP 555"), 50, "{tally:?}");
}

/// Every scenario file but the abort one (see above) validates beside the
/// DestinationRules, as Istio users apply them.
#[test]
#[ignore = "needs Istio's samples: make test-istio-samples"]
fn every_sample_validates_with_the_destination_rules() {
    let scenarios = [
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-90-10.yaml",
        "virtual-service-reviews-50-v3.yaml",
        "virtual-service-reviews-test-v2.yaml",
        "virtual-service-reviews-jason-v2-v3.yaml",
        "virtual-service-ratings-test-delay.yaml",
    ];
    for scenario in scenarios {
        let (code, out, err) = validate_with_rules(scenario);
        assert_eq!(code, 0, "{scenario}:\n{out}{err}");
    }
}

/// `trellis validate` on `destination-rule-all.yaml` plus one scenario file.
fn validate_with_rules(scenario: &str) -> (i32, String, String) {
    let config = ConfigDir::new().unwrap();
    config
        .copy_from(&sample("destination-rule-all.yaml"))
        .unwrap();
    config.copy_from(&sample(scenario)).unwrap();
    let dir = config.path().to_str().unwrap();
    trellis::run_trellis(&["validate", dir]).unwrap()
}
