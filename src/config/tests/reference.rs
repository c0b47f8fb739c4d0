//! docs/config-reference.md names every field the parser rejects as not
//! supported: a field that becomes an `unsupported` error, or is read as
//! `Option<Unsupported>`, must appear (in backticks, possibly under a
//! parent path) on a line of the reference that says it is not supported,
//! rejected, an error, or accepted with no effect.

use std::path::Path;

use regex::Regex;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.display().to_string(), read(&path)));
        }
    }
    out
}

fn camel(snake: &str) -> String {
    let mut parts = snake.trim_start_matches("r#").split('_');
    let first = parts.next().unwrap_or_default().to_string();
    parts.fold(first, |mut acc, p| {
        let mut c = p.chars();
        if let Some(h) = c.next() {
            acc.extend(h.to_uppercase());
            acc.push_str(c.as_str());
        }
        acc
    })
}

/// `(field, file)` of every field the parser rejects as not supported.
fn rejected_fields() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let call = Regex::new(r#"\.unsupported\(\s*[^,()]+(?:\([^)]*\))?\s*,\s*"([^"]+)""#).unwrap();
    let field = Regex::new(
        r#"(?:#\[serde\(rename = "([^"]+)"\)\]\s*)?pub(?:\(crate\))? (\w+): Option<Unsupported>"#,
    )
    .unwrap();
    let mut out = Vec::new();
    for (file, text) in sources(&root) {
        for c in call.captures_iter(&text) {
            out.push((c[1].to_string(), file.clone()));
        }
        for c in field.captures_iter(&text) {
            let name = c.get(1).map_or_else(|| camel(&c[2]), |m| m.as_str().into());
            out.push((name, file.clone()));
        }
    }
    out
}

#[test]
fn every_rejected_field_is_in_the_reference() {
    let doc = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config-reference.md"));
    let says = Regex::new(r"(?i)not supported|rejected|error|no effect").unwrap();
    let lines: Vec<&str> = doc.lines().filter(|l| says.is_match(l)).collect();
    let fields = rejected_fields();
    assert!(fields.len() > 40, "the source scan found only {fields:?}");
    let missing: Vec<String> = (fields.iter())
        .filter(|(name, _)| {
            let named =
                Regex::new(&format!(r"`([\w.\[\]*]*\.)?{}[`\[]", regex::escape(name))).unwrap();
            !lines.iter().any(|l| named.is_match(l))
        })
        .map(|(name, file)| format!("{name} ({file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "rejected but not listed as such in docs/config-reference.md: {missing:?}"
    );
}

#[test]
fn camel_case_follows_serde() {
    assert_eq!(camel("zone_aware_lb_setting"), "zoneAwareLbSetting");
    assert_eq!(camel("tunnel"), "tunnel");
}
