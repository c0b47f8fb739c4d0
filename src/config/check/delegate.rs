//! Delegation: each root rule that delegates is replaced by the
//! delegate's rules, merged with it as istiod does (`mergeHTTPRoute` in
//! `pilot/pkg/model/virtualservice.go`): a delegate rule's matches must
//! fall within the root rule's (each is merged with every root match it
//! does not conflict with), and the policies it does not set come from
//! the root rule.

use std::sync::Arc;

use super::super::convert::{Delegation, DocInfo};
use super::super::diag::Diagnostic;
use super::super::model::{Headers, HttpMatch, HttpRoute, RuleSource, StringMatch, VirtualService};

/// The VirtualServices read, with their host paths.
type Roots = Vec<(Arc<DocInfo>, Vec<String>, VirtualService)>;

/// Replaces every delegating rule of `roots` by its delegate's rules.
/// Unknown delegates and delegates not exported to the root's namespace
/// are errors; a delegate rule whose match conflicts with the root's is
/// dropped with a warning (Istio drops it silently).
pub(super) fn resolve(
    roots: &mut Roots,
    delegations: &[(Arc<DocInfo>, Delegation)],
    delegates: &[(Arc<DocInfo>, VirtualService)],
    diags: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    for (doc, _, vs) in roots.iter_mut() {
        let mine: Vec<&Delegation> = (delegations.iter())
            .filter(|(d, _)| Arc::ptr_eq(d, doc))
            .map(|(_, d)| d)
            .collect();
        // From the last, so that earlier indexes stay valid while splicing.
        for d in mine.iter().rev() {
            let Some((ddoc, delegate)) = find(delegates, &d.target) else {
                let msg = format!(
                    "delegate {}: no VirtualService without hosts of that name",
                    d.target
                );
                diags.push(doc.diagnostic(&format!("{}.delegate", d.path), msg));
                continue;
            };
            if !delegate.export_to.admits(&doc.namespace) {
                let msg = format!(
                    "delegate {} is not exported to namespace {} (its exportTo)",
                    d.target, doc.namespace
                );
                diags.push(doc.diagnostic(&format!("{}.delegate", d.path), msg));
                continue;
            }
            let merged = merge_rules((doc, d), (ddoc, delegate), warnings);
            vs.http.splice(d.index..=d.index, merged);
        }
    }
}

fn find<'a>(
    delegates: &'a [(Arc<DocInfo>, VirtualService)],
    target: &str,
) -> Option<(&'a Arc<DocInfo>, &'a VirtualService)> {
    (delegates.iter())
        .find(|(doc, _)| doc.qualified() == target)
        .map(|(doc, vs)| (doc, vs))
}

/// The delegate's rules merged into the root's rule, in order.
fn merge_rules(
    (doc, d): (&Arc<DocInfo>, &Delegation),
    (ddoc, delegate): (&Arc<DocInfo>, &VirtualService),
    warnings: &mut Vec<Diagnostic>,
) -> Vec<HttpRoute> {
    let mut out = Vec::new();
    for (i, rule) in delegate.http.iter().enumerate() {
        match merge_rule(&d.root, rule) {
            Some(mut r) => {
                // Blamed where the delegate writes it, not in the root.
                r.source = Some(Arc::new(RuleSource {
                    origin: ddoc.origin(),
                    path: format!("spec.http[{i}]"),
                }));
                out.push(r)
            }
            None => {
                let msg = format!(
                    "no match of this rule falls within the match of {} in VirtualService {} ({}): Istio drops the rule there",
                    d.path,
                    doc.qualified(),
                    doc.place()
                );
                warnings.push(ddoc.diagnostic(&format!("spec.http[{i}].match"), msg));
            }
        }
    }
    out
}

