//! What `trellis diff` costs on a large mesh.
//!
//! `cargo run --release --example diff_bench [SERVICES] [PROXIES]`
//! (default 1000 × 1000). Writes two config directories of SERVICES
//! services (each a `ServiceEntry` with two endpoints, a `DestinationRule`
//! with subsets v1/v2 and a `VirtualService` splitting 90/10), and renders
//! PROXIES sidecars (spread over the services, half v1, half v2) for each,
//! as `trellis diff` does, then diffs and formats. Two changes: one route's
//! weights (90/10 → 50/50, the common pull request), and every service's
//! connection timeout (every cluster changes). Prints one line per phase
//! and the total, the figure BENCHMARKS.md reports (best of 3 runs).

use std::time::{Duration, Instant};

use trellis::config::load_dir;
use trellis::diff::{diff, Format};
use trellis::render::{parse_proxy_spec, Renderer, Workload};

fn service(i: usize, weight: u32, timeout: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: s{i}\nspec:\n  hosts: [s{i}]\n  ports:\n  - {{number: 80, name: http, protocol: HTTP}}\n  resolution: STATIC\n  endpoints:\n  - {{address: 10.{a}.{b}.1, labels: {{version: v1}}}}\n  - {{address: 10.{a}.{b}.2, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: s{i}\nspec:\n  host: s{i}\n  trafficPolicy:\n    connectionPool:\n      tcp: {{connectTimeout: {timeout}}}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: s{i}\nspec:\n  hosts: [s{i}]\n  http:\n  - route:\n    - {{destination: {{host: s{i}, subset: v1}}, weight: {weight}}}\n    - {{destination: {{host: s{i}, subset: v2}}, weight: {w2}}}\n    timeout: 3s\n---\n",
        a = i / 250,
        b = i % 250,
        w2 = 100 - weight,
    )
}

/// A config dir of `services` services; service 0 splits `weight`/rest.
fn write_mesh(services: usize, weight: u32, timeout: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut y = String::new();
    for i in 0..services {
        y.push_str(&service(i, if i == 0 { weight } else { 90 }, timeout));
    }
    std::fs::write(dir.path().join("mesh.yaml"), y).expect("write mesh");
    dir
}

fn workloads(services: usize, proxies: usize) -> Vec<Workload> {
    (0..proxies)
        .map(|i| {
            let v = if i % 2 == 0 { "v1" } else { "v2" };
            let mut w = parse_proxy_spec(&format!("s{}:version={v}", i % services)).expect("spec");
            w.proxy.id = format!("p{i}");
            w
        })
        .collect()
}

/// Each phase's name and wall time.
type Phases = Vec<(&'static str, Duration)>;

/// One diff; returns (phase, time) and the report's headline.
fn run(
    old: &tempfile::TempDir,
    new: &tempfile::TempDir,
    w: &[Workload],
) -> (Vec<(&'static str, Duration)>, String) {
    let mut t = Instant::now();
    let mut lap = |phases: &mut Vec<(&'static str, Duration)>, name| {
        phases.push((name, t.elapsed()));
        t = Instant::now();
    };
    let mut phases = Vec::new();
    let a = load_dir(old.path()).expect("old config");
    let b = load_dir(new.path()).expect("new config");
    lap(&mut phases, "load both");
    let mut r = Renderer::new().expect("renderer");
    let before = r.render(&a, w);
    lap(&mut phases, "render old");
    let after = r.render(&b, w);
    lap(&mut phases, "render new");
    let report = diff(&before, &after).expect("diff");
    lap(&mut phases, "diff");
    let text = report.render(Format::Markdown);
    lap(&mut phases, "format");
    std::hint::black_box(text);
    (phases, report.headline())
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let services = args.next().unwrap_or(1000);
    let proxies = args.next().unwrap_or(1000);
    let w = workloads(services, proxies);
    let base = write_mesh(services, 90, "1s");
    let cases = [
        ("one route's weights", write_mesh(services, 50, "1s")),
        ("every cluster's timeout", write_mesh(services, 90, "2s")),
    ];
    println!("{services} services, {proxies} proxies");
    for (name, new) in &cases {
        let mut best: Option<(Duration, Phases, String)> = None;
        for _ in 0..3 {
            let (phases, headline) = run(&base, new, &w);
            let total: Duration = phases.iter().map(|(_, d)| *d).sum();
            if best.as_ref().is_none_or(|(b, _, _)| total < *b) {
                best = Some((total, phases, headline));
            }
        }
        let Some((total, phases, headline)) = best else {
            continue;
        };
        println!("\n{name}: {headline}");
        for (phase, d) in phases {
            println!("  {phase:<12} {:>8.1} ms", d.as_secs_f64() * 1e3);
        }
        println!(
            "  {:<12} {:>8.1} ms (best of 3)",
            "total",
            total.as_secs_f64() * 1e3
        );
    }
}
