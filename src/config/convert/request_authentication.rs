//! `RequestAuthentication` conversion with Istio's validation rules
//! (`pkg/config/validation`: `ValidateRequestAuthentication`). Every field
//! Trellis does not support is an error naming it, never ignored.

use super::values::is_header_name;
use super::{join, Cx};
use crate::config::model::{JwksSource, JwtHeader, JwtRule, RequestAuthentication};
use crate::config::raw::request_authentication as raw;

/// Converts one resource; `None` when it has errors (all recorded).
pub(crate) fn request_authentication(
    cx: &mut Cx<'_>,
    spec: &raw::RequestAuthentication,
) -> Option<RequestAuthentication> {
    let before = cx.diags.len();
    let target_services = target_services(cx, spec);
    let selector = spec.selector.as_ref().map(|s| {
        cx.labels("spec.selector.matchLabels", &s.match_labels);
        s.match_labels.clone()
    });
    let written = spec.jwt_rules.as_deref().unwrap_or_default();
    let jwt_rules: Vec<JwtRule> = (written.iter().enumerate())
        .filter_map(|(i, r)| jwt_rule(cx, &format!("spec.jwtRules[{i}]"), r))
        .collect();
    (cx.diags.len() == before).then(|| RequestAuthentication {
        selector,
        target_services,
        jwt_rules,
        origin: cx.doc.origin(),
    })
}

/// `targetRef` / `targetRefs` (Istio: at most one of them, and not with
/// `selector`): each must name a `Service` of the resource's namespace,
/// whose workloads Trellis knows by their service name.
fn target_services(cx: &mut Cx<'_>, spec: &raw::RequestAuthentication) -> Vec<String> {
    let refs: Vec<(String, &raw::TargetRef)> = match (&spec.target_ref, &spec.target_refs) {
        (Some(_), Some(_)) => {
            cx.err(
                "spec.targetRefs",
                "only one of targetRef or targetRefs is allowed",
            );
            return Vec::new();
        }
        (Some(r), None) => vec![("spec.targetRef".to_string(), r)],
        (None, Some(rs)) => (rs.iter().enumerate())
            .map(|(i, r)| (format!("spec.targetRefs[{i}]"), r))
            .collect(),
        (None, None) => return Vec::new(),
    };
    if spec.selector.is_some() {
        let msg = "selector and targetRef(s) cannot both be set: one chooses the workloads";
        cx.err("spec.selector", msg);
    }
    let own_ns = cx.doc.namespace.clone();
    let mut out = Vec::new();
    for (path, r) in refs {
        if let Some(name) = target_service(cx, &path, r, &own_ns) {
            out.push(name);
        }
    }
    out
}

/// One target reference: the service's name, or an error saying why it
/// cannot apply in Trellis.
fn target_service(cx: &mut Cx<'_>, path: &str, r: &raw::TargetRef, own_ns: &str) -> Option<String> {
    let msg = match (r.group.as_str(), r.kind.as_str()) {
        ("" | "core", "Service") => None,
        ("gateway.networking.k8s.io", "Gateway" | "GatewayClass") => Some(format!(
            "kind {} (Kubernetes Gateway API) has no counterpart in Trellis, whose gateways are              Istio `Gateway` resources: select the gateway proxies with `selector` (their labels)",
            r.kind
        )),
        ("networking.istio.io", "ServiceEntry") => Some(
            "kind ServiceEntry is not supported as a target: target its workloads with              `selector`, or a `Service` by name"
                .to_string(),
        ),
        _ => Some(format!(
            "unsupported target group {:?} kind {:?}: only kind Service (group \"\") is supported",
            r.group, r.kind
        )),
    };
    if let Some(msg) = msg {
        cx.err(&join(path, "kind"), msg);
        return None;
    }
    if r.namespace.as_deref().is_some_and(|ns| ns != own_ns) {
        let msg = "a target must be in the policy's own namespace (Istio's rule)";
        cx.err(&join(path, "namespace"), msg);
        return None;
    }
    if !super::is_dns_label(&r.name) {
        let msg = format!("service name {:?} is not a DNS label", r.name);
        cx.err(&join(path, "name"), msg);
        return None;
    }
    Some(r.name.clone())
}

