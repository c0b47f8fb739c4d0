//! LISTENER, LISTENER_FILTER (`listener_filters`) and FILTER_CHAIN patches
//! (Istio's `listener_patch.go`), then each chain's network and HTTP
//! filters (`filters`).

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use prost::Name;

use super::{merge::merge_lists, Patcher, Step};
use crate::config::model::{
    ApplyTo, FilterChainMatch, ListenerMatch, ObjectMatch, Operation, PatchContext, PatchValue,
};

/// Applies every listener-class patch (LISTENER, FILTER_CHAIN,
/// NETWORK_FILTER, HTTP_FILTER, and route patches on the inbound
/// listener's inline routes) to `listeners`, as Istio orders them.
pub fn patch_listeners(patcher: &mut Patcher<'_>, listeners: &mut Vec<Listener>) {
    if patcher.is_empty() {
        return;
    }
    let mut removed = Vec::new();
    for (i, l) in listeners.iter_mut().enumerate() {
        if !patch_listener(patcher, l) {
            removed.push(i);
        }
    }
    for i in removed.into_iter().rev() {
        listeners.remove(i);
    }
    let context = patcher.add_context();
    for step in patcher
        .patches(ApplyTo::Listener, context)
        .collect::<Vec<_>>()
    {
        if step.patch.operation != Operation::Add {
            continue;
        }
        if let Some(PatchValue::Listener(l)) = &step.patch.value {
            patcher.record(&step, &Listener::type_url(), &l.name);
            listeners.push((**l).clone());
        }
    }
}

/// The context a listener is patched in.
pub(super) fn context_of(patcher: &Patcher<'_>, l: &Listener) -> PatchContext {
    if patcher.gateway {
        PatchContext::Gateway
    } else if l.name == crate::translate::INBOUND_LISTENER
        || crate::translate::ingress::is_ingress_listener(&l.name)
    {
        PatchContext::SidecarInbound
    } else {
        PatchContext::SidecarOutbound
    }
}

/// Patches one listener; false when a patch removed it.
fn patch_listener(patcher: &mut Patcher<'_>, l: &mut Listener) -> bool {
    let context = context_of(patcher, l);
    for step in patcher
        .patches(ApplyTo::Listener, context)
        .collect::<Vec<_>>()
    {
        if !listener_matches(patcher, l, &step) {
            continue;
        }
        match (step.patch.operation, &step.patch.value) {
            (Operation::Remove, _) => {
                patcher.record(&step, &Listener::type_url(), &l.name);
                return false;
            }
            (Operation::Merge, Some(PatchValue::Listener(v))) => {
                let name = l.name.clone();
                match merge_lists(l, v, step.patch.replace_lists) {
                    Ok(()) => patcher.record(&step, &Listener::type_url(), &name),
                    Err(e) => patcher.error(&step, &format!("listener {name}"), e),
                }
            }
            _ => {}
        }
    }
    super::listener_filters::patch(patcher, l, context);
    patch_filter_chains(patcher, l, context);
    true
}

fn patch_filter_chains(patcher: &mut Patcher<'_>, l: &mut Listener, context: PatchContext) {
    let mut chains = std::mem::take(&mut l.filter_chains);
    chains.retain_mut(|fc| patch_filter_chain(patcher, l, fc, context));
    if let Some(mut fc) = l.default_filter_chain.take() {
        if patch_filter_chain(patcher, l, &mut fc, context) {
            l.default_filter_chain = Some(fc);
        }
    }
    for step in (patcher.patches(ApplyTo::FilterChain, context)).collect::<Vec<_>>() {
        if step.patch.operation != Operation::Add || !listener_matches(patcher, l, &step) {
            continue;
        }
        if let Some(PatchValue::FilterChain(v)) = &step.patch.value {
            patcher.record(&step, &Listener::type_url(), &l.name);
            chains.push((**v).clone());
        }
    }
    l.filter_chains = chains;
}

/// Patches one chain; false when a patch removed it.
fn patch_filter_chain(
    patcher: &mut Patcher<'_>,
    l: &Listener,
    fc: &mut FilterChain,
    context: PatchContext,
) -> bool {
    for step in (patcher.patches(ApplyTo::FilterChain, context)).collect::<Vec<_>>() {
        if !listener_matches(patcher, l, &step) || !chain_matches(fc, &step) {
            continue;
        }
        match (step.patch.operation, &step.patch.value) {
            (Operation::Remove, _) => {
                patcher.record(&step, &Listener::type_url(), &l.name);
                return false;
            }
            (Operation::Merge, Some(PatchValue::FilterChain(v))) => {
                match super::filters::merge_chain(fc, v, step.patch.replace_lists) {
                    Ok(()) => patcher.record(&step, &Listener::type_url(), &l.name),
                    Err(e) => patcher.error(&step, &format!("listener {}", l.name), e),
                }
            }
            _ => {}
        }
    }
    super::filters::patch_network_filters(patcher, l, fc, context);
    true
}

/// `match.listener` of `step`, if any.
pub(super) fn listener_match<'a>(step: &Step<'a>) -> Option<&'a ListenerMatch> {
    match &step.patch.object {
        ObjectMatch::Listener(m) => Some(m),
        _ => None,
    }
}

/// `match.listener.filterChain` of `step`, if any.
pub(super) fn chain_match<'a>(step: &Step<'a>) -> Option<&'a FilterChainMatch> {
    listener_match(step).and_then(|m| m.filter_chain.as_ref())
}

/// Istio's `listenerMatch`, with Istio's listener names and, on the
/// inbound listener, its inbound ports (see `names`).
pub(super) fn listener_matches(patcher: &Patcher<'_>, l: &Listener, step: &Step<'_>) -> bool {
    let Some(m) = listener_match(step) else {
        return true;
    };
    if !m.name.is_empty() && !patcher.names.listener(&m.name, &l.name) {
        return false;
    }
    if m.port_number == 0 {
        return true;
    }
    let inbound = l.name == crate::translate::INBOUND_LISTENER && !patcher.gateway;
    (inbound && patcher.names.inbound_port(m.port_number)) || port_of(l) == Some(m.port_number)
}

fn port_of(l: &Listener) -> Option<u32> {
    match l.address.as_ref()?.address.as_ref()? {
        AddressKind::SocketAddress(s) => match s.port_specifier {
            Some(
                envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(
                    p,
                ),
            ) => Some(p),
            _ => None,
        },
        _ => None,
    }
}

/// Istio's `filterChainMatch`.
pub(super) fn chain_matches(fc: &FilterChain, step: &Step<'_>) -> bool {
    let Some(m) = chain_match(step) else {
        return true;
    };
    let fcm = fc.filter_chain_match.as_ref();
    let names = || fcm.map(|f| f.server_names.as_slice()).unwrap_or_default();
    let alpn = || {
        fcm.map(|f| f.application_protocols.as_slice())
            .unwrap_or_default()
    };
    let transport = fcm
        .map(|f| f.transport_protocol.as_str())
        .unwrap_or_default();
    let port = fcm
        .and_then(|f| f.destination_port.as_ref())
        .map(|p| p.value);
    (m.name.is_empty() || m.name == fc.name)
        && (m.sni.is_empty() || names().contains(&m.sni))
        && (m.transport_protocol.is_empty() || m.transport_protocol == transport)
        && (m.application_protocols.is_empty()
            || (m.application_protocols.split(',')).all(|p| alpn().iter().any(|a| a == p)))
        && (m.destination_port == 0 || port == Some(m.destination_port))
}
