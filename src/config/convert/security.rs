//! `PeerAuthentication`, the `Mesh` resource and `DestinationRule`
//! `trafficPolicy.tls`, following Istio's validation
//! (`pkg/config/validation`: `ValidatePeerAuthentication`, `validateTLS`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{is_dns_label, join, Cx};
use crate::config::model::{
    ClientTls, ClientTlsMode, DefaultSidecarScope, MeshSettings, MtlsMode, OutboundTrafficPolicy,
    PeerAuthentication,
};
use crate::config::raw::destination_rule as raw_dr;
use crate::config::raw::peer_authentication as raw;

/// Shortest workload certificate lifetime: re-issued at half life, a
/// shorter one would keep the CA busy and Envoys churning.
const MIN_WORKLOAD_TTL: Duration = Duration::from_secs(10);

/// Converts a `PeerAuthentication`; `None` when it is unusable.
pub(crate) fn peer_authentication(
    cx: &mut Cx<'_>,
    pa: &raw::PeerAuthentication,
) -> Option<PeerAuthentication> {
    cx.unsupported("spec", "portLevelTls", &pa.port_level_tls);
    let mut ok = true;
    // Istio: an empty `matchLabels` selects nothing in particular, the
    // policy is namespace-wide.
    let selector = pa
        .selector
        .as_ref()
        .filter(|s| !s.match_labels.is_empty())
        .map(|s| s.match_labels.clone());
    if let Some(labels) = &selector {
        cx.labels("spec.selector.matchLabels", labels);
    }
    let mode = match &pa.mtls {
        Some(m) => mtls_mode(cx, "spec.mtls.mode", m.mode.as_deref())?,
        None => MtlsMode::Unset,
    };
    let mut port_level = BTreeMap::new();
    if !pa.port_level_mtls.is_empty() && selector.is_none() {
        let msg = "portLevelMtls requires a workload selector (spec.selector.matchLabels)";
        cx.err("spec.portLevelMtls", msg);
        ok = false;
    }
    for (key, m) in &pa.port_level_mtls {
        let key = &key.0;
        let path = join("spec.portLevelMtls", key);
        let port = match key.trim().parse::<i64>() {
            Ok(n) => cx.port(&path, n),
            Err(_) => {
                cx.err(&path, format!("{key:?} is not a port number"));
                None
            }
        };
        let m = mtls_mode(cx, &join(&path, "mode"), m.mode.as_deref());
        match (port, m) {
            (Some(p), Some(m)) => {
                port_level.insert(p, m);
            }
            _ => ok = false,
        }
    }
    ok.then(|| PeerAuthentication {
        selector,
        mode,
        port_level,
        origin: cx.doc.origin(),
    })
}

fn mtls_mode(cx: &mut Cx<'_>, path: &str, mode: Option<&str>) -> Option<MtlsMode> {
    Some(match mode {
        None | Some("UNSET") => MtlsMode::Unset,
        Some("DISABLE") => MtlsMode::Disable,
        Some("PERMISSIVE") => MtlsMode::Permissive,
        Some("STRICT") => MtlsMode::Strict,
        Some(other) => {
            let msg =
                format!("unknown mTLS mode {other:?}: use UNSET, DISABLE, PERMISSIVE or STRICT");
            cx.err(path, msg);
            return None;
        }
    })
}

