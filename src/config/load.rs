//! Documents → converted resources: kind dispatch, serde with paths.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use yaml_serde::Value;

use super::convert::{self, Cx, DestRef, DocInfo};
use super::diag::Diagnostic;
use super::model::{AuthorizationPolicy, MeshSettings, PeerAuthentication};
use super::model::{DestinationRule, Host, Service, VirtualService, WorkloadEntry};

use super::raw::{self, destination_rule, service_entry, virtual_service};
use super::raw::{authorization_policy, peer_authentication, request_authentication};
use super::yaml::{self, YamlDoc};

/// The kinds Trellis reads.
#[derive(Debug, Clone, Copy)]
enum Kind {
    ServiceEntry,
    /// Kubernetes' core `v1 Service`.
    KubeService,
    WorkloadEntry,
    VirtualService,
    DestinationRule,
    AuthorizationPolicy,
    PeerAuthentication,
    RequestAuthentication,
    Mesh,
    Telemetry,
    Sidecar,
    Gateway,
    RateLimit,
    EnvoyFilter,
    RolloutPolicy,
    /// Gateway API (`gateway.networking.k8s.io`) kinds.
    KubeGateway,
    HttpRoute,
    GrpcRoute,
    ReferenceGrant,
}

/// Everything read so far, before the cross-resource checks.
#[derive(Default, Clone)]
pub(crate) struct Loader {
    pub diags: Vec<Diagnostic>,
    /// Warnings found while converting (deprecated fields).
    pub warnings: Vec<Diagnostic>,
    pub refs: Vec<DestRef>,
    /// Every resource with a kind and name, in load order (for duplicates).
    pub resources: Vec<Arc<DocInfo>>,
    pub services: Vec<(Arc<DocInfo>, String, Service)>,
    pub workload_entries: Vec<WorkloadEntry>,
    pub virtual_services: Vec<(Arc<DocInfo>, Vec<String>, VirtualService)>,
    /// Delegate VirtualServices (no hosts).
    pub delegates: Vec<(Arc<DocInfo>, VirtualService)>,
    /// Root rules that delegate, by the root's document.
    pub delegations: Vec<(Arc<DocInfo>, convert::Delegation)>,
    pub destination_rules: Vec<(Arc<DocInfo>, DestinationRule)>,
    pub peer_authentications: Vec<(Arc<DocInfo>, PeerAuthentication)>,
    pub meshes: Vec<(Arc<DocInfo>, MeshSettings)>,
    pub authorization_policies: Vec<AuthorizationPolicy>,
    pub request_authentications: Vec<super::model::RequestAuthentication>,
    pub telemetries: Vec<(Arc<DocInfo>, super::model::Telemetry)>,
    pub sidecars: Vec<super::model::SidecarScope>,
    pub gateways: Vec<(Arc<DocInfo>, super::model::Gateway)>,
    pub rate_limits: Vec<(Arc<DocInfo>, super::model::RateLimit)>,
    pub envoy_filters: Vec<super::model::EnvoyFilter>,
    pub rollout_policies: Vec<(Arc<DocInfo>, super::model::RolloutPolicy)>,
    /// Gateways named by VirtualServices: document, path, `NAMESPACE/NAME`.
    pub gateway_refs: Vec<(Arc<DocInfo>, String, String)>,
    /// Hosts of resources that failed to parse (not checked further).
    pub salvaged_hosts: BTreeSet<Host>,
    /// Gateway API: Gateways as routes see them, routes before
    /// attachment, ReferenceGrants, and references into other namespaces.
    pub gateway_api: GatewayApi,
    /// Every non-empty document read, in order: the file's part of the
    /// [`SourceIndex`](super::SourceIndex). Not merged: the index keeps it
    /// per file.
    pub docs: Vec<Arc<DocInfo>>,
}

/// What the Gateway API kinds leave for the cross-resource checks.
#[derive(Default, Clone)]
pub(crate) struct GatewayApi {
    pub gateways: Vec<(Arc<DocInfo>, convert::gateway_api::KubeGateway)>,
    pub routes: Vec<(Arc<DocInfo>, convert::gateway_api::KubeRoute)>,
    pub grants: Vec<convert::gateway_api::Grant>,
    pub cross: Vec<(Arc<DocInfo>, convert::gateway_api::CrossRef)>,
}

