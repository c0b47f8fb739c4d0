//! `Sidecar` → [`SidecarScope`], following Istio's validation
//! (`pkg/config/validation`: `ValidateSidecar`, `validateSidecarEgressPortBindAndCaptureMode`,
//! host form `NAMESPACE/HOST`).

use super::{join, Cx};
use crate::config::model::{
    Destination, EgressHost, EgressNamespace, EgressPort, Host, IngressPort, OutboundTrafficPolicy,
    SidecarScope,
};
use crate::config::raw::sidecar as raw;

/// Converts a `Sidecar`; `None` when it is unusable.
pub(crate) fn sidecar(cx: &mut Cx<'_>, sc: &raw::Sidecar) -> Option<SidecarScope> {
    let own_ns = cx.doc.namespace.clone();
    let mut ok = true;
    let inbound_pool = (sc.inbound_connection_pool.as_ref())
        .map(|cp| ingress::pool(cx, "spec.inboundConnectionPool", cp));
    let ingress = ingress::ingress_ports(cx, sc, inbound_pool.as_ref());
    ok &= ingress.is_ok();
    let outbound_policy = sc.outbound_traffic_policy.as_ref().map(|p| policy(cx, p));
    ok &= outbound_policy.is_none_or(|p| p.is_some());
    let outbound_policy = outbound_policy.flatten();
    let egress_proxy =
        (sc.outbound_traffic_policy.as_ref()).and_then(|p| egress_proxy(cx, p, outbound_policy));
    let mut egress = Vec::new();
    match default_egress(sc) {
        Ok(hosts) => egress.extend(hosts),
        Err(msg) => {
            cx.err("spec.egress", msg);
            ok = false;
        }
    }
    let mut ports: Vec<EgressPort> = Vec::new();
    for (i, l) in sc.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        if l.capture_mode.is_some() {
            let msg = "captureMode chooses how traffic is intercepted (iptables); Trellis sidecars have no interception: apps connect to the listener (bind:port) themselves";
            cx.err(&join(&path, "captureMode"), msg);
        }
        if l.hosts.is_empty() {
            cx.err(&format!("{path}.hosts"), "hosts must not be empty");
            ok = false;
        }
        let mut hosts = Vec::new();
        for (j, h) in l.hosts.iter().enumerate() {
            match egress_host(h, &own_ns) {
                Ok(e) => hosts.push(e),
                Err(msg) => {
                    cx.err(&format!("{path}.hosts[{j}]"), msg);
                    ok = false;
                }
            }
        }
        egress.extend(hosts.iter().cloned());
        match port::egress_port(cx, &path, l, hosts) {
            Ok(Some(p))
                if ports
                    .iter()
                    .any(|o| (o.number, &o.bind) == (p.number, &p.bind)) =>
            {
                let msg = format!("port {} on {} is declared twice", p.number, p.bind);
                cx.err(&format!("{path}.port.number"), msg);
                ok = false;
            }
            Ok(Some(p)) => ports.push(p),
            Ok(None) => {}
            Err(()) => ok = false,
        }
    }
    let ingress = ingress.unwrap_or_default();
    ok &= no_shared_socket(cx, &ingress, &ports);
    let selector = sc.workload_selector.as_ref().map(|s| s.labels.clone());
    if let Some(labels) = &selector {
        cx.labels("spec.workloadSelector.labels", labels);
    }
    ok.then(|| SidecarScope {
        namespace: own_ns,
        selector: selector.filter(|l| !l.is_empty()),
        egress,
        ports,
        ingress,
        inbound_pool,
        outbound_policy,
        egress_proxy,
        origin: cx.doc.origin(),
    })
}

/// `egressProxy`: the service `ALLOW_ANY` sends unknown hosts' requests
/// and tunnels to (an egress gateway), keeping their `Host`. Istio's
/// rules: only with `ALLOW_ANY`, and a port is required.
fn egress_proxy(
    cx: &mut Cx<'_>,
    p: &raw::OutboundTrafficPolicy,
    mode: Option<OutboundTrafficPolicy>,
) -> Option<Destination> {
    let written = p.egress_proxy.as_ref()?;
    let at = "spec.outboundTrafficPolicy.egressProxy";
    if mode != Some(OutboundTrafficPolicy::AllowAny) {
        let msg =
            "egressProxy only applies with mode ALLOW_ANY (REGISTRY_ONLY refuses unknown hosts)";
        cx.err(at, msg);
        return None;
    }
    if written.port.is_none() {
        cx.err(
            at,
            "egressProxy needs a port (port.number): the egress proxy's service port",
        );
        return None;
    }
    cx.destination(at, written)
}