/// Converts the `Mesh` resource; `None` when it is unusable.
pub(crate) fn mesh(cx: &mut Cx<'_>, m: &raw::Mesh) -> Option<MeshSettings> {
    cx.unsupported("spec", "trustDomainAliases", &m.trust_domain_aliases);
    let before = cx.diags.len();
    let mut out = MeshSettings {
        origin: Some(cx.doc.origin()),
        ..Default::default()
    };
    if let Some(td) = &m.trust_domain {
        match check_trust_domain(td) {
            Ok(()) => out.trust_domain = td.clone(),
            Err(e) => cx.err("spec.trustDomain", e),
        }
    }
    if let Some(ns) = &m.root_namespace {
        if is_dns_label(ns) {
            out.root_namespace = ns.clone();
        } else {
            let msg = format!("root namespace {ns:?} is not a valid DNS-1123 label");
            cx.err("spec.rootNamespace", msg);
        }
    }
    if let Some(c) = &m.certificates {
        certificates(cx, c, &mut out);
    }
    out.telemetry = super::telemetry::mesh_telemetry(cx, m);
    if let Some(scope) = &m.default_sidecar_scope {
        out.default_sidecar_scope = default_sidecar_scope(cx, scope).unwrap_or_default();
    }
    if let Some(policy) = &m.outbound_traffic_policy {
        out.outbound_traffic_policy = outbound_policy(cx, policy).unwrap_or_default();
    }
    if let Some(b) = &m.default_retry_budget {
        out.default_retry_budget = super::retry_budget::mesh_default(cx, b);
    }
    if let Some(mc) = &m.multi_cluster {
        out.multi_cluster = super::multicluster::multi_cluster(cx, mc).unwrap_or_default();
    }
    (cx.diags.len() == before).then_some(out)
}

/// `outboundTrafficPolicy`: `mode` is required here (Trellis' own kind
/// need not read a missing mode as the proto's zero value).
fn outbound_policy(
    cx: &mut Cx<'_>,
    policy: &raw::MeshOutboundTrafficPolicy,
) -> Option<OutboundTrafficPolicy> {
    match policy.mode.as_deref() {
        Some(mode) => super::sidecar::outbound_mode(cx, "spec.outboundTrafficPolicy.mode", mode),
        None => {
            let msg = "`mode` must be set: REGISTRY_ONLY or ALLOW_ANY";
            cx.err("spec.outboundTrafficPolicy", msg);
            None
        }
    }
}

fn default_sidecar_scope(cx: &mut Cx<'_>, scope: &str) -> Option<DefaultSidecarScope> {
    match scope {
        "NAMESPACE" => Some(DefaultSidecarScope::Namespace),
        "ALL_SERVICES" => Some(DefaultSidecarScope::AllServices),
        other => {
            let msg =
                format!("unknown default sidecar scope {other:?}: use NAMESPACE or ALL_SERVICES");
            cx.err("spec.defaultSidecarScope", msg);
            None
        }
    }
}

fn certificates(cx: &mut Cx<'_>, c: &raw::Certificates, out: &mut MeshSettings) {
    let path = "spec.certificates.workloadTTL";
    if let Some(ttl) = c.workload_ttl.as_ref().and_then(|t| cx.duration(path, t)) {
        if ttl < MIN_WORKLOAD_TTL {
            cx.err(
                path,
                format!("workloadTTL must be at least {MIN_WORKLOAD_TTL:?}"),
            );
        } else {
            out.workload_ttl = ttl;
        }
    }
    // The CA generates its roots before any config is read and keeps them
    // across reloads, so a root lifetime here could not take effect: say so
    // rather than accept it.
    if c.root_ttl.is_some() {
        let msg = "rootTTL is not supported yet: generated roots live ten years; bring your own CA for another lifetime";
        cx.err("spec.certificates.rootTTL", msg);
    }
}

/// A SPIFFE trust domain: lowercase letters, digits, `.`, `-`, `_`
/// (SPIFFE ID spec, section 2.1), at most 255 characters.
fn check_trust_domain(td: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
    if td.is_empty() {
        return Err("trust domain must not be empty".into());
    }
    if td.len() > 255 || !td.chars().all(allowed) {
        return Err(format!(
            "invalid trust domain {td:?}: use lowercase letters, digits, '.', '-' and '_' (no scheme, no path), e.g. example.org"
        ));
    }
    Ok(())
}