impl Loader {
    /// Appends what `other` read (the next file, loaded on its own): the
    /// same as reading that file into `self`, since reading only appends.
    pub(crate) fn merge(&mut self, other: Loader) {
        self.diags.extend(other.diags);
        self.warnings.extend(other.warnings);
        self.refs.extend(other.refs);
        self.resources.extend(other.resources);
        self.services.extend(other.services);
        self.workload_entries.extend(other.workload_entries);
        self.virtual_services.extend(other.virtual_services);
        self.delegates.extend(other.delegates);
        self.delegations.extend(other.delegations);
        self.destination_rules.extend(other.destination_rules);
        self.peer_authentications.extend(other.peer_authentications);
        self.meshes.extend(other.meshes);
        self.authorization_policies
            .extend(other.authorization_policies);
        self.request_authentications
            .extend(other.request_authentications);
        self.telemetries.extend(other.telemetries);
        self.sidecars.extend(other.sidecars);
        self.gateways.extend(other.gateways);
        self.rate_limits.extend(other.rate_limits);
        self.envoy_filters.extend(other.envoy_filters);
        self.rollout_policies.extend(other.rollout_policies);
        self.gateway_refs.extend(other.gateway_refs);
        self.salvaged_hosts.extend(other.salvaged_hosts);
        let api = other.gateway_api;
        self.gateway_api.gateways.extend(api.gateways);
        self.gateway_api.routes.extend(api.routes);
        self.gateway_api.grants.extend(api.grants);
        self.gateway_api.cross.extend(api.cross);
    }

    /// Reads every document of one file.
    pub(crate) fn file(&mut self, file: &Path, text: &str) {
        let (docs, error) = yaml::parse(text);
        for doc in docs {
            self.document(file, doc);
        }
        if let Some(e) = error {
            self.diags.push(Diagnostic {
                file: file.to_path_buf(),
                line: e.pos.0,
                col: e.pos.1,
                kind: "-".into(),
                name: "-".into(),
                field: "-".into(),
                message: e.message,
            });
        }
    }

    fn document(&mut self, file: &Path, doc: YamlDoc) {
        if doc.value.is_null() {
            return; // an empty document (`---` followed by nothing)
        }
        let info = Arc::new(doc_info(file, &doc.value, doc.positions));
        self.docs.push(Arc::clone(&info));
        for (path, pos) in &doc.duplicate_keys {
            let key = path.rsplit('.').next().unwrap_or(path);
            let msg = format!("duplicate key `{key}` in one mapping");
            self.diags.push(info.diagnostic_at(*pos, path, msg));
        }
        let api_version = doc.value.get("apiVersion").and_then(Value::as_str);
        let api_version = api_version.unwrap_or_default();
        match classify(api_version, &info.kind, doc.value.is_mapping()) {
            Ok(kind) => self.resource(kind, &info, doc.value),
            Err((path, msg)) => self.diags.push(info.diagnostic(path, msg)),
        }
    }

