//! Checks of the values an `AuthorizationPolicy` matches on, and of
//! `when` conditions (Istio's `pkg/config/security`).

use super::super::values::is_header_name;
use super::super::{join, Cx};
use crate::config::model::{AuthzCondition, AuthzKey, AuthzValues, Cidr};
use crate::config::raw::authorization_policy as raw;

/// How a string value is checked.
#[derive(Debug, Clone, Copy)]
pub(super) enum ValueKind {
    /// `*` alone, or once at the start or the end.
    Wildcard,
    /// A wildcard value written without `spiffe://` (Istio adds it).
    Principal,
    /// Any non-empty value; `*` anywhere.
    Namespace,
    /// `SA` or `NS/SA`, no wildcard.
    ServiceAccount,
    /// No `/`, at most one `*`.
    TrustDomain,
    /// A wildcard value; no path templates.
    Path,
}

impl ValueKind {
    fn check(self, v: &str) -> Result<(), String> {
        if v.is_empty() {
            return Err("empty value is not allowed".to_string());
        }
        match self {
            ValueKind::Wildcard => wildcard(v),
            ValueKind::Principal if v.starts_with("spiffe://") => Err(format!(
                "principal {v:?}: write it without `spiffe://` (e.g. cluster.local/ns/NS/sa/SA); Trellis adds the prefix as Istio does"
            )),
            ValueKind::Principal => wildcard(v),
            ValueKind::Namespace => Ok(()),
            ValueKind::ServiceAccount => service_account(v),
            ValueKind::TrustDomain if v.contains('/') => {
                Err(format!("trust domain {v:?} must not contain '/'"))
            }
            ValueKind::TrustDomain if v.matches('*').count() > 1 => {
                Err(format!("trust domain {v:?}: at most one `*` is allowed"))
            }
            ValueKind::TrustDomain => Ok(()),
            ValueKind::Path if v.contains(['{', '}']) => Err(format!(
                "path {v:?}: path templates ({{*}}, {{**}}) are not supported yet"
            )),
            ValueKind::Path => wildcard(v),
        }
    }
}

fn wildcard(v: &str) -> Result<(), String> {
    let inner = v.len() > 1 && v[1..v.len() - 1].contains('*');
    if inner || (v.len() > 1 && v.starts_with('*') && v.ends_with('*')) {
        return Err(format!(
            "{v:?}: `*` is only allowed alone or once at the start or the end"
        ));
    }
    Ok(())
}

fn service_account(v: &str) -> Result<(), String> {
    let bad = || format!("expected `serviceAccount` or `namespace/serviceAccount`, found {v:?}");
    if v.contains('*') {
        return Err(format!("service account {v:?}: wildcards are not allowed"));
    }
    if v.len() > 320 {
        return Err(format!(
            "service account {v:?} is longer than 320 characters"
        ));
    }
    match v.split_once('/') {
        Some((ns, sa)) if ns.is_empty() || sa.is_empty() || sa.contains('/') => Err(bad()),
        _ => Ok(()),
    }
}

/// Checks the fields of one `source` or `operation` mapping.
pub(super) struct Check<'c, 'a> {
    pub cx: &'c mut Cx<'a>,
    pub path: &'c str,
}

impl Check<'_, '_> {
    /// `field` and `notField` as strings of `kind`.
    pub(super) fn pair(
        &mut self,
        field: &str,
        values: &[String],
        not_values: &[String],
        kind: ValueKind,
    ) -> AuthzValues<String> {
        self.each(field, values, not_values, |v| {
            kind.check(v).map(|()| v.to_string())
        })
    }

    /// `field` and `notField` as IP addresses or CIDR blocks.
    pub(super) fn cidrs(
        &mut self,
        field: &str,
        values: &[String],
        not: &[String],
    ) -> AuthzValues<Cidr> {
        self.each(field, values, not, cidr)
    }

    /// `field` and `notField` as port numbers.
    pub(super) fn ports(
        &mut self,
        field: &str,
        values: &[String],
        not: &[String],
    ) -> AuthzValues<u16> {
        self.each(field, values, not, port)
    }

    fn each<T>(
        &mut self,
        field: &str,
        values: &[String],
        not_values: &[String],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> AuthzValues<T> {
        let not_field = format!("not{}{}", field[..1].to_ascii_uppercase(), &field[1..]);
        AuthzValues {
            values: parse_all(self.cx, &join(self.path, field), values, &parse),
            not_values: parse_all(self.cx, &join(self.path, &not_field), not_values, &parse),
        }
    }
}

fn parse_all<T>(
    cx: &mut Cx<'_>,
    path: &str,
    values: &[String],
    parse: &impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    (values.iter().enumerate())
        .filter_map(|(i, v)| match parse(v) {
            Ok(t) => Some(t),
            Err(e) => {
                cx.err(&format!("{path}[{i}]"), e);
                None
            }
        })
        .collect()
}

fn cidr(v: &str) -> Result<Cidr, String> {
    Cidr::parse(v).ok_or_else(|| format!("{v:?} is not an IP address or CIDR block"))
}

fn port(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {v:?} is not a number in 1..65535")),
    }
}

