//! The work of one config change, as a figure that does not depend on the
//! machine's load: run it under callgrind (`bench/rebuild-instructions.sh`)
//! to count the instructions of one reload and one rebuild.
//!
//! `cargo run --release --example rebuild_cost [SERVICES] [UPDATES] [--wildcard-rule]`
//! (default 1000 services, 5 updates). The mesh is the one
//! `../shared/bench/trellis_push.py` serves: SERVICES `ServiceEntry`s
//! (MESH_INTERNAL, STATIC, one endpoint each) and a `VirtualService` for
//! `svc-0` whose response header carries the update's number, in one file,
//! with one sidecar. Each update moves every endpoint to another port and
//! changes the header: the whole file is written and renamed into place,
//! loaded again ([`measured_load`]) and every snapshot rebuilt
//! ([`measured_rebuild`], without certificates); the NACK provenance of the
//! new config is built too ([`measured_provenance`]: `serve` builds it when
//! a proxy first rejects something, not on every reload). Two warm-up updates run
//! first (the first build, and the first change, which fills the caches);
//! the program prints the mean native time of each part per update, and
//! where the heap goes (a counting allocator over mimalloc, the allocator
//! `trellis serve` runs on, so the instructions counted are its): the
//! bytes live for the loaded config, its provenance, and for the builder's state after the
//! last rebuild (translation, encoded resources, snapshots); the most a
//! reload and a rebuild held at once above what was live before them (the
//! transient peak: the previous and the new translation and encodings); and
//! what the canonical encoder's descriptors keep for the process's life.

use std::alloc::{GlobalAlloc, Layout};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;

use trellis::config::{load_dir_cached, model::MeshConfig, LoadCache};
use trellis::registry::{Proxy, Registry};
use trellis::serve::Rebuilder;
use trellis::translate::provenance::Provenance;

