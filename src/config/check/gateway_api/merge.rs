//! Several routes for one host become one VirtualService, as Istio merges
//! them: the rules of all of them in the Gateway API's precedence (the
//! most specific match first; on a tie the oldest route by
//! `creationTimestamp`, then the first by `NAMESPACE/NAME`, then the
//! route's own order). For a Service (GAMMA), a route in another namespace
//! than the Service's is a consumer route: it routes only the clients of
//! its namespace, and replaces the Service's own (producer) routes there.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::convert::gateway_api::Rank;
use crate::config::convert::DocInfo;
use crate::config::model::{Host, HttpRoute, VirtualService, VsExportTo};

/// One route's rules for one host, with what orders it among the others.
#[derive(Debug, Clone)]
pub(super) struct Part {
    /// The route.
    pub doc: Arc<DocInfo>,
    /// The path its errors about the host point at.
    pub path: String,
    /// `metadata.creationTimestamp`.
    pub created: Option<String>,
    /// Its rules, ranked.
    pub rules: Vec<(Rank, HttpRoute)>,
}

impl Part {
    /// The older route first (one without a timestamp after those with
    /// one), then `NAMESPACE/NAME` order.
    pub(super) fn age(&self) -> (bool, Option<&str>, &str, &str) {
        let created = self.created.as_deref();
        (
            created.is_none(),
            created,
            &self.doc.namespace,
            &self.doc.name,
        )
    }
}

/// The parts sorted oldest first, and their rules in precedence order.
pub(super) fn merged(parts: &mut [Part]) -> Vec<HttpRoute> {
    parts.sort_by(|a, b| a.age().cmp(&b.age()));
    let mut all: Vec<&(Rank, HttpRoute)> = parts.iter().flat_map(|p| &p.rules).collect();
    // Stable: equal ranks keep the route order, then the rule order.
    all.sort_by_key(|(rank, _)| Reverse(*rank));
    all.into_iter().map(|(_, r)| r.clone()).collect()
}

/// One VirtualService for a host on gateways, from every route there
/// (their matches already name their gateway and ports).
pub(super) fn gateway_vs(
    host: &str,
    gateways: BTreeSet<String>,
    mut parts: Vec<Part>,
) -> Option<(Arc<DocInfo>, Vec<String>, VirtualService)> {
    let http = merged(&mut parts);
    let first = parts.first()?;
    let vs = VirtualService {
        hosts: vec![Host(host.to_string())],
        http,
        tcp: Vec::new(),
        tls: Vec::new(),
        gateways: gateways.into_iter().collect(),
        mesh: false,
        export_to: VsExportTo::default(),
        origin: first.doc.origin(),
    };
    Some((first.doc.clone(), vec![first.path.clone()], vs))
}

/// One mesh VirtualService for a Service in `namespace`, from its routes:
/// each consumer namespace's routes for that namespace's clients, then the
/// producer routes for every other client. With no producer route, the
/// other clients route as if the Service had no route.
pub(super) fn mesh_vs(
    host: &Host,
    namespace: &str,
    parts: Vec<Part>,
) -> Option<(Arc<DocInfo>, Vec<String>, VirtualService)> {
    let (mut producer, consumers): (Vec<Part>, Vec<Part>) = parts
        .into_iter()
        .partition(|p| p.doc.namespace == namespace);
    let consumer_ns: BTreeSet<String> = consumers.iter().map(|p| p.doc.namespace.clone()).collect();
    let (mut http, firsts) = consumer_rules(&consumer_ns, &consumers);
    for mut rule in merged(&mut producer) {
        (rule.matches.iter_mut()).for_each(|m| m.excluded_source_namespaces = consumer_ns.clone());
        http.push(rule);
    }
    let export_to = VsExportTo {
        namespaces: producer.is_empty().then_some(consumer_ns),
    };
    // The producer route names the whole; else the first consumer's.
    let first = producer.into_iter().next().or(firsts.into_iter().next())?;
    let vs = VirtualService {
        hosts: vec![host.clone()],
        http,
        tcp: Vec::new(),
        tls: Vec::new(),
        gateways: Vec::new(),
        mesh: true,
        export_to,
        origin: first.doc.origin(),
    };
    Some((first.doc.clone(), vec![first.path.clone()], vs))
}

/// Each consumer namespace's routes merged, for that namespace's clients
/// only, and the first route of each namespace.
fn consumer_rules(
    namespaces: &BTreeSet<String>,
    consumers: &[Part],
) -> (Vec<HttpRoute>, Vec<Part>) {
    let (mut http, mut firsts) = (Vec::new(), Vec::new());
    for ns in namespaces {
        let mut group: Vec<Part> = (consumers.iter())
            .filter(|p| p.doc.namespace == *ns)
            .cloned()
            .collect();
        for mut rule in merged(&mut group) {
            (rule.matches.iter_mut()).for_each(|m| m.source_namespace = Some(ns.clone()));
            http.push(rule);
        }
        firsts.extend(group.into_iter().next());
    }
    (http, firsts)
}

#[cfg(test)]
mod tests;
