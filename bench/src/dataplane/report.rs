//! Points and the summary: per rate and path, the latency added over the
//! direct call in the same run, the pair's CPU and RSS, as medians over
//! runs with their spread, and each median against the minimal pair's.

use serde_json::{json, Value};

use super::stats::Spread;

/// The reference path every other pair is compared with.
const REFERENCE: &str = "minimal";
/// The target: every figure within this factor of the reference's.
const TARGET_RATIO: f64 = 1.1;

/// What one point measured.
#[derive(Debug, Clone)]
pub struct Point {
    /// Run number, from 1.
    pub run: usize,
    /// Requests per second scheduled.
    pub rate: f64,
    /// `direct`, `minimal`, `trellis` or `trellis-VARIANT`.
    pub path: String,
    /// Latency percentiles from the due time, in ms.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest request.
    pub max_ms: f64,
    /// Requests answered with 200 per second of the window.
    pub answered_rate: f64,
    /// Failed requests.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Cores both sidecars used over the window (none for direct).
    pub cpu_cores: Option<f64>,
    /// Cores both sidecars used per 1,000 answered req/s (none for direct).
    pub cpu_per_1k: Option<f64>,
    /// Both sidecars' `VmRSS` after the window, MiB.
    pub rss_mib: Option<f64>,
    /// One-minute load average at the end of the point.
    pub load1: f64,
}

impl Point {
    /// The point as one JSON object.
    pub fn json(&self) -> Value {
        json!({
            "run": self.run, "rate": self.rate, "path": self.path,
            "p50_ms": r3(self.p50_ms), "p90_ms": r3(self.p90_ms), "p99_ms": r3(self.p99_ms),
            "max_ms": r3(self.max_ms), "answered_rate": r3(self.answered_rate),
            "errors": self.errors, "first_error": self.first_error,
            "cpu_cores": self.cpu_cores.map(r3), "cpu_cores_per_1k_rps": self.cpu_per_1k.map(r3), "rss_mib": self.rss_mib.map(r3),
            "load1": self.load1,
        })
    }
}

/// The figures the summary gives per rate and path, in table order.
const FIGURES: [&str; 6] = [
    "added_p50_ms",
    "added_p90_ms",
    "added_p99_ms",
    "cpu_cores",
    "cpu_cores_per_1k_rps",
    "rss_mib",
];

/// One figure of `p` with the direct point `d` of the same run and rate.
fn figure(name: &str, p: &Point, d: &Point) -> Option<f64> {
    match name {
        "added_p50_ms" => Some(p.p50_ms - d.p50_ms),
        "added_p90_ms" => Some(p.p90_ms - d.p90_ms),
        "added_p99_ms" => Some(p.p99_ms - d.p99_ms),
        "cpu_cores" => p.cpu_cores,
        "cpu_cores_per_1k_rps" => p.cpu_per_1k,
        _ => p.rss_mib,
    }
}

/// Spreads over runs of every figure of `path` at `rate`.
fn spreads(points: &[Point], rate: f64, path: &str) -> Vec<Option<Spread>> {
    let direct = |run| {
        points
            .iter()
            .find(|d| d.run == run && d.rate == rate && d.path == "direct")
    };
    FIGURES
        .iter()
        .map(|f| {
            let values: Vec<f64> = points
                .iter()
                .filter(|p| p.rate == rate && p.path == path)
                .filter_map(|p| figure(f, p, direct(p.run)?))
                .collect();
            Spread::of(&values)
        })
        .collect()
}

/// Prints one JSON summary line per rate and sidecar path, then a
/// Markdown table of the same.
pub fn print(points: &[Point]) {
    let mut rates: Vec<f64> = Vec::new();
    let mut paths: Vec<&str> = Vec::new();
    for p in points {
        if !rates.contains(&p.rate) {
            rates.push(p.rate);
        }
        if p.path != "direct" && !paths.contains(&p.path.as_str()) {
            paths.push(&p.path);
        }
    }
    let mut table = vec![
        "| req/s | path | added p50 ms | added p90 ms | added p99 ms | CPU cores (pair) | CPU cores per 1,000 req/s (pair) | RSS MiB (pair) | × minimal (p50 / p90 / p99 / CPU / CPU per 1k / RSS) | load avg |".to_string(),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for &rate in &rates {
        let reference = spreads(points, rate, REFERENCE);
        for path in &paths {
            let s = spreads(points, rate, path);
            let ratios: Vec<Option<f64>> = s
                .iter()
                .zip(&reference)
                .map(|(a, b)| Some(a.as_ref()?.median / b.as_ref()?.median))
                .collect();
            let loads: Vec<f64> = points
                .iter()
                .filter(|p| p.rate == rate && p.path == *path)
                .map(|p| p.load1)
                .collect();
            let met = ratios.iter().flatten().all(|r| *r <= TARGET_RATIO);
            let mut line = json!({"summary": true, "rate": rate, "path": path, "runs_load1": loads,
                "target_met": met});
            for (i, f) in FIGURES.iter().enumerate() {
                line[*f] = spread_json(s[i]);
                line[format!("{f}_vs_minimal")] = json!(ratios[i].map(r3));
            }
            println!("{line}");
            let cells: Vec<String> = s.iter().map(|x| cell(*x)).collect();
            let ratio_cells: Vec<String> = ratios
                .iter()
                .map(|r| r.map_or("–".into(), |r| format!("{r:.2}")))
                .collect();
            let load =
                Spread::of(&loads).map_or("–".into(), |l| format!("{:.1}–{:.1}", l.min, l.max));
            table.push(format!(
                "| {rate} | {path} | {} | {} | {load} |",
                cells.join(" | "),
                ratio_cells.join(" / ")
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
}

fn spread_json(s: Option<Spread>) -> Value {
    s.map_or(
        Value::Null,
        |s| json!({"median": r3(s.median), "min": r3(s.min), "max": r3(s.max)}),
    )
}

/// `median (min–max)`.
fn cell(s: Option<Spread>) -> String {
    s.map_or("–".into(), |s| {
        let d = if s.median.abs() >= 10.0 { 1 } else { 3 };
        format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max)
    })
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