/// mimalloc, as in `trellis serve` (`src/main.rs`), counting the bytes live.
/// (glibc's allocator was a third of a rebuild's instructions, which `serve`
/// does not spend.)
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most bytes live since the last [`reset_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `MiMalloc` with the same arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract is `MiMalloc::alloc`'s.
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let now = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
        PEAK.fetch_max(now, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is `MiMalloc::realloc`'s.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak from what is live now.
fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// A mesh-wide rule (`*`, in the root namespace) that every service takes,
/// with `--wildcard-rule`: the cost of matching wildcard rules at each
/// rebuild.
const MESH_WIDE_RULE: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: mesh-defaults, namespace: istio-system}\nspec:\n  host: \"*\"\n  trafficPolicy: {connectionPool: {tcp: {maxConnections: 100}}}\n";

/// The mesh of every update: how many services, and whether it has
/// [`MESH_WIDE_RULE`].
#[derive(Clone, Copy)]
struct Shape {
    services: usize,
    wildcard_rule: bool,
}

fn mesh_yaml(
    Shape {
        services,
        wildcard_rule,
    }: Shape,
    update: usize,
) -> String {
    let flip = if update % 2 == 1 { 1000 } else { 0 };
    let mut docs: Vec<String> = (0..services)
        .map(|i| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{i}, namespace: default}}\nspec:\n  hosts: [svc-{i}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
                30000 + flip + i
            )
        })
        .collect();
    docs.push(format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc-0, namespace: default}}\nspec:\n  hosts: [svc-0]\n  http:\n  - headers: {{response: {{set: {{x-config-version: \"{update}\"}}}}}}\n    route: [{{destination: {{host: svc-0}}}}]\n"
    ));
    if wildcard_rule {
        docs.push(MESH_WIDE_RULE.to_string());
    }
    docs.join("---\n")
}

/// Writes update `update` and renames it into place, as the peer bench does.
fn write(dir: &Path, shape: Shape, update: usize) -> std::io::Result<()> {
    let tmp = dir.join(".mesh.tmp");
    std::fs::write(&tmp, mesh_yaml(shape, update))?;
    std::fs::rename(&tmp, dir.join("mesh.yaml"))
}

/// One reload of the config directory (the changed file is parsed again).
#[inline(never)]
fn measured_load(dir: &Path, cache: &mut LoadCache) -> anyhow::Result<MeshConfig> {
    Ok(load_dir_cached(dir, cache)?)
}

/// The NACK provenance of a loaded config, from the load's source index.
#[inline(never)]
fn measured_provenance(mesh: &MeshConfig, cache: &LoadCache) -> usize {
    Provenance::build(mesh, &cache.sources()).len()
}

/// One rebuild of every sidecar's snapshot.
#[inline(never)]
fn measured_rebuild(rebuilder: &mut Rebuilder, mesh: &MeshConfig, registry: &Registry) -> usize {
    rebuilder.rebuild(mesh, registry)
}

fn main() -> anyhow::Result<()> {
    let (flags, numbers): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|a| a.starts_with("--"));
    let mut args = numbers.iter().map(|a| a.parse::<usize>());
    let services = args.next().transpose()?.unwrap_or(1000);
    let updates = args.next().transpose()?.unwrap_or(5);
    let shape = Shape {
        services,
        wildcard_rule: flags.iter().any(|f| f == "--wildcard-rule"),
    };
    let dir = tempfile::tempdir()?;
    let mut registry = Registry::new();
    registry.register(Proxy {
        id: "client-1".into(),
        service: "client".into(),
        namespace: "default".into(),
        service_account: "client".into(),
        app_port: 8080,
        inbound_address: "127.0.0.1".into(),
        inbound_port: 15006,
        outbound_port: 15001,
        ..Default::default()
    });
    let (mut cache, mut rebuilder) = (LoadCache::default(), Rebuilder::new());
    // The canonical encoder's descriptors, loaded on first use and kept.
    let before = live();
    trellis::canonical::encode(&envoy_types::pb::envoy::config::cluster::v3::Cluster::default())?;
    let descriptor_bytes = live().saturating_sub(before);
    write(dir.path(), shape, 0)?;
    let before = live();
    let mesh = load_dir_cached(dir.path(), &mut LoadCache::default())?;
    let mesh_bytes = live() - before;
    drop(mesh);
    for update in 0..2 {
        write(dir.path(), shape, update)?;
        let mesh = load_dir_cached(dir.path(), &mut cache)?;
        rebuilder.rebuild(&mesh, &registry);
    }
    let (mut load, mut rebuild) = (Duration::ZERO, Duration::ZERO);
    let mut provenance = Duration::ZERO;
    let mut transient = 0;
    for update in 2..2 + updates {
        write(dir.path(), shape, update)?;
        let base = reset_peak();
        let t0 = Instant::now();
        let mesh = measured_load(dir.path(), &mut cache)?;
        let t1 = Instant::now();
        let fresh = measured_rebuild(&mut rebuilder, &mesh, &registry);
        let t2 = Instant::now();
        anyhow::ensure!(fresh == 1, "update {update} did not change the snapshot");
        transient = transient.max(PEAK.load(Ordering::Relaxed) - base);
        let traced = measured_provenance(&mesh, &cache);
        let t3 = Instant::now();
        anyhow::ensure!(traced > services, "update {update}: no provenance");
        (load, rebuild) = (load + (t1 - t0), rebuild + (t2 - t1));
        provenance += t3 - t2;
        drop(mesh);
    }
    // What a built provenance holds (`serve` keeps it once a proxy NACKed).
    let mesh = load_dir_cached(dir.path(), &mut cache)?;
    let before = live();
    let built = Provenance::build(&mesh, &cache.sources());
    let provenance_bytes = live() - before;
    drop((built, mesh));
    // Dropped one by one: the load cache (each file's text and parse),
    // then the builder's state.
    let with_cache = live();
    drop(cache);
    let cache_bytes = with_cache - live();
    let with_state = live();
    drop(rebuilder);
    let state_bytes = with_state - live();
    let n = u32::try_from(updates.max(1))?;
    println!(
        "{{\"services\": {services}, \"updates\": {updates}, \"load_ms\": {:.3}, \"rebuild_ms\": {:.3}, \"provenance_ms\": {:.3}, \"heap_config_bytes\": {mesh_bytes}, \"heap_load_cache_bytes\": {cache_bytes}, \"heap_provenance_bytes\": {provenance_bytes}, \"heap_builder_state_bytes\": {state_bytes}, \"heap_update_peak_above_live_bytes\": {transient}, \"heap_descriptors_bytes\": {descriptor_bytes}}}",
        (load / n).as_secs_f64() * 1e3,
        (rebuild / n).as_secs_f64() * 1e3,
        (provenance / n).as_secs_f64() * 1e3
    );
    Ok(())
}
