//! Raw types → model types, one resource at a time, collecting every error.
//!
//! Checks that need more than one resource (unknown hosts and subsets,
//! duplicates, conflicts) live in `check`; conversion records the
//! destinations it sees as [`DestRef`]s for them.

mod authorization_policy;
mod destination_rule;
mod envoy_filter;
mod gateway;
pub(crate) mod gateway_api;
mod http;
mod kube_service;
mod l4;
mod multicluster;
mod rate_limit;
mod request_authentication;
mod retry_budget;
mod rollout;
mod security;
mod service_entry;
mod sidecar;
mod telemetry;
mod values;
mod virtual_service;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use authorization_policy::{authorization_policy, dry_run_annotation};
pub(crate) use destination_rule::destination_rule;
pub(crate) use envoy_filter::envoy_filter;
pub(crate) use gateway::gateway;
pub(crate) use kube_service::kube_service;
pub(crate) use rate_limit::rate_limit;
pub(crate) use request_authentication::{check_jwks, request_authentication};
pub(crate) use rollout::rollout_policy;
pub(crate) use security::{mesh, peer_authentication};
pub(crate) use service_entry::{service_entry, workload_entry};
pub(crate) use sidecar::sidecar;
pub(crate) use telemetry::telemetry;
pub(crate) use values::{is_dns_label, is_dns_subdomain};
pub(crate) use virtual_service::{virtual_service, Delegation};

use super::diag::Diagnostic;
use super::model::{Destination, Host, Origin};
use super::raw::{self, Unsupported};
use super::yaml::Positions;

/// The document a resource came from: enough to locate any of its fields.
#[derive(Debug)]
pub(crate) struct DocInfo {
    pub file: PathBuf,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub positions: Positions,
    /// The string values a proxy's rejection may quote, with their field
    /// paths (only under the fields [`super::source::quoted`] names for
    /// this kind): what [`super::SourceIndex::strings`] answers.
    pub strings: Vec<(String, String)>,
}

