//! `Proxy::from_node`: a sidecar's identity from its Envoy `Node`.
//!
//! The keys are the ones `trellis bootstrap` writes (docs/architecture.md,
//! "The sidecar contract"): `node.id`, `node.cluster`, metadata
//! `namespace`, `service`, `labels`, `service_account`, `app_port`,
//! `inbound_address`, `inbound_port`, `outbound_port`, `network`,
//! `cluster_name`, and `node.locality`. Bootstrap YAML may carry numbers as
//! numbers or as strings, so both are accepted.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};

use super::Proxy;
use crate::config::model::{Labels, Locality, Topology, CLUSTER_LABEL, NETWORK_LABEL};

/// Why a node cannot be a mesh sidecar; names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// `node.id` is empty.
    #[error("node.id is empty")]
    MissingId,
    /// A required key is absent.
    #[error("node metadata {key} is missing")]
    Missing {
        /// The metadata key (or `node.cluster`).
        key: &'static str,
    },
    /// A key has the wrong type.
    #[error("node metadata {key} must be {expected}")]
    WrongType {
        /// The metadata key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A port is not in 1..=65535.
    #[error("node metadata {key} is not a port number: {value}")]
    BadPort {
        /// The metadata key.
        key: &'static str,
        /// The value as given.
        value: String,
    },
    /// Two of the sidecar's sockets on one address, named by their keys:
    /// Envoy would refuse the listener update (or fail to start its admin
    /// interface).
    #[error("node metadata {0}")]
    SharedSocket(#[from] crate::config::model::SharedSocket),
}

impl Proxy {
    /// Reads a sidecar's identity from the `Node` of its first xDS request.
    pub fn from_node(node: &Node) -> Result<Proxy, NodeError> {
        if node.id.is_empty() {
            return Err(NodeError::MissingId);
        }
        let empty = Struct::default();
        let md = node.metadata.as_ref().unwrap_or(&empty);
        let service = match opt_string(md, "service")? {
            Some(s) if !s.is_empty() => s,
            _ if !node.cluster.is_empty() => node.cluster.clone(),
            _ => return Err(NodeError::Missing { key: "service" }),
        };
        let namespace = opt_string(md, "namespace")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let service_account = opt_string(md, "service_account")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| service.clone());
        if gateway_flag(md)? {
            return gateway(node, md, service, namespace, service_account);
        }
        let inbound_address = opt_string(md, "inbound_address")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "127.0.0.1".to_string());
        let labels = labels(md)?;
        let proxy = Proxy {
            id: node.id.clone(),
            topology: topology(node, md, &labels)?,
            labels,
            app_port: port(md, "app_port")?,
            inbound_port: port(md, "inbound_port")?,
            outbound_port: port(md, "outbound_port")?,
            stats_port: opt_port(md, "stats_port")?,
            admin_port: opt_port(md, "admin_port")?,
            service,
            namespace,
            service_account,
            inbound_address,
            gateway: None,
        };
        sockets_apart(&proxy)?;
        Ok(proxy)
    }
}

/// A proxy's app, listeners and admin interface each on an address of
/// its own (a gateway's admin and stats), as `trellis bootstrap` checks
/// them: a hand-written bootstrap that puts two on one is refused here,
/// by name, rather than by Envoy at every push. The stats listener binds
/// the inbound (a gateway's listen) address.
fn sockets_apart(p: &Proxy) -> Result<(), NodeError> {
    let (loopback, inbound) = ("127.0.0.1", p.inbound_address.as_str());
    let mut sockets = vec![("admin_port", loopback, p.admin_port.unwrap_or(0))];
    // A gateway has no app, inbound or outbound listener.
    if p.gateway.is_none() {
        sockets.extend([
            ("app_port", loopback, p.app_port),
            ("outbound_port", loopback, p.outbound_port),
            ("inbound_port", inbound, p.inbound_port),
        ]);
    }
    sockets.push(("stats_port", inbound, p.stats_port.unwrap_or(0)));
    Ok(crate::config::model::shared_socket(&sockets)?)
}

