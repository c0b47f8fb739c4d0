//! Plain summaries and YAML diffs of one resource's change.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use similar::TextDiff;

use super::{Change, DiffError, ResourceChange};
use crate::admin::proxy_config::redact;
use crate::xds::Versioned;

/// Context lines around each hunk of a unified diff.
const CONTEXT: usize = 3;

/// `old` → `new` of resource `name` of `kind` shown: summaries and a
/// unified diff of both sides as YAML, key material redacted.
pub(super) fn resource_change(
    kind: &'static str,
    name: &str,
    old: &Option<Arc<Versioned>>,
    new: &Option<Arc<Versioned>>,
) -> Result<ResourceChange, DiffError> {
    let json = |a: &Option<Arc<Versioned>>| -> Result<Option<Value>, DiffError> {
        let Some(a) = a else { return Ok(None) };
        let mut v = crate::envoy_json::to_json(a.any()).map_err(|e| DiffError::Render {
            kind,
            name: name.to_string(),
            message: e.to_string(),
        })?;
        redact(&mut v);
        Ok(Some(v))
    };
    let (o, n) = (json(old)?, json(new)?);
    let change = match (&o, &n) {
        (None, _) => Change::Added,
        (_, None) => Change::Removed,
        _ => Change::Modified,
    };
    let summary = summarize(kind, name, o.as_ref(), n.as_ref());
    let diff = unified(kind, name, o.as_ref(), n.as_ref());
    Ok(ResourceChange {
        kind,
        name: name.to_string(),
        change,
        summary,
        diff,
    })
}

/// A unified diff of both sides as YAML (an absent side is empty).
pub(super) fn unified(kind: &str, name: &str, old: Option<&Value>, new: Option<&Value>) -> String {
    let yaml = |v: Option<&Value>| {
        v.map(|v| yaml_serde::to_string(v).unwrap_or_else(|e| format!("# not shown: {e}\n")))
            .unwrap_or_default()
    };
    let (a, b) = (yaml(old), yaml(new));
    let header = format!("{kind} {name}");
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(CONTEXT)
        .header(&format!("old {header}"), &format!("new {header}"))
        .to_string()
}

