//! `RateLimit` → [`RateLimit`]: every field checked, one error per bad
//! field. Checks that need other resources (the target exists, rules of
//! one target do not overlap) live in `check::rate_limit`.

mod rule;

use super::{is_dns_label, join, Cx};
use crate::config::model::{RateLimit, RateLimitMode, RateLimitService, RateLimitTarget};
use crate::config::raw::rate_limit as raw;

/// Converts a `RateLimit`; `None` when any field is wrong.
pub(crate) fn rate_limit(cx: &mut Cx<'_>, rl: &raw::RateLimit) -> Option<RateLimit> {
    let before = cx.diags.len();
    let target = match &rl.target {
        Some(t) => target(cx, t),
        None => {
            cx.err(
                "spec",
                "target is required (a service `host` or a `gateway`)",
            );
            None
        }
    };
    let mode = mode(cx, rl);
    if rl.rules.is_empty() {
        cx.err("spec.rules", "rules must list at least one rule");
    }
    let mut rules = Vec::new();
    for (i, r) in rl.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        if let Some(seen) = rules
            .iter()
            .position(|o: &crate::config::model::RateLimitRule| o.name == r.name)
        {
            let msg = format!("duplicate rule name {:?} (also spec.rules[{seen}])", r.name);
            cx.err(&join(&path, "name"), msg);
        }
        rules.extend(rule::rule(cx, &path, r));
    }
    if cx.diags.len() != before {
        return None;
    }
    Some(RateLimit {
        origin: cx.doc.origin(),
        target: target?,
        mode: mode?,
        rules,
    })
}

fn target(cx: &mut Cx<'_>, t: &raw::Target) -> Option<RateLimitTarget> {
    let at = "spec.target";
    match (&t.host, &t.gateway) {
        (Some(h), None) => {
            let host = cx.host(&join(at, "host"), h)?;
            if let Some(s) = t.subset.as_ref().filter(|s| !is_dns_label(s)) {
                let msg = format!("subset name {s:?} is not a valid DNS-1123 label");
                cx.err(&join(at, "subset"), msg);
                return None;
            }
            Some(RateLimitTarget::Service {
                host,
                subset: t.subset.clone(),
            })
        }
        (None, Some(g)) => {
            if t.subset.is_some() {
                cx.err(
                    &join(at, "subset"),
                    "subset applies to a `host` target only",
                );
                return None;
            }
            gateway_name(cx, &join(at, "gateway"), g).map(RateLimitTarget::Gateway)
        }
        (Some(_), Some(_)) => {
            cx.err(at, "give one of `host` or `gateway`, not both");
            None
        }
        (None, None) => {
            cx.err(at, "one of `host` (a service) or `gateway` is required");
            None
        }
    }
}

/// `NAME` (in the resource's namespace) or `NAMESPACE/NAME`, as
/// VirtualServices name gateways.
fn gateway_name(cx: &mut Cx<'_>, path: &str, g: &str) -> Option<String> {
    let (ns, name) = g.split_once('/').unwrap_or((&cx.doc.namespace, g));
    if !is_dns_label(ns) || !super::is_dns_subdomain(name) {
        cx.err(path, format!("gateway {g:?} is not NAME or NAMESPACE/NAME"));
        return None;
    }
    Some(format!("{ns}/{name}"))
}

fn mode(cx: &mut Cx<'_>, rl: &raw::RateLimit) -> Option<RateLimitMode> {
    match (rl.mode.as_deref().unwrap_or("local"), &rl.service) {
        ("local", None) => Some(RateLimitMode::Local),
        ("local", Some(_)) => {
            cx.err("spec.service", "service applies to `mode: global` only");
            None
        }
        ("global", Some(s)) => service(cx, s).map(RateLimitMode::Global),
        ("global", None) => {
            let msg = "`mode: global` needs `service` (the address of `trellis ratelimit`)";
            cx.err("spec.mode", msg);
            None
        }
        (other, _) => {
            cx.err(
                "spec.mode",
                format!("unknown mode {other:?}: use local or global"),
            );
            None
        }
    }
}

fn service(cx: &mut Cx<'_>, s: &raw::Service) -> Option<RateLimitService> {
    let at = "spec.service";
    let parsed = s.address.rsplit_once(':').and_then(|(h, p)| {
        let port = p.parse::<u16>().ok().filter(|p| *p > 0)?;
        let host = h.trim_start_matches('[').trim_end_matches(']');
        let ok =
            host.parse::<std::net::IpAddr>().is_ok() || super::values::check_host(host).is_ok();
        ok.then(|| (host.to_string(), port))
    });
    let Some((host, port)) = parsed else {
        let msg = format!("address {:?} is not HOST:PORT", s.address);
        cx.err(&join(at, "address"), msg);
        return None;
    };
    let identity = match (&s.namespace, &s.service_account) {
        (Some(ns), Some(sa)) if is_dns_label(ns) && super::is_dns_subdomain(sa) => {
            Some((ns.clone(), sa.clone()))
        }
        (None, None) => None,
        _ => {
            let msg = "give both namespace and serviceAccount (valid DNS names), or neither";
            cx.err(at, msg);
            return None;
        }
    };
    Some(RateLimitService {
        host,
        port,
        identity,
    })
}
