//! `trafficPolicy.loadBalancer`: the algorithm (`simple` or
//! `consistentHash`) and Envoy's slow start (`warmup`).

use super::super::{join, Cx};
use crate::config::model::{
    CookieAttribute, HashAlgorithm, HashKey, LoadBalancer, SimpleLb, Warmup,
};
use crate::config::raw::destination_rule as raw;

/// Envoy's largest ring (`RingHashLbConfig.maximum_ring_size` default):
/// a larger minimum would be refused.
const MAX_RING_SIZE: i64 = 8 * 1024 * 1024;

/// Envoy's bound on `MaglevLbConfig.table_size`.
const MAX_MAGLEV_TABLE: i64 = 5_000_011;

/// The algorithm of a `loadBalancer` block; `None` when it only sets
/// `localityLbSetting` or `warmup` (the default algorithm stays).
pub(super) fn load_balancer(
    cx: &mut Cx<'_>,
    path: &str,
    lb: &raw::LoadBalancer,
) -> Option<LoadBalancer> {
    cx.unsupported(path, "zoneAwareLbSetting", &lb.zone_aware_lb_setting);
    match (&lb.simple, &lb.consistent_hash) {
        (Some(s), None) => simple(cx, &join(path, "simple"), s).map(LoadBalancer::Simple),
        (None, Some(ch)) => consistent_hash(cx, &join(path, "consistentHash"), ch),
        (None, None) if lb.locality_lb_setting.is_some() || has_warmup(lb) => None,
        (None, None) => {
            let msg = "one of simple, consistentHash, localityLbSetting or warmup is required";
            cx.err(path, msg);
            None
        }
        (Some(_), Some(_)) => {
            cx.err(path, "only one of simple or consistentHash is allowed");
            None
        }
    }
}

fn has_warmup(lb: &raw::LoadBalancer) -> bool {
    lb.warmup.is_some() || lb.warmup_duration_secs.is_some()
}

fn simple(cx: &mut Cx<'_>, path: &str, s: &str) -> Option<SimpleLb> {
    Some(match s {
        "ROUND_ROBIN" => SimpleLb::RoundRobin,
        "LEAST_REQUEST" | "LEAST_CONN" => SimpleLb::LeastRequest,
        "RANDOM" => SimpleLb::Random,
        "UNSPECIFIED" => SimpleLb::Unspecified,
        // Original-destination balancing needs transparent interception:
        // behind the explicit outbound listener the original destination is
        // the listener itself, so accepting it would silently change meaning.
        "PASSTHROUGH" => {
            cx.err(path, "PASSTHROUGH needs transparent interception (the original destination address), which Trellis sidecars do not have: use ROUND_ROBIN, LEAST_REQUEST or RANDOM");
            return None;
        }
        other => {
            let msg = format!("unknown load balancer {other:?}: use ROUND_ROBIN, LEAST_REQUEST, RANDOM or UNSPECIFIED");
            cx.err(path, msg);
            return None;
        }
    })
}

fn consistent_hash(cx: &mut Cx<'_>, path: &str, ch: &raw::ConsistentHash) -> Option<LoadBalancer> {
    let algorithm = hash_algorithm(cx, path, ch);
    let mut keys = Vec::new();
    if let Some(h) = &ch.http_header_name {
        keys.push(HashKey::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = &ch.http_cookie {
        keys.push(cookie(cx, &join(path, "httpCookie"), c));
    }
    if ch.use_source_ip == Some(true) {
        keys.push(HashKey::SourceIp);
    }
    if let Some(q) = &ch.http_query_parameter_name {
        keys.push(HashKey::QueryParameter(q.clone()));
    }
    if keys.len() != 1 {
        let msg = "exactly one of httpHeaderName, httpCookie, useSourceIp: true or httpQueryParameterName is required";
        cx.err(path, msg);
        return None;
    }
    Some(LoadBalancer::ConsistentHash(keys.pop()?, algorithm?))
}

fn cookie(cx: &mut Cx<'_>, p: &str, c: &raw::HttpCookie) -> HashKey {
    if c.name.is_empty() {
        cx.err(p, "cookie name is required");
    }
    let ttl = c
        .ttl
        .as_ref()
        .and_then(|t| match super::super::values::parse_duration(t) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.err(&join(p, "ttl"), e);
                None
            }
        });
    let mut attributes = Vec::new();
    for (i, a) in c.attributes.iter().enumerate() {
        let ap = format!("{p}.attributes[{i}]");
        if !is_token(&a.name) {
            let msg = format!("cookie attribute name {:?} must be a non-empty token (letters, digits and !#$%&'*+-.^_`|~)", a.name);
            cx.err(&join(&ap, "name"), msg);
        } else if a.value.chars().any(|ch| ch.is_control() || ch == ';') {
            let msg = format!(
                "cookie attribute value {:?} must not hold `;` or control characters",
                a.value
            );
            cx.err(&join(&ap, "value"), msg);
        }
        attributes.push(CookieAttribute {
            name: a.name.clone(),
            value: a.value.clone(),
        });
    }
    HashKey::Cookie {
        name: c.name.clone(),
        path: c.path.clone(),
        ttl,
        attributes,
    }
}

