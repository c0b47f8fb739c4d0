//! A [`Report`] as text (terminals), Markdown (pull-request comments) or
//! JSON (programs).

use std::fmt::Write;

use super::{Group, Report};

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For a terminal.
    Text,
    /// For a pull-request comment.
    Markdown,
    /// For programs: the [`Report`] serialized.
    Json,
}

/// Node ids listed per group in text and Markdown; JSON lists them all.
const SHOWN_IDS: usize = 10;

impl Report {
    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => text(self),
            Format::Markdown => markdown(self),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
        }
    }

    /// One line: how many proxies change, in how many groups.
    pub fn headline(&self) -> String {
        let affected = self.proxies - self.unaffected;
        format!(
            "{affected} of {} proxies change ({} group{}), {} unaffected",
            self.proxies,
            self.groups.len(),
            if self.groups.len() == 1 { "" } else { "s" },
            self.unaffected
        )
    }
}

/// `a, b, c and 7 more`.
fn ids(group: &Group, quote: &str) -> String {
    let shown: Vec<String> = (group.proxies.iter().take(SHOWN_IDS))
        .map(|id| format!("{quote}{id}{quote}"))
        .collect();
    let more = group.proxies.len().saturating_sub(SHOWN_IDS);
    match more {
        0 => shown.join(", "),
        n => format!("{} and {n} more", shown.join(", ")),
    }
}

fn proxy_lists(r: &Report, out: &mut String, bullet: &str) {
    for (what, list) in [("added", &r.added_proxies), ("removed", &r.removed_proxies)] {
        if !list.is_empty() {
            let _ = writeln!(out, "{bullet}proxies {what}: {}", list.join(", "));
        }
    }
}

fn text(r: &Report) -> String {
    let mut out = format!("{}\n", r.headline());
    proxy_lists(r, &mut out, "");
    for g in &r.groups {
        let n = g.proxies.len();
        let _ = writeln!(
            out,
            "\n== {n} prox{}: {}",
            if n == 1 { "y" } else { "ies" },
            ids(g, "")
        );
        for c in &g.changes {
            for s in &c.summary {
                let _ = writeln!(out, "  {s}");
            }
        }
        for c in &g.changes {
            out.push('\n');
            out.push_str(&c.diff);
        }
    }
    out
}

fn markdown(r: &Report) -> String {
    let mut out = format!("### trellis diff\n\n{}\n\n", r.headline());
    proxy_lists(r, &mut out, "- ");
    for g in &r.groups {
        let n = g.proxies.len();
        let _ = writeln!(
            out,
            "\n#### {n} prox{}: {}\n",
            if n == 1 { "y" } else { "ies" },
            ids(g, "`")
        );
        for c in &g.changes {
            for s in &c.summary {
                let _ = writeln!(out, "- {}", s.replace('|', "\\|"));
            }
        }
        for c in &g.changes {
            let _ = writeln!(
                out,
                "\n<details><summary>{} {} ({:?})</summary>\n\n```diff\n{}```\n\n</details>",
                c.kind,
                html_escape(&c.name),
                c.change,
                c.diff.replace("```", "`\u{200b}``")
            );
        }
    }
    out
}

/// Names go into HTML in a comment: `<`, `>` and `&` as entities.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
