//! Mapping Envoy's rejection message (a NACK's `error_detail`) to the
//! config object responsible.
//!
//! Envoy names what it rejects in its own words, for instance (1.40):
//! - RDS: `regex '/(alpha|beta){1,30}' RE2 program size of 664 > max
//!   program size of 100 set for the error level threshold. ...` (no
//!   resource name: the regex is the clue);
//! - CDS: `Error adding/updating cluster(s) outbound|80||payment...: ...`
//!   and protobuf validation messages that print the offending value
//!   (`Invalid duration: Duration out-of-range: ... seconds: 10800000000`).
//!
//! - LDS: `Error adding/updating listener(s) inbound: ...` and the
//!   filter's own validation message, which prints the offending value.
//!
//! So a blame looks for the resource names Envoy prints, then, among the
//! fields that made those resources (all of the type when none is named),
//! for the longest text Envoy quotes; a named virtual host, route or
//! resource without a quoted field is blamed on its main object. When an
//! `EnvoyFilter` patch changed the rejected resource on that proxy, or
//! Envoy quotes a string of a patch's value, the patch is blamed first:
//! generated resources are checked by translation, a patch only by Envoy.

use super::listeners::POLICY_KINDS;
use super::{
    Blame, Field, PatchRef, Provenance, Rejecter, ResourceProvenance, VirtualHostProvenance,
};

/// Shortest field text worth looking for in a message: shorter ones
/// (`/`, `v1`) appear in unrelated words.
const MIN_NEEDLE: usize = 3;

/// The key a type URL's resources are kept under (`cds`, `rds`, ...).
pub(super) fn type_key(type_url: &str) -> Option<&'static str> {
    let message = type_url.rsplit('/').next()?;
    Some(match message.rsplit('.').next()? {
        "RouteConfiguration" => "rds",
        "Cluster" => "cds",
        "ClusterLoadAssignment" => "eds",
        "Listener" => "lds",
        "Secret" => "sds",
        _ => return None,
    })
}

pub(super) fn blame(
    p: &Provenance,
    type_url: &str,
    message: &str,
    who: &Rejecter,
) -> Option<Blame> {
    let key = type_key(type_url)?;
    let generated = generated(p, key, message, who);
    match patched(p, key, message, who) {
        Some(mut b) => {
            b.generated_by = generated.map(Box::new);
            Some(b)
        }
        // Envoy checking a whole bootstrap names no resource: with nothing
        // else to go by, a patch of that type is the likely cause.
        None => generated.or_else(|| {
            let r = who
                .patched
                .iter()
                .find(|r| type_key(&r.type_url) == Some(key))?;
            let patch = p.patches.get(&(r.envoy_filter.clone(), r.patch))?;
            Some(Blame::new(patch.objects.first()?, &r.resource))
        }),
    }
}

/// The patch `who`'s resources of type `key` were changed by whose value
/// Envoy quotes, else the patch of the resource Envoy names.
fn patched(p: &Provenance, key: &str, message: &str, who: &Rejecter) -> Option<Blame> {
    let refs: Vec<&PatchRef> = (who.patched.iter())
        .filter(|r| type_key(&r.type_url) == Some(key))
        .collect();
    let patch = |r: &PatchRef| p.patches.get(&(r.envoy_filter.clone(), r.patch));
    let fields = (refs.iter())
        .filter_map(|r| Some((r.resource.as_str(), patch(r)?)))
        .flat_map(|(name, pp)| pp.fields.iter().map(move |f| (name, f)));
    if let Some((name, field)) = best_quoted(message, fields) {
        return Some(Blame::new(field, name));
    }
    let named = (refs.iter())
        .filter(|r| mentions(message, &r.resource))
        .max_by_key(|r| r.resource.len())?;
    Some(Blame::new(patch(named)?.objects.first()?, &named.resource))
}

/// True when `f` may have shaped a resource of `who`: a per-namespace
/// policy only in its namespace or the root namespace.
fn applies(p: &Provenance, who: &Rejecter, f: &Field) -> bool {
    let Some(ns) = &who.namespace else {
        return true;
    };
    let o = &f.origin;
    !POLICY_KINDS.contains(&o.kind.as_str())
        || o.namespace == *ns
        || o.namespace == p.root_namespace
}

/// False for a DestinationRule field of a cluster (`outbound|PORT|SUBSET|HOST`)
/// whose host `who` sees another rule for: the proxy's clusters were
/// translated from the rule it sees.
fn seen(who: &Rejecter, resource: &str, f: &Field) -> bool {
    if f.origin.kind != "DestinationRule" {
        return true;
    }
    let host = resource.rsplit('|').next().unwrap_or(resource);
    match who.rules.get(host) {
        None => true,
        Some(rule) => rule.as_deref().is_some_and(|r| {
            r.split_once('/') == Some((f.origin.namespace.as_str(), f.origin.name.as_str()))
        }),
    }
}

