//! `Sidecar` loading: what converts, which Sidecar applies to a workload,
//! and one test per error (exact `FILE:LINE:COL` lines).

use std::collections::BTreeMap;

use crate::config::model::{sidecar_for, EgressHost, EgressNamespace, Host};
use crate::config::tests::{errors, load};

/// A Sidecar `sc` in namespace `shop`; `spec` is on line 6, its content
/// starts on line 7.
fn sc(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: sc\n  namespace: shop\nspec:\n{spec}")
}

fn err(spec: &str) -> Vec<String> {
    errors(&sc(spec))
}

#[test]
fn egress_hosts_convert() {
    let spec = "  workloadSelector:\n    labels:\n      app: cart\n  egress:\n  - hosts:\n    - ./*\n    - \"*/*.example.com\"\n    - ~/*\n    - pay/payment\n";
    let mesh = load(&[("f.yaml", &sc(spec))]).unwrap();
    let [s] = mesh.sidecars.as_slice() else {
        panic!("{:?}", mesh.sidecars)
    };
    assert_eq!(s.namespace, "shop");
    assert_eq!(s.selector, Some([("app".into(), "cart".into())].into()));
    let named = |n: &str| EgressNamespace::Named(n.into());
    assert_eq!(
        s.egress,
        [
            EgressHost {
                namespace: named("shop"),
                host: "*".into()
            },
            EgressHost {
                namespace: EgressNamespace::Any,
                host: "*.example.com".into()
            },
            EgressHost {
                namespace: EgressNamespace::None,
                host: "*".into()
            },
            EgressHost {
                namespace: named("pay"),
                host: "payment.pay.svc.cluster.local".into()
            },
        ]
    );
    let payment = Host::canonical("payment", "pay");
    assert!(s.admits(&payment, "pay"));
    assert!(!s.admits(&Host::canonical("ledger", "pay"), "pay"));
    assert!(s.admits(&Host::canonical("cart", "shop"), "shop"));
    assert!(s.admits(&Host("api.example.com".into()), "other"));
}

#[test]
fn which_sidecar_applies() {
    let text = |name: &str, ns: &str, sel: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{sel}  egress:\n  - hosts: [\"./*\"]\n---\n")
    };
    let all = [
        text("root", "istio-system", ""),
        text("wide", "shop", ""),
        text(
            "cart",
            "shop",
            "  workloadSelector:\n    labels:\n      app: cart\n",
        ),
    ]
    .concat();
    let mesh = load(&[("f.yaml", &all)]).unwrap();
    let pick = |ns: &str, app: &str| {
        let labels: BTreeMap<String, String> = [("app".to_string(), app.to_string())].into();
        let s = sidecar_for(&mesh.sidecars, ns, &labels, "istio-system");
        s.map(|s| s.origin.name.clone())
    };
    assert_eq!(pick("shop", "cart").as_deref(), Some("cart"));
    assert_eq!(pick("shop", "web").as_deref(), Some("wide"));
    assert_eq!(pick("other", "web").as_deref(), Some("root"));
    let none = sidecar_for(&[], "shop", &BTreeMap::new(), "istio-system");
    assert!(none.is_none(), "no Sidecar: every service");
}

#[test]
fn unsupported_fields_are_errors() {
    assert_eq!(
        err("  ingress:\n  - port:\n      number: 80\n  egress:\n  - hosts: [\"./*\"]\n"),
        ["f.yaml:7:3: error: Sidecar/sc: spec.ingress: field `ingress` is not supported yet"]
    );
    assert_eq!(
        err("  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n  egress:\n  - hosts: [\"./*\"]\n"),
        ["f.yaml:7:3: error: Sidecar/sc: spec.outboundTrafficPolicy: field `outboundTrafficPolicy` is not supported yet"]
    );
    assert_eq!(
        err("  egress:\n  - port:\n      number: 80\n    bind: 127.0.0.1\n    hosts: [\"./*\"]\n"),
        [
            "f.yaml:8:5: error: Sidecar/sc: spec.egress[0].port: field `port` is not supported yet",
            "f.yaml:10:5: error: Sidecar/sc: spec.egress[0].bind: field `bind` is not supported yet",
        ]
    );
    assert_eq!(
        err("  egress:\n  - hosts: [\"./*\"]\n    captureMode: NONE\n  inboundConnectionPool: {}\n"),
        [
            "f.yaml:9:5: error: Sidecar/sc: spec.egress[0].captureMode: field `captureMode` is not supported yet",
            "f.yaml:10:3: error: Sidecar/sc: spec.inboundConnectionPool: field `inboundConnectionPool` is not supported yet",
        ]
    );
}

#[test]
fn bad_hosts_are_errors() {
    assert_eq!(
        err("  egress:\n  - hosts:\n    - payment\n    - \"Bad_NS/*\"\n    - \"./*.\"\n"),
        [
            r#"f.yaml:9:7: error: Sidecar/sc: spec.egress[0].hosts[0]: host "payment" must have the form NAMESPACE/HOST (e.g. ./*, */*, ~/*)"#,
            r#"f.yaml:10:7: error: Sidecar/sc: spec.egress[0].hosts[1]: namespace "Bad_NS" in host "Bad_NS/*" is not a DNS label, `.`, `*` or `~`"#,
            r#"f.yaml:11:7: error: Sidecar/sc: spec.egress[0].hosts[2]: wildcard host "*." has no valid domain after `*.`"#,
        ]
    );
    assert_eq!(
        err("  egress: []\n"),
        ["f.yaml:7:3: error: Sidecar/sc: spec.egress: egress must list at least one listener with hosts"]
    );
    assert_eq!(
        err("  egress:\n  - hosts: []\n"),
        ["f.yaml:8:5: error: Sidecar/sc: spec.egress[0].hosts: hosts must not be empty"]
    );
    assert_eq!(
        err("  egres:\n  - hosts: [\"./*\"]\n"),
        ["f.yaml:7:3: error: Sidecar/sc: spec.egres: unknown field `egres`, expected one of `workloadSelector`, `egress`, `ingress`, `outboundTrafficPolicy`, `inboundConnectionPool`"]
    );
}
