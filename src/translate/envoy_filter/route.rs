//! ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE patches (Istio's
//! `rc_patch.go`).

use envoy_types::pb::envoy::config::route::v3::{route, Route, RouteConfiguration, VirtualHost};
use prost::Name;

use super::filters::list_op;
use super::merge::merge_lists;
use super::names::vhost_port;
use super::{Patcher, Step};
use crate::config::model::{
    ApplyTo, ObjectMatch, Operation, PatchContext, PatchValue, RouteActionMatch,
    RouteConfigurationMatch,
};

/// Applies route patches to route configurations served over RDS: a
/// sidecar's `outbound` (SIDECAR_OUTBOUND) or a gateway's `http.PORT`
/// (GATEWAY).
pub fn patch_route_configurations(patcher: &mut Patcher<'_>, configs: &mut [RouteConfiguration]) {
    if patcher.is_empty() {
        return;
    }
    let context = patcher.add_context();
    for rc in configs.iter_mut() {
        let name = rc.name.clone();
        patch_in_context(
            patcher,
            std::slice::from_mut(rc),
            context,
            &RouteConfiguration::type_url(),
            &name,
        );
    }
}

/// Applies route patches of `context` to `configs`, recording the
/// changes against the resource that holds them (`type_url`, `resource`:
/// the configuration itself, or the listener of an inline one).
pub(super) fn patch_in_context(
    patcher: &mut Patcher<'_>,
    configs: &mut [RouteConfiguration],
    context: PatchContext,
    type_url: &str,
    resource: &str,
) {
    let at = Target {
        context,
        type_url,
        resource,
    };
    for rc in configs.iter_mut() {
        let steps = (patcher.patches(ApplyTo::RouteConfiguration, context)).collect::<Vec<_>>();
        for step in steps {
            let Some(ports) = rc_matches(patcher, rc, &step) else {
                continue;
            };
            if let (None, Some(PatchValue::RouteConfiguration(v))) = (ports, &step.patch.value) {
                match merge_lists(rc, v, step.patch.replace_lists) {
                    Ok(()) => patcher.record(&step, type_url, resource),
                    Err(e) => patcher.error(&step, &format!("route configuration {}", rc.name), e),
                }
            }
        }
        patch_virtual_hosts(patcher, rc, &at);
    }
}

/// Where route patches apply and what they are recorded against.
struct Target<'a> {
    context: PatchContext,
    type_url: &'a str,
    resource: &'a str,
}

fn rc_match<'a>(step: &Step<'a>) -> Option<&'a RouteConfigurationMatch> {
    match &step.patch.object {
        ObjectMatch::RouteConfiguration(m) => Some(m),
        _ => None,
    }
}

/// `Some(port)` when `rc` matches; the port, when given, restricts the
/// patch to the virtual hosts of that port (`outbound` holds every port's).
fn rc_matches(
    patcher: &Patcher<'_>,
    rc: &RouteConfiguration,
    step: &Step<'_>,
) -> Option<Option<u32>> {
    let Some(m) = rc_match(step) else {
        return Some(None);
    };
    let mut port = None;
    if !m.name.is_empty() {
        port = patcher.names.route_configuration(&m.name, &rc.name)?;
    }
    if m.port_number != 0 {
        let gateway_port = rc.name.strip_prefix("http.").and_then(|p| p.parse().ok());
        match rc.name.as_str() {
            crate::translate::INBOUND_LISTENER if patcher.names.inbound_port(m.port_number) => {}
            crate::translate::OUTBOUND_ROUTE => port = Some(m.port_number),
            _ if gateway_port == Some(m.port_number) => {}
            _ => return None,
        }
    }
    Some(port)
}

fn vhost_matches(
    patcher: &Patcher<'_>,
    vh: &VirtualHost,
    step: &Step<'_>,
    port: Option<u32>,
) -> bool {
    if port.is_some_and(|p| vhost_port(&vh.name) != Some(p)) {
        return false;
    }
    let Some(m) = rc_match(step).and_then(|m| m.vhost.as_ref()) else {
        return true;
    };
    (m.name.is_empty() || patcher.names.virtual_host(&m.name, &vh.name))
        && (m.domain_name.is_empty() || vh.domains.contains(&m.domain_name))
}

