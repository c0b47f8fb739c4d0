//! `EnvoyFilter` → [`EnvoyFilter`]: every field checked, each patch value
//! read as the Envoy proto its `applyTo` names (`value`), so a patch that
//! could never apply is an error at load, at its line.

mod matches;
mod value;

use super::{join, Cx};
use crate::config::model::{ApplyTo, ConfigPatch, EnvoyFilter, Operation, PatchContext};
use crate::config::raw::envoy_filter as raw;

/// Converts an `EnvoyFilter`; `None` when any field is wrong.
pub(crate) fn envoy_filter(cx: &mut Cx<'_>, ef: &raw::EnvoyFilter) -> Option<EnvoyFilter> {
    let before = cx.diags.len();
    let selector = ef.workload_selector.as_ref().map(|s| s.labels.clone());
    if let Some(labels) = &selector {
        cx.labels("spec.workloadSelector.labels", labels);
    }
    let target_gateways = target_refs(cx, ef);
    if selector.is_some() && !ef.target_refs.is_empty() {
        let msg = "give `workloadSelector` or `targetRefs`, not both";
        cx.err("spec.targetRefs", msg);
    }
    let patches: Vec<ConfigPatch> = (ef.config_patches.iter().enumerate())
        .filter_map(|(i, p)| patch(cx, &format!("spec.configPatches[{i}]"), p))
        .collect();
    if cx.diags.len() != before {
        return None;
    }
    Some(EnvoyFilter {
        origin: cx.doc.origin(),
        selector,
        target_gateways,
        priority: ef.priority,
        patches,
    })
}

/// `targetRefs`: Kubernetes Gateways only. Istio's other targets
/// (`Service`, `ServiceEntry`, `GatewayClass`) select waypoint proxies of
/// ambient mode, which Trellis does not have.
fn target_refs(cx: &mut Cx<'_>, ef: &raw::EnvoyFilter) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in ef.target_refs.iter().enumerate() {
        let path = format!("spec.targetRefs[{i}]");
        if t.group != "gateway.networking.k8s.io" || t.kind != "Gateway" {
            let msg = format!(
                "targetRefs {}/{} selects ambient waypoint proxies, which Trellis does not have: \
                 use kind Gateway (gateway.networking.k8s.io) or a workloadSelector",
                t.group, t.kind
            );
            cx.err(&join(&path, "kind"), msg);
            continue;
        }
        if t.namespace
            .as_ref()
            .is_some_and(|ns| *ns != cx.doc.namespace)
        {
            let msg = "a targetRef names a Gateway of the EnvoyFilter's own namespace";
            cx.err(&join(&path, "namespace"), msg);
            continue;
        }
        if !super::is_dns_subdomain(&t.name) {
            cx.err(
                &join(&path, "name"),
                format!("{:?} is not a Gateway name", t.name),
            );
            continue;
        }
        out.push(t.name.clone());
    }
    out
}

fn patch(cx: &mut Cx<'_>, path: &str, p: &raw::ConfigPatch) -> Option<ConfigPatch> {
    let apply_to = apply_to(cx, path, p.apply_to.as_deref())?;
    let (context, object) = matches::object_match(cx, path, apply_to, p.matches.as_ref())?;
    let Some(body) = &p.patch else {
        cx.err(path, "patch is required");
        return None;
    };
    let at = join(path, "patch");
    filter_class(cx, &at, body.filter_class.as_deref());
    let replace_lists = body.operation.as_deref() == Some("MERGE_AND_REPLACE_LIST");
    let operation = operation(cx, &at, apply_to, body.operation.as_deref())?;
    if let Err(msg) = names_a_listener_filter(apply_to, operation, &object) {
        cx.err(&join(path, "match"), msg);
        return None;
    }
    let value = match (&body.value, operation) {
        (_, Operation::Remove) => None,
        (None, _) => {
            cx.err(
                &at,
                "patch.value is required for every operation but REMOVE",
            );
            return None;
        }
        (Some(v), _) => Some(value::read(cx, &join(&at, "value"), apply_to, v)?),
    };
    Some(ConfigPatch {
        site: cx.doc.diagnostic(path, ""),
        apply_to,
        context,
        object,
        operation,
        value,
        replace_lists,
    })
}