/// The object that generated what Envoy rejected.
fn generated(p: &Provenance, key: &'static str, message: &str, who: &Rejecter) -> Option<Blame> {
    if key == "rds" {
        if let Some(found) = blame_routes(p, message) {
            return Some(found);
        }
    }
    let all = p.of_type(key);
    let mut named: Vec<(&str, &ResourceProvenance)> = (all.iter())
        .filter(|(name, _)| mentions(message, name))
        .copied()
        .collect();
    named.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let pool = if named.is_empty() { all } else { named.clone() };
    let keep = |name: &str, f: &Field| applies(p, who, f) && seen(who, name, f);
    let fields = (pool.iter())
        .flat_map(|(n, r)| r.fields.iter().filter(|f| keep(n, f)).map(move |f| (*n, f)));
    if let Some((name, field)) = best_quoted(message, fields) {
        return Some(Blame::new(field, name));
    }
    let (name, resource) = named.first()?;
    Some(Blame::new(
        resource.objects.iter().find(|f| keep(name, f))?,
        name,
    ))
}

/// A route configuration's rejection: narrowed to the route configurations,
/// virtual hosts and routes the message names, blamed on the field it
/// quotes, else the named route, else the named virtual host.
fn blame_routes(p: &Provenance, message: &str) -> Option<Blame> {
    let mut configs: Vec<(&String, _)> = p.virtual_hosts.iter().collect();
    configs.sort_by_key(|(n, _)| *n);
    let named: Vec<_> = (configs.iter())
        .filter(|(n, _)| contains_bounded(message, n))
        .copied()
        .collect();
    let configs = if named.is_empty() { configs } else { named };
    let mut vhosts: Vec<(&str, &str, &VirtualHostProvenance)> = Vec::new();
    for (config, hosts) in &configs {
        vhosts.extend(hosts.iter().map(|(h, v)| (config.as_str(), h.as_str(), v)));
    }
    vhosts.sort_by_key(|(c, h, _)| (*c, *h));
    let named_hosts: Vec<_> = (vhosts.iter())
        .filter(|(_, h, _)| mentions(message, h))
        .copied()
        .collect();
    if !named_hosts.is_empty() {
        vhosts = named_hosts.clone();
    }
    let fields = vhosts.iter().flat_map(|(config, _, v)| {
        (v.routes.iter()).flat_map(move |r| r.fields.iter().map(move |f| (*config, f)))
    });
    if let Some((config, field)) = best_quoted(message, fields) {
        return Some(Blame::new(field, config));
    }
    let named_route = vhosts.iter().find_map(|(config, _, v)| {
        let route = (v.routes.iter())
            .find(|r| r.name.len() >= MIN_NEEDLE && contains_bounded(message, &r.name))?;
        Some((*config, route.fields.first()?))
    });
    if let Some((config, field)) = named_route {
        return Some(Blame::new(field, config));
    }
    let (config, _, vhost) = named_hosts.first()?;
    Some(Blame::new(vhost.objects.first()?, config))
}

/// The field whose text the message quotes, the longest such text first
/// (a regex beats a header name it happens to contain).
fn best_quoted<'a>(
    message: &str,
    fields: impl Iterator<Item = (&'a str, &'a Field)>,
) -> Option<(&'a str, &'a Field)> {
    let mut best: Option<(&str, &Field, usize)> = None;
    for (resource, field) in fields {
        let Some(needle) = field.needle.as_deref() else {
            continue;
        };
        let longer = best.is_none_or(|(_, _, len)| needle.len() > len);
        if needle.len() >= MIN_NEEDLE && longer && contains_bounded(message, needle) {
            best = Some((resource, field, needle.len()));
        }
    }
    best.map(|(r, f, _)| (r, f))
}

/// True when `message` names the resource `name`, whose `*` (a port
/// not known from config) stands for any port number.
fn mentions(message: &str, name: &str) -> bool {
    let Some((before, after)) = name.split_once(super::ANY_PORT) else {
        return contains_bounded(message, name);
    };
    message.match_indices(before).any(|(i, _)| {
        let rest = &message[i + before.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let tail = &rest[digits..];
        let end = tail.get(after.len()..).and_then(|t| t.chars().next());
        let glued = end.is_some_and(|c| c.is_alphanumeric() || c == '_');
        digits > 0 && tail.starts_with(after) && !glued
    })
}

/// True when `needle` occurs in `hay` not glued to a longer word, name or
/// number: `seconds: 1` is not in `seconds: 10`, nor `a.com` in `aa.com`,
/// nor `envoy` in `envoy.filters`.
pub(super) fn contains_bounded(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "_.-".contains(c));
    let first = needle.chars().next();
    let last = needle.chars().next_back();
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        let glued_before = word(first) && word(before);
        let glued_after = word(last) && word(after);
        !glued_before && !glued_after
    })
}
