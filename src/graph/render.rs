//! The graph for people (`trellis graph --format text`) and for Graphviz
//! (`--format dot`).

use std::fmt::Write;

use super::{Edge, Graph};

/// One line per edge under a header; a note when there is none.
pub fn text(graph: &Graph) -> String {
    let mut out = format!(
        "window {}s, {} sidecar(s) scraped\n",
        graph.window_seconds, graph.proxies_scraped
    );
    if graph.edges.is_empty() {
        out.push_str("no calls observed in the window\n");
    } else {
        let w = (graph.edges.iter())
            .map(|e| e.source.len() + e.destination.len() + 4)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<w$}  {:>9}  {:>8}  {:>9}  {:>9}",
            "EDGE", "RPS", "SUCCESS", "P50", "P99"
        );
        for e in &graph.edges {
            let edge = format!("{} -> {}", e.source, e.destination);
            let _ = writeln!(
                out,
                "{edge:<w$}  {:>9.2}  {:>8}  {:>9}  {:>9}",
                e.rps,
                percent(e.success_rate),
                millis(e.p50_ms),
                millis(e.p99_ms)
            );
        }
    }
    for f in &graph.scrape_failures {
        let _ = writeln!(out, "scrape failed: {}: {}", f.proxy, f.error);
    }
    out
}

/// A Graphviz digraph; each edge labelled with rate, success and p99.
pub fn dot(graph: &Graph) -> String {
    let mut out = String::from("digraph mesh {\n  rankdir=LR;\n  node [shape=box];\n");
    for n in &graph.nodes {
        let _ = writeln!(out, "  \"{}\";", escape(n));
    }
    for e in &graph.edges {
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\"];",
            escape(&e.source),
            escape(&e.destination),
            escape(&label(e))
        );
    }
    out.push_str("}\n");
    out
}

/// `12.5 rps, 99.0% ok, p99 40.0 ms`.
pub fn label(e: &Edge) -> String {
    format!(
        "{:.2} rps, {} ok, p99 {}",
        e.rps,
        percent(e.success_rate),
        millis(e.p99_ms)
    )
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn millis(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} ms"))
}

/// DOT strings are double-quoted; quotes and backslashes are escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        Graph {
            window_seconds: 60.0,
            nodes: vec!["a".into(), "b\"x".into()],
            edges: vec![Edge {
                source: "a".into(),
                destination: "b\"x".into(),
                rps: 12.5,
                success_rate: Some(0.99),
                p50_ms: Some(3.0),
                p99_ms: None,
                requests: 750,
                errors: 8,
            }],
            proxies_scraped: 2,
            scrape_failures: vec![],
        }
    }

    #[test]
    fn text_has_one_line_per_edge() {
        let t = text(&graph());
        assert!(t.starts_with("window 60s, 2 sidecar(s) scraped\n"), "{t}");
        let line = t.lines().nth(2).unwrap();
        assert!(line.starts_with("a -> b\"x"), "{line}");
        assert!(line.contains("12.50") && line.contains("99.0%") && line.contains("3.0 ms"));
        assert!(text(&Graph::default()).contains("no calls observed"));
    }

    #[test]
    fn dot_escapes_names() {
        let d = dot(&graph());
        assert!(
            d.contains("\"a\" -> \"b\\\"x\" [label=\"12.50 rps, 99.0% ok, p99 -\"];"),
            "{d}"
        );
        assert!(d.starts_with("digraph mesh {") && d.ends_with("}\n"));
    }
}
