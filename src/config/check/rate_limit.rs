//! Cross-resource checks of `RateLimit`: the target exists (a service,
//! its subset, or a Gateway), and no two rules for one target can match
//! the same request (each request counts against one bucket there).

mod overlap;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::convert::DocInfo;
use crate::config::diag::Diagnostic;
use crate::config::model::{Gateway, Host, RateLimit, RateLimitTarget, Service};

/// What the targets are checked against.
pub(crate) struct Known<'a> {
    pub services: &'a BTreeMap<Host, Service>,
    pub destination_rules: &'a super::Rules,
    pub gateways: &'a [Arc<Gateway>],
}

/// The `RateLimit`s sorted by namespace and name, with errors in `diags`.
pub(crate) fn rate_limits(
    mut all: Vec<(Arc<DocInfo>, RateLimit)>,
    known: &Known<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Arc<RateLimit>> {
    all.sort_by_key(|(doc, _)| doc.qualified());
    for (doc, rl) in &all {
        if let Some(msg) = unknown_target(&rl.target, known) {
            diags.push(doc.diagnostic("spec.target", msg));
        }
    }
    overlaps(&all, diags);
    all.into_iter().map(|(_, rl)| Arc::new(rl)).collect()
}

fn unknown_target(target: &RateLimitTarget, known: &Known<'_>) -> Option<String> {
    match target {
        RateLimitTarget::Service { host, .. } if !known.services.contains_key(host) => Some(
            format!("unknown target host {host}: no ServiceEntry declares it"),
        ),
        // Limits are on HTTP requests; a TCP service would take none.
        RateLimitTarget::Service { host, .. }
            if !known.services[host]
                .ports
                .iter()
                .any(|p| p.protocol.is_http()) =>
        {
            Some(format!(
                "{host} has no HTTP port: rate limits apply to HTTP requests only"
            ))
        }
        RateLimitTarget::Service {
            host,
            subset: Some(s),
        } => {
            let found = super::rules_for(host, known.destination_rules)
                .any(|(_, dr)| dr.subsets.iter().any(|x| x.name == *s));
            (!found)
                .then(|| format!("unknown subset {s:?} of {host}: no DestinationRule declares it"))
        }
        RateLimitTarget::Gateway(g) if !known.gateways.iter().any(|x| x.qualified() == *g) => Some(
            format!("unknown gateway {g}: no Gateway of that namespace and name"),
        ),
        _ => None,
    }
}

/// Every pair of rules of one target that may match one request.
fn overlaps(all: &[(Arc<DocInfo>, RateLimit)], diags: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<&RateLimitTarget, Vec<(&DocInfo, usize, &RateLimit)>> = BTreeMap::new();
    for (doc, rl) in all {
        let earlier = seen.entry(&rl.target).or_default();
        for (i, rule) in rl.rules.iter().enumerate() {
            let clash = earlier.iter().find(|(_, j, other)| {
                overlap::may_overlap(&rule.matches, &other.rules[*j].matches)
            });
            if let Some((odoc, j, other)) = clash {
                let msg = format!(
                    "rule {:?} overlaps rule {:?} of RateLimit {} ({}): one request could count against both; make their matches disjoint",
                    rule.name,
                    other.rules[*j].name,
                    odoc.qualified(),
                    odoc.place()
                );
                diags.push(doc.diagnostic(&format!("spec.rules[{i}]"), msg));
            }
            earlier.push((doc, i, rl));
        }
    }
}
