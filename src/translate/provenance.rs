//! Provenance: which config objects, and which of their fields, each
//! generated Envoy resource came from, so that a proxy's rejection (a NACK's
//! `error_detail`) can be reported at `FILE:LINE:COL` like a validation
//! error.
//!
//! Built from a [`MeshConfig`] and its [`SourceIndex`] once per accepted
//! config, beside the shared translation and with the same names
//! (`outbound`, `HOST:PORT` virtual hosts, `outbound|PORT|SUBSET|HOST`
//! clusters, `inbound` and `outbound` listeners, a gateway's `http.PORT`
//! and `ADDRESS_PORT`, SDS secrets); it holds positions, not Envoy
//! resources, and no proxy has a copy of its own. What differs per proxy
//! (its namespace, the `EnvoyFilter` patches that changed its resources)
//! comes with the rejection ([`Rejecter`], from a [`PatchIndex`] of the
//! last build). Pure, like the rest of `translate`.

mod blame;
mod build;
mod listeners;
mod patches;

pub use patches::{PatchIndex, PatchRef, Rejecter};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::config::model::{MeshConfig, Origin};
use crate::config::SourceIndex;

/// A config object (or one of its fields) that produced part of an Envoy
/// resource, at the position of the responsible field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The object.
    pub origin: Arc<Origin>,
    /// Field path inside it (`spec.http[0].match[0].uri.regex`; empty for
    /// the whole object).
    pub path: String,
    /// 1-based line of the field.
    pub line: usize,
    /// 1-based column of the field.
    pub column: usize,
    /// What Envoy prints of this field when it rejects it (a regex, a
    /// header name, `seconds: N` for a duration), if anything.
    pub needle: Option<String>,
}

/// What one Envoy resource came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceProvenance {
    /// The objects that made it, the main one first (fallback of a blame).
    pub objects: Vec<Field>,
    /// Fields that set parts of it.
    pub fields: Vec<Field>,
}

/// What one virtual host of a route configuration came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtualHostProvenance {
    /// The objects that made it (the VirtualService, the ServiceEntry).
    pub objects: Vec<Field>,
    /// Its routes from config rules, in order.
    pub routes: Vec<RouteProvenance>,
}

/// What one route came from: a VirtualService `http` rule and match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteProvenance {
    /// The Envoy route name (`RULE[.MATCH]`, often empty).
    pub name: String,
    /// The rule (`spec.http[i]`) first, then the fields that set its parts.
    pub fields: Vec<Field>,
}

/// The port in names of a service no ServiceEntry declares (its sidecars
/// register its ports): `outbound|*||HOST`, `HOST:*`. Lookups and blames
/// read it as any port.
pub const ANY_PORT: &str = "*";

/// Where each generated Envoy resource came from, by type URL and name.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    resources: HashMap<(&'static str, String), ResourceProvenance>,
    /// Per route configuration name, per virtual host name.
    virtual_hosts: HashMap<String, HashMap<String, VirtualHostProvenance>>,
    /// Each `EnvoyFilter` patch by (`NAMESPACE/NAME`, index): the patch,
    /// and the strings of its value.
    patches: HashMap<(String, usize), ResourceProvenance>,
    /// The mesh's root namespace (its policies apply to every proxy).
    root_namespace: String,
}

/// The config object a proxy's rejection is blamed on, at the field
/// responsible (or the object's start when the field is not known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Blame {
    /// `VirtualService`, `DestinationRule`, ...
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The file it is written in.
    pub file: PathBuf,
    /// 1-based line of the responsible field.
    pub line: usize,
    /// 1-based column of the responsible field.
    pub column: usize,
    /// The Envoy resource that was rejected (`outbound`, a cluster name).
    pub resource: String,
    /// The responsible field's path (empty: the whole object).
    #[serde(default)]
    pub field: String,
    /// When the blame is an `EnvoyFilter` patch: the object that made the
    /// resource it patched, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_by: Option<Box<Blame>>,
}

impl Blame {
    fn new(field: &Field, resource: &str) -> Blame {
        let o = &field.origin;
        Blame {
            kind: o.kind.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            file: o.file.clone(),
            line: field.line,
            column: field.column,
            resource: resource.to_string(),
            field: field.path.clone(),
            generated_by: None,
        }
    }

