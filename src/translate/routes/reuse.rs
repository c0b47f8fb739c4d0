//! Virtual hosts taken from the last translation of the outbound routes
//! when nothing they are made from changed, so a change of one
//! VirtualService translates one service's virtual hosts, not the mesh's.
//!
//! A service port's routes read only: the service's own VirtualService,
//! and for the service and every host that VirtualService routes or
//! mirrors to, its ports (`Ctx::dest_port`) and its DestinationRule
//! (`Ctx::hash_key`). Those are compared with the inputs of the last
//! translation; anything else the routes depend on is a constant.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::VirtualHost;

use super::{Ctx, SharedRoutes};
use crate::config::model::{Cidr, DestinationRule, Host, RouteAction, ServicePort, VirtualService};
use crate::translate::source::{Source, SourceRoutes};

/// The last translation of the outbound routes and its inputs.
pub struct Previous<'a> {
    /// The outbound route configuration it made.
    pub config: &'a SharedRoutes,
    /// Its routes that only some clients get.
    pub sources: &'a SourceRoutes,
    /// The VirtualServices it was made from.
    pub virtual_services: &'a BTreeMap<Host, Arc<VirtualService>>,
    /// The DestinationRules it was made from.
    pub destination_rules: &'a BTreeMap<Host, Arc<DestinationRule>>,
    /// Every service's ports it was made from.
    pub service_ports: &'a BTreeMap<Host, Vec<ServicePort>>,
    /// The `addresses` of the services that had some.
    pub service_addresses: &'a BTreeMap<Host, Vec<Cidr>>,
}

/// A virtual host, and the client conditions of some of its routes
/// (route index, condition).
pub(super) type Kept = (Arc<VirtualHost>, Vec<(usize, Source)>);

/// [`Previous`] with its virtual hosts indexed by name.
pub(super) struct Reuse<'a> {
    previous: Previous<'a>,
    vhosts: HashMap<&'a str, &'a Arc<VirtualHost>>,
    /// No service's ports or addresses changed: every virtual host's
    /// domains are the last ones.
    same_domains: bool,
}

impl<'a> Reuse<'a> {
    pub(super) fn new(previous: Previous<'a>, ctx: Ctx<'_>) -> Self {
        let vhosts = (previous.config.virtual_hosts.iter())
            .map(|v| (v.name.as_str(), v))
            .collect();
        let services = &ctx.services.services;
        let same_ports = services.len() == previous.service_ports.len()
            && (services.iter().zip(previous.service_ports))
                .all(|((host, view), (last, ports))| host == last && view.ports == *ports);
        let addresses = (ctx.mesh.services.values())
            .filter(|s| !s.addresses.is_empty())
            .map(|s| (&s.host, &s.addresses));
        let same_domains = same_ports && addresses.eq(previous.service_addresses.iter());
        Reuse {
            previous,
            vhosts,
            same_domains,
        }
    }

    /// Gives each of `vhosts` the domains of the last virtual host of its
    /// name, when the domains cannot have changed; false (`vhosts` to be
    /// given fresh domains) otherwise.
    pub(super) fn take_domains(&self, vhosts: &mut [Arc<VirtualHost>]) -> bool {
        if !self.same_domains {
            return false;
        }
        let lasts: Option<Vec<&Arc<VirtualHost>>> = (vhosts.iter())
            .map(|v| self.vhosts.get(v.name.as_str()).copied())
            .collect();
        let Some(lasts) = lasts else {
            return false;
        };
        for (vh, last) in vhosts.iter_mut().zip(lasts) {
            // A taken virtual host has them already; a fresh one is not
            // shared yet, so this does not copy it.
            if !Arc::ptr_eq(vh, last) {
                Arc::make_mut(vh).domains.clone_from(&last.domains);
            }
        }
        true
    }

    /// Virtual host `name` (of `host`) and its routes' client conditions
    /// from the last translation, if none of its routes' inputs changed
    /// (its domains are the last ones: see [`Reuse::take_domains`]).
    pub(super) fn vhost(&self, ctx: Ctx<'_>, host: &Host, name: &str) -> Option<Kept> {
        let last = self.vhosts.get(name)?;
        if !self.unchanged(ctx, host) {
            return None;
        }
        let sources = (self.previous.sources.of_vhost(name))
            .map(|(i, s)| (i, s.clone()))
            .collect();
        Some((Arc::clone(last), sources))
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
pub(in crate::translate) fn routed_hosts(vs: &VirtualService) -> impl Iterator<Item = &Host> {
    vs.http.iter().flat_map(|rule| {
        let routed = match &rule.action {
            RouteAction::Route(dests) => dests.as_slice(),
            _ => &[],
        };
        (routed.iter().map(|d| &d.destination.host))
            .chain(rule.mirrors.iter().map(|m| &m.destination.host))
    })
}
