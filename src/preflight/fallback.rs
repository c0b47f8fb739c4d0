//! Blame for what [`Provenance::blame`](crate::translate::provenance::Provenance::blame)
//! does not know: a route configuration rejected for a match string
//! (regex, prefix, exact) that Envoy quotes, in a VirtualService whose host
//! no `ServiceEntry` declares (a service of registered sidecars, which the
//! provenance index leaves out).

use std::collections::BTreeMap;

use crate::config::model::{MeshConfig, StringMatch, VirtualService};
use crate::config::SourceIndex;
use crate::translate::provenance::Blame;

/// The VirtualService match field whose text Envoy quotes (`'TEXT'`) in
/// `message`, the longest when several are; `None` if none is quoted.
pub(super) fn blame_quoted_match(
    mesh: &MeshConfig,
    source: &SourceIndex,
    resource: &str,
    message: &str,
) -> Option<Blame> {
    let mut best: Option<(usize, &VirtualService, String)> = None;
    let all = mesh
        .virtual_services
        .values()
        .chain(&mesh.gateway_virtual_services);
    for vs in all {
        for (path, text) in match_texts(vs) {
            let quoted = format!("'{text}'");
            let longer = best.as_ref().is_none_or(|(n, _, _)| text.len() > *n);
            if text.len() >= 3 && longer && message.contains(&quoted) {
                best = Some((text.len(), vs, path));
            }
        }
    }
    let (_, vs, field) = best?;
    let (line, column) = source.locate(&vs.origin, &field);
    Some(Blame {
        kind: vs.origin.kind.clone(),
        namespace: vs.origin.namespace.clone(),
        name: vs.origin.name.clone(),
        file: vs.origin.file.clone(),
        line,
        column,
        resource: resource.to_string(),
        field,
    })
}

/// Every match string of `vs`'s HTTP rules, by field path.
fn match_texts(vs: &VirtualService) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, rule) in vs.http.iter().enumerate() {
        for (j, m) in rule.matches.iter().enumerate() {
            let at = format!("spec.http[{i}].match[{j}]");
            let mut push = |group: String, sm: &StringMatch| {
                let (field, text) = match sm {
                    StringMatch::Exact(s) => ("exact", s),
                    StringMatch::Prefix(s) => ("prefix", s),
                    StringMatch::Regex(s) => ("regex", s),
                };
                out.push((format!("{group}.{field}"), text.clone()));
            };
            if let Some(uri) = &m.uri {
                push(format!("{at}.uri"), uri);
            }
            let maps: [(&str, &BTreeMap<String, StringMatch>); 3] = [
                ("headers", &m.headers),
                ("withoutHeaders", &m.without_headers),
                ("queryParams", &m.query_params),
            ];
            for (group, map) in maps {
                for (name, sm) in map {
                    push(format!("{at}.{group}.{name}"), sm);
                }
            }
        }
    }
    out
}