fn patch_virtual_hosts(patcher: &mut Patcher<'_>, rc: &mut RouteConfiguration, at: &Target<'_>) {
    let steps = (patcher.patches(ApplyTo::VirtualHost, at.context)).collect::<Vec<_>>();
    let mut keep = Vec::with_capacity(rc.virtual_hosts.len());
    for mut vh in std::mem::take(&mut rc.virtual_hosts) {
        let mut removed = false;
        for step in &steps {
            let Some(port) = rc_matches(patcher, rc, step) else {
                continue;
            };
            if removed || !vhost_matches(patcher, &vh, step, port) {
                continue;
            }
            match (step.patch.operation, &step.patch.value) {
                (Operation::Remove, _) => removed = true,
                (Operation::Merge, Some(PatchValue::VirtualHost(v))) => {
                    if let Err(e) = merge_lists(&mut vh, v, step.patch.replace_lists) {
                        patcher.error(step, &format!("virtual host {}", vh.name), e);
                        continue;
                    }
                }
                (Operation::Replace, Some(PatchValue::VirtualHost(v))) => vh = (**v).clone(),
                _ => continue,
            }
            patcher.record(step, at.type_url, at.resource);
        }
        if !removed {
            patch_routes(patcher, rc, &mut vh, at);
            keep.push(vh);
        }
    }
    for step in &steps {
        let added = match (step.patch.operation, &step.patch.value) {
            (Operation::Add, Some(PatchValue::VirtualHost(v))) => v,
            _ => continue,
        };
        if rc_matches(patcher, rc, step).is_some() {
            keep.push((**added).clone());
            patcher.record(step, at.type_url, at.resource);
        }
    }
    rc.virtual_hosts = keep;
}

fn route_matches(r: &Route, step: &Step<'_>) -> bool {
    let Some(m) = rc_match(step)
        .and_then(|m| m.vhost.as_ref())
        .and_then(|v| v.route.as_ref())
    else {
        return true;
    };
    let action = match &r.action {
        Some(route::Action::Route(_)) => RouteActionMatch::Route,
        Some(route::Action::Redirect(_)) => RouteActionMatch::Redirect,
        Some(route::Action::DirectResponse(_)) => RouteActionMatch::DirectResponse,
        _ => RouteActionMatch::Any,
    };
    (m.name.is_empty() || m.name == r.name)
        && (m.action == RouteActionMatch::Any || m.action == action)
}

fn has_route_match(step: &Step<'_>) -> bool {
    (rc_match(step).and_then(|m| m.vhost.as_ref())).is_some_and(|v| v.route.is_some())
}

fn patch_routes(
    patcher: &mut Patcher<'_>,
    rc: &RouteConfiguration,
    vh: &mut VirtualHost,
    at: &Target<'_>,
) {
    let steps: Vec<_> = (patcher.patches(ApplyTo::HttpRoute, at.context))
        .filter(|s| {
            rc_matches(patcher, rc, s).is_some_and(|port| vhost_matches(patcher, vh, s, port))
        })
        .collect();
    let mut kept = Vec::with_capacity(vh.routes.len());
    for mut r in std::mem::take(&mut vh.routes) {
        if patch_route(patcher, &mut r, &steps, at) {
            kept.push(r);
        }
    }
    vh.routes = kept;
    for step in steps
        .iter()
        .filter(|s| !matches!(s.patch.operation, Operation::Merge | Operation::Remove))
    {
        let Some(PatchValue::Route(v)) = &step.patch.value else {
            continue;
        };
        let m = |r: &Route| route_matches(r, step);
        let matcher = has_route_match(step).then_some(&m as &dyn Fn(&Route) -> bool);
        // Istio inserts first only when some route matches the match given.
        let first_without = step.patch.operation == Operation::InsertFirst
            && matcher.is_some()
            && !vh.routes.iter().any(m);
        if !first_without && list_op(&mut vh.routes, step.patch.operation, Some(v), matcher) {
            patcher.record(step, at.type_url, at.resource);
        }
    }
}

/// MERGE and REMOVE of one route; false when removed.
fn patch_route(
    patcher: &mut Patcher<'_>,
    r: &mut Route,
    steps: &[Step<'_>],
    at: &Target<'_>,
) -> bool {
    for step in steps {
        if !route_matches(r, step) {
            continue;
        }
        match (step.patch.operation, &step.patch.value) {
            (Operation::Remove, _) => {
                patcher.record(step, at.type_url, at.resource);
                return false;
            }
            (Operation::Merge, Some(PatchValue::Route(v))) => {
                match merge_lists(r, v, step.patch.replace_lists) {
                    Ok(()) => patcher.record(step, at.type_url, at.resource),
                    Err(e) => patcher.error(step, &format!("route {}", r.name), e),
                }
            }
            _ => {}
        }
    }
    true
}
