//! `/ui` in a real browser: headless Chromium (Debian's `chromium`, driven
//! through `chromium-driver`) loads the page of a real `trellis serve`
//! whose client sidecar's real Envoy NACKed a route whose regex holds a
//! `<script>` element, and which observed the client calling `payment`.
//! The page must show the NACKed proxy with Envoy's message as text (the
//! script never runs), draw the edge, and log no error to the console.
//! A screenshot is saved to `target/ui-test/trellis-ui.png`.
//!
//! A system test (`make test-system`): it needs Chromium.

use std::time::Duration;

use serde_json::Value;
use trellis_integration_tests::observed::{ObservedMesh, CLIENT, PAYMENT};
use trellis_integration_tests::webdriver::Browser;
use trellis_integration_tests::*;

/// A route Envoy rejects (its RE2 program is over the size limit), whose
/// regex, which Envoy quotes in its NACK message, is an HTML script.
const SCRIPT_ROUTES: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - match:
    - uri:
        regex: '/(<script>window.pwned=1</script>|alpha|beta|gamma|delta){1,30}'
    route:
    - destination:
        host: payment
        subset: v1
  - route:
    - destination:
        host: payment
        subset: v1
"#;

/// What the page shows, read in the browser.
const PAGE_STATE: &str = r##"
const row = [...document.querySelectorAll("#proxies tr")].find((r) => r.dataset.proxy === arguments[0]);
const edge = [...document.querySelectorAll("#graph svg g.edge")]
  .find((g) => g.dataset.source === arguments[1] && g.dataset.destination === arguments[2]);
return {
  loaded: Number(document.body.dataset.loaded || 0),
  nacked: row ? [...row.querySelectorAll(".state")].map((s) => s.textContent) : null,
  message: row ? [...row.querySelectorAll(".nack-message")].map((m) => m.textContent).join("\n") : null,
  edge: edge ? edge.querySelector("text").textContent : null,
  scripts: document.scripts.length,
  pwned: window.pwned === undefined ? null : window.pwned,
  rollout: document.getElementById("rollout").textContent,
};
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test: needs chromium and chromium-driver (make test-system)"]
async fn ui_shows_nacks_as_text_and_the_graph() {
    let mesh = ObservedMesh::start().await.unwrap();
    let calls = mesh.client.tally("payment", &[], 40, 4).await;
    assert_eq!(calls.ok(), 40, "{calls:?}");
    mesh.wait_edge(PAYMENT, 40).await.unwrap();
    mesh.config.write("routes.yaml", SCRIPT_ROUTES).unwrap();
    let node = mesh.client.sidecar.spec.node_id.clone();
    let nacked = wait::wait_for(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let proxies = mesh.trellis.debug_proxies().await.unwrap_or_default();
            proxies[&node]
                .to_string()
                .contains("<script>window.pwned=1</script>")
        },
    )
    .await;
    nacked.expect("the client's Envoy never NACKed the route with Envoy's message");

    let artifacts = repo_root().join("target/ui-test");
    std::fs::create_dir_all(&artifacts).unwrap();
    let browser = Browser::start(&artifacts).await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/ui?refresh=1",
        mesh.trellis.admin_port()
    );
    browser.goto(&url).await.unwrap();
    let script = format!(
        "return (function() {{ {PAGE_STATE} }}).apply(null, {});",
        serde_json::json!([node, CLIENT, PAYMENT])
    );
    let shown = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            let v = browser.execute(&script).await.ok()?;
            let done = v["loaded"].as_u64()? >= 2 && v["edge"].is_string() && v["message"] != "";
            done.then_some(v)
        },
    )
    .await;
    let state = match shown {
        Ok((state, _)) => state,
        Err(e) => {
            let last = browser.execute(&script).await;
            panic!("the page never showed the NACK and the edge: {e}: {last:?}")
        }
    };

    let states: Vec<&str> = (state["nacked"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(states[0], "NACKED", "overall status: {state}");
    assert!(states.contains(&"SYNCED"), "{state}");
    let message = state["message"].as_str().unwrap();
    assert!(
        message.contains("<script>window.pwned=1</script>"),
        "{message}"
    );
    assert!(message.contains("program size"), "{message}");
    assert_eq!(state["scripts"], 1, "only the page's own script: {state}");
    assert!(state["pwned"].is_null(), "the NACK's script ran: {state}");
    let label = state["edge"].as_str().unwrap();
    assert!(
        label.contains("rps") && label.contains("100.0% ok"),
        "{label}"
    );
    assert!(
        state["rollout"].as_str().unwrap().contains("no rollout"),
        "{state}"
    );

    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    std::fs::write(artifacts.join("trellis-ui.png"), &png).unwrap();

    let log = browser.console_log().await.unwrap();
    let errors: Vec<&Value> = (log.iter())
        .filter(|e| e["level"] == "SEVERE")
        .filter(|e| !absent_rollout(e))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// The browser logs the 404 of `/debug/rollout` (served by the staged
/// rollout, not in every build) as a failed resource load: a network
/// event, which the page shows as "no rollout", not a script error.
fn absent_rollout(entry: &Value) -> bool {
    let message = entry["message"].as_str().unwrap_or_default();
    message.contains("/debug/rollout") && message.contains("404")
}