/// Without `egress`: Istio's default listener (`convertToSidecarScope`),
/// every service of every namespace, for a Sidecar that writes a policy,
/// ingress listeners or an inbound pool; an error for one that writes
/// nothing (Istio: "empty configuration provided").
fn default_egress(sc: &raw::Sidecar) -> Result<Option<EgressHost>, &'static str> {
    let writes_other = sc.outbound_traffic_policy.is_some()
        || !sc.ingress.is_empty()
        || sc.inbound_connection_pool.is_some();
    match (sc.egress.is_empty(), writes_other) {
        (false, _) => Ok(None),
        (true, true) => Ok(Some(EgressHost {
            namespace: EgressNamespace::Any,
            host: "*".to_string(),
        })),
        (true, false) => Err("egress must list at least one listener with hosts"),
    }
}

/// An ingress and an egress listener cannot share a socket: Envoy would
/// refuse the second bind. Only clashes certain from the config are
/// errors (an ingress `bind` left out is the sidecar's inbound address,
/// known when it connects, so it clashes only with a wildcard).
fn no_shared_socket(cx: &mut Cx<'_>, ingress: &[IngressPort], egress: &[EgressPort]) -> bool {
    let mut ok = true;
    for (i, p) in ingress.iter().enumerate() {
        let clash = egress.iter().find(|e| {
            let wildcard = matches!(e.bind.as_str(), "0.0.0.0" | "::");
            e.number == p.number
                && (p.binds_any() || wildcard || p.bind.as_deref() == Some(e.bind.as_str()))
        });
        if let Some(e) = clash {
            let msg = format!(
                "ingress port {} on {} takes the socket of egress port {} on {}",
                p.number,
                p.bind.as_deref().unwrap_or("the inbound address"),
                e.number,
                e.bind
            );
            cx.err(&format!("spec.ingress[{i}].port.number"), msg);
            ok = false;
        }
    }
    ok
}

/// `outboundTrafficPolicy`: its mode, `None` after an error. An absent
/// `mode` is `REGISTRY_ONLY`, the proto's zero value, as Istio reads it.
fn policy(cx: &mut Cx<'_>, p: &raw::OutboundTrafficPolicy) -> Option<OutboundTrafficPolicy> {
    let at = "spec.outboundTrafficPolicy";
    match p.mode.as_deref() {
        None => Some(OutboundTrafficPolicy::RegistryOnly),
        Some(mode) => outbound_mode(cx, &format!("{at}.mode"), mode),
    }
}

/// Parses an outbound traffic policy mode (`Sidecar` and `Mesh`).
pub(crate) fn outbound_mode(
    cx: &mut Cx<'_>,
    path: &str,
    mode: &str,
) -> Option<OutboundTrafficPolicy> {
    match mode {
        "REGISTRY_ONLY" => Some(OutboundTrafficPolicy::RegistryOnly),
        "ALLOW_ANY" => Some(OutboundTrafficPolicy::AllowAny),
        other => {
            let msg = format!(
                "unknown outbound traffic policy mode {other:?}: use REGISTRY_ONLY or ALLOW_ANY"
            );
            cx.err(path, msg);
            None
        }
    }
}

/// Parses `NAMESPACE/HOST` (`.` = the namespace of the workload the
/// Sidecar applies to, `*` = any, `~` = none; HOST `*`, `*.SUFFIX` or a
/// DNS name). A `.` entry keeps its host as written: it is made canonical
/// once the workload's namespace is known (`SidecarScope::for_namespace`).
fn egress_host(text: &str, own_ns: &str) -> Result<EgressHost, String> {
    let Some((ns, host)) = text.split_once('/') else {
        return Err(format!(
            "host {text:?} must have the form NAMESPACE/HOST (e.g. ./*, */*, ~/*)"
        ));
    };
    let namespace = match ns {
        "*" => EgressNamespace::Any,
        "~" => EgressNamespace::None,
        "." => EgressNamespace::Current,
        n if super::is_dns_label(n) => EgressNamespace::Named(n.to_string()),
        n => {
            return Err(format!(
                "namespace {n:?} in host {text:?} is not a DNS label, `.`, `*` or `~`"
            ))
        }
    };
    let host = if host == "*" {
        host.to_string()
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if !super::is_dns_subdomain(suffix) {
            return Err(format!(
                "wildcard host {host:?} has no valid domain after `*.`"
            ));
        }
        host.to_string()
    } else if super::is_dns_subdomain(host) && ns == "." {
        host.trim_end_matches('.').to_ascii_lowercase()
    } else if super::is_dns_subdomain(host) {
        Host::canonical(host, ns_for_short(ns, own_ns))
            .as_str()
            .to_string()
    } else {
        return Err(format!(
            "host {host:?} in {text:?} is not `*`, `*.DOMAIN` or a DNS name"
        ));
    };
    Ok(EgressHost { namespace, host })
}

/// A short host name resolves in the namespace the entry names (`*` and
/// `~` name none: the Sidecar's own).
fn ns_for_short<'a>(ns: &'a str, own_ns: &'a str) -> &'a str {
    match ns {
        "*" | "~" => own_ns,
        n => n,
    }
}

mod ingress;
mod port;

#[cfg(test)]
mod tests;