fn apply_to(cx: &mut Cx<'_>, path: &str, written: Option<&str>) -> Option<ApplyTo> {
    let at = join(path, "applyTo");
    Some(match written {
        Some("LISTENER") => ApplyTo::Listener,
        Some("LISTENER_FILTER") => ApplyTo::ListenerFilter,
        Some("FILTER_CHAIN") => ApplyTo::FilterChain,
        Some("NETWORK_FILTER") => ApplyTo::NetworkFilter,
        Some("HTTP_FILTER") => ApplyTo::HttpFilter,
        Some("ROUTE_CONFIGURATION") => ApplyTo::RouteConfiguration,
        Some("VIRTUAL_HOST") => ApplyTo::VirtualHost,
        Some("HTTP_ROUTE") => ApplyTo::HttpRoute,
        Some("CLUSTER") => ApplyTo::Cluster,
        Some("EXTENSION_CONFIG") => {
            let msg = "applyTo EXTENSION_CONFIG patches ECDS resources, which Trellis does not \
                       serve: put the filter's config inline with an HTTP_FILTER patch";
            cx.err(&at, msg);
            return None;
        }
        Some("BOOTSTRAP") => {
            let msg = "applyTo BOOTSTRAP patches Envoy's bootstrap, which a sidecar reads from \
                       its file before it talks to Trellis and which xDS never changes: \
                       change the file `trellis bootstrap` writes instead";
            cx.err(&at, msg);
            return None;
        }
        None => {
            cx.err(path, "applyTo is required");
            return None;
        }
        Some(other) => {
            let msg = format!(
                "unknown applyTo {other:?}: use LISTENER, LISTENER_FILTER, FILTER_CHAIN, NETWORK_FILTER, \
                 HTTP_FILTER, ROUTE_CONFIGURATION, VIRTUAL_HOST, HTTP_ROUTE or CLUSTER"
            );
            cx.err(&at, msg);
            return None;
        }
    })
}

/// `patch.filterClass`: `UNSPECIFIED` (the default) is accepted; the
/// others are errors, since istiod accepts them but places nothing by them
/// (its EnvoyFilter code never reads the field), so a config relying on
/// them does not do in Istio what it says.
fn filter_class(cx: &mut Cx<'_>, path: &str, written: Option<&str>) {
    let at = join(path, "filterClass");
    match written {
        None | Some("UNSPECIFIED") => {}
        Some(class @ ("AUTHN" | "AUTHZ" | "STATS")) => {
            let msg = format!(
                "filterClass {class} is not applied by Istio either (istiod ignores it): \
                 place the filter with INSERT_BEFORE/INSERT_AFTER and a filter name \
                 (envoy.filters.http.jwt_authn, envoy.filters.http.rbac, envoy.filters.http.router)"
            );
            cx.err(&at, msg);
        }
        Some(other) => {
            let msg =
                format!("unknown filterClass {other:?}: use UNSPECIFIED, AUTHN, AUTHZ or STATS");
            cx.err(&at, msg);
        }
    }
}

