//! Locality-aware load balancing: each client's own endpoint priorities
//! and locality weights, as istiod computes them per proxy
//! (`pilot/pkg/networking/core/loadbalancer/loadbalancer.go`).
//!
//! - Failover (the default when `outlierDetection` is set): priority 0 is
//!   the client's region/zone/subzone, 1 its zone, 2 its region, 3 the
//!   rest; `failover` moves regions other than its `to` below that (4);
//!   `failoverPriority` ranks by how many leading labels match the
//!   client's, before locality. Ranks are then renumbered 0..N without
//!   gaps, as Envoy requires (`LocalityLbEndpoints.priority`).
//! - `distribute`: for the first `from` matching the client, each `to`
//!   pattern's weight is shared by the localities it matches in proportion
//!   to their endpoint weights; unmatched localities get no traffic. The
//!   cluster carries `locality_weighted_lb_config` (see [`rule`]).
//! - Networks ([`network`]): endpoints on another network than the
//!   client's are reached through that network's east-west gateway
//!   (istiod's split-horizon EDS), before either rule applies.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};

pub mod network;

use super::endpoints::grouped;
use super::policy::Policy;
use super::util::u32v;
use crate::config::model::{
    locality_matches, Labels, Locality, LocalityDistribute, LocalityFailover, Topology,
};
use crate::registry::{Instance, NetworkGateways};

/// How one cluster balances by locality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalityRule {
    /// Priorities by locality (and labels), failing over as they empty.
    Failover {
        /// `failover`: region → region.
        failover: Vec<LocalityFailover>,
        /// `failoverPriority`: label keys, `KEY` or `KEY=VALUE`.
        priority: Vec<String>,
    },
    /// Fixed shares per locality.
    Distribute(Vec<LocalityDistribute>),
}

/// The rule of a cluster with `policy`, per Istio: locality load balancing
/// is on unless `enabled: false`; `distribute` applies as written, and
/// failover only with outlier detection (without it Envoy would never move
/// traffic down a priority; validation rejects an explicit setting then).
pub fn rule(policy: &Policy<'_>) -> Option<LocalityRule> {
    let outlier = policy.outlier_detection.is_some();
    match policy.locality_lb {
        Some(s) if s.enabled == Some(false) => None,
        Some(s) if !s.distribute.is_empty() => Some(LocalityRule::Distribute(s.distribute.clone())),
        Some(s) => outlier.then(|| LocalityRule::Failover {
            failover: s.failover.clone(),
            priority: s.failover_priority.clone(),
        }),
        None => outlier.then(|| LocalityRule::Failover {
            failover: Vec::new(),
            priority: Vec::new(),
        }),
    }
}

/// One EDS cluster whose endpoints depend on the client's locality or
/// network.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalityCluster {
    /// The cluster (and load assignment) name.
    pub name: String,
    /// How it balances by locality; `None`: it does not, and varies by
    /// the client's network only.
    pub rule: Option<LocalityRule>,
    /// Its instances (already filtered by port and subset).
    pub instances: Vec<Instance>,
}

impl LocalityCluster {
    /// `Some` when the endpoints differ by client: fixed shares, label
    /// priorities, instances in more than one locality, or instances on a
    /// named network (a client on another network reaches them through a
    /// gateway). Otherwise every client gets the shared assignment.
    pub fn new(name: &str, rule: Option<LocalityRule>, instances: Vec<Instance>) -> Option<Self> {
        let localities: BTreeSet<&Locality> =
            instances.iter().map(|i| &i.topology.locality).collect();
        let by_locality = match &rule {
            None => false,
            Some(LocalityRule::Distribute(_)) => true,
            Some(LocalityRule::Failover { priority, .. }) => {
                !priority.is_empty() || localities.len() > 1
            }
        };
        let by_network = instances.iter().any(|i| !i.topology.network.is_empty());
        (by_locality || by_network).then(|| LocalityCluster {
            name: name.to_string(),
            rule,
            instances,
        })
    }

    /// The label keys its priorities read from the client.
    pub fn client_keys(&self) -> impl Iterator<Item = &str> {
        let keys = match &self.rule {
            Some(LocalityRule::Failover { priority, .. }) => priority.as_slice(),
            _ => &[],
        };
        keys.iter().filter(|k| !k.contains('=')).map(String::as_str)
    }
}

/// The client a load assignment is made for.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// Where it runs (its locality; see `network` for its network).
    pub topology: &'a Topology,
    /// Its workload labels.
    pub labels: &'a Labels,
    /// Its network: its own, else its cluster's (`multiCluster.network`),
    /// else the default network `""`.
    pub network: &'a str,
    /// True when it reaches other networks through their east-west
    /// gateways (sidecars); false for gateway proxies, whose
    /// AUTO_PASSTHROUGH clusters share these endpoints: one gateway
    /// forwarding to another could loop.
    pub via_gateways: bool,
}

/// The load assignment of `cluster` as `client` sees it, and the networks
/// whose endpoints it cannot reach (left out, see [`network`]).
pub fn localize(
    cluster: &LocalityCluster,
    client: Client<'_>,
    gateways: &NetworkGateways,
) -> (ClusterLoadAssignment, BTreeSet<String>) {
    let (instances, unreachable) = network::split_horizon(&cluster.instances, client, gateways);
    let cla = by_rule(&cluster.name, cluster.rule.as_ref(), &instances, client);
    (cla, unreachable)
}

