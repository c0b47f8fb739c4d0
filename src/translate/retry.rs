//! Retry policies and timeouts, as istiod writes them
//! (`pilot/pkg/networking/core/route/retry/retry.go`, `route.go` setTimeout).

use envoy_types::pb::envoy::config::route::v3::{
    retry_policy::{
        retry_host_predicate, retry_priority, RetryBackOff, RetryHostPredicate, RetryPriority,
    },
    RetryPolicy,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use envoy_types::util::pack_any;

use super::util::{duration, u32v, zero_duration};
use crate::config::model::Retries;

/// Istio's default `retryOn` when a route has no `retries` (or no
/// `retryOn`).
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The status codes `retriable-status-codes` means by default: 503, as
/// Istio did until 1.23 and as docs/config-reference.md documents
/// (Istio 1.24 dropped it, istio/istio#52111, as unsafe for
/// non-idempotent requests; revisit with a mesh-wide default policy).
pub const DEFAULT_RETRIABLE_STATUS_CODES: &[u32] = &[503];

/// Istio's default number of retries.
pub const DEFAULT_ATTEMPTS: u32 = 2;

/// Envoy's maximum back-off interval is this many times the base when
/// unset; Trellis writes it out so `/config_dump` shows the bound.
pub const BACKOFF_MAX_FACTOR: u32 = 10;

/// Istio's `ConvertPolicy`: `None` (no `retries`) gives the default
/// policy; `attempts: 0` gives no policy; otherwise the user's settings
/// over the default. `consistent_hash` drops the previous-hosts predicate,
/// because a hashed request must go back to the same host, unless the
/// route sets `retryIgnorePreviousHosts` (Istio honours it even then).
pub fn policy(retries: Option<&Retries>, consistent_hash: bool) -> Option<RetryPolicy> {
    let mut out = RetryPolicy {
        num_retries: Some(u32v(DEFAULT_ATTEMPTS)),
        retry_on: DEFAULT_RETRY_ON.to_string(),
        retriable_status_codes: DEFAULT_RETRIABLE_STATUS_CODES.to_vec(),
        host_selection_retry_max_attempts: 5,
        retry_host_predicate: if consistent_hash {
            Vec::new()
        } else {
            vec![previous_hosts()]
        },
        ..Default::default()
    };
    let Some(r) = retries else { return Some(out) };
    if r.attempts == 0 {
        return None;
    }
    out.num_retries = Some(u32v(r.attempts));
    if r.retry_on.is_some() || !r.retriable_status_codes.is_empty() {
        out.retry_on = retry_on(r);
        out.retriable_status_codes = r.retriable_status_codes.clone();
    }
    out.per_try_timeout = r.per_try_timeout.map(duration);
    if let Some(ignore) = r.retry_ignore_previous_hosts {
        out.retry_host_predicate = if ignore {
            vec![previous_hosts()]
        } else {
            Vec::new()
        };
    }
    if r.retry_remote_localities == Some(true) {
        out.retry_priority = Some(previous_priorities());
    }
    out.retry_back_off = r.backoff.map(back_off);
    Some(out)
}

/// The user's `retryOn` names; status codes imply
/// `retriable-status-codes` (Istio adds it when missing).
fn retry_on(r: &Retries) -> String {
    let mut names: Vec<String> = r.retry_on.clone().unwrap_or_default();
    let implied = "retriable-status-codes";
    if !r.retriable_status_codes.is_empty() && !names.iter().any(|n| n == implied) {
        names.push(implied.to_string());
    }
    names.join(",")
}

/// Exponential back-off from `base` (Envoy: each wait is random in
/// `[0, base × 2^retry)`), capped at [`BACKOFF_MAX_FACTOR`] × `base`.
fn back_off(base: std::time::Duration) -> RetryBackOff {
    RetryBackOff {
        base_interval: Some(duration(base)),
        max_interval: Some(duration(base.saturating_mul(BACKOFF_MAX_FACTOR))),
    }
}

fn previous_hosts() -> RetryHostPredicate {
    RetryHostPredicate {
        name: "envoy.retry_host_predicates.previous_hosts".to_string(),
        config_type: Some(retry_host_predicate::ConfigType::TypedConfig(pack_any(
            PreviousHostsPredicate::default(),
        ))),
    }
}

fn previous_priorities() -> RetryPriority {
    RetryPriority {
        name: "envoy.retry_priorities.previous_priorities".to_string(),
        config_type: Some(retry_priority::ConfigType::TypedConfig(pack_any(
            PreviousPrioritiesConfig {
                update_frequency: 2,
            },
        ))),
    }
}

/// Route `timeout`: the VirtualService's value, else 0s (disabled), set
/// explicitly because Envoy's default is 15 s.
///
/// No `max_stream_duration` (nor the deprecated `max_grpc_timeout` Istio
/// still writes): its mere presence switches Envoy's router to "new
/// timeouts", where the route `timeout` is no longer enforced.
pub fn route_timeout(timeout: Option<std::time::Duration>) -> PbDuration {
    timeout.map(duration).unwrap_or_else(zero_duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn retries(attempts: u32) -> Retries {
        Retries {
            attempts,
            per_try_timeout: None,
            retry_on: None,
            retriable_status_codes: vec![],
            retry_remote_localities: None,
            retry_ignore_previous_hosts: None,
            backoff: None,
        }
    }

    #[test]
    fn default_policy_is_istios() {
        let p = policy(None, false).unwrap();
        assert_eq!(p.num_retries.unwrap().value, 2);
        assert_eq!(p.retry_on, DEFAULT_RETRY_ON);
        assert_eq!(p.retriable_status_codes, vec![503]);
        assert_eq!(p.host_selection_retry_max_attempts, 5);
        assert_eq!(p.retry_host_predicate.len(), 1);
        assert_eq!(
            p.retry_host_predicate[0].name,
            "envoy.retry_host_predicates.previous_hosts"
        );
        assert!(p.per_try_timeout.is_none());
    }

    #[test]
    fn consistent_hash_drops_previous_hosts() {
        assert!(policy(None, true).unwrap().retry_host_predicate.is_empty());
    }

    #[test]
    fn zero_attempts_disables_retries() {
        assert_eq!(policy(Some(&retries(0)), false), None);
    }

    #[test]
    fn user_policy_overrides_defaults() {
        let mut r = retries(3);
        r.per_try_timeout = Some(Duration::from_secs(2));
        r.retry_on = Some(vec!["5xx".into(), "reset".into(), "connect-failure".into()]);
        let p = policy(Some(&r), false).unwrap();
        assert_eq!(p.num_retries.unwrap().value, 3);
        assert_eq!(p.retry_on, "5xx,reset,connect-failure");
        assert_eq!(p.per_try_timeout.unwrap().seconds, 2);
        assert!(
            p.retriable_status_codes.is_empty(),
            "user's retryOn replaces the default"
        );
    }

    #[test]
    fn attempts_alone_keep_default_retry_on() {
        let p = policy(Some(&retries(4)), false).unwrap();
        assert_eq!(p.retry_on, DEFAULT_RETRY_ON);
        assert_eq!(p.retriable_status_codes, vec![503]);
    }

    #[test]
    fn status_codes_imply_retriable_status_codes() {
        let mut r = retries(1);
        r.retry_on = Some(vec!["gateway-error".into()]);
        r.retriable_status_codes = vec![503, 429];
        let p = policy(Some(&r), false).unwrap();
        assert_eq!(p.retry_on, "gateway-error,retriable-status-codes");
        assert_eq!(p.retriable_status_codes, vec![503, 429]);
        r.retry_remote_localities = Some(true);
        let p = policy(Some(&r), false).unwrap();
        assert_eq!(
            p.retry_priority.unwrap().name,
            "envoy.retry_priorities.previous_priorities"
        );
    }

    #[test]
    fn backoff_sets_base_and_a_tenfold_maximum() {
        assert!(policy(Some(&retries(2)), false)
            .unwrap()
            .retry_back_off
            .is_none());
        let mut r = retries(2);
        r.backoff = Some(Duration::from_millis(40));
        let b = policy(Some(&r), false).unwrap().retry_back_off.unwrap();
        assert_eq!(b.base_interval.unwrap().nanos, 40_000_000);
        assert_eq!(b.max_interval.unwrap().nanos, 400_000_000);
    }

    #[test]
    fn ignore_previous_hosts_overrides_the_default_both_ways() {
        let mut r = retries(2);
        r.retry_ignore_previous_hosts = Some(false);
        assert!(policy(Some(&r), false)
            .unwrap()
            .retry_host_predicate
            .is_empty());
        r.retry_ignore_previous_hosts = Some(true);
        let p = policy(Some(&r), true).unwrap();
        assert_eq!(
            p.retry_host_predicate.len(),
            1,
            "set explicitly, kept with hashing"
        );
        assert_eq!(p.host_selection_retry_max_attempts, 5);
    }

    #[test]
    fn timeout_defaults_to_disabled() {
        let t = route_timeout(None);
        assert_eq!((t.seconds, t.nanos), (0, 0));
        let t = route_timeout(Some(Duration::from_millis(500)));
        assert_eq!(t.nanos, 500_000_000);
    }
}
