//! Split-horizon EDS, as istiod does it for multi-network meshes
//! (`pilot/pkg/xds/endpoints/ep_filters.go`, `EndpointsByNetworkFilter`).
//!
//! A client on network N1 cannot dial the addresses of network N2. Each
//! group of N2's endpoints in one locality becomes one endpoint per N2
//! east-west gateway: the gateway's address and AUTO_PASSTHROUGH port,
//! weighted by the endpoints it stands for, in their locality (so
//! locality failover still ranks it) and labelled `tlsMode: istio`. The
//! client's mTLS, with SNI `outbound_.PORT_.SUBSET_.HOST`, then passes
//! through the gateway by SNI to the service on N2 (see
//! `translate::gateway::sni`).
//!
//! - Endpoints on the client's network, and endpoints on no network
//!   (static `ServiceEntry` endpoints without `network`), are kept as
//!   they are: Istio treats an empty network as reachable from anywhere.
//! - Endpoints on a network without a known gateway, or that do not take
//!   mTLS (SNI routing needs the client's TLS), are left out, as istiod
//!   leaves them out: the caller reports the network. While no network
//!   has a gateway, the mesh is not multi-network and nothing changes.
//! - With several gateways on a network, every weight is scaled by the
//!   least common multiple of the gateway counts, so each gateway gets an
//!   equal, whole share of its group (istiod scales by the same LCM).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::Client;
use crate::config::model::{Labels, Locality};
use crate::registry::{Instance, NetworkGateway, NetworkGateways};

/// The remote endpoints of one network in one locality.
struct Group<'a> {
    first: &'a Instance,
    weight: u32,
    labels: Labels,
}

/// `instances` as `client` must dial them, and the networks left out.
/// Borrowed when every instance is reachable directly.
pub fn split_horizon<'a>(
    instances: &'a [Instance],
    client: Client<'_>,
    gateways: &NetworkGateways,
) -> (Cow<'a, [Instance]>, BTreeSet<String>) {
    let remote =
        |i: &Instance| !i.topology.network.is_empty() && i.topology.network != client.network;
    // Without any gateway the mesh is not multi-network (istiod's
    // `IsMultiNetworkEnabled`): every endpoint is dialled directly.
    if gateways.is_empty() || !instances.iter().any(remote) {
        return (Cow::Borrowed(instances), BTreeSet::new());
    }
    let mut direct = Vec::new();
    let mut groups: BTreeMap<(&str, &Locality), Group<'a>> = BTreeMap::new();
    let mut unreachable = BTreeSet::new();
    for i in instances {
        let net = i.topology.network.as_str();
        if !remote(i) {
            direct.push(i.clone());
        } else if client.via_gateways && i.mtls && has_gateway(gateways, net) {
            add(&mut groups, i);
        } else {
            unreachable.insert(net.to_string());
        }
    }
    let scale = lcm_of(
        groups
            .keys()
            .map(|(net, _)| gateways_of(gateways, net).len()),
    );
    for d in &mut direct {
        d.weight = d.weight.max(1).saturating_mul(scale);
    }
    for ((net, _), g) in groups {
        let gws = gateways_of(gateways, net);
        let share = g.weight.saturating_mul(scale) / u32::try_from(gws.len()).unwrap_or(1);
        direct.extend(gws.iter().map(|gw| through(gw, &g, share.max(1))));
    }
    (Cow::Owned(direct), unreachable)
}

fn gateways_of<'g>(gateways: &'g NetworkGateways, network: &str) -> &'g [NetworkGateway] {
    gateways.get(network).map_or(&[], Vec::as_slice)
}

fn has_gateway(gateways: &NetworkGateways, network: &str) -> bool {
    !gateways_of(gateways, network).is_empty()
}

/// Adds `i` to its (network, locality) group: weights add up, and the
/// group keeps the labels all its endpoints share (for subsets and
/// `failoverPriority`).
fn add<'a>(groups: &mut BTreeMap<(&'a str, &'a Locality), Group<'a>>, i: &'a Instance) {
    let key = (i.topology.network.as_str(), &i.topology.locality);
    let g = groups.entry(key).or_insert_with(|| Group {
        first: i,
        weight: 0,
        labels: i.labels.clone(),
    });
    g.weight = g.weight.saturating_add(i.weight.max(1));
    g.labels.retain(|k, v| i.labels.get(k) == Some(v));
}

/// The endpoint of gateway `gw` standing for group `g`.
fn through(gw: &NetworkGateway, g: &Group<'_>, weight: u32) -> Instance {
    Instance {
        address: gw.address.clone(),
        port: gw.port,
        service_port: g.first.service_port,
        labels: g.labels.clone(),
        weight,
        // The client originates mTLS (`tlsMode: istio`) to the sidecars
        // behind the gateway; their identities are the cluster's SANs.
        sidecar: true,
        identity: None,
        mtls: true,
        topology: g.first.topology.clone(),
    }
}

/// The least common multiple of `counts` (1 when empty).
fn lcm_of(counts: impl Iterator<Item = usize>) -> u32 {
    let gcd = |mut a: u32, mut b: u32| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    counts
        .map(|c| u32::try_from(c.max(1)).unwrap_or(1))
        .fold(1, |l, c| (l / gcd(l, c)).saturating_mul(c))
}

#[cfg(test)]
mod tests;
