//! The premature mesh: with fewer than five services "the operational
//! overhead of the control plane, sidecar injection, and mesh
//! configuration far exceeds the benefit" (the mesh notes).

use super::graph::Workload;
use super::{Check, Finding, Input, Severity};

/// Services below which a mesh is premature.
pub const MIN_SERVICES: usize = 5;

/// One info finding when the mesh has fewer than [`MIN_SERVICES`] services.
pub fn check(input: &Input<'_>, workloads: &[Workload]) -> Option<Finding> {
    if workloads.len() >= MIN_SERVICES {
        return None;
    }
    let first = (workloads.iter()).min_by_key(|s| (&s.origin.file, s.origin.line))?;
    let msg = format!(
        "the mesh has {} service(s), fewer than {MIN_SERVICES}",
        workloads.len()
    );
    let why = "For a handful of services, a control plane, sidecars and mesh config cost more to \
               run than an HTTP client library with retries and TLS.";
    let fix = "Run `trellis assess` to score whether a mesh pays off here; if it does, start with \
               mTLS and observability only."
        .to_string();
    let f = input.finding(
        Check::PrematureMesh,
        Severity::Info,
        &first.origin,
        first.field,
    );
    Some(f.says(msg, why, fix))
}