    /// The `validate`-style report of a rejection by `proxy`:
    /// `FILE:LINE:COL: error: KIND/NAME: FIELD: Envoy rejected RESOURCE
    /// (rejected by proxy PROXY: MESSAGE)`.
    pub fn report(&self, proxy: &str, message: &str) -> String {
        let field = if self.field.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.field)
        };
        let over = match &self.generated_by {
            Some(g) => format!(
                ", patched over {}/{} at {}:{}:{}",
                g.kind,
                g.name,
                g.file.display(),
                g.line,
                g.column
            ),
            None => String::new(),
        };
        format!(
            "{}:{}:{}: error: {}/{}: {field}Envoy rejected {}{over} (rejected by proxy {proxy}: {})",
            self.file.display(),
            self.line,
            self.column,
            self.kind,
            self.name,
            self.resource,
            message.trim()
        )
    }
}

impl Provenance {
    /// The provenance of everything `translate` generates from `mesh`
    /// (shared resources: outbound routes, clusters and endpoints), with
    /// field positions from `source`.
    pub fn build(mesh: &MeshConfig, source: &SourceIndex) -> Provenance {
        build::build(mesh, source)
    }

    /// What the resource `name` of `type_url` came from.
    pub fn resource(&self, type_url: &str, name: &str) -> Option<&ResourceProvenance> {
        let key = blame::type_key(type_url)?;
        let get = |name: String| self.resources.get(&(key, name));
        get(name.to_string()).or_else(|| get(any_port_cluster(name)?))
    }

    /// What the virtual host `vhost` of route configuration `route_config`
    /// came from.
    pub fn virtual_host(&self, route_config: &str, vhost: &str) -> Option<&VirtualHostProvenance> {
        let hosts = self.virtual_hosts.get(route_config)?;
        hosts.get(vhost).or_else(|| {
            let (host, _) = vhost.rsplit_once(':')?;
            hosts.get(&format!("{host}:{ANY_PORT}"))
        })
    }

    /// What the route named `route` of a virtual host came from (the first
    /// of that name; route names need not be unique).
    pub fn route(&self, route_config: &str, vhost: &str, route: &str) -> Option<&RouteProvenance> {
        let vh = self.virtual_host(route_config, vhost)?;
        vh.routes.iter().find(|r| r.name == route)
    }

    /// Maps a proxy's rejection of a `type_url` response (Envoy's
    /// `error_detail` message) to the config object responsible: the
    /// resource Envoy names, narrowed to the virtual host and route it
    /// names, at the field whose text Envoy quotes; else that resource's
    /// main object. `None` when no resource of the message is known.
    pub fn blame(&self, type_url: &str, error_detail: &str) -> Option<Blame> {
        blame::blame(self, type_url, error_detail, &Rejecter::default())
    }

    /// [`Provenance::blame`] for a rejection by the proxy `who`: only
    /// policies that can apply to it, and an `EnvoyFilter` patch that
    /// changed the rejected resource (or whose value Envoy quotes) before
    /// the object that made it (then in [`Blame::generated_by`]).
    pub fn blame_for(&self, type_url: &str, error_detail: &str, who: &Rejecter) -> Option<Blame> {
        blame::blame(self, type_url, error_detail, who)
    }

    /// Resources known for one type, with their names, in name order.
    fn of_type(&self, key: &'static str) -> Vec<(&str, &ResourceProvenance)> {
        let mut all: Vec<_> = (self.resources.iter())
            .filter(move |((k, _), _)| *k == key)
            .map(|((_, n), r)| (n.as_str(), r))
            .collect();
        all.sort_by_key(|(n, _)| *n);
        all
    }

    /// Number of resources known (for logs and tests).
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// `outbound|PORT|SUBSET|HOST` → `outbound|*|SUBSET|HOST`.
fn any_port_cluster(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = name.split('|').collect();
    (parts.len() == 4).then_some(())?;
    parts[1] = ANY_PORT;
    Some(parts.join("|"))
}

#[cfg(test)]
mod listener_tests;
#[cfg(test)]
mod tests;
