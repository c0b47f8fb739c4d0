//! `Sidecar` loading: what converts, which Sidecar applies to a workload,
//! and one test per error (exact `FILE:LINE:COL` lines).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::config::model::{
    effective_scope, sidecar_for, DefaultSidecarScope, EgressHost, EgressNamespace, EgressProtocol,
    Host, MeshSettings, SidecarScope, DEFAULT_SCOPE_NAME,
};
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
    let spec = "  workloadSelector:\n    labels:\n      app: cart\n  egress:\n  - hosts:\n    - ./*\n    - \"*/*.example.com\"\n    - ~/*\n    - pay/payment\n    - ./ledger\n";
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
                namespace: EgressNamespace::Current,
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
            EgressHost {
                namespace: EgressNamespace::Current,
                host: "ledger".into()
            },
        ]
    );
    assert!(s.has_current());
    assert!(
        !s.admits(&Host::canonical("cart", "shop"), "shop"),
        "`.` unresolved"
    );
    let s = s.for_namespace("shop");
    assert!(!s.has_current());
    let payment = Host::canonical("payment", "pay");
    assert!(s.admits(&payment, "pay"));
    assert!(!s.admits(&Host::canonical("ledger", "pay"), "pay"));
    assert!(s.admits(&Host::canonical("ledger", "shop"), "shop"));
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
        err("  outboundTrafficPolicy:\n    egressProxy: {host: proxy}\n"),
        ["f.yaml:8:5: error: Sidecar/sc: spec.outboundTrafficPolicy.egressProxy: egressProxy only applies with mode ALLOW_ANY (REGISTRY_ONLY refuses unknown hosts)"]
    );
    assert_eq!(
        err("  egress:\n  - hosts: [\"./*\"]\n    captureMode: NONE\n  inboundConnectionPool: {}\n"),
        [
            "f.yaml:9:5: error: Sidecar/sc: spec.egress[0].captureMode: captureMode chooses how traffic is intercepted (iptables); Trellis sidecars have no interception: apps connect to the listener (bind:port) themselves",
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

#[test]
fn outbound_traffic_policy_converts() {
    use crate::config::model::OutboundTrafficPolicy::*;
    let policy = |spec: &str| {
        let mesh = load(&[("f.yaml", &sc(spec))]).unwrap();
        let s = mesh.sidecars[0].clone();
        (s.outbound_policy, s.egress)
    };
    let hosts = "  egress:\n  - hosts: [\"./*\"]\n";
    assert_eq!(policy(hosts).0, None, "not written: the mesh's");
    let allow = format!("  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n{hosts}");
    assert_eq!(policy(&allow).0, Some(AllowAny));
    // Istio reads an empty policy as its zero value, REGISTRY_ONLY; and a
    // Sidecar without egress as Istio's default listener `*/*`.
    let (mode, egress) = policy("  outboundTrafficPolicy: {}\n");
    assert_eq!(mode, Some(RegistryOnly));
    let all = EgressHost {
        namespace: EgressNamespace::Any,
        host: "*".into(),
    };
    assert_eq!(egress, [all]);
    assert_eq!(
        err("  outboundTrafficPolicy:\n    mode: DENY\n"),
        [
            r#"f.yaml:8:5: error: Sidecar/sc: spec.outboundTrafficPolicy.mode: unknown outbound traffic policy mode "DENY": use REGISTRY_ONLY or ALLOW_ANY"#
        ]
    );
    assert_eq!(
        err("  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: proxy}\n"),
        ["f.yaml:9:5: error: Sidecar/sc: spec.outboundTrafficPolicy.egressProxy: egressProxy needs a port (port.number): the egress proxy's service port"]
    );
    assert_eq!(
        err("  outboundTrafficPolicy:\n    mod: ALLOW_ANY\n"),
        ["f.yaml:8:5: error: Sidecar/sc: spec.outboundTrafficPolicy.mod: unknown field `mod`, expected `mode` or `egressProxy`"]
    );
}

/// The services `scope` admits among `candidates` (`NAME.NAMESPACE`).
fn admitted(scope: Option<&SidecarScope>, candidates: &[&str]) -> Vec<String> {
    candidates
        .iter()
        .filter(|c| {
            let (name, ns) = c.split_once('.').unwrap();
            scope.is_none_or(|s| s.admits(&Host::canonical(name, ns), ns))
        })
        .map(|c| c.to_string())
        .collect()
}

const CANDIDATES: [&str; 4] = [
    "cart.shop",
    "ledger.shop",
    "istiod.istio-system",
    "web.other",
];

#[test]
fn default_scope_is_own_and_root_namespace() {
    let mesh = MeshSettings::default();
    let scope = effective_scope(&[], &mesh, "shop", &BTreeMap::new()).unwrap();
    assert_eq!(scope.origin.name, DEFAULT_SCOPE_NAME);
    assert_eq!(
        admitted(Some(&scope), &CANDIDATES),
        ["cart.shop", "ledger.shop", "istiod.istio-system"]
    );
    let in_root = effective_scope(&[], &mesh, "istio-system", &BTreeMap::new()).unwrap();
    assert_eq!(
        admitted(Some(&in_root), &CANDIDATES),
        ["istiod.istio-system"]
    );
    let all = MeshSettings {
        default_sidecar_scope: DefaultSidecarScope::AllServices,
        ..Default::default()
    };
    assert!(effective_scope(&[], &all, "shop", &BTreeMap::new()).is_none());
}

#[test]
fn a_root_sidecar_dot_means_the_workloads_namespace() {
    // Istio converts the root namespace's Sidecar per workload namespace
    // (push_context.go: convertToSidecarScope(.., proxy.ConfigNamespace)).
    let root = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: default\n  namespace: istio-system\nspec:\n  egress:\n  - hosts: [\"./*\", \"./ledger\"]\n";
    let config = load(&[("f.yaml", root)]).unwrap();
    let mesh = MeshSettings::default();
    let scope = |ns: &str| effective_scope(&config.sidecars, &mesh, ns, &BTreeMap::new());
    let shop = scope("shop").unwrap();
    assert!(matches!(shop, Cow::Owned(_)), "resolved for shop");
    assert_eq!(shop.origin.name, "default");
    assert_eq!(
        admitted(Some(&shop), &CANDIDATES),
        ["cart.shop", "ledger.shop"]
    );
    assert!(shop.egress.contains(&EgressHost {
        namespace: EgressNamespace::Named("shop".into()),
        host: "ledger.shop.svc.cluster.local".into()
    }));
    let other = scope("other").unwrap();
    assert_eq!(admitted(Some(&other), &CANDIDATES), ["web.other"]);
    // The Sidecar wins over the mesh setting.
    let all = MeshSettings {
        default_sidecar_scope: DefaultSidecarScope::AllServices,
        ..Default::default()
    };
    let with_all = effective_scope(&config.sidecars, &all, "other", &BTreeMap::new());
    assert_eq!(admitted(with_all.as_deref(), &CANDIDATES), ["web.other"]);
}

#[test]
fn a_sidecar_without_dot_is_borrowed() {
    let spec = "  egress:\n  - hosts: [\"pay/*\"]\n";
    let config = load(&[("f.yaml", &sc(spec))]).unwrap();
    let scope = effective_scope(
        &config.sidecars,
        &MeshSettings::default(),
        "shop",
        &BTreeMap::new(),
    );
    assert!(matches!(scope, Some(Cow::Borrowed(_))));
}

#[test]
fn egress_ports_convert() {
    let spec = "  egress:\n  - port: {number: 9000, protocol: TCP, name: tcp-echo}\n    hosts: [\"./echo\"]\n  - port: {number: 9443, protocol: TLS}\n    bind: 127.0.0.2\n    hosts: [\"./*\"]\n";
    let mesh = load(&[("f.yaml", &sc(spec))]).unwrap();
    let [s] = mesh.sidecars.as_slice() else {
        panic!("{:?}", mesh.sidecars)
    };
    let ports: Vec<_> = (s.ports.iter())
        .map(|p| {
            (
                p.number,
                p.name.as_str(),
                p.protocol,
                p.bind.as_str(),
                p.hosts.len(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (9000, "tcp-echo", EgressProtocol::Tcp, "127.0.0.1", 1),
            (9443, "tls-9443", EgressProtocol::Tls, "127.0.0.2", 1),
        ]
    );
    // The port's hosts are in the scope too, and resolve with it.
    assert_eq!(s.egress.len(), 2);
    let resolved = s.for_namespace("shop");
    assert_eq!(
        resolved.ports[0].hosts[0].host,
        "echo.shop.svc.cluster.local"
    );
}

#[test]
fn egress_port_errors() {
    assert_eq!(
        err("  egress:\n  - port:\n      number: 80\n      protocol: HTTP\n    bind: 127.0.0.1\n    hosts: [\"./*\"]\n"),
        ["f.yaml:10:7: error: Sidecar/sc: spec.egress[0].port.protocol: protocol HTTP: HTTP traffic goes through the sidecar's outbound listener; an egress port takes TCP, TLS, HTTPS, MONGO, MYSQL or REDIS"]
    );
    assert_eq!(
        err("  egress:\n  - port: {number: 9000, protocol: TCP}\n    bind: localhost\n    hosts: [\"./*\"]\n"),
        ["f.yaml:9:5: error: Sidecar/sc: spec.egress[0].bind: bind \"localhost\" must be an IP address (unix sockets are not supported)"]
    );
    assert_eq!(
        err("  egress:\n  - bind: 127.0.0.1\n    hosts: [\"./*\"]\n"),
        ["f.yaml:8:5: error: Sidecar/sc: spec.egress[0].bind: bind needs a port"]
    );
}
