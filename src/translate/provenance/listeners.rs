//! Provenance of what a proxy gets besides the outbound routes and
//! clusters: listeners and their filters (the policies that shape them),
//! a gateway's `http.PORT` route configurations, SDS secrets, and the
//! `EnvoyFilter` patches that may change any of these.
//!
//! Listeners are named alike on every sidecar (`inbound`, `outbound`,
//! a Sidecar ingress port's `inbound_PORT`), so
//! each records every policy that may shape it, with every string it
//! wrote (what Envoy quotes when it rejects a filter); a blame narrows
//! them to the rejecting proxy's namespace and the root namespace.

use std::sync::Arc;

use super::build::{locator, rule_routes, Locator};
use super::{Field, Provenance, ResourceProvenance, VirtualHostProvenance, ANY_PORT};
use crate::config::model::{DestinationRule, MeshConfig, Origin, TlsSource};
use crate::config::SourceIndex;
use crate::translate::gateway::{credential_secret_names, route_name};
use crate::translate::ingress::listener_name;
use crate::translate::{INBOUND_LISTENER, OUTBOUND_LISTENER, ROOT_CA_SECRET, WORKLOAD_SECRET};

/// Kinds that apply per namespace (their own, or every one from the root
/// namespace): a blame for a proxy keeps only those that can apply to it.
pub(super) const POLICY_KINDS: [&str; 6] = [
    "PeerAuthentication",
    "AuthorizationPolicy",
    "RequestAuthentication",
    "Telemetry",
    "RateLimit",
    "Sidecar",
];

/// A whole object and the strings written under `under`.
struct Written {
    object: Field,
    strings: Vec<Field>,
}

fn written(source: &SourceIndex, origin: &Origin, under: &str) -> Written {
    let at = locator(source, origin);
    Written {
        object: at.field("", None),
        strings: strings(&at, source, origin, under),
    }
}

/// The part of `origin` at `path` (a server, an ingress entry) and the
/// strings written under it.
fn part(at: &Locator<'_>, source: &SourceIndex, origin: &Origin, path: &str) -> Written {
    Written {
        object: at.field(path, None),
        strings: strings(at, source, origin, path),
    }
}

/// Every string under `under` of `origin`, as a field Envoy may quote.
fn strings(at: &Locator<'_>, source: &SourceIndex, origin: &Origin, under: &str) -> Vec<Field> {
    (source.strings(origin, under).into_iter())
        .map(|(path, value)| at.field(&path, Some(value)))
        .collect()
}

/// Adds `parts` to the resource `name` of type `key`.
fn add(out: &mut Provenance, key: &'static str, name: String, parts: &[&Written]) {
    let r = out.resources.entry((key, name)).or_default();
    for w in parts {
        r.objects.push(w.object.clone());
        r.fields.extend(w.strings.iter().cloned());
    }
}

/// Listeners, gateway routes, secrets and `EnvoyFilter` patches.
pub(super) fn build(out: &mut Provenance, mesh: &MeshConfig, source: &SourceIndex) {
    let peer: Vec<Written> = (mesh.peer_authentications.iter())
        .map(|p| written(source, &p.origin, "spec"))
        .collect();
    let mut http: Vec<Written> = Vec::new();
    http.extend((mesh.authorization_policies.iter()).map(|p| written(source, &p.origin, "spec")));
    http.extend((mesh.request_authentications.iter()).map(|p| written(source, &p.origin, "spec")));
    http.extend((mesh.telemetries.iter()).map(|t| written(source, &t.origin, "spec")));
    http.extend((mesh.rate_limits.iter()).map(|r| written(source, &r.origin, "spec")));
    let sidecars: Vec<(&_, Written)> = (mesh.sidecars.iter())
        .filter(|s| s.origin.line > 0)
        .map(|s| (s, written(source, &s.origin, "spec")))
        .collect();
    let inbound: Vec<&Written> = peer.iter().chain(&http).collect();
    add(out, "lds", INBOUND_LISTENER.to_string(), &inbound);
    let mut outbound: Vec<&Written> = http.iter().collect();
    outbound.extend(sidecars.iter().map(|(_, w)| w));
    add(out, "lds", OUTBOUND_LISTENER.to_string(), &outbound);
    let l4: Vec<Written> = (mesh.virtual_services.values())
        .filter(|vs| !vs.tcp.is_empty() || !vs.tls.is_empty())
        .flat_map(|vs| ["spec.tcp", "spec.tls"].map(|under| written(source, &vs.origin, under)))
        .collect();
    // A Sidecar's ingress listeners (`inbound_PORT`): the entry, and the
    // policies that shape every inbound listener.
    for (scope, _) in &sidecars {
        let at = locator(source, &scope.origin);
        for (i, port) in scope.ingress.iter().enumerate() {
            let entry = part(&at, source, &scope.origin, &format!("spec.ingress[{i}]"));
            let mut parts = vec![&entry];
            parts.extend(inbound.iter().copied());
            add(out, "lds", listener_name(port.number), &parts);
        }
    }
    for (scope, w) in &sidecars {
        for port in &scope.ports {
            let mut parts = vec![w];
            parts.extend(&l4);
            add(out, "lds", format!("{}_{}", port.bind, port.number), &parts);
        }
    }
    gateways(out, mesh, source, &http);
    secrets(out, mesh, source);
    super::patches::build(out, mesh, source);
}

