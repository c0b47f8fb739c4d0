//! Gateway API `Gateway` → the model's `Gateway`: each listener becomes a
//! server; the gateway proxies labelled
//! `gateway.networking.k8s.io/gateway-name: NAME` serve it.

use std::collections::BTreeMap;

use super::super::{join, Cx};
use super::{CrossRef, KubeGateway, ListenerInfo, GATEWAY_NAME_LABEL};
use crate::config::model::{
    Gateway, GatewayHost, GatewayProtocol, GatewayServer, ServerTls, ServerTlsMode, TlsSource,
};
use crate::config::raw::gateway_api as raw;

/// The classes Trellis implements: Istio's own, so that Istio configs load
/// as written, and its own name.
const CLASSES: &[&str] = &["istio", "trellis"];

/// A converted Gateway: the model's, what routes attach to, and the
/// certificate references into other namespaces.
pub(crate) struct Converted {
    pub gateway: Gateway,
    pub info: KubeGateway,
    pub cross: Vec<CrossRef>,
}

/// Converts a Gateway API `Gateway`.
pub(crate) fn kube_gateway(cx: &mut Cx<'_>, g: &raw::Gateway) -> Option<Converted> {
    let before = cx.diags.len();
    class(cx, &g.gateway_class_name);
    cx.unsupported("spec", "addresses", &g.addresses);
    cx.unsupported("spec", "infrastructure", &g.infrastructure);
    cx.unsupported("spec", "backendTLS", &g.backend_tls);
    cx.unsupported("spec", "allowedListeners", &g.allowed_listeners);
    if g.listeners.is_empty() {
        cx.err("spec.listeners", "at least one listener is required");
    }
    let (mut servers, mut listeners, mut cross) = (Vec::new(), Vec::new(), Vec::new());
    for (i, l) in g.listeners.iter().enumerate() {
        let path = format!("spec.listeners[{i}]");
        if listeners.iter().any(|o: &ListenerInfo| o.name == l.name) {
            cx.err(
                &join(&path, "name"),
                format!("duplicate listener name {:?}", l.name),
            );
        }
        if let Some((server, info)) = listener(cx, &path, l, &mut cross) {
            servers.push(server);
            listeners.push(info);
        }
    }
    let selector = BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), cx.doc.name.clone())]);
    (cx.diags.len() == before).then(|| Converted {
        gateway: Gateway {
            selector,
            servers,
            origin: cx.doc.origin(),
        },
        info: KubeGateway {
            qualified: cx.doc.qualified(),
            listeners,
        },
        cross,
    })
}

fn class(cx: &mut Cx<'_>, name: &str) {
    if name.is_empty() {
        cx.err("spec.gatewayClassName", "gatewayClassName is required");
    } else if !CLASSES.contains(&name) {
        let msg = format!("gatewayClassName {name:?}: Trellis implements the classes `istio` and `trellis` (a waypoint or remote class needs Istio's ambient mode or a cluster)");
        cx.err("spec.gatewayClassName", msg);
    }
}

fn listener(
    cx: &mut Cx<'_>,
    path: &str,
    l: &raw::Listener,
    cross: &mut Vec<CrossRef>,
) -> Option<(GatewayServer, ListenerInfo)> {
    if !super::super::is_dns_subdomain(&l.name) {
        let msg = format!(
            "listener name {:?} is not a valid DNS-1123 subdomain",
            l.name
        );
        cx.err(&join(path, "name"), msg);
    }
    let port = match l.port {
        Some(p) => cx.port(&join(path, "port"), p),
        None => {
            cx.err(path, "port is required");
            None
        }
    };
    let protocol = protocol(cx, path, &l.protocol);
    let hostname = hostname(cx, path, l.hostname.as_deref());
    let (all_namespaces, kinds) = allowed(cx, path, l, protocol);
    let tls = protocol.and_then(|p| tls(cx, path, l, p, cross));
    let (port, protocol, hostname) = (port?, protocol?, hostname.ok()?);
    let host = GatewayHost {
        namespace: (!all_namespaces).then(|| cx.doc.namespace.clone()),
        host: hostname.clone().unwrap_or_else(|| "*".to_string()),
    };
    let credential_pos = (tls.as_ref().and_then(|t| t.source.as_ref())).map(|_| {
        cx.doc
            .positions
            .lookup(&join(path, "tls.certificateRefs[0]"))
    });
    let server = GatewayServer {
        port,
        port_name: l.name.clone(),
        protocol,
        hosts: vec![host],
        tls,
        name: Some(l.name.clone()),
        credential_pos,
    };
    let info = ListenerInfo {
        name: l.name.clone(),
        port,
        hostname,
        all_namespaces,
        kinds,
    };
    Some((server, info))
}

