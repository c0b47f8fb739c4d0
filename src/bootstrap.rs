//! Envoy bootstrap files for sidecars (`trellis bootstrap`).
//!
//! The bootstrap holds only what Envoy needs before it can talk to the
//! control plane: who it is (node id, cluster and metadata, which
//! `registry::Proxy::from_node` reads back), where its admin interface
//! listens, and how to reach Trellis over ADS. Every listener, route,
//! cluster and endpoint then arrives over ADS, so the file never changes
//! when the mesh config does.
//!
//! The YAML is built from `serde_json` values rather than Envoy's protobuf
//! types: it is small, reads like the Envoy docs, and `envoy --mode validate`
//! is the judge of its correctness (see the tests).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::model::{shared_socket, Locality, Topology, CLUSTER_LABEL, NETWORK_LABEL};

pub mod stats;

/// Name of the static cluster that points at the control plane.
pub const XDS_CLUSTER: &str = "xds_cluster";

/// Everything one sidecar's bootstrap depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarSpec {
    /// Service name (`node.cluster`, metadata `service`).
    pub service: String,
    /// Namespace of the service.
    pub namespace: String,
    /// Workload labels, e.g. `version=v2`; subsets select on them.
    pub labels: BTreeMap<String, String>,
    /// Service account; `None` means the service name.
    pub service_account: Option<String>,
    /// The application's port on 127.0.0.1.
    pub app_port: u16,
    /// Port of the sidecar's inbound listener.
    pub inbound_port: u16,
    /// Address other sidecars reach this one on.
    pub inbound_address: String,
    /// Port of the sidecar's outbound listener.
    pub outbound_port: u16,
    /// Port of Envoy's admin interface (always on 127.0.0.1).
    pub admin_port: u16,
    /// The control plane's gRPC address, `HOST:PORT`.
    pub xds_addr: String,
    /// Further replicas of the control plane (`--xds-addr` given more than
    /// once): the xDS cluster lists them all, so a sidecar whose stream
    /// breaks opens the next one on another replica.
    pub more_xds_addrs: Vec<String>,
    /// Node id; `None` derives a deterministic one (see [`SidecarSpec::node_id`]).
    pub node_id: Option<String>,
    /// Workload token sent as `authorization: Bearer TOKEN` on the ADS
    /// stream (`trellis token`). `Debug` never shows it.
    pub token: Option<Token>,
    /// PEM file with the mesh root: when set, the ADS connection uses TLS
    /// and accepts only a server certificate that chains to it.
    pub xds_ca_file: Option<String>,
    /// ADS flavour: incremental (delta, the default) or state of the world.
    pub ads_mode: AdsMode,
    /// Port of the Prometheus stats listener (on the inbound address), which
    /// serves only `/stats/prometheus` and `/metrics`; `None`: no listener.
    pub stats_port: Option<u16>,
    /// `Some` for a gateway proxy: no app, no inbound or outbound
    /// listener; `app_port`, `inbound_port` and `outbound_port` are unused.
    pub gateway: Option<GatewaySpec>,
    /// Locality (Envoy's `node.locality`), network and mesh cluster (node
    /// metadata `network`, `cluster_name`); empty parts are taken from the
    /// topology labels (see [`SidecarSpec::topology`]).
    pub topology: Topology,
    /// Keep every per-cluster stat Envoy makes (`--all-cluster-stats`);
    /// by default the mesh clusters' stats that nothing in Trellis reads
    /// are not created (see [`stats::stats_config`]).
    pub all_cluster_stats: bool,
}

/// What makes a bootstrap a gateway's (`trellis bootstrap --gateway`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewaySpec {
    /// Address the Gateway servers' listeners bind.
    pub listen_address: String,
    /// Server port → port listened on (`443=8443`), for running without
    /// root; unmapped ports are listened on as they are.
    pub port_map: BTreeMap<u16, u16>,
    /// Node metadata `endpoint_address`: register the gateway as an
    /// endpoint of its service at this address.
    pub endpoint_address: Option<String>,
    /// The source address of every upstream connection (Envoy's
    /// `cluster_manager.upstream_bind_config`), e.g. an egress gateway's
    /// own address that external services and firewalls see.
    pub upstream_bind_address: Option<String>,
}

