//! `retries` and `fault` of an HTTP rule.

use super::super::{join, Cx};
use crate::config::model::{AbortError, Fault, FaultAbort, FaultDelay, Retries};
use crate::config::raw::virtual_service as vs;

/// `retryOn` names Istio accepts (Envoy's HTTP and gRPC retry policies).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "refused-stream",
    "retriable-4xx",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names (for `abort.grpcStatus`), by code.
const GRPC_STATUS: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `retries`, with Istio's rules: attempts not negative; attempts 0
/// disables retries and then nothing else may be set.
pub(in crate::config::convert) fn retries(
    cx: &mut Cx<'_>,
    path: &str,
    r: &vs::Retries,
) -> Option<Retries> {
    let before = cx.diags.len();
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        cx.err(&join(path, "attempts"), "attempts cannot be negative");
    } else if attempts > i64::from(i32::MAX) {
        cx.err(
            &join(path, "attempts"),
            format!("attempts {attempts} is too large"),
        );
    } else if attempts == 0
        && (r.per_try_timeout.is_some()
            || r.retry_on.is_some()
            || r.retry_remote_localities.is_some()
            || r.retry_ignore_previous_hosts.is_some()
            || r.backoff.is_some())
    {
        let p = if r.attempts.is_some() {
            join(path, "attempts")
        } else {
            path.to_string()
        };
        cx.err(&p, "retry policy configured while attempts is 0 (disabled): set attempts or remove the policy");
    }
    let per_try_timeout =
        (r.per_try_timeout.as_ref()).and_then(|t| cx.duration(&join(path, "perTryTimeout"), t));
    let backoff = (r.backoff.as_ref()).and_then(|t| cx.duration(&join(path, "backoff"), t));
    let (retry_on, retriable_status_codes) = match &r.retry_on {
        Some(list) => {
            let (on, codes) = retry_on(cx, &join(path, "retryOn"), list);
            (Some(on), codes)
        }
        None => (None, Vec::new()),
    };
    (cx.diags.len() == before).then_some(Retries {
        attempts: attempts as u32,
        per_try_timeout,
        retry_on,
        retriable_status_codes,
        retry_remote_localities: r.retry_remote_localities,
        retry_ignore_previous_hosts: r.retry_ignore_previous_hosts,
        backoff,
    })
}

/// Splits `retryOn` into policy names and HTTP status codes; codes imply
/// `retriable-status-codes`, which is then part of the names.
fn retry_on(cx: &mut Cx<'_>, path: &str, list: &str) -> (Vec<String>, Vec<u32>) {
    let mut names: Vec<String> = Vec::new();
    let mut codes = Vec::new();
    for item in list.split(',').map(str::trim) {
        if let Ok(code) = item.parse::<u32>() {
            if (100..=599).contains(&code) {
                codes.push(code);
                continue;
            }
        }
        if RETRY_ON.contains(&item) {
            if !names.iter().any(|n| n == item) {
                names.push(item.to_string());
            }
        } else {
            cx.err(
                path,
                format!(
                    "{item:?} is not a valid retryOn policy: use HTTP status codes or {}",
                    RETRY_ON.join(", ")
                ),
            );
        }
    }
    if !codes.is_empty() && !names.iter().any(|n| n == "retriable-status-codes") {
        names.push("retriable-status-codes".to_string());
    }
    (names, codes)
}

/// `fault`.
pub(in crate::config::convert) fn fault(
    cx: &mut Cx<'_>,
    path: &str,
    f: &vs::Fault,
) -> Option<Fault> {
    if f.delay.is_none() && f.abort.is_none() {
        cx.err(path, "fault injection must have an abort and/or a delay");
        return None;
    }
    let before = cx.diags.len();
    let delay = f
        .delay
        .as_ref()
        .and_then(|d| delay(cx, &join(path, "delay"), d));
    let abort = f
        .abort
        .as_ref()
        .and_then(|a| abort(cx, &join(path, "abort"), a));
    (cx.diags.len() == before).then_some(Fault { delay, abort })
}

/// `delay`: Istio still accepts the deprecated integer `percent` here
/// (`percentage` wins when both are set).
fn delay(cx: &mut Cx<'_>, path: &str, d: &vs::Delay) -> Option<FaultDelay> {
    if d.exponential_delay.is_some() {
        let msg = "`exponentialDelay` is hidden in Istio's API and Istio does not implement it: use `fixedDelay`";
        cx.err(&join(path, "exponentialDelay"), msg);
    }
    let percentage = match (&d.percentage, d.percent) {
        (Some(p), _) => cx.percent(&join(path, "percentage.value"), p.value)?,
        (None, Some(p)) => cx.percent(&join(path, "percent"), p as f64)?,
        (None, None) => 100.0,
    };
    let Some(fixed) = &d.fixed_delay else {
        cx.err(path, "fixedDelay is required");
        return None;
    };
    let fixed_delay = cx.duration(&join(path, "fixedDelay"), fixed)?;
    Some(FaultDelay {
        fixed_delay,
        percentage,
    })
}

/// `abort`: Istio removed `percent` from `Abort` (the field is reserved in
/// its proto), so it is rejected with the form to use.
fn abort(cx: &mut Cx<'_>, path: &str, a: &vs::Abort) -> Option<FaultAbort> {
    if a.http2_error.is_some() {
        let msg = "`http2Error` is hidden in Istio's API and Istio does not implement it: use `httpStatus` or `grpcStatus`";
        cx.err(&join(path, "http2Error"), msg);
    }
    if let Some(p) = &a.percent {
        let n = p.as_f64().map_or("N".to_string(), |v| v.to_string());
        let msg = format!("Istio's fault.abort has no `percent` field (it was removed): write `percentage: {{value: {n}}}`");
        cx.err(&join(path, "percent"), msg);
    }
    let percentage = match &a.percentage {
        Some(p) => cx.percent(&join(path, "percentage.value"), p.value),
        None => Some(100.0),
    };
    let error = match (a.http_status, &a.grpc_status) {
        (Some(s), None) if (200..=599).contains(&s) => AbortError::Http(s as u16),
        (Some(s), None) => {
            cx.err(
                &join(path, "httpStatus"),
                format!("HTTP status {s} is not in range 200-599"),
            );
            return None;
        }
        (None, Some(g)) => AbortError::Grpc(grpc_status(cx, &join(path, "grpcStatus"), g)?),
        (None, None) => {
            cx.err(path, "httpStatus or grpcStatus is required");
            return None;
        }
        (Some(_), Some(_)) => {
            cx.err(path, "only one of httpStatus or grpcStatus is allowed");
            return None;
        }
    };
    Some(FaultAbort {
        error,
        percentage: percentage?,
    })
}

fn grpc_status(cx: &mut Cx<'_>, path: &str, g: &str) -> Option<u32> {
    let code = (GRPC_STATUS.iter().position(|s| *s == g).map(|i| i as u32)).or_else(|| {
        g.parse::<u32>()
            .ok()
            .filter(|c| (*c as usize) < GRPC_STATUS.len())
    });
    if code.is_none() {
        cx.err(
            path,
            format!(
                "gRPC status {g:?} is not supported: use a name such as NOT_FOUND or UNAVAILABLE"
            ),
        );
    }
    code
}