/// Plain lines saying what changed, most specific first.
pub(super) fn summarize(
    kind: &str,
    name: &str,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Vec<String> {
    let (old, new) = match (old, new) {
        (None, _) => return vec![format!("{kind} {name}: added")],
        (_, None) => return vec![format!("{kind} {name}: removed")],
        (Some(o), Some(n)) => (o, n),
    };
    let lines = match kind {
        "route" => route_config(old, new),
        "endpoints" => endpoints(name, old, new),
        _ => Vec::new(),
    };
    if !lines.is_empty() {
        return lines;
    }
    vec![format!("{kind} {name}: {}", fields(old, new).join(", "))]
}

/// Per virtual host: added, removed, or what changed in its routes.
fn route_config(old: &Value, new: &Value) -> Vec<String> {
    let hosts = |v: &Value| -> Vec<(String, Value)> {
        let list = v.get("virtual_hosts").and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .map(|h| (str_at(h, "name"), h.clone()))
            .collect()
    };
    let (a, b) = (hosts(old), hosts(new));
    let find =
        |l: &[(String, Value)], n: &str| l.iter().find(|(x, _)| x == n).map(|(_, v)| v.clone());
    let names: BTreeSet<&String> = a.iter().chain(&b).map(|(n, _)| n).collect();
    let mut out = Vec::new();
    for n in names {
        match (find(&a, n), find(&b, n)) {
            (None, Some(_)) => out.push(format!("route {n}: added")),
            (Some(_), None) => out.push(format!("route {n}: removed")),
            (Some(x), Some(y)) if x != y => {
                out.extend(
                    virtual_host(&x, &y)
                        .into_iter()
                        .map(|s| format!("route {n}: {s}")),
                );
            }
            _ => {}
        }
    }
    let (mut o, mut p) = (old.clone(), new.clone());
    for v in [&mut o, &mut p] {
        if let Some(m) = v.as_object_mut() {
            m.remove("virtual_hosts");
        }
    }
    if o != p {
        out.push(format!(
            "route config {}: {}",
            str_at(new, "name"),
            fields(&o, &p).join(", ")
        ));
    }
    out
}

/// What changed between two versions of a virtual host's routes.
fn virtual_host(old: &Value, new: &Value) -> Vec<String> {
    let routes = |v: &Value| {
        v.get("routes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (a, b) = (routes(old), routes(new));
    if a.len() != b.len() {
        return vec![format!("routes {} → {}", a.len(), b.len())];
    }
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(&b) {
        if x != y {
            out.extend(route(x, y));
        }
    }
    if out.is_empty() {
        out.push(fields(old, new).join(", "));
    }
    out
}

/// One route's weights, destinations, timeout and retries.
fn route(old: &Value, new: &Value) -> Vec<String> {
    let (ra, rb) = (&old["route"], &new["route"]);
    let mut out = Vec::new();
    let (wa, wb) = (weights(ra), weights(rb));
    let (da, db) = (destinations(ra), destinations(rb));
    if da != db {
        out.push(format!("destination {} → {}", da.join("/"), db.join("/")));
    }
    if wa != wb {
        out.push(format!("weights {} → {}", wa.join("/"), wb.join("/")));
    }
    for (field, label) in [("timeout", "timeout"), ("idle_timeout", "idle timeout")] {
        if ra[field] != rb[field] {
            out.push(format!(
                "{label} {} → {}",
                scalar(&ra[field]),
                scalar(&rb[field])
            ));
        }
    }
    if ra["retry_policy"] != rb["retry_policy"] {
        out.push(retries(&ra["retry_policy"], &rb["retry_policy"]));
    }
    let (mut x, mut y) = (old.clone(), new.clone());
    for v in [&mut x, &mut y] {
        if let Some(r) = v.get_mut("route").and_then(Value::as_object_mut) {
            for f in [
                "weighted_clusters",
                "cluster",
                "timeout",
                "idle_timeout",
                "retry_policy",
            ] {
                r.remove(f);
            }
        }
    }
    if x != y {
        out.push(fields(&x, &y).join(", "));
    }
    out
}

fn weights(route: &Value) -> Vec<String> {
    let list = route["weighted_clusters"]["clusters"].as_array();
    list.into_iter()
        .flatten()
        .map(|c| scalar(&c["weight"]))
        .collect()
}

fn destinations(route: &Value) -> Vec<String> {
    if let Some(c) = route["cluster"].as_str() {
        return vec![c.to_string()];
    }
    let list = route["weighted_clusters"]["clusters"].as_array();
    list.into_iter()
        .flatten()
        .map(|c| str_at(c, "name"))
        .collect()
}

fn retries(old: &Value, new: &Value) -> String {
    if old.is_null() || new.is_null() {
        let now = if new.is_null() { "removed" } else { "added" };
        return format!("retries {now}");
    }
    let mut parts = Vec::new();
    for (f, label) in [
        ("num_retries", "attempts"),
        ("per_try_timeout", "per-try timeout"),
        ("retry_on", "on"),
    ] {
        if old[f] != new[f] {
            parts.push(format!("{label} {} → {}", scalar(&old[f]), scalar(&new[f])));
        }
    }
    if parts.is_empty() {
        parts.push(fields(old, new).join(", "));
    }
    format!("retries {}", parts.join(", "))
}

/// Endpoint addresses added and removed (else which fields changed).
fn endpoints(name: &str, old: &Value, new: &Value) -> Vec<String> {
    let (a, b) = (addresses(old), addresses(new));
    let added: Vec<&String> = b.difference(&a).collect();
    let removed: Vec<&String> = a.difference(&b).collect();
    let mut out = Vec::new();
    let list = |l: Vec<&String>| l.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if !added.is_empty() {
        out.push(format!("endpoints {name}: added {}", list(added)));
    }
    if !removed.is_empty() {
        out.push(format!("endpoints {name}: removed {}", list(removed)));
    }
    out
}

fn addresses(cla: &Value) -> BTreeSet<String> {
    let localities = cla["endpoints"].as_array().into_iter().flatten();
    let lbs = localities.flat_map(|l| l["lb_endpoints"].as_array().into_iter().flatten());
    lbs.map(|e| {
        let s = &e["endpoint"]["address"]["socket_address"];
        format!("{}:{}", str_at(s, "address"), scalar(&s["port_value"]))
    })
    .collect()
}

/// The top-level fields that differ: `field a → b` for scalars, `field
/// added`, `field removed`, `field changed` otherwise.
pub(super) fn fields(old: &Value, new: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return vec![format!("{} → {}", scalar(old), scalar(new))];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (None, Some(_)) => out.push(format!("{k} added")),
            (Some(_), None) => out.push(format!("{k} removed")),
            (Some(x), Some(y)) if is_scalar(x) && is_scalar(y) => {
                out.push(format!("{k} {} → {}", scalar(x), scalar(y)));
            }
            _ => out.push(format!("{k} changed")),
        }
    }
    if out.is_empty() {
        out.push("changed".into());
    }
    out
}

fn is_scalar(v: &Value) -> bool {
    !(v.is_object() || v.is_array())
}

/// A scalar as written in Envoy's JSON; `none` when absent.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        other if is_scalar(other) => other.to_string(),
        _ => "…".into(),
    }
}

fn str_at(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}