/// Converts `trafficPolicy.tls` (or a port's `tls`) at `path`.
pub(crate) fn client_tls(cx: &mut Cx<'_>, path: &str, t: &raw_dr::ClientTls) -> Option<ClientTls> {
    cx.unsupported(path, "caCrl", &t.ca_crl);
    let mode = match t.mode.as_deref() {
        None | Some("DISABLE") => ClientTlsMode::Disable,
        Some("SIMPLE") => ClientTlsMode::Simple,
        Some("MUTUAL") => ClientTlsMode::Mutual,
        Some("ISTIO_MUTUAL") => ClientTlsMode::IstioMutual,
        Some(other) => {
            let msg =
                format!("unknown TLS mode {other:?}: use DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL");
            cx.err(&join(path, "mode"), msg);
            return None;
        }
    };
    let out = ClientTls {
        mode,
        client_certificate: non_empty(&t.client_certificate),
        private_key: non_empty(&t.private_key),
        ca_certificates: non_empty(&t.ca_certificates),
        sni: non_empty(&t.sni),
        subject_alt_names: t.subject_alt_names.clone(),
        insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
        credential_name: non_empty(&t.credential_name),
    };
    check_client_tls(cx, path, &out).then_some(out)
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

/// Istio's `validateTLS` for `credentialName`: SIMPLE or MUTUAL only, and
/// never with the file fields it replaces.
fn check_credential(cx: &mut Cx<'_>, path: &str, t: &ClientTls, name: &str) {
    let at = join(path, "credentialName");
    if matches!(t.mode, ClientTlsMode::Disable | ClientTlsMode::IstioMutual) {
        let msg =
            "credentialName needs mode SIMPLE or MUTUAL (ISTIO_MUTUAL uses the mesh certificates)";
        cx.err(&at, msg);
    }
    let files = [&t.client_certificate, &t.private_key, &t.ca_certificates];
    if files.iter().any(|f| f.is_some()) {
        let msg =
            "credentialName and clientCertificate/privateKey/caCertificates exclude each other";
        cx.err(&at, msg);
    }
    if !super::is_dns_subdomain(name) {
        cx.err(
            &at,
            format!("credentialName {name:?} is not a valid DNS-1123 subdomain"),
        );
    }
}

/// Istio's `validateTLS`: files only where they mean something, both
/// files for MUTUAL, no verification settings with `insecureSkipVerify`.
fn check_client_tls(cx: &mut Cx<'_>, path: &str, t: &ClientTls) -> bool {
    let before = cx.diags.len();
    let files = [
        ("clientCertificate", &t.client_certificate),
        ("privateKey", &t.private_key),
        ("caCertificates", &t.ca_certificates),
    ];
    if let Some(name) = &t.credential_name {
        check_credential(cx, path, t, name);
    }
    match t.mode {
        ClientTlsMode::IstioMutual | ClientTlsMode::Disable => {
            let mode = if t.mode == ClientTlsMode::Disable {
                "DISABLE"
            } else {
                "ISTIO_MUTUAL"
            };
            for (field, _) in files.iter().filter(|(_, v)| v.is_some()) {
                let msg = format!(
                    "{field} cannot be set with mode {mode} (ISTIO_MUTUAL uses the mesh certificates)"
                );
                cx.err(&join(path, field), msg);
            }
        }
        ClientTlsMode::Mutual if t.credential_name.is_none() => {
            for (field, value) in &files[..2] {
                if value.is_none() {
                    let msg = format!("{field} (a file path) is required for mode MUTUAL");
                    cx.err(path, msg);
                }
            }
        }
        ClientTlsMode::Simple | ClientTlsMode::Mutual => {}
    }
    if t.insecure_skip_verify && (t.ca_certificates.is_some() || !t.subject_alt_names.is_empty()) {
        let msg = "insecureSkipVerify cannot be combined with caCertificates or subjectAltNames";
        cx.err(&join(path, "insecureSkipVerify"), msg);
    }
    cx.diags.len() == before
}
