//! Sidecars placed in a locality (`trellis bootstrap --locality`) and the
//! steady-state checks the locality and multi-cluster tests share: a
//! `payment` instance per locality, a client in one, and "one request at a
//! time until the answers settle".

use std::time::{Duration, Instant};

use crate::sidecar::SidecarSpec;
use crate::{Backend, Behavior, Client, Instance, MeshClient, Sidecar, Tally, Trellis};

/// A `payment` instance named `name` (its answers read `NAME v1`) whose
/// sidecar runs in `locality`.
pub async fn payment_in(trellis: &Trellis, name: &str, locality: &str) -> Instance {
    let backend = Backend::start_with(name, "v1", Behavior::Ok).await.unwrap();
    let sidecar = Sidecar::start_spec(trellis, in_locality("payment", backend.port(), locality))
        .await
        .unwrap();
    Instance { backend, sidecar }
}

/// A `client` whose sidecar runs in `locality`.
pub async fn client_in(trellis: &Trellis, locality: &str) -> MeshClient {
    let app = Backend::start("client", "v1").await.unwrap();
    let sidecar = Sidecar::start_spec(trellis, in_locality("client", app.port(), locality))
        .await
        .unwrap();
    MeshClient {
        app,
        sidecar,
        http: Client::new(),
    }
}

fn in_locality(service: &str, app_port: u16, locality: &str) -> SidecarSpec {
    let mut spec = SidecarSpec::new(service, &[("version", "v1")], app_port);
    spec.extra_args = vec!["--locality".into(), locality.into()];
    spec
}

/// Answers from the instances `names` among `tally`'s successes.
pub fn answers_from(tally: &Tally, names: &[&str]) -> usize {
    names.iter().map(|n| tally.get(&format!("{n} v1"))).sum()
}

/// Sends one request at a time to `payment` until `done` holds for the
/// last `window` answers; returns the time taken, the failed requests on
/// the way and the requests sent. Panics after `timeout`.
pub async fn until_steady(
    client: &MeshClient,
    window: usize,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> (Duration, usize, usize) {
    let start = Instant::now();
    let (mut streak, mut failed, mut sent) = (0, 0, 0);
    while streak < window {
        assert!(
            start.elapsed() < timeout,
            "not steady after {timeout:?}: {sent} sent, {failed} failed"
        );
        let outcome = match client.get("payment", &[]).await {
            Ok(r) => r.outcome(),
            Err(_) => "error".into(),
        };
        sent += 1;
        failed += usize::from(!outcome.ends_with(" v1"));
        streak = if done(&outcome) { streak + 1 } else { 0 };
    }
    (start.elapsed(), failed, sent)
}