fn protocol(cx: &mut Cx<'_>, path: &str, p: &str) -> Option<GatewayProtocol> {
    Some(match p {
        "HTTP" => GatewayProtocol::Http,
        "HTTPS" => GatewayProtocol::Https,
        "TLS" => GatewayProtocol::Tls,
        "TCP" => GatewayProtocol::Tcp,
        "" => {
            cx.err(path, "protocol is required");
            return None;
        }
        other => {
            let msg = format!("protocol {other:?} is not supported: use HTTP, HTTPS, TLS or TCP");
            cx.err(&join(path, "protocol"), msg);
            return None;
        }
    })
}

/// `hostname`: a DNS name or `*.SUFFIX`, lowercase; `Ok(None)` for any.
fn hostname(cx: &mut Cx<'_>, path: &str, h: Option<&str>) -> Result<Option<String>, ()> {
    let Some(h) = h else { return Ok(None) };
    match check_hostname(h) {
        Ok(h) => Ok(Some(h)),
        Err(msg) => {
            cx.err(&join(path, "hostname"), msg);
            Err(())
        }
    }
}

/// A Gateway API `Hostname`: a DNS name, optionally `*.` first; no IP
/// address, no bare `*`.
pub(super) fn check_hostname(h: &str) -> Result<String, String> {
    let lower = h.trim().to_ascii_lowercase();
    let name = lower.strip_prefix("*.").unwrap_or(&lower);
    let ip = name.parse::<std::net::IpAddr>().is_ok();
    if ip || super::super::values::check_host(name).is_err() || name.contains('*') {
        return Err(format!("hostname {h:?} must be a DNS name, optionally prefixed by `*.` (no IP address, no bare `*`)"));
    }
    Ok(lower)
}

/// `allowedRoutes`: whether every namespace may attach, and the route
/// kinds (by default those of the protocol).
fn allowed(
    cx: &mut Cx<'_>,
    path: &str,
    l: &raw::Listener,
    protocol: Option<GatewayProtocol>,
) -> (bool, Vec<String>) {
    let path = join(path, "allowedRoutes");
    let a = l.allowed_routes.as_ref();
    let ns = a.and_then(|a| a.namespaces.as_ref());
    let ns_path = join(&path, "namespaces");
    if let Some(ns) = ns {
        if ns.selector.is_some() {
            let msg = "namespaces.selector is not supported: Trellis has no Kubernetes namespace labels to select; use `from: All` or `from: Same`";
            cx.err(&join(&ns_path, "selector"), msg);
        }
    }
    let all = match ns.and_then(|n| n.from.as_deref()) {
        None | Some("Same") => false,
        Some("All") => true,
        Some(other) => {
            let msg = format!("from {other:?} is not supported: use Same or All (Selector needs Kubernetes namespace labels)");
            cx.err(&join(&ns_path, "from"), msg);
            false
        }
    };
    let defaults = match protocol {
        Some(GatewayProtocol::Tls) => vec!["TLSRoute".to_string()],
        Some(GatewayProtocol::Tcp) => vec!["TCPRoute".to_string()],
        _ => vec!["HTTPRoute".to_string(), "GRPCRoute".to_string()],
    };
    let Some(kinds) = a.and_then(|a| a.kinds.as_ref()) else {
        return (all, defaults);
    };
    let mut out = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let p = format!("{path}.kinds[{i}]");
        let group = k.group.as_deref().unwrap_or(super::GROUP);
        if group != super::GROUP || !defaults.contains(&k.kind) {
            let msg = format!(
                "kind {group}/{} cannot attach to a {} listener (it takes {})",
                k.kind,
                protocol.map_or("-", |p| p.as_str()),
                defaults.join(", ")
            );
            cx.err(&p, msg);
            continue;
        }
        out.push(k.kind.clone());
    }
    (all, out)
}

