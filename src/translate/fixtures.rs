//! Hand-built configs and sidecars for unit tests (the loader is tested
//! separately; these keep translation tests independent of YAML).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::model::*;
use crate::registry::{Proxy, Registry};

pub fn origin(kind: &str, name: &str) -> Origin {
    Origin {
        kind: kind.into(),
        namespace: "default".into(),
        name: name.into(),
        file: PathBuf::from(format!("{name}.yaml")),
        line: 1,
    }
}

pub fn host(short: &str) -> Host {
    Host::canonical(short, "default")
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn port(number: u16, name: &str, protocol: Protocol) -> ServicePort {
    ServicePort {
        number,
        name: name.into(),
        protocol,
        target_port: None,
    }
}

pub fn endpoint(address: &str, lbls: &[(&str, &str)]) -> StaticEndpoint {
    StaticEndpoint {
        address: address.into(),
        ports: BTreeMap::new(),
        labels: labels(lbls),
        weight: None,
        topology: Default::default(),
    }
}

pub fn service(name: &str, ports: Vec<ServicePort>, endpoints: Vec<StaticEndpoint>) -> Service {
    Service {
        host: host(name),
        namespace: "default".into(),
        ports,
        resolution: Resolution::Static,
        location: Location::MeshInternal,
        endpoints,
        workload_selector: None,
        subject_alt_names: Vec::new(),
        addresses: Vec::new(),
        export_to: Default::default(),
        origin: origin("ServiceEntry", name),
    }
}

pub fn sidecar(service: &str, id: &str, version: &str, inbound_port: u16) -> Proxy {
    Proxy {
        id: id.into(),
        service: service.into(),
        namespace: "default".into(),
        labels: labels(&[("app", service), ("version", version)]),
        service_account: service.into(),
        app_port: 8080,
        inbound_address: "127.0.0.1".into(),
        inbound_port,
        outbound_port: 15001,
        stats_port: None,
        admin_port: None,
        gateway: None,
        topology: Default::default(),
    }
}

pub fn dest(name: &str, subset: Option<&str>) -> Destination {
    Destination {
        host: host(name),
        subset: subset.map(str::to_string),
        port: None,
    }
}

pub fn weighted(name: &str, subset: Option<&str>, weight: u32) -> WeightedDestination {
    WeightedDestination {
        destination: dest(name, subset),
        weight,
        headers: Headers::default(),
    }
}

pub fn rule(action: RouteAction) -> HttpRoute {
    HttpRoute {
        name: None,
        matches: vec![],
        action,
        rewrite: None,
        timeout: None,
        retries: None,
        fault: None,
        headers: Headers::default(),
        mirrors: Vec::new(),
        cors: None,
        source: None,
    }
}

pub fn vs(name: &str, http: Vec<HttpRoute>) -> VirtualService {
    VirtualService {
        hosts: vec![host(name)],
        http,
        tcp: Vec::new(),
        tls: Vec::new(),
        gateways: Vec::new(),
        mesh: true,
        export_to: Default::default(),
        origin: origin("VirtualService", name),
    }
}

pub fn subset(name: &str, version: &str) -> Subset {
    Subset {
        name: name.into(),
        labels: labels(&[("version", version)]),
        traffic_policy: None,
    }
}

/// The canary config of `config-examples/canary/`, as the loader should
/// produce it.
pub fn canary_mesh() -> MeshConfig {
    let mut route = rule(RouteAction::Route(vec![
        weighted("payment-service", Some("stable"), 90),
        weighted("payment-service", Some("canary"), 10),
    ]));
    route.retries = Some(Retries {
        attempts: 3,
        per_try_timeout: Some(Duration::from_secs(2)),
        retry_on: Some(vec!["5xx".into(), "reset".into(), "connect-failure".into()]),
        retriable_status_codes: vec![],
        retry_remote_localities: None,
        retry_ignore_previous_hosts: None,
        backoff: None,
    });
    let dr = DestinationRule {
        host: host("payment-service"),
        traffic_policy: Some(TrafficPolicy {
            connection_pool: Some(ConnectionPool {
                h2_upgrade: Some(true),
                max_requests_per_connection: Some(100),
                ..Default::default()
            }),
            outlier_detection: Some(OutlierDetection {
                consecutive_5xx_errors: Some(5),
                interval: Some(Duration::from_secs(30)),
                base_ejection_time: Some(Duration::from_secs(60)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        subsets: vec![subset("stable", "v1"), subset("canary", "v2")],
        export_to: Default::default(),
        workload_selector: None,
        origin: origin("DestinationRule", "payment-service"),
    };
    let mut mesh = MeshConfig::default();
    mesh.virtual_services.insert(
        host("payment-service"),
        Arc::new(vs("payment-service", vec![route])),
    );
    mesh.destination_rules
        .insert(host("payment-service"), Arc::new(dr));
    mesh
}

/// Two sidecars per service, versions v1 and v2.
pub fn two_versions(services: &[&str]) -> Registry {
    let mut reg = Registry::new();
    let mut port = 16000;
    for svc in services {
        for version in ["v1", "v2"] {
            reg.register(sidecar(svc, &format!("{svc}-{version}"), version, port));
            port += 1;
        }
    }
    reg
}
