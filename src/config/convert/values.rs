//! Checks of single values: durations, hosts, labels, names.

use std::time::Duration;

const DURATION_HINT: &str = "use a number and a unit, e.g. 2s, 500ms, 1.5s, 1m, 1h";

/// Parses a Go/Istio duration: one or more `NUMBER UNIT` pairs
/// (`2s`, `500ms`, `1.5s`, `1m30s`, `1h`), units `h m s ms us µs ns`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: {DURATION_HINT}");
    let mut rest = text.trim();
    if rest.is_empty() || rest.starts_with(['-', '+']) {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    // Round to whole nanoseconds so that `1.5s` is exactly 1.5 s.
    let nanos = (total * 1e9).round();
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(format!("duration {text:?} is too large"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A hostname Istio accepts in `hosts`/`host` fields (no wildcards yet).
pub(crate) fn check_host(raw: &str) -> Result<(), String> {
    let h = raw.trim_end_matches('.');
    if h.is_empty() {
        return Err("host must not be empty".to_string());
    }
    if h.contains('*') {
        return Err(format!("wildcard host {raw:?} is not supported yet"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    };
    if h.len() > 255 || !h.split('.').all(label_ok) {
        return Err(format!("host {raw:?} is not a valid DNS name"));
    }
    Ok(())
}

/// Kubernetes label key (`[prefix/]name`) and value rules.
pub(crate) fn check_label(key: &str, value: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) || !is_label_name(name) || name.is_empty() {
        return Err(format!("invalid label key {key:?}: use [prefix/]name, name at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(format!("invalid label value {value:?}: at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"));
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    b.len() <= 63
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// An HTTP header name (RFC 7230 token), as Istio checks it.
pub(crate) fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok =
            |s: &str, ms: u64| assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        ok("2s", 2000);
        ok("500ms", 500);
        ok("1m", 60_000);
        ok("1h", 3_600_000);
        ok("1.5s", 1500);
        ok("1m30s", 90_000);
        for bad in ["", "2", "abc", "-1s", "2 s", "1d", "s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(is_dns_label("v1"));
        assert!(!is_dns_label("V1"));
        assert!(!is_dns_label("-a"));
        assert!(check_label("app.kubernetes.io/name", "pay_ment").is_ok());
        assert!(check_label("bad key", "v").is_err());
        assert!(check_label("k", "-v").is_err());
        assert!(check_host("payment-service").is_ok());
        assert!(check_host("api.example.com").is_ok());
        assert!(check_host("").is_err());
        assert!(check_host("a_b").is_err());
        assert!(check_host("*.example.com").is_err());
        assert!(is_header_name("end-user"));
        assert!(!is_header_name("end user"));
    }
}