/// Envoy's `node.locality` (what Envoy itself believes), else the
/// topology labels; metadata `network` and `cluster_name`, else their
/// labels.
fn topology(node: &Node, md: &Struct, labels: &Labels) -> Result<Topology, NodeError> {
    let locality = match &node.locality {
        Some(l) if !(l.region.is_empty() && l.zone.is_empty() && l.sub_zone.is_empty()) => {
            Locality {
                region: l.region.clone(),
                zone: l.zone.clone(),
                subzone: l.sub_zone.clone(),
            }
        }
        _ => Locality::from_labels(labels),
    };
    let or_label = |v: Option<String>, key: &str| {
        v.filter(|s| !s.is_empty())
            .or_else(|| labels.get(key).cloned())
            .unwrap_or_default()
    };
    Ok(Topology {
        locality,
        network: or_label(opt_string(md, "network")?, NETWORK_LABEL),
        cluster: or_label(opt_string(md, "cluster_name")?, CLUSTER_LABEL),
    })
}

/// Metadata `gateway`: `true` (a bool or the string) marks a gateway proxy.
fn gateway_flag(md: &Struct) -> Result<bool, NodeError> {
    match field(md, "gateway") {
        None => Ok(false),
        Some(Kind::BoolValue(b)) => Ok(*b),
        Some(Kind::StringValue(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(_) => Err(NodeError::WrongType {
            key: "gateway",
            expected: "true or false",
        }),
    }
}

/// A gateway proxy: no app and no sidecar ports.
fn gateway(
    node: &Node,
    md: &Struct,
    service: String,
    namespace: String,
    service_account: String,
) -> Result<Proxy, NodeError> {
    let listen_address = opt_string(md, "listen_address")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "0.0.0.0".to_string());
    let port_map = match opt_string(md, "port_map")? {
        Some(text) => parse_port_map(&text).map_err(|value| NodeError::BadPort {
            key: "port_map",
            value,
        })?,
        None => Default::default(),
    };
    let labels = labels(md)?;
    let proxy = Proxy {
        id: node.id.clone(),
        topology: topology(node, md, &labels)?,
        labels,
        service,
        namespace,
        service_account,
        inbound_address: listen_address.clone(),
        admin_port: opt_port(md, "admin_port")?,
        stats_port: opt_port(md, "stats_port")?,
        gateway: Some(crate::registry::GatewayNode {
            listen_address,
            port_map,
            endpoint_address: opt_string(md, "endpoint_address")?.filter(|s| !s.is_empty()),
            network_port: None,
        }),
        ..Default::default()
    };
    sockets_apart(&proxy)?;
    Ok(proxy)
}

/// `443=8443,80=8080` → {443: 8443, 80: 8080}; the bad entry on error.
pub fn parse_port_map(text: &str) -> Result<std::collections::BTreeMap<u16, u16>, String> {
    let port = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p > 0);
    let mut out = std::collections::BTreeMap::new();
    for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
        match entry.split_once('=').map(|(a, b)| (port(a), port(b))) {
            Some((Some(from), Some(to))) if out.insert(from, to).is_none() => {}
            _ => return Err(entry.trim().to_string()),
        }
    }
    Ok(out)
}

fn field<'a>(md: &'a Struct, key: &str) -> Option<&'a Kind> {
    md.fields
        .get(key)
        .and_then(|v: &Value| v.kind.as_ref())
        .filter(|k| !matches!(k, Kind::NullValue(_)))
}

fn opt_string(md: &Struct, key: &'static str) -> Result<Option<String>, NodeError> {
    match field(md, key) {
        None => Ok(None),
        Some(Kind::StringValue(s)) => Ok(Some(s.clone())),
        Some(_) => Err(NodeError::WrongType {
            key,
            expected: "a string",
        }),
    }
}

fn port(md: &Struct, key: &'static str) -> Result<u16, NodeError> {
    let bad = |value: String| NodeError::BadPort { key, value };
    match field(md, key) {
        None => Err(NodeError::Missing { key }),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && (1.0..=65535.0).contains(n) {
                Ok(*n as u16)
            } else {
                Err(bad(n.to_string()))
            }
        }
        Some(Kind::StringValue(s)) => match s.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(bad(s.clone())),
        },
        Some(_) => Err(NodeError::WrongType {
            key,
            expected: "a port number",
        }),
    }
}

/// A port that may be absent.
fn opt_port(md: &Struct, key: &'static str) -> Result<Option<u16>, NodeError> {
    match field(md, key) {
        None => Ok(None),
        Some(_) => port(md, key).map(Some),
    }
}

