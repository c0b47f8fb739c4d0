//! `/ui`: one self-contained page (no build step, no external assets) that
//! reads the JSON endpoints and refreshes itself.
//!
//! Its Content-Security-Policy admits only the page's own inline script,
//! by hash, and requests to this origin: even if sidecar text were ever
//! parsed as HTML, an injected script would not run.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;

const PAGE: &str = include_str!("ui.html");

/// The page's Content-Security-Policy.
fn policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let hash = script_hash(PAGE).unwrap_or_default();
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        )
    })
}

/// Base64 SHA-256 of the text of the page's one inline script, as CSP
/// hash sources take it.
fn script_hash(page: &str) -> Option<String> {
    let start = page.find("<script>")? + "<script>".len();
    let end = start + page[start..].find("</script>")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &page.as_bytes()[start..end]);
    Some(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

/// The page.
pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, policy()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_admits_exactly_the_inline_script() {
        assert_eq!(PAGE.matches("<script").count(), 1, "one inline script");
        let hash = script_hash(PAGE).unwrap();
        assert_eq!(hash.len(), 44);
        assert!(policy().contains(&format!("'sha256-{hash}'")));
        assert!(!policy().contains("script-src 'unsafe-inline'"));
        assert!(!PAGE.contains("innerHTML") && !PAGE.contains("outerHTML"));
        assert!(!PAGE.contains("http://") || PAGE.contains("http://www.w3.org/2000/svg"));
        assert!(!PAGE.contains("https://"), "no external assets");
    }
}