/// `tls`: HTTPS and TLS listeners terminate with one certificate from the
/// credentials directory, or (TLS) pass the client's TLS through.
fn tls(
    cx: &mut Cx<'_>,
    path: &str,
    l: &raw::Listener,
    protocol: GatewayProtocol,
    cross: &mut Vec<CrossRef>,
) -> Option<ServerTls> {
    let tls_path = join(path, "tls");
    let needs = matches!(protocol, GatewayProtocol::Https | GatewayProtocol::Tls);
    let Some(t) = &l.tls else {
        if needs {
            cx.err(
                path,
                format!("a {} listener needs `tls`", protocol.as_str()),
            );
        }
        return None;
    };
    if !needs {
        let msg = format!("a {} listener takes no `tls`", protocol.as_str());
        cx.err(&tls_path, msg);
        return None;
    }
    cx.unsupported(&tls_path, "options", &t.options);
    cx.unsupported(&tls_path, "frontendValidation", &t.frontend_validation);
    let mode = match t.mode.as_deref() {
        None | Some("Terminate") => ServerTlsMode::Simple,
        Some("Passthrough") if protocol == GatewayProtocol::Tls => ServerTlsMode::Passthrough,
        Some(m) => {
            let msg = format!("mode {m:?}: HTTPS listeners take Terminate, TLS listeners Terminate or Passthrough");
            cx.err(&join(&tls_path, "mode"), msg);
            return None;
        }
    };
    let source = if mode == ServerTlsMode::Passthrough {
        if !t.certificate_refs.is_empty() {
            cx.err(
                &join(&tls_path, "certificateRefs"),
                "a Passthrough listener holds no certificate",
            );
        }
        None
    } else {
        Some(certificate(cx, &tls_path, t, cross)?)
    };
    Some(ServerTls {
        https_redirect: false,
        mode: Some(mode),
        source,
        min_version: None,
        max_version: None,
        cipher_suites: Vec::new(),
        subject_alt_names: Vec::new(),
    })
}

/// The one certificate of a terminating listener: a `Secret` named after
/// a directory of the credentials directory (`NAMESPACE/NAME/tls.crt`,
/// `tls.key`), as Istio's `credentialName`.
fn certificate(
    cx: &mut Cx<'_>,
    path: &str,
    t: &raw::ListenerTls,
    cross: &mut Vec<CrossRef>,
) -> Option<TlsSource> {
    let refs_path = join(path, "certificateRefs");
    let [r] = t.certificate_refs.as_slice() else {
        let msg =
            "exactly one certificateRef is supported (several, for RSA and ECDSA, are not yet)";
        cx.err(&refs_path, msg);
        return None;
    };
    let p = format!("{refs_path}[0]");
    let (group, kind) = (
        r.group.as_deref().unwrap_or(""),
        r.kind.as_deref().unwrap_or("Secret"),
    );
    if !group.is_empty() || kind != "Secret" {
        cx.err(&p, format!("certificateRef {group:?}/{kind}: only core Secrets (a credentials directory entry) are supported"));
        return None;
    }
    if r.port.is_some() || r.section_name.is_some() {
        cx.err(
            &p,
            "a certificateRef takes group, kind, name and namespace only",
        );
        return None;
    }
    if !super::super::is_dns_subdomain(&r.name) {
        cx.err(
            &join(&p, "name"),
            format!("name {:?} is not a valid DNS-1123 subdomain", r.name),
        );
        return None;
    }
    match r.namespace.as_deref().filter(|ns| *ns != cx.doc.namespace) {
        None => Some(TlsSource::Credential(r.name.clone())),
        Some(ns) => {
            cross.push(CrossRef {
                path: p,
                from_kind: "Gateway".into(),
                to_kind: "Secret",
                to_namespace: ns.to_string(),
                to_name: r.name.clone(),
            });
            // Istio's form for a credential of another namespace.
            Some(TlsSource::Credential(format!("{ns}/{}", r.name)))
        }
    }
}
