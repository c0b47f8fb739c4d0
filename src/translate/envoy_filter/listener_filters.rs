//! LISTENER_FILTER patches (Istio's `patchListenerFilters`): the listener
//! filters of each matched listener, by the name in
//! `match.listener.listenerFilter`.

use envoy_types::pb::envoy::config::listener::v3::{
    listener_filter::ConfigType, Listener, ListenerFilter,
};
use prost::Name;

use super::listener::{listener_match, listener_matches};
use super::merge::merge_any;
use super::{Patcher, Step};
use crate::config::model::{ApplyTo, Operation, PatchContext, PatchValue};

/// Applies the LISTENER_FILTER patches of `context` to `l`, in order.
pub(super) fn patch(patcher: &mut Patcher<'_>, l: &mut Listener, context: PatchContext) {
    for step in (patcher.patches(ApplyTo::ListenerFilter, context)).collect::<Vec<_>>() {
        if !listener_matches(patcher, l, &step) {
            continue;
        }
        let named = listener_match(&step)
            .map(|m| m.listener_filter.as_str())
            .filter(|n| !n.is_empty());
        let value = match &step.patch.value {
            Some(PatchValue::ListenerFilter(v)) => Some(v),
            _ => None,
        };
        let applied = match (step.patch.operation, value) {
            (Operation::Remove, _) => {
                let before = l.listener_filters.len();
                l.listener_filters
                    .retain(|f| Some(f.name.as_str()) != named);
                l.listener_filters.len() != before
            }
            (Operation::Merge, Some(v)) => merge(patcher, &step, l, named, v),
            (op, Some(v)) => insert(&mut l.listener_filters, op, named, v),
            (_, None) => false,
        };
        if applied {
            patcher.record(&step, &Listener::type_url(), &l.name);
        }
    }
}

/// ADD appends; INSERT_FIRST prepends; INSERT_BEFORE/AFTER go next to the
/// named filter, first/last without a name; REPLACE swaps the named one.
/// False when nothing matched.
fn insert(
    filters: &mut Vec<ListenerFilter>,
    op: Operation,
    named: Option<&str>,
    v: &ListenerFilter,
) -> bool {
    let at = named.map(|n| filters.iter().position(|f| f.name == n));
    let index = match (op, at) {
        (Operation::Add, _) | (Operation::InsertAfter, None) => filters.len(),
        (Operation::InsertFirst, _) | (Operation::InsertBefore, None) => 0,
        (Operation::InsertBefore, Some(Some(i))) => i,
        (Operation::InsertAfter, Some(Some(i))) => i + 1,
        (Operation::Replace, Some(Some(i))) => {
            filters[i] = v.clone();
            return true;
        }
        _ => return false,
    };
    filters.insert(index, v.clone());
    true
}

/// Istio's `mergeListenerFilter`: the patch's `typed_config` merges into
/// each named filter's (same type only), and its name, if any, renames it.
fn merge(
    patcher: &mut Patcher<'_>,
    step: &Step<'_>,
    l: &mut Listener,
    named: Option<&str>,
    v: &ListenerFilter,
) -> bool {
    let mut applied = false;
    for f in l.listener_filters.iter_mut() {
        if Some(f.name.as_str()) != named {
            continue;
        }
        if let (Some(ConfigType::TypedConfig(d)), Some(ConfigType::TypedConfig(s))) =
            (&f.config_type, &v.config_type)
        {
            match merge_any(d, s) {
                Ok(any) => f.config_type = Some(ConfigType::TypedConfig(any)),
                Err(e) => {
                    patcher.error(step, &format!("listener {}", l.name), e);
                    continue;
                }
            }
        }
        if !v.name.is_empty() {
            f.name = v.name.clone();
        }
        applied = true;
    }
    applied
}
