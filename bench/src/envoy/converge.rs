//! Route change convergence across K real Envoys: every Envoy holds the
//! 50/50 split of `svc-0`, the bench rewrites it to 70/30 and waits until
//! each Envoy's `/config_dump` shows 70/30.
//!
//! The latency of one Envoy is its RDS `config_reload_time_ms` gauge (the
//! wall-clock millisecond Envoy applied the update) minus the wall-clock
//! time of the write, so it does not depend on how often the bench polls.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{json, Value};

use super::sidecar::{Sidecar, Spec};
use super::{EnvoyArgs, Running};
use crate::mesh::{service_name, Mesh};
use crate::run::measure::percentiles;

/// The dump of route configurations, and only their versions (the `mask`
/// keeps polling cheap for Envoy's main thread, which also applies xDS).
const ROUTES: &str = "/config_dump?resource=dynamic_route_configs";
const VERSIONS: &str = "/config_dump?resource=dynamic_route_configs&mask=version_info";

/// The split the mesh starts with and the one the change writes.
const BEFORE: [u64; 2] = [50, 50];
const AFTER: [u64; 2] = [70, 30];

/// The changed service (every sidecar routes to it: the mesh is unscoped).
const CHANGED: usize = 0;

/// The weights of the weighted clusters of `host`'s virtual host, and the
/// route configuration holding it, in a `dynamic_route_configs` dump.
pub fn route_weights(dump: &Value, host: &str) -> Option<(String, Vec<u64>)> {
    for config in dump["configs"].as_array()? {
        let rc = &config["route_config"];
        let vhosts = rc["virtual_hosts"].as_array().into_iter().flatten();
        for vh in vhosts {
            let domains = vh["domains"].as_array().into_iter().flatten();
            if !domains.filter_map(Value::as_str).any(|d| d == host) {
                continue;
            }
            let weights = vh["routes"]
                .as_array()?
                .iter()
                .flat_map(|r| r["route"]["weighted_clusters"]["clusters"].as_array())
                .flatten()
                .filter_map(|c| c["weight"].as_u64())
                .collect();
            return Some((rc["name"].as_str()?.to_string(), weights));
        }
    }
    None
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Starts K sidecars (a few at a time) and waits until each is ready and
/// holds the initial split.
async fn start_all(
    args: &EnvoyArgs,
    bin: &Path,
    running: &Running,
    deadline: Instant,
) -> anyhow::Result<Vec<Sidecar>> {
    let host = service_name(CHANGED);
    let mut all = Vec::with_capacity(args.sidecars);
    let services = args.services.max(1);
    for batch in (0..args.sidecars)
        .collect::<Vec<_>>()
        .chunks(args.start_concurrency.max(1))
    {
        let mut started = Vec::new();
        for &i in batch {
            started.push(Sidecar::spawn(&Spec {
                trellis: bin,
                xds: running.server.xds,
                service: service_name(i % services),
                index: i,
                ads_mode: args.ads_mode(),
                dir: running.dir(),
            })?);
        }
        for mut s in started {
            s.wait_ready(deadline).await?;
            let host = host.as_str();
            s.poll("initial split", deadline, |port| async move {
                let dump = fetch_json(port, ROUTES).await?;
                (route_weights(&dump, host)?.1 == BEFORE).then_some(())
            })
            .await?;
            all.push(s);
        }
    }
    Ok(all)
}

async fn fetch_json(port: u16, path: &str) -> Option<Value> {
    let (status, body) = trellis_integration_tests::client::http_get(port, path)
        .await
        .ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Envoy's own timestamp (epoch ms) of its last reload of route config `rc`.
async fn reload_ms(s: &Sidecar, rc: &str) -> anyhow::Result<f64> {
    let stats = s.stats("config_reload_time_ms").await?;
    let infix = format!(".rds.{rc}.");
    stats
        .iter()
        .filter(|(k, _)| k.contains(&infix))
        .map(|(_, v)| *v as f64)
        .reduce(f64::max)
        .context("no config_reload_time_ms stat")
}

/// One Envoy's convergence: Envoy's reload time and when the bench saw it,
/// both in ms after the write.
struct Seen {
    applied_ms: f64,
    observed_ms: f64,
}

/// Polls every Envoy in turn (one admin request in flight) until each shows
/// the new split or the deadline passes; `None` for Envoys that did not.
async fn watch(
    sidecars: &[Sidecar],
    baseline: &[String],
    written_ms: f64,
    poll: Duration,
    deadline: Instant,
) -> anyhow::Result<Vec<Option<Seen>>> {
    let host = service_name(CHANGED);
    let mut seen: Vec<Option<Seen>> = sidecars.iter().map(|_| None).collect();
    while seen.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, s) in sidecars.iter().enumerate() {
            if seen[i].is_some() || s.admin(VERSIONS).await? == baseline[i] {
                continue;
            }
            let observed_ms = now_ms() - written_ms;
            let dump = s.admin_json(ROUTES).await?;
            if let Some((rc, _)) = route_weights(&dump, &host).filter(|(_, w)| *w == AFTER) {
                let applied_ms = reload_ms(s, &rc).await? - written_ms;
                seen[i] = Some(Seen {
                    applied_ms,
                    observed_ms,
                });
            }
        }
        tokio::time::sleep(poll).await;
    }
    Ok(seen)
}