fn by_rule(
    name: &str,
    rule: Option<&LocalityRule>,
    instances: &[Instance],
    client: Client<'_>,
) -> ClusterLoadAssignment {
    match rule {
        None => grouped(name, instances.iter().map(|i| (0, i))),
        Some(LocalityRule::Failover { failover, priority }) => {
            let ranks: Vec<u32> = (instances.iter())
                .map(|i| rank(client, i, failover, priority))
                .collect();
            let dense = dense(&ranks);
            let items = instances.iter().zip(ranks).map(|(i, r)| (dense[&r], i));
            grouped(name, items)
        }
        Some(LocalityRule::Distribute(list)) => {
            let mut cla = grouped(name, instances.iter().map(|i| (0, i)));
            distribute(&mut cla, client.topology, list);
            cla
        }
    }
}

/// Istio's combined rank: `5 × label priority + locality priority`.
fn rank(client: Client<'_>, ep: &Instance, failover: &[LocalityFailover], keys: &[String]) -> u32 {
    if keys.is_empty() {
        return locality_priority(&client.topology.locality, &ep.topology.locality, failover);
    }
    let labels = label_priority(client, ep, keys);
    if failover.is_empty() {
        return labels;
    }
    5 * labels + locality_priority(&client.topology.locality, &ep.topology.locality, failover)
}

/// 0: same region, zone and subzone; 1: same zone; 2: same region; 3:
/// another region; 4: another region that is not the `failover` target of
/// the client's region (Istio's `LbPriority` and `applyLocalityFailover`).
pub fn locality_priority(client: &Locality, ep: &Locality, failover: &[LocalityFailover]) -> u32 {
    if client.region == ep.region {
        return match (client.zone == ep.zone, client.subzone == ep.subzone) {
            (true, true) => 0,
            (true, false) => 1,
            (false, _) => 2,
        };
    }
    match failover.iter().find(|f| f.from == client.region) {
        Some(f) if f.to != ep.region => 4,
        _ => 3,
    }
}

/// `failoverPriority`: with N keys, an endpoint whose first k labels equal
/// the client's (or the value a `KEY=VALUE` entry names) gets N − k.
pub fn label_priority(client: Client<'_>, ep: &Instance, keys: &[String]) -> u32 {
    let matched = keys
        .iter()
        .take_while(|entry| {
            let (key, wanted) = match entry.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (entry.as_str(), client.topology.label(client.labels, entry)),
            };
            wanted.is_some() && ep.topology.label(&ep.labels, key) == wanted
        })
        .count();
    u32::try_from(keys.len() - matched).unwrap_or(u32::MAX)
}

/// Each rank's position among the distinct ranks: priorities 0..N.
fn dense(ranks: &[u32]) -> BTreeMap<u32, u32> {
    let distinct: BTreeSet<u32> = ranks.iter().copied().collect();
    distinct.into_iter().zip(0..).collect()
}

/// The sum of a locality's endpoint weights.
fn own(l: &LocalityLbEndpoints) -> u32 {
    (l.lb_endpoints.iter())
        .map(|e| e.load_balancing_weight.as_ref().map_or(1, |w| w.value))
        .sum()
}

/// Every locality weighs the sum of its endpoints' weights, as Istio sets
/// it: with `locality_weighted_lb_config`, Envoy sends nothing to a
/// locality without a weight.
pub fn default_weights(cla: &mut ClusterLoadAssignment) {
    for l in &mut cla.endpoints {
        l.load_balancing_weight = Some(u32v(own(l).max(1)));
    }
}

/// Locality weights per `distribute` (Istio's `applyLocalityWeights`).
/// A client that no `from` matches keeps the [`default_weights`].
fn distribute(cla: &mut ClusterLoadAssignment, client: &Topology, list: &[LocalityDistribute]) {
    default_weights(cla);
    let Some(rule) = list
        .iter()
        .find(|d| locality_matches(&client.locality, &d.from))
    else {
        return;
    };
    let locality = |l: &LocalityLbEndpoints| {
        let x = l.locality.clone().unwrap_or_default();
        Locality {
            region: x.region,
            zone: x.zone,
            subzone: x.sub_zone,
        }
    };
    let mut weights: Vec<Option<u32>> = vec![None; cla.endpoints.len()];
    for (pattern, share) in &rule.to {
        let hits: Vec<usize> = (0..cla.endpoints.len())
            .filter(|i| weights[*i].is_none())
            .filter(|i| locality_matches(&locality(&cla.endpoints[*i]), pattern))
            .collect();
        let total: u32 = hits.iter().map(|i| own(&cla.endpoints[*i])).sum();
        for i in hits {
            let w = f64::from(own(&cla.endpoints[i]) * share) / f64::from(total.max(1));
            weights[i] = Some(w.ceil().max(1.0) as u32);
        }
    }
    let mut kept = Vec::new();
    for (mut l, w) in std::mem::take(&mut cla.endpoints).into_iter().zip(weights) {
        if let Some(w) = w {
            l.load_balancing_weight = Some(u32v(w));
            kept.push(l);
        }
    }
    cla.endpoints = kept;
}

#[cfg(test)]
mod tests;