/// A gateway's listeners (`ADDRESS_PORT`, any address) and `http.PORT`
/// route configurations: its servers, the VirtualServices bound to them
/// and the HTTP policies its filters come from.
fn gateways(out: &mut Provenance, mesh: &MeshConfig, source: &SourceIndex, http: &[Written]) {
    for gw in &mesh.gateways {
        let at = locator(source, &gw.origin);
        let bound: Vec<_> = (mesh.gateway_virtual_services.iter())
            .filter(|vs| vs.binds_gateway(&gw.qualified()))
            .collect();
        for (k, server) in gw.servers.iter().enumerate() {
            let server_part = part(&at, source, &gw.origin, &format!("spec.servers[{k}]"));
            let l4: Vec<Written> = (bound.iter())
                .flat_map(|vs| {
                    ["spec.tcp", "spec.tls"].map(|under| written(source, &vs.origin, under))
                })
                .collect();
            let mut parts = vec![&server_part];
            parts.extend(&l4);
            parts.extend(http);
            let listener = format!("{ANY_PORT}_{}", server.port);
            add(out, "lds", listener, &parts);
            gateway_routes(out, source, (&bound, &server_part.object), server.port);
        }
    }
}

/// The virtual hosts (`NAMESPACE/NAME:PORT`) of `http.PORT`: one per bound
/// VirtualService with HTTP rules.
fn gateway_routes(
    out: &mut Provenance,
    source: &SourceIndex,
    (bound, server): (&[&Arc<crate::config::model::VirtualService>], &Field),
    port: u16,
) {
    let config = route_name(port);
    out.resources.entry(("rds", config.clone())).or_default();
    let hosts = out.virtual_hosts.entry(config).or_default();
    for vs in bound.iter().filter(|vs| !vs.http.is_empty()) {
        let at = locator(source, &vs.origin);
        let name = format!("{}/{}:{port}", vs.origin.namespace, vs.origin.name);
        let vhost = hosts.entry(name).or_insert_with(|| {
            let mut vhost = VirtualHostProvenance::default();
            vhost.objects.push(at.field("spec.gateways", None));
            for (i, rule) in vs.http.iter().enumerate() {
                vhost.routes.extend(rule_routes(&at, i, rule));
            }
            vhost
        });
        vhost.objects.push(server.clone());
    }
}

/// Secrets: a gateway credential's (`kubernetes://NAME`, `-cacert`) come
/// from the servers that name it; the workload secrets from the CA, whose
/// settings the `Mesh` resource holds.
fn secrets(out: &mut Provenance, mesh: &MeshConfig, source: &SourceIndex) {
    for gw in &mesh.gateways {
        let at = locator(source, &gw.origin);
        for (k, server) in gw.servers.iter().enumerate() {
            let tls = server.tls.as_ref().and_then(|t| t.source.as_ref());
            let Some(TlsSource::Credential(name)) = tls else {
                continue;
            };
            let field = at.field(
                &format!("spec.servers[{k}].tls.credentialName"),
                Some(name.clone()),
            );
            let (cert, ca) = credential_secret_names(name);
            for secret in [cert, ca] {
                let r = out.resources.entry(("sds", secret)).or_default();
                r.objects.push(field.clone());
                r.fields.push(field.clone());
            }
        }
    }
    for dr in mesh.destination_rules.values() {
        client_credentials(out, dr, source);
    }
    if let Some(origin) = &mesh.mesh.origin {
        let object = locator(source, origin).field("", None);
        for secret in [WORKLOAD_SECRET, ROOT_CA_SECRET] {
            out.resources.insert(
                ("sds", secret.to_string()),
                ResourceProvenance {
                    objects: vec![object.clone()],
                    fields: Vec::new(),
                },
            );
        }
    }
}

/// A DestinationRule's client credentials (`tls.credentialName`, SIMPLE or
/// MUTUAL origination): the secrets its clusters fetch come from the field
/// that names them. Port-level settings are keyed by port in the model, so
/// those point at the rule with the name as the value to find.
fn client_credentials(out: &mut Provenance, dr: &DestinationRule, source: &SourceIndex) {
    let at = locator(source, &dr.origin);
    let top = dr
        .traffic_policy
        .iter()
        .map(|tp| ("spec.trafficPolicy", tp));
    let subsets = (dr.subsets.iter().enumerate())
        .filter_map(|(i, s)| Some((i, s.traffic_policy.as_ref()?)))
        .map(|(i, tp)| (format!("spec.subsets[{i}].trafficPolicy"), tp));
    let policies = top.map(|(p, tp)| (p.to_string(), tp)).chain(subsets);
    for (path, tp) in policies {
        let own = tp.tls.as_ref().and_then(|t| t.credential_name.as_deref());
        let named = own.map(|n| (format!("{path}.tls.credentialName"), n));
        let ports = (tp.port_level.values())
            .filter_map(|p| p.tls.as_ref()?.credential_name.as_deref())
            .map(|n| (String::new(), n));
        for (field_path, name) in named.into_iter().chain(ports) {
            let field = at.field(&field_path, Some(name.to_string()));
            let (cert, ca) = credential_secret_names(name);
            for secret in [cert, ca] {
                let r = out.resources.entry(("sds", secret)).or_default();
                r.objects.push(field.clone());
                r.fields.push(field.clone());
            }
        }
    }
}