impl DocInfo {
    /// A diagnostic blaming the field at `path`.
    pub(crate) fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.diagnostic_at(self.positions.lookup(path), path, message)
    }

    /// A diagnostic blaming the field at `path`, written at `(line, col)`.
    pub(crate) fn diagnostic_at(
        &self,
        (line, col): (usize, usize),
        path: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            col,
            kind: or_dash(&self.kind),
            name: or_dash(&self.name),
            field: or_dash(path),
            message: message.into(),
        }
    }

    /// The model's `Origin` of this resource.
    pub(crate) fn origin(&self) -> Origin {
        Origin {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            file: self.file.clone(),
            line: self.positions.doc.0,
        }
    }

    /// `FILE:LINE` of the document, for messages that point elsewhere.
    pub(crate) fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.positions.doc.0)
    }

    /// `namespace/name`.
    pub(crate) fn qualified(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

/// A destination named by a `VirtualService`, checked once all resources
/// are known.
#[derive(Debug, Clone)]
pub(crate) struct DestRef {
    pub doc: Arc<DocInfo>,
    /// Path of the `destination` field.
    pub path: String,
    /// The host as written.
    pub written: String,
    pub destination: Destination,
}

/// Conversion context of one document.
pub(crate) struct Cx<'a> {
    pub doc: &'a Arc<DocInfo>,
    pub diags: &'a mut Vec<Diagnostic>,
    pub refs: &'a mut Vec<DestRef>,
    /// Warnings: accepted, but the user should change something.
    pub warnings: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    /// Records an error blaming `path`.
    pub(crate) fn err(&mut self, path: &str, message: impl Into<String>) {
        self.diags.push(self.doc.diagnostic(path, message));
    }

    /// Records a warning blaming `path` (printed, not fatal).
    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(self.doc.diagnostic(path, message));
    }

    /// Rejects a field Istio has and Trellis does not support yet.
    pub(crate) fn unsupported(&mut self, path: &str, field: &str, value: &Option<Unsupported>) {
        if value.is_some() {
            let p = join(path, field);
            self.err(&p, format!("field `{field}` is not supported yet"));
        }
    }

    /// A duration of at least 1 ms (Istio's rule), with ms precision.
    pub(crate) fn duration(&mut self, path: &str, text: &str) -> Option<Duration> {
        match values::parse_duration(text) {
            Ok(d) if d < Duration::from_millis(1) => {
                self.err(path, format!("duration {text:?} must be at least 1ms"));
                None
            }
            Ok(d) if d.subsec_nanos() % 1_000_000 != 0 => {
                self.err(
                    path,
                    format!("duration {text:?}: only millisecond precision is supported"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    /// A port number, 1..=65535.
    pub(crate) fn port(&mut self, path: &str, n: i64) -> Option<u16> {
        match u16::try_from(n) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.err(path, format!("port number {n} is not in 1..65535"));
                None
            }
        }
    }

    /// A percentage, 0.0..=100.0.
    pub(crate) fn percent(&mut self, path: &str, value: f64) -> Option<f64> {
        if (0.0..=100.0).contains(&value) {
            Some(value)
        } else {
            self.err(path, format!("percentage {value} is not in 0..100"));
            None
        }
    }

    /// A count Istio keeps as a non-negative `int32`.
    pub(crate) fn count(&mut self, path: &str, n: i64) -> Option<u32> {
        match i32::try_from(n) {
            Ok(v) if v >= 0 => Some(v as u32),
            Ok(_) => {
                self.err(path, format!("{n} must not be negative"));
                None
            }
            Err(_) => {
                self.err(path, format!("{n} is too large (at most {})", i32::MAX));
                None
            }
        }
    }

    /// Checks label keys and values (Kubernetes' rules).
    pub(crate) fn labels(
        &mut self,
        path: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) {
        for (k, v) in labels {
            let p = join(path, k);
            if let Err(e) = values::check_label(k, v) {
                self.err(&p, e);
            }
        }
    }

    /// A service's host: as [`Self::host`], or a wildcard `*.DOMAIN` (a
    /// `ServiceEntry` host, or a `DestinationRule`'s for the services it
    /// covers), kept as written, lowercase.
    pub(crate) fn service_host(&mut self, path: &str, raw: &str) -> Option<Host> {
        let Some(domain) = raw.strip_prefix("*.") else {
            if raw.trim() == "*" {
                let msg = "host `*` would take every host: unknown hosts are what outboundTrafficPolicy decides (ALLOW_ANY forwards them)";
                self.err(path, msg);
                return None;
            }
            return self.host(path, raw);
        };
        match values::check_host(domain) {
            Ok(()) => Some(Host(raw.trim_end_matches('.').to_ascii_lowercase())),
            Err(_) => {
                let msg = format!("wildcard host {raw:?} has no valid domain after `*.`");
                self.err(path, msg);
                None
            }
        }
    }

    /// A hostname as written in this resource, checked and canonicalised.
    pub(crate) fn host(&mut self, path: &str, raw: &str) -> Option<Host> {
        match values::check_host(raw) {
            Ok(()) => Some(Host::canonical(raw, &self.doc.namespace)),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    /// A `destination`; recorded for the cross-resource checks.
    pub(crate) fn destination(
        &mut self,
        path: &str,
        raw: &raw::Destination,
    ) -> Option<Destination> {
        let host = self.host(&join(path, "host"), &raw.host);
        let mut ok = host.is_some();
        if let Some(subset) = &raw.subset {
            if !is_dns_label(subset) {
                let p = join(path, "subset");
                self.err(
                    &p,
                    format!("subset name {subset:?} is not a valid DNS-1123 label"),
                );
                ok = false;
            }
        }
        let port = match &raw.port {
            Some(sel) => {
                let p = self.port(&join(path, "port.number"), sel.number);
                ok &= p.is_some();
                p
            }
            None => None,
        };
        let destination = Destination {
            host: host?,
            subset: raw.subset.clone(),
            port,
        };
        if ok {
            self.refs.push(DestRef {
                doc: self.doc.clone(),
                path: path.to_string(),
                written: raw.host.clone(),
                destination: destination.clone(),
            });
        }
        ok.then_some(destination)
    }
}

/// `spec.hosts`: each valid host, canonical, with its path.
pub(crate) fn hosts(cx: &mut Cx<'_>, raw: &[String]) -> Vec<(String, Host)> {
    let mut out: Vec<(String, Host)> = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        let Some(host) = cx.host(&path, h) else {
            continue;
        };
        if out.iter().any(|(_, seen)| *seen == host) {
            cx.err(&path, format!("duplicate host {host}"));
            continue;
        }
        out.push((path, host));
    }
    out
}

/// `parent.field` (or `field` at the root).
pub(crate) fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}