/// Istio's `mergeHTTPRoute`; `None` when the matches conflict.
fn merge_rule(root: &HttpRoute, leaf: &HttpRoute) -> Option<HttpRoute> {
    let matches = merge_matches(&root.matches, &leaf.matches)?;
    let name = match (&root.name, &leaf.name) {
        (Some(r), Some(l)) => Some(format!("{r}-{l}")),
        (r, l) => l.clone().or(r.clone()),
    };
    Some(HttpRoute {
        name,
        matches,
        action: leaf.action.clone(),
        rewrite: leaf.rewrite.clone().or(root.rewrite.clone()),
        timeout: leaf.timeout.or(root.timeout),
        retries: leaf.retries.clone().or(root.retries.clone()),
        fault: leaf.fault.clone().or(root.fault.clone()),
        headers: if leaf.headers != Headers::default() {
            leaf.headers.clone()
        } else {
            root.headers.clone()
        },
        mirrors: if leaf.mirrors.is_empty() {
            root.mirrors.clone()
        } else {
            leaf.mirrors.clone()
        },
        cors: leaf.cors.clone().or(root.cors.clone()),
        source: None,
    })
}

/// Istio's `mergeHTTPMatchRequests`: every delegate match must fall
/// within some root match.
fn merge_matches(root: &[HttpMatch], leaf: &[HttpMatch]) -> Option<Vec<HttpMatch>> {
    if root.is_empty() {
        return Some(leaf.to_vec());
    }
    if leaf.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for l in leaf {
        let merged: Vec<HttpMatch> = (root.iter())
            .filter(|r| !conflicts(r, l))
            .map(|r| merge_match(r, l))
            .collect();
        if merged.is_empty() {
            return None;
        }
        out.extend(merged);
    }
    Some(out)
}

/// Istio's `mergeHTTPMatchRequest`: the delegate's conditions, and the
/// root's where the delegate has none.
fn merge_match(root: &HttpMatch, leaf: &HttpMatch) -> HttpMatch {
    let mut out = leaf.clone();
    out.name = match (&root.name, &leaf.name) {
        (Some(r), Some(l)) => Some(format!("{r}-{l}")),
        (r, l) => l.clone().or(r.clone()),
    };
    out.uri = leaf.uri.clone().or(root.uri.clone());
    out.scheme = leaf.scheme.clone().or(root.scheme.clone());
    out.method = leaf.method.clone().or(root.method.clone());
    out.authority = leaf.authority.clone().or(root.authority.clone());
    for (k, v) in &root.headers {
        out.headers.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &root.without_headers {
        out.without_headers
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    for (k, v) in &root.query_params {
        out.query_params
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    for (k, v) in &root.source_labels {
        out.source_labels
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    out.port = leaf.port.or(root.port);
    out.source_namespace = (leaf.source_namespace.clone()).or(root.source_namespace.clone());
    out.gateways = leaf.gateways.clone().or(root.gateways.clone());
    out
}

/// Istio's `hasConflict`: the delegate match is not within the root's.
fn conflicts(root: &HttpMatch, leaf: &HttpMatch) -> bool {
    let strings = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    let maps = [
        (&root.headers, &leaf.headers),
        (&root.without_headers, &leaf.without_headers),
        (&root.query_params, &leaf.query_params),
    ];
    strings
        .iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
        || maps
            .iter()
            .any(|(r, l)| (l.iter()).any(|(k, lv)| string_conflict(r.get(k), Some(lv))))
        || root.ignore_uri_case != leaf.ignore_uri_case
        || matches!((root.port, leaf.port), (Some(r), Some(l)) if r != l)
        || (root.source_namespace.is_some() && leaf.source_namespace != root.source_namespace)
        || (leaf.source_labels.iter())
            .any(|(k, v)| root.source_labels.get(k).is_some_and(|rv| rv != v))
        || gateways_conflict(root.gateways.as_deref(), leaf.gateways.as_deref())
}

/// The root's gateways must include the delegate's.
fn gateways_conflict(root: Option<&[String]>, leaf: Option<&[String]>) -> bool {
    match (root, leaf) {
        (Some(r), Some(l)) if !r.is_empty() && !l.is_empty() => !l.iter().all(|g| r.contains(g)),
        _ => false,
    }
}

/// Istio's `stringMatchConflict`: the leaf's values are not all values
/// of the root's. A root presence match (`{}`) admits any leaf.
fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    use StringMatch::{Exact, Prefix, Present, Regex};
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    match (root, leaf) {
        (Present, _) => false,
        (Regex(_), _) | (_, Regex(_)) => true,
        (Exact(r), Exact(l)) => r != l,
        (Prefix(r), Prefix(l) | Exact(l)) => !l.starts_with(r.as_str()),
        _ => true,
    }
}

#[cfg(test)]
mod tests;
