//! NETWORK_FILTER and HTTP_FILTER patches, filter chain MERGE, and the
//! route patches of an HTTP connection manager's inline routes.

use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, http_filter, HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::listener::{chain_match, chain_matches, listener_matches};
use super::merge::{merge_any, merge_lists};
use super::{Patcher, Step};
use crate::config::model::{ApplyTo, Operation, PatchContext, PatchValue};

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// Istio's filter-chain MERGE: a patch's transport socket of the chain's
/// socket's name merges into that socket's config (and nothing else
/// merges); otherwise a proto merge of the whole chain.
pub(super) fn merge_chain(
    fc: &mut FilterChain,
    patch: &FilterChain,
    replace_lists: bool,
) -> Result<(), String> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let same_socket = match (&mut fc.transport_socket, &patch.transport_socket) {
        (Some(dst), Some(src)) if dst.name == src.name => Some((dst, src)),
        _ => None,
    };
    let Some((dst, src)) = same_socket else {
        return merge_lists(fc, patch, replace_lists);
    };
    if let (Some(ConfigType::TypedConfig(d)), Some(ConfigType::TypedConfig(s))) =
        (&dst.config_type, &src.config_type)
    {
        dst.config_type = Some(ConfigType::TypedConfig(merge_any(d, s)?));
    }
    Ok(())
}

/// A list operation of Istio's (`ADD`, `INSERT_*`, `REPLACE`, `REMOVE`) on
/// `items`; `matcher` is `None` when the patch names no element. True
/// when it changed the list.
pub(super) fn list_op<T: Clone>(
    items: &mut Vec<T>,
    op: Operation,
    value: Option<&T>,
    matcher: Option<&dyn Fn(&T) -> bool>,
) -> bool {
    let found = matcher.and_then(|m| items.iter().position(m));
    match (op, value, matcher) {
        (Operation::Add, Some(v), _) | (Operation::InsertAfter, Some(v), None) => {
            items.push(v.clone())
        }
        (Operation::InsertFirst | Operation::InsertBefore, Some(v), None) => {
            items.insert(0, v.clone());
        }
        (Operation::InsertFirst, Some(v), Some(_)) => items.insert(0, v.clone()),
        (Operation::InsertBefore, Some(v), Some(_)) => match found {
            Some(i) => items.insert(i, v.clone()),
            None => return false,
        },
        (Operation::InsertAfter, Some(v), Some(_)) => match found {
            Some(i) => items.insert(i + 1, v.clone()),
            None => return false,
        },
        (Operation::Replace, Some(v), Some(_)) => match found {
            Some(i) => items[i] = v.clone(),
            None => return false,
        },
        (Operation::Remove, _, Some(m)) => {
            let before = items.len();
            items.retain(|x| !m(x));
            return items.len() != before;
        }
        _ => return false,
    }
    true
}

/// NETWORK_FILTER list patches on one chain, then each filter's MERGE
/// and, in an HTTP connection manager, its HTTP filters and inline routes.
pub(super) fn patch_network_filters(
    patcher: &mut Patcher<'_>,
    l: &Listener,
    fc: &mut FilterChain,
    context: PatchContext,
) {
    let steps = steps_here(patcher, ApplyTo::NetworkFilter, context, l, fc);
    let http = steps_here(patcher, ApplyTo::HttpFilter, context, l, fc);
    for step in &steps {
        let value = match &step.patch.value {
            Some(PatchValue::NetworkFilter(f)) => Some(f),
            _ => None,
        };
        let name = filter_name(step);
        let by_name = name.map(|n| move |f: &Filter| f.name == n);
        let matcher = by_name.as_ref().map(|m| m as &dyn Fn(&Filter) -> bool);
        if step.patch.operation != Operation::Merge
            && list_op(&mut fc.filters, step.patch.operation, value, matcher)
        {
            patcher.record(step, &Listener::type_url(), &l.name);
        }
    }
    for f in &mut fc.filters {
        for step in &steps {
            let named = filter_name(step);
            if step.patch.operation == Operation::Merge && named.is_none_or(|n| n == f.name) {
                merge_filter(patcher, l, f, step);
            }
        }
        if f.name == HCM {
            let http: Vec<_> = (http.iter())
                .filter(|s| filter_name(s).is_none_or(|n| n == f.name))
                .copied()
                .collect();
            patch_hcm(patcher, l, f, &http, context);
        }
    }
}

/// The patches of `apply_to` that match listener `l` and chain `fc`.
fn steps_here<'a>(
    patcher: &Patcher<'a>,
    apply_to: ApplyTo,
    context: PatchContext,
    l: &Listener,
    fc: &FilterChain,
) -> Vec<Step<'a>> {
    (patcher.patches(apply_to, context))
        .filter(|s| listener_matches(patcher, l, s) && chain_matches(fc, s))
        .collect()
}

