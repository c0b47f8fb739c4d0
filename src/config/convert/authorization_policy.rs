//! `AuthorizationPolicy` conversion with Istio's validation rules
//! (`pkg/config/validation`: `ValidateAuthorizationPolicy`). Every field
//! Trellis does not support is an error naming it, never ignored.

mod values;

use yaml_serde::Value;

use super::{join, Cx};
use crate::config::model::{
    AuthorizationPolicy, AuthzAction, AuthzOperation, AuthzRule, AuthzSource,
};
use crate::config::raw::authorization_policy as raw;
use values::{Check, ValueKind};

/// The annotation that makes a policy dry-run (Istio's `istio.io/dry-run`).
pub(crate) const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// The value of the dry-run annotation in a resource, if present.
pub(crate) fn dry_run_annotation(resource: &Value) -> Option<&Value> {
    resource
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(DRY_RUN_ANNOTATION))
}

/// Converts one policy; `None` when it has errors (all recorded).
pub(crate) fn authorization_policy(
    cx: &mut Cx<'_>,
    spec: &raw::AuthorizationPolicy,
    dry_run: Option<&Value>,
) -> Option<AuthorizationPolicy> {
    let before = cx.diags.len();
    cx.unsupported("spec", "targetRef", &spec.target_ref);
    cx.unsupported("spec", "targetRefs", &spec.target_refs);
    let action = action(cx, spec);
    let selector = spec.selector.as_ref().map(|s| {
        cx.labels("spec.selector.matchLabels", &s.match_labels);
        s.match_labels.clone()
    });
    let written = spec.rules.as_deref().unwrap_or_default();
    if action == Some(AuthzAction::Deny) && written.is_empty() {
        let msg = "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request";
        cx.err("spec.rules", msg);
    }
    let rules: Vec<AuthzRule> = (written.iter().enumerate())
        .map(|(i, r)| rule(cx, &format!("spec.rules[{i}]"), r))
        .collect();
    let dry_run = dry_run_flag(cx, dry_run);
    (cx.diags.len() == before).then(|| AuthorizationPolicy {
        selector,
        action: action.unwrap_or(AuthzAction::Allow),
        rules,
        dry_run,
        origin: cx.doc.origin(),
    })
}

fn action(cx: &mut Cx<'_>, spec: &raw::AuthorizationPolicy) -> Option<AuthzAction> {
    let action = match spec.action.as_deref() {
        None | Some("ALLOW") => Some(AuthzAction::Allow),
        Some("DENY") => Some(AuthzAction::Deny),
        Some("AUDIT") => Some(AuthzAction::Audit),
        Some("CUSTOM") => {
            let msg = "action CUSTOM (external authorization) is not supported yet: use ALLOW, DENY or AUDIT";
            cx.err("spec.action", msg);
            None
        }
        Some(other) => {
            let msg = format!("unknown action {other:?}: use ALLOW, DENY or AUDIT");
            cx.err("spec.action", msg);
            None
        }
    };
    if spec.provider.is_some() && spec.action.as_deref() != Some("CUSTOM") {
        cx.err(
            "spec.provider",
            "`provider` is only for action CUSTOM, which is not supported yet",
        );
    }
    action
}

fn dry_run_flag(cx: &mut Cx<'_>, value: Option<&Value>) -> bool {
    let path = format!("metadata.annotations.{DRY_RUN_ANNOTATION}");
    match value.map(|v| v.as_str()) {
        None => false,
        Some(Some("true" | "True" | "TRUE" | "t" | "T" | "1")) => true,
        Some(Some("false" | "False" | "FALSE" | "f" | "F" | "0")) => false,
        Some(_) => {
            let msg =
                format!("annotation {DRY_RUN_ANNOTATION} must be the string \"true\" or \"false\"");
            cx.err(&path, msg);
            false
        }
    }
}

