//! Virtual hosts taken from the last translation of the outbound routes
//! when nothing they are made from changed, so a change of one
//! VirtualService translates one service's virtual hosts, not the mesh's.
//!
//! A service port's routes read only: the service's own VirtualService,
//! and for the service and every host that VirtualService routes or
//! mirrors to, its ports (`Ctx::dest_port`) and its DestinationRule
//! (`Ctx::hash_key`). Those are compared with the inputs of the last
//! translation; anything else the routes depend on is a constant.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};

use super::Ctx;
use crate::config::model::{DestinationRule, Host, RouteAction, ServicePort, VirtualService};
use crate::translate::source::{Source, SourceRoutes};

/// The last translation of the outbound routes and its inputs.
pub struct Previous<'a> {
    /// The outbound route configuration it made.
    pub config: &'a RouteConfiguration,
    /// Its routes that only some clients get.
    pub sources: &'a SourceRoutes,
    /// The VirtualServices it was made from.
    pub virtual_services: &'a BTreeMap<Host, Arc<VirtualService>>,
    /// The DestinationRules it was made from.
    pub destination_rules: &'a BTreeMap<Host, Arc<DestinationRule>>,
    /// Every service's ports it was made from.
    pub service_ports: &'a BTreeMap<Host, Vec<ServicePort>>,
}

/// A virtual host's routes, and the client conditions of some of them
/// (route index, condition).
pub(super) type Kept = (Vec<Route>, Vec<(usize, Source)>);

/// [`Previous`] with its virtual hosts indexed by name.
pub(super) struct Reuse<'a> {
    previous: Previous<'a>,
    vhosts: HashMap<&'a str, &'a VirtualHost>,
}

impl<'a> Reuse<'a> {
    pub(super) fn new(previous: Previous<'a>) -> Self {
        let vhosts = (previous.config.virtual_hosts.iter())
            .map(|v| (v.name.as_str(), v))
            .collect();
        Reuse { previous, vhosts }
    }

    /// Virtual host `name`'s routes (of `host`) and their client
    /// conditions from the last translation, if none of its inputs changed.
    pub(super) fn routes(&self, ctx: Ctx<'_>, host: &Host, name: &str) -> Option<Kept> {
        let last = self.vhosts.get(name)?;
        if !self.unchanged(ctx, host) {
            return None;
        }
        let sources = (self.previous.sources.of_vhost(name))
            .map(|(i, s)| (i, s.clone()))
            .collect();
        Some((last.routes.clone(), sources))
    }

    fn unchanged(&self, ctx: Ctx<'_>, host: &Host) -> bool {
        let vs = ctx.mesh.virtual_services.get(host);
        if !same(vs, self.previous.virtual_services.get(host)) {
            return false;
        }
        let same_host = |h: &Host| {
            same(
                ctx.mesh.destination_rules.get(h),
                self.previous.destination_rules.get(h),
            ) && ctx.services.services.get(h).map(|v| &v.ports)
                == self.previous.service_ports.get(h)
        };
        same_host(host) && vs.is_none_or(|vs| routed_hosts(vs).all(same_host))
    }
}

/// Equal values, by pointer first (unchanged config keeps its `Arc`s).
fn same<T: PartialEq>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

/// Every host `vs`'s http rules route or mirror to.
pub(super) fn routed_hosts(vs: &VirtualService) -> impl Iterator<Item = &Host> {
    vs.http.iter().flat_map(|rule| {
        let routed = match &rule.action {
            RouteAction::Route(dests) => dests.as_slice(),
            _ => &[],
        };
        (routed.iter().map(|d| &d.destination.host))
            .chain(rule.mirrors.iter().map(|m| &m.destination.host))
    })
}