/// One `when` entry: a known key and values valid for it.
pub(super) fn condition(cx: &mut Cx<'_>, p: &str, c: &raw::Condition) -> Option<AuthzCondition> {
    let key_path = join(p, "key");
    let key = match key(&c.key) {
        Ok(k) => k,
        Err(e) => {
            cx.err(&key_path, e);
            return None;
        }
    };
    if c.values.is_empty() && c.not_values.is_empty() {
        let msg = format!(
            "at least one of `values` or `notValues` must be set for key {}",
            c.key
        );
        cx.err(p, msg);
        return None;
    }
    let mut check = Check { cx, path: p };
    let values = match &key {
        AuthzKey::SourceIp | AuthzKey::RemoteIp | AuthzKey::DestinationIp => {
            let v = check.cidrs("values", &c.values, &c.not_values);
            strings(v.values.len() + v.not_values.len(), c)
        }
        AuthzKey::DestinationPort => {
            let v = check.ports("values", &c.values, &c.not_values);
            strings(v.values.len() + v.not_values.len(), c)
        }
        other => check.pair("values", &c.values, &c.not_values, value_kind(other)),
    };
    Some(AuthzCondition { key, values })
}

/// The values as written once they all parsed (errors already recorded).
fn strings(parsed: usize, c: &raw::Condition) -> AuthzValues<String> {
    if parsed == c.values.len() + c.not_values.len() {
        AuthzValues {
            values: c.values.clone(),
            not_values: c.not_values.clone(),
        }
    } else {
        AuthzValues::default()
    }
}

fn value_kind(key: &AuthzKey) -> ValueKind {
    match key {
        AuthzKey::SourcePrincipal => ValueKind::Principal,
        AuthzKey::SourceNamespace => ValueKind::Namespace,
        AuthzKey::SourceServiceAccount => ValueKind::ServiceAccount,
        AuthzKey::SourceTrustDomain => ValueKind::TrustDomain,
        _ => ValueKind::Wildcard,
    }
}

/// Parses a `when` key (Istio's `ValidateAttribute` names and messages).
fn key(k: &str) -> Result<AuthzKey, String> {
    Ok(match k {
        "" => return Err("`key` must not be empty".to_string()),
        "source.ip" => AuthzKey::SourceIp,
        "remote.ip" => AuthzKey::RemoteIp,
        "source.namespace" => AuthzKey::SourceNamespace,
        "source.serviceAccount" => AuthzKey::SourceServiceAccount,
        "source.principal" => AuthzKey::SourcePrincipal,
        "source.trustDomain" => AuthzKey::SourceTrustDomain,
        "destination.ip" => AuthzKey::DestinationIp,
        "destination.port" => AuthzKey::DestinationPort,
        "connection.sni" => AuthzKey::ConnectionSni,
        _ if k.starts_with("request.headers") => return header_key(k),
        "request.auth.principal" => AuthzKey::RequestPrincipal,
        "request.auth.audiences" => AuthzKey::RequestAudiences,
        "request.auth.presenter" => AuthzKey::RequestPresenter,
        _ if k.starts_with("request.auth.claims") => return claim_key(k),
        _ if k.starts_with("request.auth.") => return Err(format!("unknown attribute: {k}")),
        _ if k.starts_with("experimental.envoy.filters.") => {
            return Err(format!(
                "key {k}: experimental Envoy metadata keys are not supported yet"
            ))
        }
        "destination.namespace" => {
            return Err(format!(
                "attribute {k} is replaced by the metadata.namespace"
            ))
        }
        _ if k.starts_with("destination.labels") => {
            return Err(format!(
                "attribute {k} is replaced by the workload selector"
            ))
        }
        "destination.name" | "destination.user" => {
            return Err(format!(
                "deprecated attribute {k}: only supported in v1alpha1"
            ))
        }
        _ => return Err(format!("unknown attribute: {k}")),
    })
}

/// `request.auth.claims[NAME]` or nested `[A][B]` (Istio's format).
fn claim_key(k: &str) -> Result<AuthzKey, String> {
    let inner = k
        .strip_prefix("request.auth.claims[")
        .and_then(|rest| rest.strip_suffix(']'));
    let path: Option<Vec<String>> = inner.map(|i| i.split("][").map(str::to_string).collect());
    match path {
        Some(p) if p.iter().all(|s| !s.is_empty() && !s.contains(['[', ']'])) => {
            Ok(AuthzKey::RequestClaim(p))
        }
        _ => Err(format!(
            "bad key ({k}): should have format request.auth.claims[CLAIM] or request.auth.claims[A][B]"
        )),
    }
}

fn header_key(k: &str) -> Result<AuthzKey, String> {
    let name = k
        .strip_prefix("request.headers[")
        .and_then(|rest| rest.strip_suffix(']'));
    match name {
        Some(n) if is_header_name(n) => Ok(AuthzKey::RequestHeader(n.to_ascii_lowercase())),
        _ => Err(format!(
            "bad key ({k}): should have format request.headers[NAME] with a valid header name"
        )),
    }
}