fn rule(cx: &mut Cx<'_>, path: &str, r: &raw::Rule) -> AuthzRule {
    let from = list(cx, path, "from", r.from.as_deref(), |cx, p, f| {
        match &f.source {
            Some(s) => Some(source(cx, &join(p, "source"), s)),
            None => {
                cx.err(p, "`from.source` must be set");
                None
            }
        }
    });
    let to = list(cx, path, "to", r.to.as_deref(), |cx, p, t| {
        match &t.operation {
            Some(o) => Some(operation(cx, &join(p, "operation"), o)),
            None => {
                cx.err(p, "`to.operation` must be set");
                None
            }
        }
    });
    let when = list(cx, path, "when", r.when.as_deref(), values::condition);
    AuthzRule { from, to, when }
}

/// `field` of a rule: absent is fine, `[]` is an error (Istio's rule).
fn list<T, U>(
    cx: &mut Cx<'_>,
    path: &str,
    field: &str,
    items: Option<&[T]>,
    mut each: impl FnMut(&mut Cx<'_>, &str, &T) -> Option<U>,
) -> Vec<U> {
    let p = join(path, field);
    match items {
        None => Vec::new(),
        Some([]) => {
            cx.err(
                &p,
                format!("`{field}` must not be empty (leave it out instead)"),
            );
            Vec::new()
        }
        Some(items) => (items.iter().enumerate())
            .filter_map(|(i, item)| each(cx, &format!("{p}[{i}]"), item))
            .collect(),
    }
}

fn source(cx: &mut Cx<'_>, p: &str, s: &raw::Source) -> AuthzSource {
    let mut c = Check { cx, path: p };
    let out = AuthzSource {
        principals: c.pair(
            "principals",
            &s.principals,
            &s.not_principals,
            ValueKind::Principal,
        ),
        request_principals: c.pair(
            "requestPrincipals",
            &s.request_principals,
            &s.not_request_principals,
            ValueKind::Wildcard,
        ),
        namespaces: c.pair(
            "namespaces",
            &s.namespaces,
            &s.not_namespaces,
            ValueKind::Namespace,
        ),
        service_accounts: c.pair(
            "serviceAccounts",
            &s.service_accounts,
            &s.not_service_accounts,
            ValueKind::ServiceAccount,
        ),
        trust_domains: c.pair(
            "trustDomains",
            &s.trust_domains,
            &s.not_trust_domains,
            ValueKind::TrustDomain,
        ),
        ip_blocks: c.cidrs("ipBlocks", &s.ip_blocks, &s.not_ip_blocks),
        remote_ip_blocks: c.cidrs(
            "remoteIpBlocks",
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
        ),
    };
    let identity = !out.principals.is_empty() || !out.namespaces.is_empty();
    if identity && !out.service_accounts.is_empty() {
        cx.err(
            p,
            "cannot set serviceAccounts with namespaces or principals",
        );
    }
    let empty = [
        &s.principals,
        &s.not_principals,
        &s.namespaces,
        &s.not_namespaces,
    ]
    .iter()
    .chain(&[
        &s.service_accounts,
        &s.not_service_accounts,
        &s.trust_domains,
    ])
    .chain(&[&s.not_trust_domains, &s.ip_blocks, &s.not_ip_blocks])
    .chain(&[&s.remote_ip_blocks, &s.not_remote_ip_blocks])
    .chain(&[&s.request_principals, &s.not_request_principals])
    .all(|v| v.is_empty());
    if empty {
        cx.err(p, "`from.source` must not be empty");
    }
    out
}

fn operation(cx: &mut Cx<'_>, p: &str, o: &raw::Operation) -> AuthzOperation {
    let mut c = Check { cx, path: p };
    let out = AuthzOperation {
        hosts: c.pair("hosts", &o.hosts, &o.not_hosts, ValueKind::Wildcard),
        ports: c.ports("ports", &o.ports, &o.not_ports),
        methods: c.pair("methods", &o.methods, &o.not_methods, ValueKind::Wildcard),
        paths: c.pair("paths", &o.paths, &o.not_paths, ValueKind::Path),
    };
    let empty = [&o.hosts, &o.not_hosts, &o.ports, &o.not_ports, &o.methods]
        .iter()
        .chain(&[&o.not_methods, &o.paths, &o.not_paths])
        .all(|v| v.is_empty());
    if empty {
        cx.err(p, "`to.operation` must not be empty");
    }
    out
}

#[cfg(test)]
mod tests;