/// A workload token; `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which ADS protocol the sidecar speaks (`ads_config.api_type`).
///
/// Delta is the default: it passes every end-to-end test state of the world
/// passes (`make test` runs the integration suite in both modes), and a
/// change costs bytes in proportion to the change rather than to the mesh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdsMode {
    /// State of the world (`GRPC`): every response carries all resources of
    /// its type.
    Sotw,
    /// Incremental xDS (`DELTA_GRPC`): only changed and removed resources.
    #[default]
    Delta,
}

impl AdsMode {
    /// The bootstrap's `ads_config.api_type`.
    pub fn api_type(self) -> &'static str {
        match self {
            AdsMode::Sotw => "GRPC",
            AdsMode::Delta => "DELTA_GRPC",
        }
    }
}

impl std::str::FromStr for AdsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sotw" => Ok(AdsMode::Sotw),
            "delta" => Ok(AdsMode::Delta),
            _ => Err(format!("unknown ADS mode {s:?}: expected delta or sotw")),
        }
    }
}

impl SidecarSpec {
    /// A spec with the documented defaults for everything but the service
    /// name and app port.
    pub fn new(service: &str, app_port: u16) -> Self {
        SidecarSpec {
            service: service.to_string(),
            namespace: "default".to_string(),
            labels: BTreeMap::new(),
            service_account: None,
            app_port,
            inbound_port: 15006,
            inbound_address: "127.0.0.1".to_string(),
            outbound_port: 15001,
            admin_port: 15000,
            xds_addr: "127.0.0.1:15010".to_string(),
            more_xds_addrs: Vec::new(),
            node_id: None,
            token: None,
            xds_ca_file: None,
            ads_mode: AdsMode::default(),
            stats_port: None,
            gateway: None,
            topology: Topology::default(),
            all_cluster_stats: false,
        }
    }

    /// The sidecar's topology: the one given, else the one its labels
    /// (`topology.kubernetes.io/region`, `.../zone`,
    /// `topology.istio.io/subzone`, `topology.istio.io/network`,
    /// `topology.istio.io/cluster`) name. Both given and different is an
    /// error: Envoy and the registry would disagree on where it runs.
    pub fn topology(&self) -> Result<Topology, BootstrapError> {
        let from_labels = Topology {
            locality: Locality::from_labels(&self.labels),
            network: self.labels.get(NETWORK_LABEL).cloned().unwrap_or_default(),
            cluster: self.labels.get(CLUSTER_LABEL).cloned().unwrap_or_default(),
        };
        let given = &self.topology;
        let pick = |what: &'static str, given: String, labelled: String| {
            if given.is_empty() || labelled.is_empty() || given == labelled {
                Ok(if given.is_empty() { labelled } else { given })
            } else {
                Err(BootstrapError::Conflict {
                    what,
                    given,
                    labelled,
                })
            }
        };
        let locality = match (given.locality.is_empty(), from_labels.locality.is_empty()) {
            (true, _) => from_labels.locality,
            (false, true) => given.locality.clone(),
            (false, false) => {
                let (g, l) = (given.locality.to_string(), from_labels.locality.to_string());
                pick("locality", g, l)?;
                given.locality.clone()
            }
        };
        Ok(Topology {
            locality,
            network: pick("network", given.network.clone(), from_labels.network)?,
            cluster: pick("cluster", given.cluster.clone(), from_labels.cluster)?,
        })
    }

    /// The node id: the one given, else `SERVICE-INBOUNDPORT` (with the
    /// inbound address too when it is not loopback). Deterministic so that
    /// a restarted sidecar comes back as the same instance and cancels its
    /// pending deregistration instead of appearing twice.
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        if self.gateway.is_some() {
            // One gateway per admin port on a host.
            return format!("{}-{}", self.service, self.admin_port);
        }
        let loopback = self
            .inbound_address
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            format!("{}-{}", self.service, self.inbound_port)
        } else {
            format!(
                "{}-{}-{}",
                self.service, self.inbound_address, self.inbound_port
            )
        }
    }
}

