//! What NACK provenance costs per accepted config on a large mesh.
//!
//! `cargo run --release --example provenance_cost [SERVICES]` (default
//! 1000). Writes SERVICES services (each a `ServiceEntry`, a
//! `DestinationRule` with subsets v1/v2, a `VirtualService` with a regex
//! match, an `AuthorizationPolicy` and a `Telemetry`) and one `Gateway`
//! that every tenth VirtualService is bound to, then times, best of 3:
//! the load, the source index (positions and string values) and
//! `Provenance::build`, and blames one listener rejection.

use std::time::{Duration, Instant};

use trellis::config::{load_dir, SourceIndex};
use trellis::translate::provenance::Provenance;

fn service(i: usize) -> String {
    let gateways = if i % 10 == 0 {
        "  gateways: [mesh, edge]\n"
    } else {
        ""
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s{i}}}\nspec:\n  hosts: [s{i}]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 10.0.0.1, labels: {{version: v1}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: s{i}}}\nspec:\n  host: s{i}\n  trafficPolicy: {{connectionPool: {{tcp: {{connectTimeout: 3s}}}}}}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: s{i}}}\nspec:\n  hosts: [s{i}]\n{gateways}  http:\n  - match: [{{uri: {{regex: \"/api/v[0-9]+/s{i}\"}}}}]\n    route: [{{destination: {{host: s{i}, subset: v1}}}}]\n  - route: [{{destination: {{host: s{i}, subset: v2}}}}]\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: s{i}}}\nspec:\n  selector: {{matchLabels: {{app: s{i}}}}}\n  rules:\n  - from: [{{source: {{principals: [cluster.local/ns/default/sa/c{i}]}}}}]\n    to: [{{operation: {{paths: [/api/s{i}/*]}}}}]\n---\napiVersion: telemetry.istio.io/v1alpha1\nkind: Telemetry\nmetadata: {{name: s{i}}}\nspec:\n  selector: {{matchLabels: {{app: s{i}}}}}\n  accessLogging: [{{disabled: true}}]\n---\n"
    )
}

const GATEWAY: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n";

/// The best of three timings; the first error stops them.
fn best(f: &mut dyn FnMut() -> anyhow::Result<Duration>) -> anyhow::Result<Duration> {
    let times = (0..3).map(|_| f()).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(times.into_iter().min().unwrap_or_default())
}

fn main() -> anyhow::Result<()> {
    let services: usize = (std::env::args().nth(1))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let mut y: String = (0..services).map(service).collect();
    y.push_str(GATEWAY);
    std::fs::write(dir.path().join("mesh.yaml"), y)?;
    let mesh = load_dir(dir.path())?;
    let load = best(&mut || {
        let t = Instant::now();
        load_dir(dir.path())?;
        Ok(t.elapsed())
    })?;
    let index = best(&mut || {
        let t = Instant::now();
        SourceIndex::read(&mesh.files)?;
        Ok(t.elapsed())
    })?;
    let source = SourceIndex::read(&mesh.files)?;
    let mut p = Provenance::default();
    let build = best(&mut || {
        let t = Instant::now();
        p = Provenance::build(&mesh, &source);
        Ok(t.elapsed())
    })?;
    let msg = "Error adding/updating listener(s) inbound: principal 'cluster.local/ns/default/sa/c7' refused";
    let t = Instant::now();
    let blame = p.blame("type.googleapis.com/envoy.config.listener.v3.Listener", msg);
    let blamed = t.elapsed();
    println!("{services} services, {} resources with provenance", p.len());
    println!("load {load:.2?}, source index {index:.2?}, provenance build {build:.2?}, one listener blame {blamed:.2?}");
    println!(
        "blamed: {:?}",
        blame.map(|b| (b.kind, b.name, b.line, b.field))
    );
    Ok(())
}
