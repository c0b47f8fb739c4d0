//! `ReferenceGrant`: which kinds of which namespaces may refer to objects
//! of its namespace.

use super::super::{join, Cx};
use super::Grant;
use crate::config::raw::gateway_api as raw;

/// The kinds a grant can name on either side that Trellis resolves.
const FROM_KINDS: &[&str] = &["HTTPRoute", "GRPCRoute", "Gateway"];
const TO_KINDS: &[&str] = &["Service", "Secret"];

/// Converts a `ReferenceGrant`.
pub(crate) fn reference_grant(cx: &mut Cx<'_>, g: &raw::ReferenceGrant) -> Option<Grant> {
    let before = cx.diags.len();
    if g.from.is_empty() || g.to.is_empty() {
        cx.err(
            "spec",
            "a ReferenceGrant needs at least one `from` and one `to`",
        );
    }
    let mut from = Vec::new();
    for (i, f) in g.from.iter().enumerate() {
        let p = format!("spec.from[{i}]");
        if f.group != super::GROUP || !FROM_KINDS.contains(&f.kind.as_str()) {
            let msg = format!(
                "from {}/{}: Trellis resolves references from {} of group {}",
                f.group,
                f.kind,
                FROM_KINDS.join(", "),
                super::GROUP
            );
            cx.err(&join(&p, "kind"), msg);
        }
        if !super::super::is_dns_label(&f.namespace) {
            cx.err(
                &join(&p, "namespace"),
                format!("namespace {:?} is not a valid DNS-1123 label", f.namespace),
            );
        }
        from.push((f.group.clone(), f.kind.clone(), f.namespace.clone()));
    }
    let mut to = Vec::new();
    for (i, t) in g.to.iter().enumerate() {
        let p = format!("spec.to[{i}]");
        if !t.group.is_empty() || !TO_KINDS.contains(&t.kind.as_str()) {
            let msg = format!(
                "to {:?}/{}: Trellis resolves references to the core group's (\"\") {}",
                t.group,
                t.kind,
                TO_KINDS.join(" and ")
            );
            cx.err(&join(&p, "kind"), msg);
        }
        to.push((t.group.clone(), t.kind.clone(), t.name.clone()));
    }
    (cx.diags.len() == before).then(|| Grant {
        namespace: cx.doc.namespace.clone(),
        from,
        to,
    })
}
