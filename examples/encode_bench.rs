//! What canonical encoding and content versions cost per resource.
//!
//! `cargo run --release --example encode_bench [SERVICES]` (default 100).
//! Translates one sidecar of a mesh with SERVICES services (each with two
//! subsets, an AuthorizationPolicy of ten rules, the built-in JSON access
//! log turned on), then prints per resource type the time to encode every resource
//! with prost alone and with `trellis::canonical::encode` (the encoding
//! snapshots use), and the time to hash the bytes with SHA-256 (versions)
//! and with `std`'s `DefaultHasher` (what versions used before). The first
//! figure is the one-time cost of compiling the descriptor plans.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use trellis::registry::{instances, Proxy, Registry};
use trellis::translate::{self, ProxySecurity};

fn mesh_yaml(services: usize) -> String {
    let mut y = String::new();
    for i in 0..services {
        y.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: s{i}\nspec:\n  hosts: [s{i}]\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  resolution: STATIC\n  endpoints:\n  - address: 10.0.{}.{}\n    labels: {{version: v1}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: s{i}\nspec:\n  host: s{i}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v2\n    labels: {{version: v2}}\n---\n",
            i / 250,
            i % 250 + 1
        ));
    }
    // The access log's JSON format is a `Struct`, the map canonical encoding sorts.
    y.push_str("apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: logs\n  namespace: istio-system\nspec:\n  accessLogging:\n  - providers:\n    - name: envoy\n---\n");
    y.push_str("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\nspec:\n  action: ALLOW\n  rules:\n");
    for i in 0..10 {
        y.push_str(&format!(
            "  - from:\n    - source:\n        principals: [\"cluster.local/ns/default/sa/c{i}\"]\n"
        ));
    }
    y
}

/// Mean time per round of `f` over about one second.
fn time(mut f: impl FnMut()) -> Duration {
    let (start, mut rounds) = (Instant::now(), 0u32);
    while start.elapsed() < Duration::from_secs(1) {
        f();
        rounds += 1;
    }
    start.elapsed() / rounds
}

fn report<M: prost::Message + prost::Name>(kind: &str, items: &[M]) {
    let bytes: usize = items.iter().map(|m| m.encoded_len()).sum();
    let prost = time(|| {
        items.iter().for_each(|m| {
            std::hint::black_box(m.encode_to_vec());
        })
    });
    let canonical = time(|| {
        items.iter().for_each(|m| {
            std::hint::black_box(trellis::canonical::encode(m).unwrap());
        })
    });
    let encoded: Vec<Vec<u8>> = items.iter().map(|m| m.encode_to_vec()).collect();
    let sha = time(|| {
        encoded.iter().for_each(|b| {
            std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, b));
        })
    });
    let sip = time(|| {
        encoded.iter().for_each(|b| {
            let mut h = DefaultHasher::new();
            b.hash(&mut h);
            std::hint::black_box(h.finish());
        })
    });
    println!(
        "{kind:>9}: {n:>5} resources, {bytes:>8} bytes | encode prost {prost:>10.1?} canonical {canonical:>10.1?} | hash sha256 {sha:>9.1?} siphash {sip:>9.1?}",
        n = items.len()
    );
}

fn main() -> anyhow::Result<()> {
    let services: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("mesh.yaml"), mesh_yaml(services))?;
    let mesh = trellis::config::load_dir(dir.path())?;
    let mut registry = Registry::new();
    registry.register(Proxy {
        id: "s0-1".into(),
        service: "s0".into(),
        namespace: "default".into(),
        service_account: "s0".into(),
        app_port: 8080,
        inbound_address: "127.0.0.1".into(),
        inbound_port: 15006,
        outbound_port: 15001,
        ..Default::default()
    });
    let shared = translate::shared(&mesh, &instances(&mesh, &registry));
    let proxy = &registry.sidecars()["s0-1"];
    let security = ProxySecurity {
        mtls: true,
        certs: None,
    };
    let res = translate::for_proxy(&shared, proxy, &security);
    let start = Instant::now();
    trellis::canonical::encode(&res.listeners[0])?;
    println!(
        "descriptor plans compiled in {:?} (once per process)",
        start.elapsed()
    );
    report("listeners", &res.listeners);
    report("clusters", &res.clusters);
    report("endpoints", &res.load_assignments);
    report("routes", &res.routes);
    Ok(())
}
