//! Where an endpoint or a proxy runs (locality, network, cluster), and the
//! `DestinationRule` setting that balances by it (`localityLbSetting`).
//!
//! Istio writes a locality as `REGION/ZONE/SUBZONE` and also takes it from
//! the well-known topology labels; both forms are read here so that the
//! registry, the config and `trellis bootstrap` agree.

use std::collections::BTreeMap;

use super::Labels;

/// Label with the region (Kubernetes' well-known topology label).
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// Label with the zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Label with the subzone (Istio's).
pub const SUBZONE_LABEL: &str = "topology.istio.io/subzone";
/// Label with the network (Istio's).
pub const NETWORK_LABEL: &str = "topology.istio.io/network";
/// Label with the cluster (Istio's).
pub const CLUSTER_LABEL: &str = "topology.istio.io/cluster";

/// Region, zone and subzone; empty parts are unknown.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Locality {
    /// Region, e.g. `us-east1`.
    pub region: String,
    /// Zone within the region.
    pub zone: String,
    /// Subzone within the zone.
    pub subzone: String,
}

impl Locality {
    /// Parses `REGION[/ZONE[/SUBZONE]]`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Locality, String> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > 3 {
            return Err(format!(
                "locality {text:?} has more than three parts: expected REGION/ZONE/SUBZONE"
            ));
        }
        if parts.iter().any(|p| p.trim() != *p || p.contains('*')) {
            return Err(format!(
                "locality {text:?} has spaces or a wildcard: expected REGION/ZONE/SUBZONE"
            ));
        }
        let part = |i: usize| parts.get(i).copied().unwrap_or_default().to_string();
        let loc = Locality {
            region: part(0),
            zone: part(1),
            subzone: part(2),
        };
        // `/z` or `r//s` leave a level out: nothing could match them.
        if (loc.region.is_empty() && !loc.is_empty())
            || (loc.zone.is_empty() && !loc.subzone.is_empty())
        {
            return Err(format!("locality {text:?} leaves out a level"));
        }
        Ok(loc)
    }

    /// The locality given by the topology labels (empty when none is set).
    pub fn from_labels(labels: &Labels) -> Locality {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        Locality {
            region: get(REGION_LABEL),
            zone: get(ZONE_LABEL),
            subzone: get(SUBZONE_LABEL),
        }
    }

    /// True when no part is known.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty() && self.zone.is_empty() && self.subzone.is_empty()
    }
}

impl std::fmt::Display for Locality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [&self.region, &self.zone, &self.subzone];
        let n = parts
            .iter()
            .rposition(|p| !p.is_empty())
            .map_or(0, |i| i + 1);
        let shown: Vec<&str> = parts[..n].iter().map(|s| s.as_str()).collect();
        f.write_str(&shown.join("/"))
    }
}

/// Where an instance or proxy runs: locality, network and cluster (the
/// mesh cluster, not an Envoy cluster). Empty network and cluster mean the
/// local ones.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Topology {
    /// Region, zone, subzone.
    pub locality: Locality,
    /// Network name (Istio's `topology.istio.io/network`).
    pub network: String,
    /// Mesh cluster name (Istio's `topology.istio.io/cluster`).
    pub cluster: String,
}

impl Topology {
    /// The value of `key` for `failoverPriority`: the topology labels
    /// stand for this topology, other keys are looked up in `labels`
    /// (Istio adds the topology labels to every endpoint).
    pub fn label<'a>(&'a self, labels: &'a Labels, key: &str) -> Option<&'a str> {
        let known = match key {
            REGION_LABEL => Some(&self.locality.region),
            ZONE_LABEL => Some(&self.locality.zone),
            SUBZONE_LABEL => Some(&self.locality.subzone),
            NETWORK_LABEL => Some(&self.network),
            CLUSTER_LABEL => Some(&self.cluster),
            _ => None,
        };
        match known {
            Some(v) if !v.is_empty() => Some(v.as_str()),
            Some(_) => labels.get(key).map(String::as_str),
            None => labels.get(key).map(String::as_str),
        }
    }
}

/// `loadBalancer.localityLbSetting`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalityLbSetting {
    /// `enabled`; `None` when not written (Istio: enabled).
    pub enabled: Option<bool>,
    /// `distribute`: per client locality, the share of traffic for each
    /// endpoint locality.
    pub distribute: Vec<LocalityDistribute>,
    /// `failover`: region to fail over to, by client region.
    pub failover: Vec<LocalityFailover>,
    /// `failoverPriority`: ordered label keys (`KEY` or `KEY=VALUE`).
    pub failover_priority: Vec<String>,
}

/// One `distribute` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalityDistribute {
    /// Client locality pattern (`region/zone/subzone`, `*` wildcards).
    pub from: String,
    /// Endpoint locality pattern → weight (the weights sum to 100).
    pub to: BTreeMap<String, u32>,
}

/// One `failover` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalityFailover {
    /// Client region.
    pub from: String,
    /// The region its traffic fails over to first.
    pub to: String,
}

/// True when `loc` matches `pattern` (`REGION[/ZONE[/SUBZONE]]`, each part
/// `*` for any; a missing part matches any), Istio's `LocalityMatch`.
pub fn locality_matches(loc: &Locality, pattern: &str) -> bool {
    let mut parts = pattern.splitn(3, '/');
    let mut part = |value: &str, required: bool| match parts.next() {
        None | Some("") => !required,
        Some("*") => true,
        Some(p) => p == value,
    };
    part(&loc.region, true) && part(&loc.zone, false) && part(&loc.subzone, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_localities() {
        let l = Locality::parse("us-east/us-east-1a/rack1").unwrap();
        assert_eq!(
            (l.region.as_str(), l.zone.as_str(), l.subzone.as_str()),
            ("us-east", "us-east-1a", "rack1")
        );
        assert_eq!(l.to_string(), "us-east/us-east-1a/rack1");
        assert_eq!(Locality::parse("eu").unwrap().to_string(), "eu");
        assert!(Locality::parse("").unwrap().is_empty());
        assert!(Locality::parse("a/b/c/d").is_err());
        assert!(Locality::parse("/b").is_err());
        assert!(Locality::parse("a//c").is_err());
        assert!(Locality::parse("a/*").is_err());
    }

    #[test]
    fn patterns_match_like_istio() {
        let l = Locality::parse("r1/z1/s1").unwrap();
        assert!(locality_matches(&l, "r1"));
        assert!(locality_matches(&l, "r1/*"));
        assert!(locality_matches(&l, "*"));
        assert!(locality_matches(&l, "r1/z1/s1"));
        assert!(!locality_matches(&l, "r1/z2"));
        assert!(!locality_matches(&l, "r2/*"));
        assert!(!locality_matches(&l, ""));
    }

    #[test]
    fn topology_labels_come_from_the_topology() {
        let t = Topology {
            locality: Locality::parse("r1/z1").unwrap(),
            network: "n1".into(),
            cluster: String::new(),
        };
        let labels: Labels = [
            (CLUSTER_LABEL.to_string(), "c9".to_string()),
            ("app".to_string(), "pay".to_string()),
        ]
        .into();
        assert_eq!(t.label(&labels, REGION_LABEL), Some("r1"));
        assert_eq!(t.label(&labels, NETWORK_LABEL), Some("n1"));
        assert_eq!(t.label(&labels, CLUSTER_LABEL), Some("c9"));
        assert_eq!(t.label(&labels, SUBZONE_LABEL), None);
        assert_eq!(t.label(&labels, "app"), Some("pay"));
    }
}
