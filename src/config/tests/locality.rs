//! `localityLbSetting` and endpoint topology.

use super::{dr, errors, load};
use crate::config::model::Locality;

fn lb(setting: &str) -> String {
    format!(
        "{}  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n{setting}",
        dr("d", "pay")
    )
}

fn loads(text: &str) -> Result<(), Vec<String>> {
    load(&[("f.yaml", text)]).map(|_| ())
}

const OUTLIER: &str = "    outlierDetection:\n      consecutive5xxErrors: 1\n";

#[test]
fn failover_without_outlier_detection_is_a_positioned_error() {
    let text = lb("        enabled: true\n        failover:\n        - {from: r1, to: r2}\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("f.yaml:9:7: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.localityLbSetting: locality failover needs outlierDetection"),
        "{errs:?}"
    );
    // With outlier detection it loads; distribute needs none.
    assert_eq!(loads(&format!("{text}{OUTLIER}")), Ok(()));
    let distribute =
        "        distribute:\n        - from: r1/*\n          to: {\"r1/*\": 80, \"r2/*\": 20}\n";
    assert_eq!(loads(&lb(distribute)), Ok(()));
    assert_eq!(loads(&lb("        enabled: false\n")), Ok(()));
}

#[test]
fn a_subset_inherits_the_top_level_outlier_detection() {
    let text = format!(
        "{}  trafficPolicy:\n{OUTLIER}  subsets:\n  - name: v1\n    labels: {{version: v1}}\n    trafficPolicy:\n      loadBalancer:\n        localityLbSetting: {{enabled: true}}\n",
        dr("d", "pay")
    );
    assert_eq!(loads(&text), Ok(()));
    let port_level = format!(
        "{}  trafficPolicy:\n{OUTLIER}    portLevelSettings:\n    - port: {{number: 80}}\n      loadBalancer:\n        localityLbSetting: {{enabled: true}}\n",
        dr("d", "pay")
    );
    let errs = errors(&port_level);
    assert_eq!(
        errs.len(),
        1,
        "port settings replace the policy wholesale: {errs:?}"
    );
    assert!(errs[0].contains("portLevelSettings[0].loadBalancer.localityLbSetting"));
}

#[test]
fn istio_validation_rules() {
    let cases = [
        (
            "        distribute:\n        - {from: r1, to: {r1: 100}}\n        failover:\n        - {from: r1, to: r2}\n",
            "distribute and failover are mutually exclusive",
        ),
        (
            "        distribute:\n        - {from: r1, to: {r1: 60, r2: 30}}\n",
            "the weights sum to 90, not 100",
        ),
        (
            "        distribute:\n        - {from: r1, to: {r1: 0, r2: 100}}\n",
            "weight 0 is not in 1..100",
        ),
        (
            "        distribute:\n        - {from: \"*/z1\", to: {r1: 100}}\n",
            "the wildcard `*` may only be the whole last part",
        ),
        ("        failover:\n        - {from: r1, to: r1}\n", "two different regions"),
        ("        failover:\n        - {from: r1/z1, to: r2}\n", "region only"),
        (
            "        failover:\n        - {from: r1, to: r2}\n        failoverPriority: [topology.kubernetes.io/region]\n",
            "cannot be combined with the topology label",
        ),
        (
            "        enabled: false\n        failover:\n        - {from: r1, to: r2}\n",
            "enabled: false turns locality load balancing off",
        ),
        ("        failoverPriority: [\"bad key!\"]\n", "invalid label key"),
    ];
    for (setting, want) in cases {
        let text = format!("{}{OUTLIER}", lb(setting));
        let errs = errors(&text);
        assert!(errs.iter().any(|e| e.contains(want)), "{setting}: {errs:?}");
    }
}

#[test]
fn workload_entries_carry_locality_and_network() {
    let we = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: pay-a}\nspec:\n  address: 10.0.0.1\n  labels: {app: pay}\n  locality: us-east/us-east-1a\n  network: net-1\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: pay-b}\nspec:\n  address: 10.0.0.2\n  labels: {app: pay, topology.kubernetes.io/region: eu, topology.istio.io/network: net-2}\n";
    let mesh = load(&[("we.yaml", we)]).unwrap();
    let topo: Vec<(String, String)> = (mesh.workload_entries.iter())
        .map(|w| {
            let t = &w.endpoint.topology;
            (t.locality.to_string(), t.network.clone())
        })
        .collect();
    assert_eq!(
        topo,
        [
            ("us-east/us-east-1a".into(), "net-1".into()),
            ("eu".into(), "net-2".into())
        ]
    );
    let bad = we.replace("us-east/us-east-1a", "a/b/c/d");
    let errs = errors(&bad);
    assert!(
        errs[0].contains("spec.locality: locality \"a/b/c/d\" has more than three parts"),
        "{errs:?}"
    );
    assert_eq!(Locality::parse("a/b").unwrap().zone, "b");
}

#[test]
fn a_setting_on_a_dns_service_is_an_error() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: ext\nspec:\n  hosts: [api.example.com]\n  location: MESH_EXTERNAL\n  resolution: DNS\n  ports:\n  - {number: 443, name: tls, protocol: TLS}\n";
    let rule = format!(
        "{}  trafficPolicy:\n{OUTLIER}    loadBalancer:\n      localityLbSetting: {{enabled: true}}\n",
        dr("d", "api.example.com")
    );
    let errs = load(&[("se.yaml", se), ("dr.yaml", &rule)]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("dr.yaml:11:7: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.localityLbSetting: localityLbSetting has no effect on a DNS-resolved service"),
        "{errs:?}"
    );
    // Outlier detection alone (Istio's implicit failover) and `enabled: false` are fine.
    let plain = format!("{}  trafficPolicy:\n{OUTLIER}", dr("d", "api.example.com"));
    assert!(load(&[("se.yaml", se), ("dr.yaml", &plain)]).is_ok());
    let off = rule.replace("enabled: true", "enabled: false");
    assert!(load(&[("se.yaml", se), ("dr.yaml", &off)]).is_ok());
}