/// Why a bootstrap could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `--xds-addr` is not `HOST:PORT`.
    #[error("invalid xDS address {0:?}: expected HOST:PORT")]
    XdsAddr(String),
    /// A required name is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A flag and a topology label disagree.
    #[error("the {what} {given:?} differs from the {labelled:?} the topology labels give")]
    Conflict {
        /// `locality`, `network` or `cluster`.
        what: &'static str,
        /// From the flag.
        given: String,
        /// From the labels.
        labelled: String,
    },
    /// Two of a sidecar's sockets on one address, named by their flags
    /// (`--outbound-port`, ...).
    #[error("{0}: each needs a port of its own")]
    SharedSocket(#[from] crate::config::model::SharedSocket),
    /// YAML encoding failed (not expected for these values).
    #[error("encoding the bootstrap as YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),
    /// JSON encoding failed (not expected for these values).
    #[error("encoding the bootstrap as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The top level of an Envoy `Bootstrap`, in the order people read it.
#[derive(Serialize)]
struct Bootstrap {
    node: Value,
    admin: Value,
    stats_config: Value,
    dynamic_resources: Value,
    static_resources: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_manager: Option<Value>,
}

/// Renders the bootstrap for `spec` as YAML.
pub fn render(spec: &SidecarSpec) -> Result<String, BootstrapError> {
    let header =
        "# Envoy bootstrap written by `trellis bootstrap`: everything else comes over ADS.\n";
    Ok(format!(
        "{header}{}",
        yaml_serde::to_string(&bootstrap(spec)?)?
    ))
}

/// The bootstrap for `spec` as a JSON value (the same content as [`render`]).
pub fn bootstrap_value(spec: &SidecarSpec) -> Result<Value, BootstrapError> {
    Ok(serde_json::to_value(bootstrap(spec)?)?)
}

fn bootstrap(spec: &SidecarSpec) -> Result<Bootstrap, BootstrapError> {
    if spec.service.trim().is_empty() {
        return Err(BootstrapError::Empty("service"));
    }
    if spec.namespace.trim().is_empty() {
        return Err(BootstrapError::Empty("namespace"));
    }
    let xds = (std::iter::once(&spec.xds_addr).chain(&spec.more_xds_addrs))
        .map(|a| split_host_port(a))
        .collect::<Result<Vec<_>, _>>()?;
    sockets_apart(spec)?;
    Ok(Bootstrap {
        node: node(spec, &spec.topology()?),
        admin: json!({ "address": socket_address("127.0.0.1", spec.admin_port) }),
        stats_config: stats::stats_config(spec),
        dynamic_resources: dynamic_resources(spec.token.as_ref(), spec.ads_mode),
        static_resources: static_resources(spec, &xds),
        cluster_manager: cluster_manager(spec),
    })
}

/// A proxy's app, listeners and admin interface each on an address of
/// their own (a gateway's admin and stats): two on one would leave the sidecar without its outbound or
/// inbound listener (Envoy refuses the listener update) or fail its start
/// (admin, stats). The inbound address may be the workload's own, where
/// the inbound port may equal the app's loopback port.
fn sockets_apart(spec: &SidecarSpec) -> Result<(), BootstrapError> {
    let (loopback, inbound) = ("127.0.0.1", spec.inbound_address.as_str());
    let mut sockets = vec![("--admin-port", loopback, spec.admin_port)];
    // A gateway has no app, inbound or outbound listener.
    if spec.gateway.is_none() {
        sockets.extend([
            ("--app-port", loopback, spec.app_port),
            ("--outbound-port", loopback, spec.outbound_port),
            ("--inbound-port", inbound, spec.inbound_port),
        ]);
    }
    sockets.extend(spec.stats_port.map(|p| ("--stats-port", inbound, p)));
    Ok(shared_socket(&sockets)?)
}

/// A gateway's `--upstream-bind-address`: Envoy binds every upstream
/// connection, of every cluster without its own, to it
/// (`ClusterManager.upstream_bind_config`).
fn cluster_manager(spec: &SidecarSpec) -> Option<Value> {
    let addr = spec.gateway.as_ref()?.upstream_bind_address.as_ref()?;
    Some(json!({ "upstream_bind_config": { "source_address": {
        "address": addr,
        "port_value": 0,
    } } }))
}

/// The control plane's cluster, plus the stats listener and its cluster to
/// the admin interface when a stats port is set.
fn static_resources(spec: &SidecarSpec, replicas: &[(String, u16)]) -> Value {
    let xds = xds_cluster(replicas, spec.xds_ca_file.as_deref());
    match spec.stats_port {
        Some(port) => json!({
            "listeners": [stats::stats_listener(spec, port)],
            "clusters": [xds, stats::stats_cluster(spec)],
        }),
        None => json!({ "clusters": [xds] }),
    }
}

/// The node identity; keys are the contract with `registry::Proxy::from_node`.
fn node(spec: &SidecarSpec, topology: &Topology) -> Value {
    let service_account = spec.service_account.as_deref().unwrap_or(&spec.service);
    let mut metadata = json!({
        "namespace": spec.namespace,
        "service": spec.service,
        "labels": spec.labels,
        "service_account": service_account,
    });
    // A gateway has no app and no sidecar listeners, only its port map.
    let own = match &spec.gateway {
        Some(gw) => {
            let port_map: Vec<String> = (gw.port_map.iter())
                .map(|(from, to)| format!("{from}={to}"))
                .collect();
            let mut own = json!({
                "gateway": "true",
                "listen_address": gw.listen_address,
                "port_map": port_map.join(","),
            });
            if let (Some(addr), Some(m)) = (&gw.endpoint_address, own.as_object_mut()) {
                m.insert("endpoint_address".into(), json!(addr));
            }
            own
        }
        None => json!({
            "app_port": spec.app_port,
            "inbound_address": spec.inbound_address,
            "inbound_port": spec.inbound_port,
            "outbound_port": spec.outbound_port,
        }),
    };
    // Where the control plane scrapes this sidecar's stats (the stats
    // listener binds the inbound address): the service graph reads it.
    if let (Some(port), Some(m)) = (spec.stats_port, metadata.as_object_mut()) {
        m.insert("stats_port".into(), json!(port));
    }
    // So that the control plane puts no listener on it.
    if let Some(m) = metadata.as_object_mut() {
        m.insert("admin_port".into(), json!(spec.admin_port));
    }
    if let (Some(m), Value::Object(own)) = (metadata.as_object_mut(), own) {
        m.extend(own);
    }
    if let Some(m) = metadata.as_object_mut() {
        for (key, value) in [
            ("network", &topology.network),
            ("cluster_name", &topology.cluster),
        ] {
            if !value.is_empty() {
                m.insert(key.into(), json!(value));
            }
        }
    }
    let mut node = json!({ "id": spec.node_id(), "cluster": spec.service, "metadata": metadata });
    // Envoy's own locality: it reports it, and the registry reads it back.
    let loc = &topology.locality;
    if let (false, Some(n)) = (loc.is_empty(), node.as_object_mut()) {
        let parts = [
            ("region", &loc.region),
            ("zone", &loc.zone),
            ("sub_zone", &loc.subzone),
        ];
        let set: serde_json::Map<String, Value> = (parts.into_iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        n.insert("locality".into(), Value::Object(set));
    }
    node
}

/// First delay before a sidecar re-opens a broken ADS stream; each further
/// try doubles it (with jitter) up to [`ADS_RETRY_MAX`].
pub const ADS_RETRY_BASE: &str = "0.25s";
/// The longest a sidecar waits between tries to re-open its ADS stream. The
/// control plane's restart grace period (`--restart-grace-period`) must be
/// longer than this.
pub const ADS_RETRY_MAX: &str = "5s";

/// Listeners and clusters come over one ADS stream (xDS spec: "Aggregated
/// Discovery Service"); routes and endpoints refer to ADS from the resources.
fn dynamic_resources(token: Option<&Token>, mode: AdsMode) -> Value {
    let ads = json!({ "ads": {}, "resource_api_version": "V3" });
    let mut grpc_service = json!({ "envoy_grpc": {
        "cluster_name": XDS_CLUSTER,
        // EnvoyGrpc.retry_policy is the backoff Envoy 1.40 honours for
        // re-opening an xDS stream (GrpcService.retry_policy is only for
        // data-plane gRPC clients). Envoy's default, 500 ms growing to 30 s,
        // leaves a sidecar up to 30 s away from a restarted control plane.
        "retry_policy": { "retry_back_off": {
            "base_interval": ADS_RETRY_BASE,
            "max_interval": ADS_RETRY_MAX,
        } },
    } });
    if let Some(Token(token)) = token {
        // GrpcService.initial_metadata: sent with every stream Envoy opens
        // (also on reconnect), where `trellis serve` checks it.
        grpc_service["initial_metadata"] =
            json!([{ "key": "authorization", "value": format!("Bearer {token}") }]);
    }
    json!({
        "ads_config": {
            // Delta: "Incremental xDS" in the xDS protocol spec.
            "api_type": mode.api_type(),
            "transport_api_version": "V3",
            "grpc_services": [grpc_service],
            // The server learns the node from the first request of a stream
            // and keys everything on it; later requests need not repeat it.
            "set_node_on_first_message_only": true,
        },
        "cds_config": ads,
        "lds_config": ads,
    })
}

/// The only static cluster: the control plane's replicas, over HTTP/2
/// (gRPC). Envoy picks a host per stream (round robin), so a stream that
/// broke with its replica re-opens on the next one.
fn xds_cluster(replicas: &[(String, u16)], ca_file: Option<&str>) -> Value {
    // An IP needs no resolver; a name is resolved and re-resolved by Envoy.
    let discovery = if replicas.iter().all(|(h, _)| h.parse::<IpAddr>().is_ok()) {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let endpoints: Vec<Value> = (replicas.iter())
        .map(|(host, port)| json!({ "endpoint": { "address": socket_address(host, *port) } }))
        .collect();
    let mut cluster = json!({
        "name": XDS_CLUSTER,
        "type": discovery,
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        },
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{ "lb_endpoints": endpoints }],
        },
    });
    if let Some(ca_file) = ca_file {
        cluster["transport_socket"] = xds_tls(replicas, ca_file);
    }
    cluster
}

