//! One `xds` run: mesh, control plane, clients, the measured phases, and
//! the JSON line.

pub(crate) mod measure;
mod plane;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tonic::transport::Endpoint;

use crate::client::{self, ClientStats, Global, EDS, RDS};
use crate::mesh::{service_name, Layout, Mesh};
use crate::server;
use crate::XdsArgs;
use measure::{converge, percentiles, quiesce, wait_synced, Clients};
use plane::Plane;

/// Runs the benchmark and prints its JSON line; Ok(false) when `--check`
/// found inconsistent clients.
pub async fn xds(args: XdsArgs) -> anyhow::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let mesh = Mesh {
        services: args.services.max(1),
        endpoints: args.endpoints.max(1),
        scope: args.scope,
    };
    let layout = Layout::new(mesh, args.namespaces, args.all_services);
    let bin = server::trellis_bin(args.trellis.clone())?;
    let tmp = tempfile::tempdir()?;
    let state = tmp.path().join("state");
    let tokens = issue_tokens(&args, &bin, &state, &layout)?;
    let replicas = args.replicas.max(1);
    let server = Plane::start(&bin, tmp.path(), &state, &layout, replicas, !args.tokens).await?;
    // The control plane with its config and no sidecars: the RSS baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_base = server.rss_kb()?;
    let cpu_base = server.cpu_s()?;

    let global = Arc::new(Global::new());
    let clients: Clients = (0..args.proxies)
        .map(|_| Arc::new(ClientStats::default()))
        .collect();
    let started = Instant::now();
    spawn_clients(&args, &server, &layout, &tokens, &clients, &global)?;
    let mut out = json!({
        "proxies": args.proxies, "services": mesh.services, "endpoints": mesh.endpoints,
        "mode": if args.delta { "delta" } else { "sotw" },
        "rss_base_kb": rss_base, "scope": args.scope,
        "namespaces": layout.namespaces, "all_services": args.all_services,
        "replicas": replicas,
    });
    // Registered: every replica counts every sidecar (through etcd for
    // the other replicas' sidecars).
    let registered = server.wait_registered(args.proxies, deadline).await;
    let took = started.elapsed().as_secs_f64();
    out["registered_s"] = registered.then_some(took).into();
    out["registrations_per_s"] = registered.then(|| args.proxies as f64 / took).into();
    let synced = wait_synced(&clients, deadline).await;
    out["initial_sync_s"] = synced.then(|| started.elapsed().as_secs_f64()).into();
    out["cpu_s_initial_sync"] = (server.cpu_s()? - cpu_base).into();
    quiesce(&global, deadline).await;
    let rss = server.rss_kb()?;
    out["rss_kb"] = rss.into();
    out["rss_per_proxy_kb"] =
        (rss.saturating_sub(rss_base) as f64 / args.proxies.max(1) as f64).into();

    // The changes are to svc-0: only sidecars with it in scope get them
    // (all of them unless namespaces and the default scope say otherwise).
    let host = format!(
        "{}.{}.svc.cluster.local",
        service_name(0),
        layout.namespace(0)
    );
    let reached: Clients = clients
        .iter()
        .filter(|c| c.reaches(&host))
        .cloned()
        .collect();
    out["changed_service_reaches"] = reached.len().into();
    let route = change(&reached, &global, deadline, RDS, || {
        server.rewrite(&layout, 0, 70, 0)
    })
    .await?;
    put(&mut out, "route_change", &route);
    out["bytes_per_route_change"] = route.bytes.into();
    let eps = change(&reached, &global, deadline, EDS, || {
        server.rewrite(&layout, 0, 70, 1)
    })
    .await?;
    put(&mut out, "endpoint_change", &eps);
    out["bytes_per_endpoint_change"] = eps.bytes.into();

    out["cpu_s"] = server.cpu_s()?.into();
    out["stream_errors"] = global.errors.load(Ordering::Relaxed).into();
    let consistent = measure::consistent(&clients, mesh.services);
    out["consistent"] = consistent.into();
    out["timed_out"] = (Instant::now() > deadline).into();
    println!("{out}");
    drop(server);
    Ok(!args.check || (consistent && route.converged && eps.converged && synced))
}

fn issue_tokens(
    args: &XdsArgs,
    bin: &std::path::Path,
    state: &std::path::Path,
    layout: &Layout,
) -> anyhow::Result<Vec<Option<String>>> {
    let n = layout.mesh.services.min(args.proxies.max(1));
    (0..n)
        .map(|i| {
            if args.tokens {
                let ns = layout.namespace(i);
                server::issue_token_in(bin, state, &service_name(i), &ns).map(Some)
            } else {
                Ok(None)
            }
        })
        .collect()
}

fn spawn_clients(
    args: &XdsArgs,
    server: &Plane,
    layout: &Layout,
    tokens: &[Option<String>],
    clients: &Clients,
    global: &Arc<Global>,
) -> anyhow::Result<()> {
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let urls: Vec<String> = (server.servers.iter())
        .map(|s| format!("http://{}", s.xds))
        .collect();
    for (i, stats) in clients.iter().enumerate() {
        let url = &urls[i % urls.len()];
        // Round robin over the services, so over their namespaces too.
        let svc = i % layout.mesh.services;
        let node = client::node_in(i, &service_name(svc), &layout.namespace(svc));
        let token = tokens.get(svc).cloned().flatten();
        let endpoint = Endpoint::from_shared(url.clone())?;
        let shared = (stats.clone(), global.clone());
        let (gate, delta, global) = (gate.clone(), args.delta, global.clone());
        tokio::spawn(async move {
            let result = async {
                let ch = {
                    let _permit = gate.acquire().await?;
                    endpoint.connect().await?
                };
                if delta {
                    client::run_delta(ch, node, token, shared).await
                } else {
                    client::run_sotw(ch, node, token, shared).await
                }
            }
            .await;
            client::record_end(&global, result);
        });
    }
    Ok(())
}

/// What one change measured.
struct Change {
    converged: bool,
    latencies_ms: Vec<f64>,
    bytes: u64,
}

/// Applies `write`, waits until every client ACKed type `t` again, then for
/// the stream to go quiet so the bytes include every follow-up response.
async fn change(
    clients: &Clients,
    global: &Global,
    deadline: Instant,
    t: usize,
    write: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Change> {
    let baseline: Vec<u64> = clients.iter().map(|c| c.acks(t)).collect();
    let bytes0 = global.bytes.load(Ordering::Acquire);
    let written_ns = global.epoch.elapsed().as_nanos() as u64;
    write()?;
    let converged = converge(clients, &baseline, t, deadline).await;
    let latencies_ms = clients
        .iter()
        .zip(&baseline)
        .filter(|(c, b)| c.acks(t) > **b)
        .map(|(c, _)| c.last_ack_ns(t).saturating_sub(written_ns) as f64 / 1e6)
        .collect();
    quiesce(global, deadline).await;
    let bytes = global.bytes.load(Ordering::Acquire) - bytes0;
    Ok(Change {
        converged,
        latencies_ms,
        bytes,
    })
}

fn put(out: &mut Value, key: &str, c: &Change) {
    let (p50, p99, max) = percentiles(c.latencies_ms.clone());
    let conv = c.converged;
    out[format!("{key}_p50_ms")] = conv.then_some(p50).into();
    out[format!("{key}_p99_ms")] = conv.then_some(p99).into();
    out[format!("{key}_max_ms")] = conv.then_some(max).into();
    out[format!("{key}_acked")] = c.latencies_ms.len().into();
}
