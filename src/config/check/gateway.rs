//! Gateways across resources: servers that share a port must agree (one
//! protocol; a host has one TLS setting), and every gateway a
//! VirtualService binds to exists.

use std::sync::Arc;

use crate::config::convert::DocInfo;
use crate::config::diag::Diagnostic;
use crate::config::model::{Gateway, GatewayServer, Labels};

/// The Gateways, sorted by namespace and name, after the conflict checks.
pub(super) fn gateways(
    mut raw: Vec<(Arc<DocInfo>, Gateway)>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Arc<Gateway>> {
    raw.sort_by(|(_, a), (_, b)| {
        let (a, b) = (&a.origin, &b.origin);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    for (b, (doc_b, gw_b)) in raw.iter().enumerate() {
        for (doc_a, gw_a) in raw[..=b].iter() {
            if may_overlap(&gw_a.selector, &gw_b.selector) {
                conflicts(doc_a, gw_a, doc_b, gw_b, diags);
            }
        }
    }
    raw.into_iter().map(|(_, g)| Arc::new(g)).collect()
}

/// True when some proxy could carry both selectors' labels: no key is
/// required with two different values.
fn may_overlap(a: &Labels, b: &Labels) -> bool {
    a.iter().all(|(k, v)| b.get(k).is_none_or(|w| w == v))
}

/// Errors for servers of `b` that clash with earlier servers of `a` (or of
/// `b` itself) on the same port.
fn conflicts(
    doc_a: &DocInfo,
    a: &Gateway,
    doc_b: &DocInfo,
    b: &Gateway,
    diags: &mut Vec<Diagnostic>,
) {
    let same = std::ptr::eq(a, b);
    for (j, sb) in b.servers.iter().enumerate() {
        let earlier = if same {
            &a.servers[..j]
        } else {
            &a.servers[..]
        };
        for (i, sa) in earlier
            .iter()
            .enumerate()
            .filter(|(_, s)| s.port == sb.port)
        {
            let other = format!(
                "server {i} of Gateway {} ({})",
                doc_a.qualified(),
                doc_a.place()
            );
            if let Some((path, msg)) = clash(sa, sb, j, &other) {
                diags.push(doc_b.diagnostic(&path, msg));
                return;
            }
        }
    }
}

/// The path and message of a clash between two servers on one port.
fn clash(
    sa: &GatewayServer,
    sb: &GatewayServer,
    j: usize,
    other: &str,
) -> Option<(String, String)> {
    let port = sb.port;
    if sa.protocol != sb.protocol {
        let msg = format!(
            "port {port} is {} here but {} in {other}: servers sharing a port need one protocol",
            sb.protocol.as_str(),
            sa.protocol.as_str()
        );
        return Some((format!("spec.servers[{j}].port.protocol"), msg));
    }
    let k = sb.hosts.iter().position(|h| sa.hosts.contains(h))?;
    (sa.tls != sb.tls).then(|| {
        let msg = format!(
            "host {:?} on port {port} has other TLS settings in {other}: one host, one TLS setting per port",
            sb.hosts[k].host
        );
        (format!("spec.servers[{j}].hosts[{k}]"), msg)
    })
}

/// Warnings for Gateways with an HTTP or HTTPS server that no
/// VirtualService binds to: their servers answer 404 to everything (a
/// server that only redirects to HTTPS needs none; TCP and TLS servers
/// route with a VirtualService's `tcp` and `tls` rules, so they warn too).
pub(super) fn unbound(
    raw: &[(Arc<DocInfo>, Gateway)],
    refs: &[(Arc<DocInfo>, String, String)],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (doc, gw) in raw {
        let name = gw.qualified();
        let redirect_only = |s: &GatewayServer| s.tls.as_ref().is_some_and(|t| t.https_redirect);
        if refs.iter().any(|(_, _, g)| *g == name) || gw.servers.iter().all(redirect_only) {
            continue;
        }
        let msg = "no VirtualService binds this Gateway (spec.gateways or a match's gateways): \
                   its servers route nothing";
        out.push(doc.diagnostic("metadata.name", msg));
    }
    out
}

/// Errors for gateways that VirtualServices name (`(doc, path,
/// NAMESPACE/NAME)`) and no Gateway defines.
pub(super) fn check_refs(
    refs: &[(Arc<DocInfo>, String, String)],
    gateways: &[Arc<Gateway>],
    diags: &mut Vec<Diagnostic>,
) {
    let known: std::collections::BTreeSet<String> =
        gateways.iter().map(|g| g.qualified()).collect();
    for (doc, path, g) in refs.iter().filter(|(_, _, g)| !known.contains(g)) {
        let msg = format!("unknown gateway {g}: no Gateway of that namespace and name");
        diags.push(doc.diagnostic(path, msg));
    }
}