/// TLS to the control plane, trusting only the mesh root in `ca_file`
/// (pinned: the system CAs are not consulted). Each replica's certificate
/// carries its xDS address (IP or DNS name) as a SAN, which is checked too
/// (any replica's address matches); gRPC needs ALPN `h2`.
fn xds_tls(replicas: &[(String, u16)], ca_file: &str) -> Value {
    let san_type = |host: &str| match host.parse::<IpAddr>() {
        Ok(_) => "IP_ADDRESS",
        Err(_) => "DNS",
    };
    let sans: Vec<Value> = (replicas.iter())
        .map(|(host, _)| json!({ "san_type": san_type(host), "matcher": { "exact": host } }))
        .collect();
    let mut common = json!({
        "alpn_protocols": ["h2"],
        "validation_context": {
            "trusted_ca": { "filename": ca_file },
            "match_typed_subject_alt_names": sans,
        },
    });
    let mut context = json!({ "common_tls_context": common.take() });
    // One SNI per cluster: only a single named replica gets one.
    if let [(host, _)] = replicas {
        if san_type(host) == "DNS" {
            context["sni"] = json!(host);
        }
    }
    context["@type"] =
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": context })
}

fn socket_address(address: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": address, "port_value": port } })
}

/// Splits `HOST:PORT` (or `[V6]:PORT`) into its parts.
fn split_host_port(addr: &str) -> Result<(String, u16), BootstrapError> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    let bad = || BootstrapError::XdsAddr(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || host.contains(':') {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests;
