//! An `AuthorizationPolicy` rule as a TCP connection can match it, as
//! istiod translates it for TCP filter chains
//! (`pilot/pkg/security/authz/model`, `rule.checkError`; Istio's
//! "Authorization for TCP traffic"). A connection has no HTTP request, so
//! the HTTP-only fields (`hosts`, `methods`, `paths`, `requestPrincipals`
//! and their `not` forms, `when` keys `request.headers[...]` and
//! `request.auth.*`) cannot be checked:
//!
//! - in an ALLOW policy a rule with any of them is left out (it never
//!   allows a connection: the policy gets narrower);
//! - in a DENY or AUDIT policy they are ignored, the rest of the rule
//!   still applies (the policy gets wider: a DENY rule of `methods: [GET]`
//!   alone denies every connection).

use crate::config::model::{AuthzAction, AuthzCondition, AuthzKey, AuthzRule, AuthzValues};

/// `rule` for a TCP chain of a policy of `action`; `None` when the rule is
/// left out.
pub(super) fn for_tcp(rule: &AuthzRule, action: AuthzAction) -> Option<AuthzRule> {
    if action == AuthzAction::Allow && has_http_only(rule) {
        return None;
    }
    let mut out = rule.clone();
    for op in &mut out.to {
        op.hosts = AuthzValues::default();
        op.methods = AuthzValues::default();
        op.paths = AuthzValues::default();
    }
    for src in &mut out.from {
        src.request_principals = AuthzValues::default();
    }
    out.when.retain(|c| !http_only_key(&c.key));
    Some(out)
}

/// True when the rule names any HTTP-only field.
fn has_http_only(rule: &AuthzRule) -> bool {
    let op = (rule.to.iter())
        .any(|o| !o.hosts.is_empty() || !o.methods.is_empty() || !o.paths.is_empty());
    let src = (rule.from.iter()).any(|s| !s.request_principals.is_empty());
    let when = (rule.when.iter()).any(|c: &AuthzCondition| http_only_key(&c.key));
    op || src || when
}

/// The `when` keys only an HTTP request carries.
fn http_only_key(k: &AuthzKey) -> bool {
    matches!(
        k,
        AuthzKey::RequestHeader(_)
            | AuthzKey::RequestPrincipal
            | AuthzKey::RequestAudiences
            | AuthzKey::RequestPresenter
            | AuthzKey::RequestClaim(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{AuthzOperation, AuthzSource};

    fn values(v: &[&str]) -> AuthzValues<String> {
        AuthzValues {
            values: v.iter().map(|s| s.to_string()).collect(),
            not_values: Vec::new(),
        }
    }

    fn rule_with_methods() -> AuthzRule {
        AuthzRule {
            from: vec![AuthzSource {
                principals: values(&["cluster.local/ns/default/sa/a"]),
                ..Default::default()
            }],
            to: vec![AuthzOperation {
                methods: values(&["GET"]),
                ports: AuthzValues {
                    values: vec![9000],
                    not_values: Vec::new(),
                },
                ..Default::default()
            }],
            when: Vec::new(),
        }
    }

    #[test]
    fn allow_rule_with_http_fields_is_left_out() {
        assert_eq!(for_tcp(&rule_with_methods(), AuthzAction::Allow), None);
    }

    #[test]
    fn deny_rule_keeps_its_tcp_fields_only() {
        let r = for_tcp(&rule_with_methods(), AuthzAction::Deny).unwrap();
        assert!(r.to[0].methods.is_empty());
        assert_eq!(r.to[0].ports.values, vec![9000]);
        assert_eq!(r.from, rule_with_methods().from);
    }

    #[test]
    fn http_when_keys_are_dropped_for_deny_and_refuse_allow() {
        let mut r = rule_with_methods();
        r.to.clear();
        r.when = vec![AuthzCondition {
            key: AuthzKey::RequestHeader("x-a".into()),
            values: values(&["1"]),
        }];
        assert_eq!(for_tcp(&r, AuthzAction::Allow), None);
        assert!(for_tcp(&r, AuthzAction::Audit).unwrap().when.is_empty());
    }

    #[test]
    fn tcp_only_allow_rule_is_unchanged() {
        let mut r = rule_with_methods();
        r.to[0].methods = AuthzValues::default();
        assert_eq!(for_tcp(&r, AuthzAction::Allow), Some(r));
    }
}