    /// Parses and converts one resource of a known kind.
    fn resource(&mut self, kind: Kind, info: &Arc<DocInfo>, value: Value) {
        match kind {
            Kind::ServiceEntry => {
                if let Some(spec) = self.spec::<service_entry::ServiceEntry>(info, value) {
                    let services = convert::service_entry(&mut self.cx(info), &spec);
                    let with_doc = services.into_iter().map(|(p, s)| (info.clone(), p, s));
                    self.services.extend(with_doc);
                }
            }
            Kind::KubeService => {
                type Spec = raw::kube_service::KubeService;
                if let Some(spec) = self.spec::<Spec>(info, value) {
                    let services = convert::kube_service(&mut self.cx(info), &spec);
                    let with_doc = services.into_iter().map(|(p, s)| (info.clone(), p, s));
                    self.services.extend(with_doc);
                }
            }
            Kind::WorkloadEntry => {
                if let Some(spec) = self.spec::<service_entry::WorkloadEntry>(info, value) {
                    let we = convert::workload_entry(&mut self.cx(info), &spec);
                    self.workload_entries.extend(we);
                }
            }
            Kind::VirtualService => {
                if let Some(spec) = self.spec::<virtual_service::VirtualService>(info, value) {
                    let c = convert::virtual_service(&mut self.cx(info), &spec);
                    let refs = c
                        .gateway_refs
                        .into_iter()
                        .map(|(p, g)| (info.clone(), p, g));
                    self.gateway_refs.extend(refs);
                    let delegations = c.delegations.into_iter().map(|d| (info.clone(), d));
                    self.delegations.extend(delegations);
                    if c.is_delegate {
                        self.delegates.push((info.clone(), c.vs));
                    } else {
                        self.virtual_services.push((info.clone(), c.paths, c.vs));
                    }
                }
            }
            Kind::DestinationRule => {
                if let Some(spec) = self.spec::<destination_rule::DestinationRule>(info, value) {
                    let dr = convert::destination_rule(&mut self.cx(info), &spec);
                    self.destination_rules
                        .extend(dr.map(|dr| (info.clone(), dr)));
                }
            }
            Kind::AuthorizationPolicy => {
                let dry_run = convert::dry_run_annotation(&value).cloned();
                type Spec = authorization_policy::AuthorizationPolicy;
                if let Some(spec) = self.spec::<Spec>(info, value) {
                    let ap =
                        convert::authorization_policy(&mut self.cx(info), &spec, dry_run.as_ref());
                    self.authorization_policies.extend(ap);
                }
            }
            Kind::RequestAuthentication => {
                type Spec = request_authentication::RequestAuthentication;
                if let Some(spec) = self.spec::<Spec>(info, value) {
                    let ra = convert::request_authentication(&mut self.cx(info), &spec);
                    self.request_authentications.extend(ra);
                }
            }
            Kind::PeerAuthentication => {
                type Spec = peer_authentication::PeerAuthentication;
                if let Some(spec) = self.spec::<Spec>(info, value) {
                    let pa = convert::peer_authentication(&mut self.cx(info), &spec);
                    self.peer_authentications
                        .extend(pa.map(|pa| (info.clone(), pa)));
                }
            }
            Kind::Mesh => {
                if let Some(spec) = self.spec::<peer_authentication::Mesh>(info, value) {
                    let mesh = convert::mesh(&mut self.cx(info), &spec);
                    self.meshes.extend(mesh.map(|m| (info.clone(), m)));
                }
            }
            Kind::Telemetry => {
                if let Some(spec) = self.spec::<raw::telemetry::Telemetry>(info, value) {
                    let t = convert::telemetry(&mut self.cx(info), &spec);
                    self.telemetries.extend(t.map(|t| (info.clone(), t)));
                }
            }
            Kind::Sidecar => {
                if let Some(spec) = self.spec::<raw::sidecar::Sidecar>(info, value) {
                    let s = convert::sidecar(&mut self.cx(info), &spec);
                    self.sidecars.extend(s);
                }
            }
            Kind::Gateway => {
                if let Some(spec) = self.spec::<raw::gateway::Gateway>(info, value) {
                    let g = convert::gateway(&mut self.cx(info), &spec);
                    self.gateways.extend(g.map(|g| (info.clone(), g)));
                }
            }
            Kind::RateLimit => {
                if let Some(spec) = self.spec::<raw::rate_limit::RateLimit>(info, value) {
                    let rl = convert::rate_limit(&mut self.cx(info), &spec);
                    self.rate_limits.extend(rl.map(|r| (info.clone(), r)));
                }
            }
            Kind::EnvoyFilter => {
                if let Some(spec) = self.spec::<raw::envoy_filter::EnvoyFilter>(info, value) {
                    let ef = convert::envoy_filter(&mut self.cx(info), &spec);
                    self.envoy_filters.extend(ef);
                }
            }
            Kind::KubeGateway | Kind::HttpRoute | Kind::GrpcRoute | Kind::ReferenceGrant => {
                self.gateway_api_resource(kind, info, value)
            }
            Kind::RolloutPolicy => {
                if let Some(spec) = self.spec::<raw::rollout::RolloutPolicy>(info, value) {
                    let rp = convert::rollout_policy(&mut self.cx(info), &spec);
                    self.rollout_policies.extend(rp.map(|r| (info.clone(), r)));
                }
            }
        }
    }