fn labels(md: &Struct) -> Result<Labels, NodeError> {
    let wrong = NodeError::WrongType {
        key: "labels",
        expected: "a struct of strings",
    };
    match field(md, "labels") {
        None => Ok(Labels::new()),
        Some(Kind::StructValue(s)) => s
            .fields
            .iter()
            .map(|(k, v)| match &v.kind {
                Some(Kind::StringValue(s)) => Ok((k.clone(), s.clone())),
                _ => Err(wrong.clone()),
            })
            .collect(),
        Some(_) => Err(wrong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(v.into())),
        }
    }
    fn n(v: f64) -> Value {
        Value {
            kind: Some(Kind::NumberValue(v)),
        }
    }

    fn node(fields: Vec<(&str, Value)>) -> Node {
        Node {
            id: "pay-1".into(),
            cluster: "payment".into(),
            metadata: Some(Struct {
                fields: fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            }),
            ..Default::default()
        }
    }

    fn full() -> Vec<(&'static str, Value)> {
        let labels = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [("version".to_string(), s("v2"))].into(),
            })),
        };
        vec![
            ("namespace", s("shop")),
            ("service", s("payment")),
            ("labels", labels),
            ("service_account", s("pay-sa")),
            ("app_port", n(8080.0)),
            ("inbound_address", s("127.0.0.2")),
            ("inbound_port", s("15006")),
            ("outbound_port", n(15001.0)),
        ]
    }

    #[test]
    fn reads_every_key_numbers_or_strings() {
        let p = Proxy::from_node(&node(full())).unwrap();
        assert_eq!(p.id, "pay-1");
        assert_eq!(p.service, "payment");
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.labels.get("version").map(String::as_str), Some("v2"));
        assert_eq!(p.service_account, "pay-sa");
        assert_eq!(
            (p.app_port, p.inbound_port, p.outbound_port),
            (8080, 15006, 15001)
        );
        assert_eq!(p.inbound_address, "127.0.0.2");
        assert_eq!(p.stats_port, None);
        let mut with_stats = full();
        with_stats.push(("stats_port", s("15090")));
        let p = Proxy::from_node(&node(with_stats)).unwrap();
        assert_eq!(p.stats_addr().as_deref(), Some("127.0.0.2:15090"));
        assert_eq!(p.host().as_str(), "payment.shop.svc.cluster.local");
    }

    #[test]
    fn defaults_for_optional_keys() {
        let p = Proxy::from_node(&node(vec![
            ("app_port", s("9000")),
            ("inbound_port", n(15006.0)),
            ("outbound_port", n(15001.0)),
        ]))
        .unwrap();
        assert_eq!(p.service, "payment", "falls back to node.cluster");
        assert_eq!(p.namespace, "default");
        assert_eq!(p.service_account, "payment");
        assert_eq!(p.inbound_address, "127.0.0.1");
        assert!(p.labels.is_empty());
    }

    #[test]
    fn topology_from_the_node_else_the_labels() {
        let mut nd = node(full());
        nd.locality = Some(envoy_types::pb::envoy::config::core::v3::Locality {
            region: "r1".into(),
            zone: "z1".into(),
            sub_zone: "s1".into(),
        });
        if let Some(md) = nd.metadata.as_mut() {
            md.fields.insert("network".into(), s("net-a"));
            md.fields.insert("cluster_name".into(), s("east"));
        }
        let p = Proxy::from_node(&nd).unwrap();
        assert_eq!(p.topology.locality.to_string(), "r1/z1/s1");
        assert_eq!(
            (p.topology.network.as_str(), p.topology.cluster.as_str()),
            ("net-a", "east")
        );

        let labels = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [
                    ("topology.kubernetes.io/region".to_string(), s("r2")),
                    ("topology.kubernetes.io/zone".to_string(), s("z2")),
                    ("topology.istio.io/network".to_string(), s("net-b")),
                ]
                .into(),
            })),
        };
        let mut f = full();
        f.push(("labels", labels));
        let p = Proxy::from_node(&node(f)).unwrap();
        assert_eq!(p.topology.locality.to_string(), "r2/z2");
        assert_eq!(p.topology.network, "net-b");
        assert_eq!(p.topology.cluster, "");
        let p = Proxy::from_node(&node(full())).unwrap();
        assert!(p.topology.locality.is_empty());
    }

    #[test]
    fn two_sockets_on_one_address_name_both_keys() {
        let with = |extra: Vec<(&'static str, Value)>| {
            let mut f = full();
            f.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            f.extend(extra);
            Proxy::from_node(&node(f))
        };
        // The inbound port on the loopback outbound address.
        let err = with(vec![
            ("inbound_address", s("127.0.0.1")),
            ("inbound_port", n(15001.0)),
        ]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "node metadata outbound_port (127.0.0.1:15001) and inbound_port (127.0.0.1:15001) \
             cannot both listen"
        );
        // A wildcard inbound address takes every loopback port too.
        let err = with(vec![
            ("inbound_address", s("0.0.0.0")),
            ("inbound_port", n(8080.0)),
        ]);
        assert!(matches!(err, Err(NodeError::SharedSocket(c)) if c.first == "app_port"));
        let err = with(vec![("stats_port", n(15006.0))]);
        assert!(matches!(err, Err(NodeError::SharedSocket(c)) if c.second == "stats_port"));
        let err = with(vec![("admin_port", n(15001.0))]);
        assert!(matches!(err, Err(NodeError::SharedSocket(c)) if c.first == "admin_port"));
        // The workload's own address may reuse the app's port number.
        let ok = with(vec![
            ("inbound_address", s("10.0.0.5")),
            ("inbound_port", n(8080.0)),
        ]);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn missing_port_names_the_key() {
        let mut f = full();
        f.retain(|(k, _)| *k != "inbound_port");
        let err = Proxy::from_node(&node(f)).unwrap_err();
        assert_eq!(
            err,
            NodeError::Missing {
                key: "inbound_port"
            }
        );
        assert!(err.to_string().contains("inbound_port"));
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let mut f = full();
        f.push(("app_port", n(70000.0)));
        let err = Proxy::from_node(&node(f)).unwrap_err();
        assert!(matches!(
            err,
            NodeError::BadPort {
                key: "app_port",
                ..
            }
        ));

        let mut f = full();
        f.push(("outbound_port", s("http")));
        assert!(matches!(
            Proxy::from_node(&node(f)),
            Err(NodeError::BadPort {
                key: "outbound_port",
                ..
            })
        ));

        let mut f = full();
        f.push(("labels", s("version=v1")));
        assert!(matches!(
            Proxy::from_node(&node(f)),
            Err(NodeError::WrongType { key: "labels", .. })
        ));
    }

    #[test]
    fn gateway_needs_no_app_ports() {
        let nd = node(vec![
            ("gateway", s("true")),
            ("listen_address", s("127.0.0.1")),
            ("port_map", s("443=18443, 80=18080")),
        ]);
        let p = Proxy::from_node(&nd).unwrap();
        let gw = p.gateway.unwrap();
        assert_eq!(gw.listen_address, "127.0.0.1");
        assert_eq!((gw.listen_port(443), gw.listen_port(80)), (18443, 18080));
        assert_eq!(gw.listen_port(8443), 8443);
        assert_eq!(p.app_port, 0);
        assert_eq!(gw.endpoint_address, None);
        let mut registering = nd.clone();
        if let Some(md) = registering.metadata.as_mut() {
            md.fields.insert("endpoint_address".into(), s("127.0.0.9"));
        }
        let gw = Proxy::from_node(&registering).unwrap().gateway.unwrap();
        assert_eq!(gw.endpoint_address.as_deref(), Some("127.0.0.9"));
        let bad = node(vec![("gateway", s("true")), ("port_map", s("443=x"))]);
        assert!(matches!(
            Proxy::from_node(&bad),
            Err(NodeError::BadPort {
                key: "port_map",
                ..
            })
        ));
        // Its stats port is known (so no server port is put on it), and
        // may not be its admin port.
        let mut stats = nd.clone();
        if let Some(md) = stats.metadata.as_mut() {
            md.fields.insert("stats_port".into(), n(15090.0));
        }
        assert_eq!(Proxy::from_node(&stats).unwrap().stats_port, Some(15090));
        if let Some(md) = stats.metadata.as_mut() {
            md.fields.insert("admin_port".into(), n(15090.0));
        }
        let err = Proxy::from_node(&stats).unwrap_err().to_string();
        assert_eq!(err, "node metadata admin_port (127.0.0.1:15090) and stats_port (127.0.0.1:15090) cannot both listen");
    }

    #[test]
    fn empty_id_or_service_is_refused() {
        let mut nd = node(full());
        nd.id.clear();
        assert_eq!(Proxy::from_node(&nd), Err(NodeError::MissingId));

        let mut f = full();
        f.retain(|(k, _)| *k != "service");
        let mut nd = node(f);
        nd.cluster.clear();
        assert_eq!(
            Proxy::from_node(&nd),
            Err(NodeError::Missing { key: "service" })
        );
    }
}