/// For each Envoy that did not converge, how many clusters it has warming:
/// with ADS, Envoy applies no route update while clusters warm ("Resource
/// warming" in the xDS protocol), so a cluster whose endpoints never come
/// blocks the route change.
async fn stuck(sidecars: &[Sidecar], seen: &[Option<Seen>]) -> Vec<u64> {
    let mut out = Vec::new();
    for (s, _) in sidecars.iter().zip(seen).filter(|(_, seen)| seen.is_none()) {
        let stats = s.stats("cluster_manager.warming_clusters").await;
        let warming = stats.ok().and_then(|m| m.values().next().copied());
        out.push(warming.unwrap_or(0));
    }
    out
}

/// Rewrites the split of the changed service and watches every Envoy
/// apply it.
async fn change(
    args: &EnvoyArgs,
    running: &Running,
    mesh: &Mesh,
    sidecars: &[Sidecar],
    deadline: Instant,
) -> anyhow::Result<Vec<Option<Seen>>> {
    let mut baseline = Vec::with_capacity(sidecars.len());
    for s in sidecars {
        baseline.push(s.admin(VERSIONS).await?);
    }
    let written_ms = now_ms();
    mesh.rewrite(&running.config, CHANGED, AFTER[0] as u32, 0)?;
    let poll = Duration::from_millis(args.poll_ms);
    let deadline = deadline.min(Instant::now() + Duration::from_secs(args.change_timeout));
    watch(sidecars, &baseline, written_ms, poll, deadline).await
}

/// The convergence run; prints its JSON line. Ok(false) if an Envoy did
/// not converge.
pub async fn run(args: &EnvoyArgs, bin: &Path) -> anyhow::Result<bool> {
    let deadline = args.deadline();
    let mesh = Mesh {
        services: args.services.max(1),
        endpoints: args.endpoints.max(1),
        scope: None,
    };
    let running = Running::start(bin, &mesh).await?;
    let started = Instant::now();
    let sidecars = start_all(args, bin, &running, deadline).await?;
    let startup_s = started.elapsed().as_secs_f64();
    let seen = change(args, &running, &mesh, &sidecars, deadline).await?;
    let converged = seen.iter().filter(|s| s.is_some()).count();
    let all = converged == sidecars.len();
    let applied: Vec<f64> = seen.iter().flatten().map(|s| s.applied_ms).collect();
    let observed: Vec<f64> = seen.iter().flatten().map(|s| s.observed_ms).collect();
    let (p50, p99, max) = percentiles(applied);
    let (_, _, observed_max) = percentiles(observed);
    let out = json!({
        "bench": "envoy", "sidecars": args.sidecars, "services": mesh.services,
        "endpoints": mesh.endpoints, "mode": args.ads_mode(),
        "startup_s": (startup_s * 1000.0).round() / 1000.0,
        "route_change_p50_ms": all.then_some(p50),
        "route_change_p99_ms": all.then_some(p99),
        "route_change_max_ms": all.then_some(max),
        "route_change_observed_max_ms": all.then_some(observed_max),
        "converged": converged,
        "unconverged_warming_clusters": stuck(&sidecars, &seen).await,
        "control_plane_rss_kb": running.server.rss_kb()?,
    });
    println!("{out}");
    Ok(all)
}
