//! `backendRefs` (and a mirror's `backendRef`) → weighted destinations.

use super::super::{join, Cx, DestRef};
use super::{filters, CrossRef};
use crate::config::model::{Destination, Headers, Host, WeightedDestination};
use crate::config::raw::gateway_api as raw;

/// A Service named by a backend reference, recorded for the host and port
/// checks and, in another namespace, for the ReferenceGrant check.
pub(super) fn service(
    cx: &mut Cx<'_>,
    path: &str,
    r: (
        &Option<String>,
        &Option<String>,
        &str,
        &Option<String>,
        Option<i64>,
    ),
    cross: &mut Vec<CrossRef>,
) -> Option<Destination> {
    let (group, kind, name, namespace, port) = r;
    let (group, kind) = (
        group.as_deref().unwrap_or(""),
        kind.as_deref().unwrap_or("Service"),
    );
    if !group.is_empty() || kind != "Service" {
        let msg = format!("backend {group:?}/{kind}: only core Services are supported (a ServiceEntry host is a Service here: name it by its short name)");
        cx.err(&join(path, "kind"), msg);
        return None;
    }
    if !super::super::is_dns_label(name) {
        cx.err(
            &join(path, "name"),
            format!("name {name:?} is not a valid Service name (a DNS-1123 label)"),
        );
        return None;
    }
    let Some(port) = port else {
        cx.err(path, "port is required for a Service backend");
        return None;
    };
    let port = cx.port(&join(path, "port"), port)?;
    let ns = namespace
        .clone()
        .unwrap_or_else(|| cx.doc.namespace.clone());
    if ns != cx.doc.namespace {
        cross.push(CrossRef {
            path: path.to_string(),
            from_kind: cx.doc.kind.clone(),
            to_kind: "Service",
            to_namespace: ns.clone(),
            to_name: name.to_string(),
        });
    }
    let destination = Destination {
        host: Host::canonical(&format!("{name}.{ns}"), &ns),
        subset: None,
        port: Some(port),
    };
    cx.refs.push(DestRef {
        doc: cx.doc.clone(),
        path: path.to_string(),
        written: name.to_string(),
        destination: destination.clone(),
    });
    Some(destination)
}

/// `backendRefs`: Gateway API weights are relative (default 1); the
/// model's are percentages, so they are scaled to sum to 100 (largest
/// remainder; a backend of weight 0 gets none). `None` on error; an empty
/// list when every weight is 0.
pub(super) fn backend_refs(
    cx: &mut Cx<'_>,
    path: &str,
    refs: &[raw::BackendRef],
    cross: &mut Vec<CrossRef>,
) -> Option<Vec<WeightedDestination>> {
    let before = cx.diags.len();
    let mut out = Vec::new();
    let mut weights = Vec::new();
    for (i, b) in refs.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let weight = b.weight.unwrap_or(1);
        if !(0..=1_000_000).contains(&weight) {
            cx.err(
                &join(&p, "weight"),
                format!("weight {weight} is not in 0..1000000"),
            );
        }
        let headers = backend_filters(cx, &join(&p, "filters"), &b.filters);
        let r = (&b.group, &b.kind, b.name.as_str(), &b.namespace, b.port);
        if let Some(destination) = service(cx, &p, r, cross) {
            weights.push(weight.max(0) as u64);
            out.push(WeightedDestination {
                destination,
                weight: 0,
                headers,
            });
        }
    }
    if cx.diags.len() != before {
        return None;
    }
    let shares = percentages(&weights);
    for (d, s) in out.iter_mut().zip(shares) {
        d.weight = s;
    }
    out.retain(|d| d.weight > 0);
    Some(out)
}

/// Relative weights → percentages summing to 100 (largest remainder, ties
/// to the earlier backend); all zero → all zero.
pub(super) fn percentages(weights: &[u64]) -> Vec<u32> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<u32> = weights.iter().map(|w| (w * 100 / total) as u32).collect();
    let mut rest: Vec<(u64, usize)> = (weights.iter().enumerate())
        .map(|(i, w)| (w * 100 % total, i))
        .collect();
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = 100 - shares.iter().sum::<u32>();
    for (_, i) in rest.into_iter().take(missing as usize) {
        shares[i] += 1;
    }
    shares
}

/// A backend's own `filters`: header modifiers only.
fn backend_filters(cx: &mut Cx<'_>, path: &str, list: &[raw::Filter]) -> Headers {
    let mut headers = Headers::default();
    for (i, f) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match f.kind.as_str() {
            "RequestHeaderModifier" | "ResponseHeaderModifier" => {
                filters::header_filter(cx, &p, f, &mut headers);
            }
            other => {
                let msg = format!("a backend filter of type {other:?} is not supported: only RequestHeaderModifier and ResponseHeaderModifier apply per backend (put it on the rule)");
                cx.err(&join(&p, "type"), msg);
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::percentages;

    #[test]
    fn relative_weights_scale_to_percentages() {
        assert_eq!(percentages(&[70, 30]), vec![70, 30]);
        assert_eq!(percentages(&[7, 3]), vec![70, 30]);
        assert_eq!(percentages(&[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(percentages(&[1, 0]), vec![100, 0]);
        assert_eq!(percentages(&[0, 0]), vec![0, 0]);
        assert_eq!(percentages(&[1, 2]), vec![33, 67]);
    }
}