/// `match.listener.filterChain.filter.name`.
fn filter_name<'a>(step: &Step<'a>) -> Option<&'a str> {
    chain_match(step).and_then(|m| m.filter.as_deref())
}

/// NETWORK_FILTER MERGE: the patch's name, if any, and its typed config
/// merged into the filter's (Istio's `MergeAnyWithAny`).
fn merge_filter(patcher: &mut Patcher<'_>, l: &Listener, f: &mut Filter, step: &Step<'_>) {
    let Some(PatchValue::NetworkFilter(v)) = &step.patch.value else {
        return;
    };
    let (Some(filter::ConfigType::TypedConfig(dst)), src) = (&f.config_type, &v.config_type) else {
        return;
    };
    let merged = match src {
        Some(filter::ConfigType::TypedConfig(src)) => match merge_any(dst, src) {
            Ok(m) => m,
            Err(e) => return patcher.error(step, &format!("filter {} of {}", f.name, l.name), e),
        },
        _ => dst.clone(),
    };
    if !v.name.is_empty() {
        f.name = v.name.clone();
    }
    f.config_type = Some(filter::ConfigType::TypedConfig(merged));
    patcher.record(step, &Listener::type_url(), &l.name);
}

/// HTTP_FILTER patches on one HTTP connection manager, and route patches
/// on its inline route configuration.
fn patch_hcm(
    patcher: &mut Patcher<'_>,
    l: &Listener,
    f: &mut Filter,
    steps: &[Step<'_>],
    context: PatchContext,
) {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return;
    };
    let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
        return;
    };
    let before = hcm.clone();
    patch_http_filters(patcher, l, &mut hcm.http_filters, steps);
    if let Some(RouteSpecifier::RouteConfig(rc)) = &mut hcm.route_specifier {
        let mut configs = vec![std::mem::take(rc)];
        super::route::patch_in_context(
            patcher,
            &mut configs,
            context,
            &Listener::type_url(),
            &l.name,
        );
        *rc = configs.pop().unwrap_or_default();
    }
    if hcm != before {
        f.config_type = Some(filter::ConfigType::TypedConfig(Any {
            type_url: HttpConnectionManager::type_url(),
            value: hcm.encode_to_vec(),
        }));
    }
}

fn patch_http_filters(
    patcher: &mut Patcher<'_>,
    l: &Listener,
    filters: &mut Vec<HttpFilter>,
    steps: &[Step<'_>],
) {
    let sub = |s: &Step<'_>| chain_match(s).and_then(|m| m.sub_filter.clone());
    for step in steps
        .iter()
        .filter(|s| s.patch.operation != Operation::Merge)
    {
        let value = match &step.patch.value {
            Some(PatchValue::HttpFilter(f)) => Some(f),
            _ => None,
        };
        let by_name = sub(step).map(|n| move |f: &HttpFilter| f.name == n);
        let matcher = by_name.as_ref().map(|m| m as &dyn Fn(&HttpFilter) -> bool);
        if list_op(filters, step.patch.operation, value, matcher) {
            patcher.record(step, &Listener::type_url(), &l.name);
        }
    }
    for hf in filters.iter_mut() {
        for step in steps
            .iter()
            .filter(|s| s.patch.operation == Operation::Merge)
        {
            if sub(step).is_none_or(|n| n == hf.name) {
                merge_http_filter(patcher, l, hf, step);
            }
        }
    }
}

/// HTTP_FILTER MERGE, as NETWORK_FILTER MERGE.
fn merge_http_filter(
    patcher: &mut Patcher<'_>,
    l: &Listener,
    hf: &mut HttpFilter,
    step: &Step<'_>,
) {
    let Some(PatchValue::HttpFilter(v)) = &step.patch.value else {
        return;
    };
    let Some(http_filter::ConfigType::TypedConfig(dst)) = &hf.config_type else {
        return;
    };
    let merged = match &v.config_type {
        Some(http_filter::ConfigType::TypedConfig(src)) => match merge_any(dst, src) {
            Ok(m) => m,
            Err(e) => {
                return patcher.error(step, &format!("HTTP filter {} of {}", hf.name, l.name), e)
            }
        },
        _ => dst.clone(),
    };
    if !v.name.is_empty() {
        hf.name = v.name.clone();
    }
    hf.config_type = Some(http_filter::ConfigType::TypedConfig(merged));
    patcher.record(step, &Listener::type_url(), &l.name);
}