fn jwt_rule(cx: &mut Cx<'_>, p: &str, r: &raw::JwtRule) -> Option<JwtRule> {
    cx.unsupported(p, "timeout", &r.timeout);
    cx.unsupported(p, "spaceDelimitedClaims", &r.space_delimited_claims);
    let issuer = match r.issuer.as_deref() {
        Some(i) if !i.trim().is_empty() => Some(i.to_string()),
        _ => {
            cx.err(&join(p, "issuer"), "`issuer` must be set");
            None
        }
    };
    for (i, a) in r.audiences.iter().enumerate() {
        if a.is_empty() {
            cx.err(&format!("{p}.audiences[{i}]"), "empty audience");
        }
    }
    let keys = keys(cx, p, r);
    let from_headers = headers(cx, p, &r.from_headers);
    non_empty(cx, &join(p, "fromParams"), &r.from_params);
    non_empty(cx, &join(p, "fromCookies"), &r.from_cookies);
    if let Some(h) = &r.output_payload_to_header {
        header_name(cx, &join(p, "outputPayloadToHeader"), h);
    }
    let claims = claim_headers(cx, p, &r.output_claim_to_headers);
    Some(JwtRule {
        issuer: issuer?,
        audiences: r.audiences.clone(),
        keys: keys?,
        from_headers,
        from_params: r.from_params.clone(),
        from_cookies: r.from_cookies.clone(),
        forward_original_token: r.forward_original_token,
        output_payload_to_header: r.output_payload_to_header.clone(),
        output_claim_to_headers: claims,
    })
}

/// `jwks` (checked to be a key set) or `jwksUri` (an `https://` URL).
fn keys(cx: &mut Cx<'_>, p: &str, r: &raw::JwtRule) -> Option<JwksSource> {
    match (&r.jwks, &r.jwks_uri) {
        (Some(_), Some(_)) => {
            cx.err(p, "set only one of `jwks` and `jwksUri`");
            None
        }
        (None, None) => {
            let msg = "one of `jwks` or `jwksUri` must be set: OpenID discovery from the issuer is not supported";
            cx.err(p, msg);
            None
        }
        (Some(jwks), None) => match check_jwks(jwks) {
            Ok(()) => Some(JwksSource::Inline(jwks.clone())),
            Err(e) => {
                cx.err(&join(p, "jwks"), e);
                None
            }
        },
        (None, Some(uri)) => match check_uri(uri) {
            Ok(()) => Some(JwksSource::Uri(uri.clone())),
            Err(e) => {
                cx.err(&join(p, "jwksUri"), e);
                None
            }
        },
    }
}

/// A JSON Web Key Set (RFC 7517 §5): an object whose `keys` is a
/// non-empty array of objects that each name their `kty`.
pub(crate) fn check_jwks(text: &str) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("`jwks` is not valid JSON: {e}"))?;
    let keys = v
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("`jwks` must be a JSON object with a `keys` array (RFC 7517)")?;
    if keys.is_empty() {
        return Err("`jwks` has no keys".to_string());
    }
    for (i, k) in keys.iter().enumerate() {
        if k.get("kty").and_then(|t| t.as_str()).is_none() {
            return Err(format!("`jwks` key {i} has no `kty`"));
        }
    }
    Ok(())
}

fn check_uri(uri: &str) -> Result<(), String> {
    let parsed: hyper::Uri = uri
        .parse()
        .map_err(|e| format!("`jwksUri` {uri:?} is not a URL: {e}"))?;
    if parsed.scheme_str() != Some("https") || parsed.host().is_none() {
        return Err(format!(
            "`jwksUri` {uri:?} must be an https:// URL with a host"
        ));
    }
    Ok(())
}

fn headers(cx: &mut Cx<'_>, p: &str, hs: &[raw::JwtHeader]) -> Vec<JwtHeader> {
    (hs.iter().enumerate())
        .filter(|(i, h)| header_name(cx, &format!("{p}.fromHeaders[{i}].name"), &h.name))
        .map(|(_, h)| JwtHeader {
            name: h.name.to_ascii_lowercase(),
            prefix: h.prefix.clone(),
        })
        .collect()
}

fn claim_headers(cx: &mut Cx<'_>, p: &str, cs: &[raw::ClaimToHeader]) -> Vec<(String, String)> {
    (cs.iter().enumerate())
        .filter_map(|(i, c)| {
            let q = format!("{p}.outputClaimToHeaders[{i}]");
            let ok = header_name(cx, &join(&q, "header"), &c.header);
            if c.claim.is_empty() {
                cx.err(&join(&q, "claim"), "`claim` must be set");
                return None;
            }
            ok.then(|| (c.header.to_ascii_lowercase(), c.claim.clone()))
        })
        .collect()
}

fn header_name(cx: &mut Cx<'_>, path: &str, name: &str) -> bool {
    let ok = is_header_name(name);
    if !ok {
        cx.err(path, format!("{name:?} is not a valid header name"));
    }
    ok
}

fn non_empty(cx: &mut Cx<'_>, path: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() {
            cx.err(&format!("{path}[{i}]"), "empty name");
        }
    }
}

#[cfg(test)]
mod tests;
