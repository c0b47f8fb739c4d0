//! A proxy's rendered resources inlined into a static Envoy bootstrap,
//! since `envoy --mode validate` checks only a bootstrap: route
//! configurations go into their listeners' connection managers, load
//! assignments into their (then static) clusters, and SDS references point
//! at the bootstrap's static secrets.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::PreflightError;
use crate::registry::Proxy;
use crate::translate::WorkloadCerts;
use crate::xds::{Snapshot, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};

/// Which resources a bootstrap holds: all of them, or fewer to tell which
/// type Envoy rejects (it does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// Clusters (with their endpoints) and secrets only.
    Clusters,
    /// Those and the listeners, with empty route configurations.
    Listeners,
    /// Everything.
    All,
}

/// The bootstrap of `proxy` holding `part` of `snapshot`; certificate
/// files are replaced with `placeholder`.
pub(super) fn bootstrap(
    proxy: &Proxy,
    snapshot: &Snapshot,
    part: Part,
    placeholder: &WorkloadCerts,
) -> Result<Value, PreflightError> {
    let routes: BTreeMap<String, Value> = resources(snapshot, &ROUTE_TYPE)?
        .into_iter()
        .map(|r| (str_of(&r, "name"), r))
        .collect();
    let endpoints: BTreeMap<String, Value> = resources(snapshot, &ENDPOINT_TYPE)?
        .into_iter()
        .map(|c| (str_of(&c, "cluster_name"), c))
        .collect();
    let clusters: Vec<Value> = resources(snapshot, &CLUSTER_TYPE)?
        .into_iter()
        .map(|c| static_cluster(c, &endpoints))
        .collect();
    let mut listeners = Vec::new();
    if part != Part::Clusters {
        for mut l in resources(snapshot, &LISTENER_TYPE)? {
            inline_routes(&mut l, &routes, part == Part::All);
            listeners.push(l);
        }
    }
    let mut out = json!({
        "node": { "id": proxy.id, "cluster": proxy.service },
        "static_resources": {
            "clusters": clusters,
            "listeners": listeners,
            "secrets": resources(snapshot, &SECRET_TYPE)?,
        },
    });
    strip_sds_sources(&mut out);
    inline_cert_files(&mut out, placeholder);
    Ok(out)
}

/// Every resource of a type as JSON, without its `@type`.
fn resources(snapshot: &Snapshot, url: &str) -> Result<Vec<Value>, PreflightError> {
    let items = snapshot.resources(url).items();
    let mut out = Vec::with_capacity(items.len());
    for (name, any) in items {
        let mut v = crate::envoy_json::to_json(any).map_err(|e| PreflightError::Render {
            resource: name.clone(),
            message: e.to_string(),
        })?;
        if let Some(m) = v.as_object_mut() {
            m.remove("@type");
        }
        out.push(v);
    }
    Ok(out)
}

/// An EDS cluster as a static one holding its load assignment (an empty
/// one when the snapshot has none, as Envoy would wait for).
fn static_cluster(mut cluster: Value, endpoints: &BTreeMap<String, Value>) -> Value {
    let name = str_of(&cluster, "name");
    let Some(m) = cluster.as_object_mut() else {
        return cluster;
    };
    let Some(eds) = m.remove("eds_cluster_config") else {
        return cluster;
    };
    let service = eds["service_name"]
        .as_str()
        .map_or(name.clone(), str::to_string);
    let mut cla = endpoints
        .get(&service)
        .cloned()
        .unwrap_or_else(|| json!({ "cluster_name": service }));
    cla["cluster_name"] = Value::String(name);
    m.insert("type".into(), Value::String("STATIC".into()));
    m.insert("load_assignment".into(), cla);
    cluster
}

/// Replaces every `rds` reference with its route configuration (`full`),
/// or with an empty one of the same name.
fn inline_routes(v: &mut Value, routes: &BTreeMap<String, Value>, full: bool) {
    match v {
        Value::Object(m) => {
            if let Some(rds) = m.remove("rds") {
                let name = str_of(&rds, "route_config_name");
                let config = match routes.get(&name) {
                    Some(r) if full => r.clone(),
                    _ => json!({ "name": name }),
                };
                m.insert("route_config".into(), config);
            }
            m.values_mut().for_each(|x| inline_routes(x, routes, full));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| inline_routes(x, routes, full)),
        _ => {}
    }
}

/// SDS references without a config source name static secrets.
fn strip_sds_sources(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("sds_config");
            m.values_mut().for_each(strip_sds_sources);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_sds_sources),
        _ => {}
    }
}

/// Certificate and key files (a Gateway's `serverCertificate`,
/// `privateKey`, `caCertificates`) live on the gateway's host, not where
/// the check runs: each becomes the placeholder, inline, so that Envoy
/// checks everything else about the TLS context.
fn inline_cert_files(v: &mut Value, placeholder: &WorkloadCerts) {
    match v {
        Value::Object(m) => {
            for (key, pem) in [
                ("certificate_chain", &placeholder.cert_chain_pem),
                ("private_key", &placeholder.key_pem),
                ("trusted_ca", &placeholder.trust_bundle_pem),
            ] {
                if let Some(source) = m.get_mut(key) {
                    if source.get("filename").is_some() {
                        *source = json!({ "inline_string": pem });
                    }
                }
            }
            m.values_mut()
                .for_each(|x| inline_cert_files(x, placeholder));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| inline_cert_files(x, placeholder)),
        _ => {}
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}
