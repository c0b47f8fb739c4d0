//! What the sidecar of a caller applies to calls to a host: the retries
//! and timeouts of the host's `VirtualService` routes, with Istio's
//! defaults where it has none.

use std::time::Duration;

use crate::config::model::{Host, MeshConfig, Origin};
use crate::translate::DEFAULT_ATTEMPTS;

/// A field of a resource: where a finding points.
#[derive(Debug, Clone)]
pub struct At {
    /// The resource.
    pub origin: Origin,
    /// The field path.
    pub path: String,
}

/// The most retries a call to `host` may get, and the field that sets it
/// (`None`: Istio's default of 2, as no `VirtualService` sets one).
/// Every HTTP rule may carry the call, so the worst one counts; TCP-only
/// routes never retry.
pub fn retries(mesh: &MeshConfig, host: &Host) -> (u32, Option<At>) {
    let Some(vs) = mesh.virtual_services.get(host) else {
        return (DEFAULT_ATTEMPTS, None);
    };
    let mut worst: Option<(u32, At)> = None;
    for (i, rule) in vs.http.iter().enumerate() {
        let (n, path) = match &rule.retries {
            Some(r) => (r.attempts, format!("spec.http[{i}].retries.attempts")),
            None => (DEFAULT_ATTEMPTS, format!("spec.http[{i}]")),
        };
        if worst.as_ref().is_none_or(|(w, _)| n > *w) {
            let origin = vs.origin.clone();
            worst = Some((n, At { origin, path }));
        }
    }
    match worst {
        Some((n, at)) => (n, Some(at)),
        None => (0, None),
    }
}

/// The longest total time a caller waits on `host`: the largest route
/// `timeout`, else (no rule has one) `perTryTimeout × attempts` when
/// every rule bounds its tries; `None` when some call is unbounded.
pub fn timeout(mesh: &MeshConfig, host: &Host) -> Option<(Duration, At)> {
    let vs = mesh.virtual_services.get(host)?;
    let mut longest: Option<(Duration, At)> = None;
    for (i, rule) in vs.http.iter().enumerate() {
        let bound = match (&rule.timeout, &rule.retries) {
            (Some(t), _) => (*t, format!("spec.http[{i}].timeout")),
            (None, Some(r)) => match r.per_try_timeout {
                Some(p) => (
                    p * (r.attempts + 1),
                    format!("spec.http[{i}].retries.perTryTimeout"),
                ),
                None => return None,
            },
            (None, None) => return None,
        };
        if longest.as_ref().is_none_or(|(l, _)| bound.0 > *l) {
            let origin = vs.origin.clone();
            longest = Some((
                bound.0,
                At {
                    origin,
                    path: bound.1,
                },
            ));
        }
    }
    longest
}

/// True when some rule of `host`'s `VirtualService` bounds its calls
/// (a `timeout` or a `perTryTimeout`).
pub fn has_timeout(mesh: &MeshConfig, host: &Host) -> bool {
    mesh.virtual_services.get(host).is_some_and(|vs| {
        (vs.http.iter()).any(|r| {
            r.timeout.is_some()
                || r.retries
                    .as_ref()
                    .is_some_and(|x| x.per_try_timeout.is_some())
        })
    })
}