    /// Parses and converts one Gateway API resource.
    fn gateway_api_resource(&mut self, kind: Kind, info: &Arc<DocInfo>, value: Value) {
        use convert::gateway_api as api;
        use raw::gateway_api as spec;
        let cross = match kind {
            Kind::KubeGateway => {
                let Some(s) = self.spec::<spec::Gateway>(info, value) else {
                    return;
                };
                let Some(c) = api::kube_gateway(&mut self.cx(info), &s) else {
                    return;
                };
                self.gateways.push((info.clone(), c.gateway));
                self.gateway_api.gateways.push((info.clone(), c.info));
                c.cross
            }
            Kind::HttpRoute | Kind::GrpcRoute => {
                let stamp = (value.get("metadata"))
                    .and_then(|m| m.get("creationTimestamp"))
                    .cloned();
                let c = if matches!(kind, Kind::HttpRoute) {
                    let Some(s) = self.spec::<spec::Route<spec::HttpRule>>(info, value) else {
                        return;
                    };
                    api::http_route(&mut self.cx(info), &s)
                } else {
                    let Some(s) = self.spec::<spec::Route<spec::GrpcRule>>(info, value) else {
                        return;
                    };
                    api::grpc_route(&mut self.cx(info), &s)
                };
                let Some(mut c) = c else { return };
                c.route.created = api::creation_timestamp(&mut self.cx(info), stamp.as_ref());
                self.gateway_api.routes.push((info.clone(), c.route));
                c.cross
            }
            _ => {
                let Some(s) = self.spec::<spec::ReferenceGrant>(info, value) else {
                    return;
                };
                let grant = api::reference_grant(&mut self.cx(info), &s);
                self.gateway_api.grants.extend(grant);
                Vec::new()
            }
        };
        let cross = cross.into_iter().map(|c| (info.clone(), c));
        self.gateway_api.cross.extend(cross);
    }

    fn cx<'a>(&'a mut self, doc: &'a Arc<DocInfo>) -> Cx<'a> {
        Cx {
            doc,
            diags: &mut self.diags,
            refs: &mut self.refs,
            warnings: &mut self.warnings,
        }
    }

    /// Deserializes the whole resource (unknown fields and wrong types are
    /// reported at their path), checks its metadata and returns its spec.
    fn spec<S: DeserializeOwned>(&mut self, info: &Arc<DocInfo>, value: Value) -> Option<S> {
        let resource: raw::Resource<S> = match serde_path_to_error::deserialize(&value) {
            Ok(r) => r,
            Err(e) => {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                let message = serde_message(&e.inner().to_string());
                self.diags.push(info.diagnostic(&path, message));
                self.salvage_hosts(info, &value);
                return None;
            }
        };
        self.metadata(info, &resource.metadata);
        if resource.spec.is_none() {
            self.diags.push(info.diagnostic("spec", "spec is required"));
        }
        resource.spec
    }

    /// A resource that failed to parse still names its hosts, so that the
    /// resources referring to them get no second, misleading error.
    fn salvage_hosts(&mut self, info: &DocInfo, value: &Value) {
        let spec = value.get("spec");
        let hosts = spec
            .and_then(|s| s.get("hosts"))
            .and_then(Value::as_sequence);
        let mut written: Vec<&str> = hosts
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        written.extend(spec.and_then(|s| s.get("host")).and_then(Value::as_str));
        let canonical = written.iter().map(|h| Host::canonical(h, &info.namespace));
        self.salvaged_hosts.extend(canonical);
    }

