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
//! So a blame looks for the resource names Envoy prints, then, among the
//! fields that made those resources (all of the type when none is named),
//! for the longest text Envoy quotes; a named virtual host, route or
//! resource without a quoted field is blamed on its main object.

use super::{Blame, Field, Provenance, ResourceProvenance, VirtualHostProvenance};

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

pub(super) fn blame(p: &Provenance, type_url: &str, message: &str) -> Option<Blame> {
    let key = type_key(type_url)?;
    if key == "rds" {
        if let Some(found) = blame_routes(p, message) {
            return Some(found);
        }
    }
    let mut named: Vec<(&str, &ResourceProvenance)> = p
        .of_type(key)
        .filter(|(name, _)| contains_bounded(message, name))
        .collect();
    named.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let pool: Vec<(&str, &ResourceProvenance)> = if named.is_empty() {
        p.of_type(key).collect()
    } else {
        named.clone()
    };
    let fields = pool
        .iter()
        .flat_map(|(n, r)| r.fields.iter().map(move |f| (*n, f)));
    if let Some((name, field)) = best_quoted(message, fields) {
        return Some(Blame::new(field, name));
    }
    let (name, resource) = named.first()?;
    Some(Blame::new(resource.objects.first()?, name))
}

/// A route configuration's rejection: narrowed to the route configurations,
/// virtual hosts and routes the message names, blamed on the field it
/// quotes, else the named route, else the named virtual host.
fn blame_routes(p: &Provenance, message: &str) -> Option<Blame> {
    let configs: Vec<(&String, _)> = p.virtual_hosts.iter().collect();
    let named: Vec<_> = (configs.iter())
        .filter(|(n, _)| contains_bounded(message, n))
        .copied()
        .collect();
    let configs = if named.is_empty() { configs } else { named };
    let mut vhosts: Vec<(&str, &str, &VirtualHostProvenance)> = Vec::new();
    for (config, hosts) in &configs {
        vhosts.extend(hosts.iter().map(|(h, v)| (config.as_str(), h.as_str(), v)));
    }
    let named_hosts: Vec<_> = (vhosts.iter())
        .filter(|(_, h, _)| contains_bounded(message, h))
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

/// True when `needle` occurs in `hay` not glued to a longer word or
/// number: `seconds: 1` is not in `seconds: 10`, nor `a.com` in `aa.com`.
pub(super) fn contains_bounded(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let first = needle.chars().next();
    let last = needle.chars().next_back();
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !(word(first) && word(before)) && !(word(last) && word(after))
    })
}