/// The operation; like Istio, `INSERT_*` on objects without an order
/// that Istio defines for them becomes `ADD`.
fn operation(
    cx: &mut Cx<'_>,
    path: &str,
    apply_to: ApplyTo,
    written: Option<&str>,
) -> Option<Operation> {
    let at = join(path, "operation");
    let Some(written) = written else {
        cx.err(path, "patch.operation is required");
        return None;
    };
    let Some(op) = parse_operation(written) else {
        let msg = format!(
            "unknown operation {written:?}: use MERGE, MERGE_AND_REPLACE_LIST, ADD, REMOVE, \
             INSERT_BEFORE, INSERT_AFTER, INSERT_FIRST or REPLACE"
        );
        cx.err(&at, msg);
        return None;
    };
    let ordered = matches!(
        apply_to,
        ApplyTo::HttpFilter | ApplyTo::NetworkFilter | ApplyTo::HttpRoute | ApplyTo::ListenerFilter
    );
    let inserts = matches!(
        op,
        Operation::InsertBefore | Operation::InsertAfter | Operation::InsertFirst
    );
    if inserts && !ordered {
        return Some(Operation::Add);
    }
    if let Err(msg) = allowed(apply_to, op) {
        cx.err(&at, msg);
        return None;
    }
    Some(op)
}

fn parse_operation(written: &str) -> Option<Operation> {
    Some(match written {
        "MERGE" | "MERGE_AND_REPLACE_LIST" => Operation::Merge,
        "ADD" => Operation::Add,
        "REMOVE" => Operation::Remove,
        "INSERT_BEFORE" => Operation::InsertBefore,
        "INSERT_AFTER" => Operation::InsertAfter,
        "INSERT_FIRST" => Operation::InsertFirst,
        "REPLACE" => Operation::Replace,
        _ => return None,
    })
}

/// Operations Istio applies to nothing for `apply_to` (it skips them
/// silently; here they are errors).
fn allowed(apply_to: ApplyTo, op: Operation) -> Result<(), &'static str> {
    let replaces = matches!(
        apply_to,
        ApplyTo::HttpFilter
            | ApplyTo::NetworkFilter
            | ApplyTo::VirtualHost
            | ApplyTo::ListenerFilter
    );
    if op == Operation::Replace && !replaces {
        return Err(
            "REPLACE applies to HTTP_FILTER, NETWORK_FILTER, LISTENER_FILTER and VIRTUAL_HOST only",
        );
    }
    if apply_to == ApplyTo::RouteConfiguration && op != Operation::Merge {
        return Err(
            "a route configuration can only be merged into (Istio applies no other \
                    operation to it): patch its virtual hosts instead",
        );
    }
    Ok(())
}

/// LISTENER_FILTER's MERGE, REPLACE and REMOVE act on the listener filter
/// the match names; Istio skips them without one, silently.
fn names_a_listener_filter(
    apply_to: ApplyTo,
    op: Operation,
    object: &crate::config::model::ObjectMatch,
) -> Result<(), &'static str> {
    use crate::config::model::ObjectMatch;
    let named = matches!(object, ObjectMatch::Listener(l) if !l.listener_filter.is_empty());
    let needs = matches!(
        op,
        Operation::Merge | Operation::Replace | Operation::Remove
    );
    if apply_to == ApplyTo::ListenerFilter && needs && !named {
        return Err("LISTENER_FILTER with MERGE, REPLACE or REMOVE needs \
                    match.listener.listenerFilter (the filter to change)");
    }
    Ok(())
}

/// `ANY`, the default, or one context.
pub(super) fn context(cx: &mut Cx<'_>, path: &str, written: Option<&str>) -> Option<PatchContext> {
    Some(match written {
        None | Some("ANY") => PatchContext::Any,
        Some("SIDECAR_INBOUND") => PatchContext::SidecarInbound,
        Some("SIDECAR_OUTBOUND") => PatchContext::SidecarOutbound,
        Some("GATEWAY") => PatchContext::Gateway,
        Some("WAYPOINT") => {
            let msg =
                "context WAYPOINT is for ambient waypoint proxies, which Trellis does not have";
            cx.err(path, msg);
            return None;
        }
        Some(other) => {
            let msg = format!(
                "unknown context {other:?}: use ANY, SIDECAR_INBOUND, SIDECAR_OUTBOUND or GATEWAY"
            );
            cx.err(path, msg);
            return None;
        }
    })
}