    fn metadata(&mut self, info: &Arc<DocInfo>, meta: &raw::Metadata) {
        match meta.name.as_deref() {
            None | Some("") => self
                .diags
                .push(info.diagnostic("metadata", "metadata.name is required")),
            Some(name) if !convert::is_dns_subdomain(name) => {
                let msg = format!("name {name:?} is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.')");
                self.diags.push(info.diagnostic("metadata.name", msg));
            }
            Some(_) => self.resources.push(info.clone()),
        }
        if let Some(ns) = &meta.namespace {
            if !convert::is_dns_label(ns) {
                let msg = format!("namespace {ns:?} is not a valid DNS-1123 label");
                self.diags.push(info.diagnostic("metadata.namespace", msg));
            }
        }
    }
}

/// What locates a document's errors: kind, name and namespace as written
/// (best effort, before any parsing), the field positions, and the string
/// values NACK provenance may quote.
pub(crate) fn doc_info(file: &Path, value: &Value, positions: super::yaml::Positions) -> DocInfo {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let meta = |k: &str| text(value.get("metadata").and_then(|m| m.get(k)));
    let namespace = meta("namespace");
    let kind = text(value.get("kind"));
    DocInfo {
        file: file.to_path_buf(),
        strings: super::source::quoted_strings(&kind, value),
        kind,
        name: meta("name"),
        namespace: if namespace.is_empty() {
            "default".into()
        } else {
            namespace
        },
        positions,
    }
}

/// serde's messages name Rust types; users read YAML.
fn serde_message(msg: &str) -> String {
    let msg = msg
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected a list")
        .replace("unit value", "null (an empty value)");
    match msg.find("expected struct ") {
        Some(i) => format!("{}expected a mapping", &msg[..i]),
        None => msg,
    }
}

const NETWORKING: &str = "networking.istio.io";
const VERSIONS: &[&str] = &["v1alpha3", "v1beta1", "v1"];

/// Which kind a document is, or the error to report (path, message).
fn classify(api: &str, kind: &str, is_mapping: bool) -> Result<Kind, (&'static str, String)> {
    if !is_mapping {
        let msg = "a resource must be a mapping with apiVersion, kind, metadata and spec";
        return Err(("", msg.into()));
    }
    if api.is_empty() {
        let msg = "apiVersion is required (a string such as networking.istio.io/v1)";
        return Err(("apiVersion", msg.into()));
    }
    if kind.is_empty() {
        let msg = "kind is required (a string such as VirtualService)";
        return Err(("kind", msg.into()));
    }
    if api == "v1" {
        return kube_core(kind);
    }
    let (group, version) = api.split_once('/').unwrap_or((api, ""));
    if group == convert::gateway_api::GROUP {
        return gateway_api_kind(kind, version);
    }
    let Some(not_yet) = unsupported_kinds(group) else {
        let msg = format!(
            "unknown apiVersion {api:?}: Trellis reads {NETWORKING}/v1alpha3, v1beta1 and v1"
        );
        return Err(("apiVersion", msg));
    };
    if not_yet.contains(&kind) {
        return Err(("kind", format!("kind {kind} is not supported yet")));
    }
    let supported = match kind {
        "ServiceEntry" => Kind::ServiceEntry,
        "WorkloadEntry" => Kind::WorkloadEntry,
        "VirtualService" => Kind::VirtualService,
        "DestinationRule" => Kind::DestinationRule,
        "AuthorizationPolicy" => Kind::AuthorizationPolicy,
        "PeerAuthentication" => Kind::PeerAuthentication,
        "RequestAuthentication" => Kind::RequestAuthentication,
        "Mesh" => Kind::Mesh,
        "Telemetry" => Kind::Telemetry,
        "Sidecar" => Kind::Sidecar,
        "Gateway" => Kind::Gateway,
        "RateLimit" => Kind::RateLimit,
        "EnvoyFilter" => Kind::EnvoyFilter,
        "RolloutPolicy" => Kind::RolloutPolicy,
        _ => return Err(("kind", format!("unknown kind {kind:?} in {api}"))),
    };
    let (want_group, versions, serves) = api_of(supported);
    if group != want_group {
        return Err(("kind", format!("unknown kind {kind:?} in {api}")));
    }
    if !versions.contains(&version) {
        let msg = format!("unknown apiVersion {api:?}: {want_group} serves {serves}");
        return Err(("apiVersion", msg));
    }
    Ok(supported)
}

