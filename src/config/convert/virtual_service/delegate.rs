//! `delegate`: a root VirtualService's rule that hands its requests to the
//! rules of another VirtualService, which has no `hosts` (Istio supports
//! one level of delegation).

use super::super::{is_dns_label, is_dns_subdomain, join, Cx};
use crate::config::model::{HttpRoute, RouteAction};
use crate::config::raw::virtual_service as raw;

/// A root's rule that delegates, resolved once every VirtualService is
/// read (`check::delegate`).
#[derive(Debug, Clone)]
pub(crate) struct Delegation {
    /// Index of the rule in the root's converted `http`.
    pub index: usize,
    /// Path of the rule (`spec.http[N]`).
    pub path: String,
    /// `NAMESPACE/NAME` of the delegate.
    pub target: String,
    /// The root's rule: its matches and the policies delegate rules
    /// inherit when they do not set their own.
    pub root: HttpRoute,
}

/// A delegate (a VirtualService without `hosts`): only `http` rules, no
/// `gateways` (the root's decide), and no further delegation.
pub(super) fn check_delegate(cx: &mut Cx<'_>, vs: &raw::VirtualService) {
    if vs.gateways.as_ref().is_some_and(|g| !g.is_empty()) {
        let msg = "a delegate VirtualService (no hosts) must have no gateways: the root's apply";
        cx.err("spec.gateways", msg);
    }
    if !vs.tcp.is_empty() || !vs.tls.is_empty() {
        let field = if vs.tcp.is_empty() {
            "spec.tls"
        } else {
            "spec.tcp"
        };
        let msg = "a delegate VirtualService (no hosts) has only http rules";
        cx.err(field, msg);
    }
    for (i, r) in vs.http.iter().enumerate() {
        if r.delegate.is_some() {
            let msg = "a delegate VirtualService cannot delegate again: Istio supports one level";
            cx.err(&format!("spec.http[{i}].delegate"), msg);
        }
    }
}

/// `delegate.name` and `namespace` (default: the root's) as
/// `NAMESPACE/NAME`.
pub(super) fn target(cx: &mut Cx<'_>, path: &str, d: &raw::Delegate) -> Option<String> {
    let p = join(path, "delegate");
    if d.name.is_empty() {
        cx.err(&join(&p, "name"), "name is required");
        return None;
    }
    let ns = d
        .namespace
        .as_deref()
        .unwrap_or(&cx.doc.namespace)
        .to_string();
    if !is_dns_label(&ns) {
        let msg = format!("namespace {ns:?} is not a valid DNS-1123 label");
        cx.err(&join(&p, "namespace"), msg);
        return None;
    }
    if !is_dns_subdomain(&d.name) {
        let msg = format!("name {:?} is not a valid DNS-1123 subdomain", d.name);
        cx.err(&join(&p, "name"), msg);
        return None;
    }
    Some(format!("{ns}/{}", d.name))
}

/// The action of a rule that delegates: the delegate's rules bring their
/// own, so the rule may not have one (Istio's validation).
pub(super) fn placeholder(cx: &mut Cx<'_>, path: &str, r: &raw::HttpRoute) -> Option<RouteAction> {
    let given = [
        ("route", !r.route.is_empty()),
        ("redirect", r.redirect.is_some()),
        ("directResponse", r.direct_response.is_some()),
    ];
    if let Some((field, _)) = given.iter().find(|(_, g)| *g) {
        let msg = format!("a rule with delegate cannot have {field}: the delegate's rules route");
        cx.err(&join(path, field), msg);
        return None;
    }
    // Replaced by the delegate's rules before anything reads it.
    Some(RouteAction::Route(Vec::new()))
}