/// RFC 7230 `token`, what a cookie attribute's name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// `ringHash`, `maglev` or the deprecated `minimumRingSize`: one at most,
/// since accepting two would silently drop one.
fn hash_algorithm(cx: &mut Cx<'_>, path: &str, ch: &raw::ConsistentHash) -> Option<HashAlgorithm> {
    let written = [
        ch.ring_hash.is_some(),
        ch.maglev.is_some(),
        ch.minimum_ring_size.is_some(),
    ];
    if written.iter().filter(|w| **w).count() > 1 {
        let msg = "only one of ringHash, maglev or minimumRingSize (deprecated: use ringHash.minimumRingSize) is allowed";
        cx.err(path, msg);
        return None;
    }
    if let Some(m) = &ch.maglev {
        let table_size = match m.table_size {
            None => None,
            Some(n) => Some(maglev_table(cx, &join(path, "maglev.tableSize"), n)?),
        };
        return Some(HashAlgorithm::Maglev { table_size });
    }
    let (size, p) = match &ch.ring_hash {
        Some(r) => (r.minimum_ring_size, join(path, "ringHash.minimumRingSize")),
        None => (ch.minimum_ring_size, join(path, "minimumRingSize")),
    };
    let minimum_ring_size = match size {
        None => None,
        Some(n) if (1..=MAX_RING_SIZE).contains(&n) => Some(n as u64),
        Some(n) => {
            cx.err(
                &p,
                format!("{n} is not in 1..{MAX_RING_SIZE} (Envoy's largest ring)"),
            );
            return None;
        }
    };
    Some(HashAlgorithm::RingHash { minimum_ring_size })
}

/// Envoy's Maglev table size must be a prime no larger than 5000011.
fn maglev_table(cx: &mut Cx<'_>, path: &str, n: i64) -> Option<u64> {
    if !(2..=MAX_MAGLEV_TABLE).contains(&n) || !is_prime(n) {
        let msg = format!("{n} must be a prime number no larger than {MAX_MAGLEV_TABLE} (Envoy's rule), e.g. 65537");
        cx.err(path, msg);
        return None;
    }
    Some(n as u64)
}

fn is_prime(n: i64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// `warmup` or the deprecated `warmupDurationSecs`; only on the
/// algorithms Envoy's slow start supports.
pub(super) fn warmup(
    cx: &mut Cx<'_>,
    path: &str,
    lb: &raw::LoadBalancer,
    algorithm: Option<&LoadBalancer>,
) -> Option<Warmup> {
    let (p, w) = match (&lb.warmup, &lb.warmup_duration_secs) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            let msg = "only one of warmup or warmupDurationSecs (deprecated) is allowed";
            cx.err(path, msg);
            return None;
        }
        (Some(w), None) => (
            join(path, "warmup"),
            warmup_config(cx, &join(path, "warmup"), w),
        ),
        (None, Some(d)) => {
            let p = join(path, "warmupDurationSecs");
            let w = cx.duration(&p, d).map(|duration| Warmup {
                duration,
                minimum_percent: 10.0,
                aggression: 1.0,
            });
            (p, w)
        }
    };
    let slow_start_capable = matches!(
        algorithm,
        None | Some(LoadBalancer::Simple(
            SimpleLb::RoundRobin | SimpleLb::LeastRequest | SimpleLb::Unspecified
        ))
    );
    if !slow_start_capable {
        let msg = "warmup needs simple: ROUND_ROBIN or LEAST_REQUEST (Envoy has slow start for these only)";
        cx.err(&p, msg);
        return None;
    }
    w
}

fn warmup_config(cx: &mut Cx<'_>, p: &str, w: &raw::Warmup) -> Option<Warmup> {
    let Some(d) = &w.duration else {
        cx.err(p, "warmup.duration is required");
        return None;
    };
    let duration = cx.duration(&join(p, "duration"), d);
    let minimum_percent = match w.minimum_percent {
        None => Some(10.0),
        Some(v) => cx.percent(&join(p, "minimumPercent"), v),
    };
    let aggression = match w.aggression {
        None => Some(1.0),
        Some(a) if a >= 1.0 => Some(a),
        Some(a) => {
            cx.err(
                &join(p, "aggression"),
                format!("aggression {a} must be at least 1"),
            );
            None
        }
    };
    Some(Warmup {
        duration: duration?,
        minimum_percent: minimum_percent?,
        aggression: aggression?,
    })
}