/// A Gateway API kind: Istio reads `Gateway`, `HTTPRoute` and `GRPCRoute`
/// in v1 and `HTTPRoute` in v1beta1 too; `ReferenceGrant` is v1beta1.
fn gateway_api_kind(kind: &str, version: &str) -> Result<Kind, (&'static str, String)> {
    let (supported, versions): (Kind, &[&str]) = match kind {
        "Gateway" => (Kind::KubeGateway, &["v1", "v1beta1"]),
        "HTTPRoute" => (Kind::HttpRoute, &["v1", "v1beta1"]),
        "GRPCRoute" => (Kind::GrpcRoute, &["v1"]),
        "ReferenceGrant" => (Kind::ReferenceGrant, &["v1beta1", "v1"]),
        "TCPRoute" | "TLSRoute" => {
            let msg = format!("kind {kind} is not supported yet: route a TCP or TLS listener with a VirtualService's `tcp` or `tls` rules bound to the Gateway (spec.gateways: [NAMESPACE/NAME])");
            return Err(("kind", msg));
        }
        "GatewayClass" => {
            let msg = "kind GatewayClass is not needed: Trellis implements the classes `istio` and `trellis`; name one in a Gateway's gatewayClassName";
            return Err(("kind", msg.into()));
        }
        _ => {
            let msg = format!("kind {kind} (gateway.networking.k8s.io) is not supported: Trellis reads Gateway, HTTPRoute, GRPCRoute and ReferenceGrant");
            return Err(("kind", msg));
        }
    };
    if !versions.contains(&version) {
        let msg = format!(
            "{kind} is read in gateway.networking.k8s.io/{}",
            versions.join(" and ")
        );
        return Err(("apiVersion", msg));
    }
    Ok(supported)
}

/// Kubernetes' core group (`apiVersion: v1`): a `Service` defines a mesh
/// service; the rest are Kubernetes' own business.
fn kube_core(kind: &str) -> Result<Kind, (&'static str, String)> {
    match kind {
        "Service" => Ok(Kind::KubeService),
        "Endpoints" | "Pod" => Err(("kind", format!("kind {kind} (v1) is Kubernetes' own view of instances: Trellis learns them from the sidecars that connect, and from WorkloadEntry resources"))),
        _ => Err(("kind", format!("kind {kind} (v1) carries no mesh config: of Kubernetes' core kinds Trellis reads Service only"))),
    }
}

const SECURITY: &str = "security.istio.io";
const TRELLIS: &str = "trellis.dev";
const TELEMETRY: &str = "telemetry.istio.io";

/// The API group of a kind, its versions, and how a message lists them.
fn api_of(kind: Kind) -> (&'static str, &'static [&'static str], &'static str) {
    match kind {
        Kind::AuthorizationPolicy | Kind::PeerAuthentication | Kind::RequestAuthentication => {
            (SECURITY, &["v1beta1", "v1"], "v1beta1 and v1")
        }
        Kind::Mesh | Kind::RateLimit | Kind::RolloutPolicy => (TRELLIS, &["v1alpha1"], "v1alpha1"),
        // Istio 1.22 serves Telemetry in v1 too, with the same schema.
        Kind::Telemetry => (TELEMETRY, &["v1alpha1", "v1"], "v1alpha1 and v1"),
        // Istio serves EnvoyFilter in v1alpha3 only.
        Kind::EnvoyFilter => (NETWORKING, &["v1alpha3"], "v1alpha3"),
        _ => (NETWORKING, VERSIONS, "v1alpha3, v1beta1 and v1"),
    }
}

/// Istio's kinds Trellis knows but does not support yet, by API group;
/// `None` for groups that are not Istio's.
fn unsupported_kinds(group: &str) -> Option<&'static [&'static str]> {
    Some(match group {
        NETWORKING => &["WorkloadGroup", "ProxyConfig"],
        SECURITY => &[],
        TELEMETRY => &[],
        TRELLIS => &[],
        "extensions.istio.io" => &["WasmPlugin"],
        _ => return None,
    })
}
