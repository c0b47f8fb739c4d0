use std::time::{Duration, SystemTime};

use super::*;

const INF: f64 = f64::INFINITY;

fn hist(bounds: &[f64], cumulative: &[u64]) -> Histogram {
    Histogram {
        bounds_ms: bounds.to_vec(),
        cumulative: cumulative.to_vec(),
        count: *cumulative.last().unwrap_or(&0),
        sum_ms: 0.0,
    }
}

fn stats(requests: u64, errors: u64, cumulative: &[u64]) -> DestStats {
    DestStats {
        requests,
        errors,
        latency: hist(&[1.0, 10.0, 100.0, INF], cumulative),
    }
}

fn sample(proxy: &str, secs: u64, dests: &[(&str, DestStats)]) -> ProxySample {
    ProxySample {
        proxy: proxy.into(),
        service: Some("client.default.svc.cluster.local".into()),
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs),
        outbound: dests
            .iter()
            .map(|(h, s)| (h.to_string(), s.clone()))
            .collect(),
    }
}

#[test]
fn quantiles_interpolate_like_prometheus() {
    let h = hist(&[1.0, 10.0, 100.0, INF], &[0, 50, 100, 100]);
    assert_eq!(h.quantile(0.5), Some(10.0));
    assert_eq!(h.quantile(0.25), Some(5.5));
    assert_eq!(h.quantile(0.99), Some(10.0 + 90.0 * 49.0 / 50.0));
    let open = hist(&[1.0, INF], &[0, 4]);
    assert_eq!(
        open.quantile(0.5),
        Some(1.0),
        "open bucket: its lower bound"
    );
    assert_eq!(hist(&[1.0, INF], &[0, 0]).quantile(0.5), None);
    assert_eq!(Histogram::default().quantile(0.5), None);
}

#[test]
fn histograms_merge_over_their_bounds() {
    let mut a = hist(&[1.0, 10.0, INF], &[1, 2, 3]);
    a.add(&hist(&[1.0, 10.0, INF], &[0, 5, 5]));
    assert_eq!(a.cumulative, [1, 7, 8]);
    assert_eq!(a.count, 8);
    let mut b = hist(&[1.0, INF], &[1, 2]);
    b.add(&hist(&[5.0, INF], &[3, 3]));
    assert_eq!(b.bounds_ms, [1.0, 5.0, INF]);
    assert_eq!(b.cumulative, [1, 4, 5]);
    let mut empty = Histogram::default();
    empty.add(&hist(&[1.0, INF], &[1, 2]));
    assert_eq!(empty.cumulative, [1, 2]);
}

#[test]
fn rates_difference_two_samples() {
    let host = "payment.default.svc.cluster.local";
    let old = sample("c-1", 0, &[(host, stats(100, 1, &[10, 90, 100, 100]))]);
    let new = sample(
        "c-1",
        10,
        &[
            (host, stats(300, 21, &[10, 190, 300, 300])),
            ("new.default.svc.cluster.local", stats(5, 0, &[5, 5, 5, 5])),
            ("idle.default.svc.cluster.local", stats(0, 0, &[0, 0, 0, 0])),
        ],
    );
    let r = rates(&old, &new);
    assert_eq!(r.window, Duration::from_secs(10));
    let pay = &r.outbound[host];
    assert_eq!((pay.requests, pay.errors), (200, 20));
    assert_eq!(pay.rps, 20.0);
    assert_eq!(pay.success_rate, Some(0.9));
    // 100 of 200 at most 10 ms, the rest up to 100 ms.
    assert_eq!(pay.p50_ms, Some(10.0));
    assert!(pay.p99_ms.unwrap() > 95.0 && pay.p99_ms.unwrap() <= 100.0);
    assert_eq!(r.outbound["new.default.svc.cluster.local"].requests, 5);
    assert!(!r.outbound.contains_key("idle.default.svc.cluster.local"));
}

#[test]
fn a_counter_reset_counts_the_new_counters() {
    let host = "payment.default.svc.cluster.local";
    let old = sample("c-1", 0, &[(host, stats(1000, 0, &[0, 1000, 1000, 1000]))]);
    let new = sample("c-1", 5, &[(host, stats(10, 1, &[0, 10, 10, 10]))]);
    let d = &delta(&old, &new)[host];
    assert_eq!((d.requests, d.errors, d.latency.count), (10, 1, 10));
}

#[test]
fn store_keeps_few_checkpoints_spanning_the_window() {
    let store = SampleStore::new(Duration::from_secs(60));
    let host = "payment.default.svc.cluster.local";
    for s in 0..=120 {
        let n = s * 10;
        store.record(sample("c-1", s, &[(host, stats(n, 0, &[n, n, n, n]))]));
    }
    let (old, new) = store.window_of("c-1").unwrap();
    let span = new.at.duration_since(old.at).unwrap();
    assert!(span >= Duration::from_secs(45) && span <= Duration::from_secs(60));
    let r = store.rates_of("c-1").unwrap();
    assert_eq!(r.outbound[host].rps, 10.0);
    assert!(store.latest_of("c-1").is_some());
    assert!(store.window_of("nobody").is_none());

    store.record_error("c-1", "timed out".into());
    store.record_error("c-2", "refused".into());
    assert_eq!(store.failures().len(), 2);
    assert_eq!(
        store.latest().len(),
        1,
        "a failed-only sidecar has no sample"
    );
    store.retain(|id| id != "c-1");
    assert!(store.latest_of("c-1").is_none());
}

#[test]
fn graph_sums_sidecars_of_one_service() {
    let store = SampleStore::new(Duration::from_secs(60));
    let host = "payment.default.svc.cluster.local";
    for (id, errors) in [("c-1", 0), ("c-2", 10)] {
        store.record(sample(id, 0, &[(host, stats(0, 0, &[0, 0, 0, 0]))]));
        store.record(sample(
            id,
            20,
            &[(host, stats(100, errors, &[0, 100, 100, 100]))],
        ));
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_030);
    let g = Graph::build(&store, now);
    assert_eq!(g.window_seconds, 60.0);
    assert_eq!(g.nodes, ["client.default.svc.cluster.local", host]);
    let [e] = g.edges.as_slice() else {
        panic!("{g:?}")
    };
    assert_eq!((e.requests, e.errors, e.rps), (200, 10, 10.0));
    assert_eq!(e.success_rate, Some(0.95));
    assert!(e.p50_ms.unwrap() > 1.0 && e.p50_ms.unwrap() <= 10.0);
    assert_eq!(g.proxies_scraped, 2);
    let later = now + Duration::from_secs(120);
    assert!(
        Graph::build(&store, later).edges.is_empty(),
        "stale samples"
    );
}
