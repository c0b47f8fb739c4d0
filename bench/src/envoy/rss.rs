//! The RSS of one real sidecar: in a large mesh with a `Sidecar` scoping
//! it to a few services, in a small mesh, and in the large mesh unscoped.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::sidecar::{Sidecar, Spec};
use super::{EnvoyArgs, Running};
use crate::mesh::{service_name, Mesh};

/// How long the active cluster count must stay unchanged (with nothing
/// warming) before the sidecar counts as synced.
const STABLE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(200);
/// RSS samples taken once synced; the median is reported.
const SAMPLES: usize = 5;

/// Envoy's cluster manager gauges: (active, warming).
async fn clusters(s: &Sidecar) -> anyhow::Result<(u64, u64)> {
    let stats = s.stats("cluster_manager").await?;
    let get = |k: &str| stats.get(k).copied().unwrap_or(0);
    Ok((
        get("cluster_manager.active_clusters"),
        get("cluster_manager.warming_clusters"),
    ))
}

/// Waits until no cluster is warming and the active count has not changed
/// for [`STABLE`]; returns the active count.
async fn wait_synced(s: &mut Sidecar, deadline: Instant) -> anyhow::Result<u64> {
    let (mut last, mut since) = (None, Instant::now());
    loop {
        s.check_alive()?;
        let (active, warming) = clusters(s).await?;
        if warming > 0 || last != Some(active) {
            (last, since) = (Some(active), Instant::now());
        } else if active > 0 && since.elapsed() >= STABLE {
            return Ok(active);
        }
        if Instant::now() > deadline {
            bail!("{}: clusters not settled within the deadline", s.node);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The medians of [`SAMPLES`] RSS readings [`POLL`] apart, in KiB:
/// (`VmRSS`, `RssAnon`).
async fn median_rss(s: &Sidecar) -> anyhow::Result<(u64, u64)> {
    let (mut all, mut anon) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let (a, b) = s.rss_kb()?;
        all.push(a);
        anon.push(b);
        tokio::time::sleep(POLL).await;
    }
    all.sort_unstable();
    anon.sort_unstable();
    Ok((all[SAMPLES / 2], anon[SAMPLES / 2]))
}

/// One sidecar of `svc-0` (inside any scope) in `mesh`; prints its line.
async fn measure(args: &EnvoyArgs, bin: &Path, mesh: Mesh) -> anyhow::Result<()> {
    let deadline = args.deadline();
    let running = Running::start(bin, &mesh).await?;
    let started = Instant::now();
    let mut s = Sidecar::spawn(&Spec {
        trellis: bin,
        xds: running.server.xds,
        service: service_name(0),
        index: 0,
        ads_mode: args.ads_mode(),
        dir: running.dir(),
    })?;
    s.wait_ready(deadline).await?;
    let active = wait_synced(&mut s, deadline).await?;
    let synced_s = started.elapsed().as_secs_f64() - STABLE.as_secs_f64();
    let (rss, anon) = median_rss(&s).await?;
    let mem = s.stats("server.memory_").await?;
    let kb = |k: &str| mem.get(k).map(|b| b / 1024);
    let out = json!({
        "bench": "envoy_rss", "services": mesh.services, "scope": mesh.scope,
        "endpoints": mesh.endpoints, "mode": args.ads_mode(),
        "rss_kb": rss, "rss_anon_kb": anon, "clusters": active,
        "heap_allocated_kb": kb("server.memory_allocated"),
        "heap_size_kb": kb("server.memory_heap_size"),
        "synced_s": (synced_s * 1000.0).round() / 1000.0,
    });
    println!("{out}");
    Ok(())
}

/// The three meshes: large scoped, small, large unscoped.
pub async fn run(args: &EnvoyArgs, bin: &Path) -> anyhow::Result<()> {
    let endpoints = args.endpoints.max(1);
    let cases = [
        (args.rss_services, Some(args.rss_scope)),
        (args.rss_small, None),
        (args.rss_services, None),
    ];
    for (services, scope) in cases {
        let mesh = Mesh {
            services: services.max(1),
            endpoints,
            scope,
        };
        measure(args, bin, mesh).await?;
    }
    Ok(())
}
