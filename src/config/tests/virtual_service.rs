//! VirtualService breadth: matches, CORS, mirrors, redirects, rewrites,
//! delegation, exportTo, deprecated fields and `kubectl` output.

use super::{errors, load, vs_rule, VS_HEAD};
use crate::config::model::{RouteAction, StringMatch};

/// A diagnostic with the temporary directory taken out of its paths.
fn relative(line: &str) -> String {
    let tmp = regex::Regex::new(r"[^\s(]*/\.tmp[^/]+/").unwrap();
    tmp.replace_all(line, "").into_owned()
}

/// `VS_HEAD` with one rule whose match is `m` (indented under `- `).
fn with_match(m: &str) -> String {
    format!("{VS_HEAD}  http:\n  - match:\n    - {m}\n    route:\n    - destination:\n        host: pay\n")
}

#[test]
fn match_errors_are_positioned() {
    let cases = [
        (with_match("authority: {}"), "f.yaml:10:7: error: VirtualService/pay: spec.http[0].match[0].authority: one of exact, prefix or regex is required"),
        (with_match("scheme: {exact: http, prefix: h}"), "f.yaml:10:7: error: VirtualService/pay: spec.http[0].match[0].scheme: only one of exact, prefix or regex is allowed"),
        (with_match("queryParams: {id: {regex: \"(\"}}"), "f.yaml:10:26: error: VirtualService/pay: spec.http[0].match[0].queryParams.id.regex: invalid regex \"(\": unclosed group"),
        (with_match("withoutHeaders: {\"bad name\": {}}"), "f.yaml:10:24: error: VirtualService/pay: spec.http[0].match[0].withoutHeaders.bad name: \"bad name\" is not a valid header name"),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(t, _)| errors(t)).collect();
    let want: Vec<Vec<&str>> = cases.iter().map(|(_, w)| vec![*w]).collect();
    assert_eq!(got, want);
}

#[test]
fn presence_and_every_query_form_are_read() {
    let text = with_match("headers: {x-a: {}}\n      withoutHeaders: {x-b: {}}\n      queryParams: {t: {}, p: {prefix: en}, e: {exact: \"1\"}}\n      authority: {exact: pay.example}\n      scheme: {exact: https}");
    let mesh = load(&[("f.yaml", &text)]).unwrap();
    let m = &mesh.virtual_services.values().next().unwrap().http[0].matches[0];
    assert_eq!(m.headers["x-a"], StringMatch::Present);
    assert_eq!(m.without_headers["x-b"], StringMatch::Present);
    assert_eq!(m.query_params["t"], StringMatch::Present);
    assert_eq!(m.query_params["p"], StringMatch::Prefix("en".into()));
    assert_eq!(m.authority, Some(StringMatch::Exact("pay.example".into())));
    assert_eq!(m.scheme, Some(StringMatch::Exact("https".into())));
}

#[test]
fn cors_errors_are_positioned() {
    let cors = |body: &str| vs_rule(&format!("    corsPolicy:\n{body}"));
    let cases = [
        (cors("      allowMethods: [GET, FETCH]\n"), "f.yaml:13:27: error: VirtualService/pay: spec.http[0].corsPolicy.allowMethods[1]: \"FETCH\" is not an HTTP method (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)"),
        (cors("      allowHeaders: [\"x y\"]\n"), "f.yaml:13:22: error: VirtualService/pay: spec.http[0].corsPolicy.allowHeaders[0]: \"x y\" is not a valid header name"),
        (cors("      maxAge: 1500ms\n"), "f.yaml:13:7: error: VirtualService/pay: spec.http[0].corsPolicy.maxAge: maxAge is accurate only to seconds: give whole seconds"),
        (cors("      unmatchedPreflights: DROP\n"), "f.yaml:13:7: error: VirtualService/pay: spec.http[0].corsPolicy.unmatchedPreflights: unmatchedPreflights \"DROP\": use FORWARD or IGNORE"),
        (cors("      allowOrigins:\n      - {}\n"), "f.yaml:14:9: error: VirtualService/pay: spec.http[0].corsPolicy.allowOrigins[0]: one of exact, prefix or regex is required"),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(t, _)| errors(t)).collect();
    let want: Vec<Vec<&str>> = cases.iter().map(|(_, w)| vec![*w]).collect();
    assert_eq!(got, want);
}

#[test]
fn routing_errors_are_positioned() {
    let redirect = |body: &str| format!("{VS_HEAD}  http:\n  - redirect:\n{body}");
    let cases = [
        (redirect("      uri: /a\n      prefixRewrite: /b\n"), "f.yaml:9:5: error: VirtualService/pay: spec.http[0].redirect: redirect may only contain one of uri or prefixRewrite"),
        (redirect("      port: 8080\n      derivePort: FROM_REQUEST_PORT\n"), "f.yaml:9:5: error: VirtualService/pay: spec.http[0].redirect: redirect may only contain one of port or derivePort"),
        (redirect("      derivePort: SOMEWHERE\n"), "f.yaml:10:7: error: VirtualService/pay: spec.http[0].redirect.derivePort: derivePort \"SOMEWHERE\": use FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT"),
        (vs_rule("    rewrite:\n      uri: /a\n      uriRegexRewrite: {match: a, rewrite: b}\n"), "f.yaml:12:5: error: VirtualService/pay: spec.http[0].rewrite: rewrite may only contain one of uri or uriRegexRewrite"),
        (vs_rule("    rewrite:\n      uriRegexRewrite: {match: \"(\", rewrite: b}\n"), "f.yaml:13:25: error: VirtualService/pay: spec.http[0].rewrite.uriRegexRewrite.match: invalid regex \"(\": unclosed group"),
        (format!("{VS_HEAD}  http:\n  - directResponse:\n      status: 200\n      body: {{bytes: \"not base64!\"}}\n"), "f.yaml:11:14: error: VirtualService/pay: spec.http[0].directResponse.body.bytes: bytes must be base64: Invalid symbol 32, offset 3."),
        (format!("{VS_HEAD}  http:\n  - directResponse:\n      status: 200\n      body: {{string: a, bytes: YQ==}}\n"), "f.yaml:11:7: error: VirtualService/pay: spec.http[0].directResponse.body: exactly one of string or bytes is required"),
        (vs_rule("    mirror: {host: pay}\n    mirrors:\n    - destination: {host: pay}\n"), "f.yaml:13:5: error: VirtualService/pay: spec.http[0].mirrors: give either mirror or mirrors, not both"),
        (vs_rule("    mirrors:\n    - percentage: {value: 101}\n      destination: {host: pay}\n"), "f.yaml:13:20: error: VirtualService/pay: spec.http[0].mirrors[0].percentage.value: percentage 101 is not in 0..100"),
        (vs_rule("    fault:\n      abort:\n        httpStatus: 503\n        http2Error: REFUSED_STREAM\n"), "f.yaml:15:9: error: VirtualService/pay: spec.http[0].fault.abort.http2Error: `http2Error` is hidden in Istio's API and Istio does not implement it: use `httpStatus` or `grpcStatus`"),
        (vs_rule("    fault:\n      delay:\n        fixedDelay: 1s\n        exponentialDelay: 1s\n"), "f.yaml:15:9: error: VirtualService/pay: spec.http[0].fault.delay.exponentialDelay: `exponentialDelay` is hidden in Istio's API and Istio does not implement it: use `fixedDelay`"),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(t, _)| errors(t)).collect();
    let want: Vec<Vec<&str>> = cases.iter().map(|(_, w)| vec![*w]).collect();
    assert_eq!(got, want);
}

const DELEGATE: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: team
spec:
  http:
  - match:
    - uri:
        prefix: /api/v2
    route:
    - destination:
        host: pay
        subset: v2
  - match:
    - uri:
        prefix: /web
    route:
    - destination:
        host: pay
";

const SUBSETS: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: pay
spec:
  host: pay
  subsets:
  - name: v2
    labels: {version: v2}
";

/// A root for `pay` delegating `/api` to `team`, then a default rule.
fn root(delegate: &str) -> String {
    format!("{VS_HEAD}  http:\n  - name: api\n    match:\n    - uri:\n        prefix: /api\n    timeout: 3s\n    delegate:\n{delegate}  - route:\n    - destination:\n        host: pay\n")
}

#[test]
fn delegate_rules_replace_the_root_rule() {
    let files = [
        ("root.yaml", root("      name: team\n")),
        ("team.yaml", DELEGATE.to_string()),
        ("dr.yaml", SUBSETS.to_string()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let mesh = load(&files).unwrap();
    assert_eq!(
        mesh.virtual_services.len(),
        1,
        "the delegate routes no host"
    );
    let http = &mesh.virtual_services.values().next().unwrap().http;
    assert_eq!(http.len(), 2, "the conflicting /web rule is dropped");
    assert_eq!(
        http[0].matches[0].uri,
        Some(StringMatch::Prefix("/api/v2".into()))
    );
    assert_eq!(http[0].timeout, Some(std::time::Duration::from_secs(3)));
    assert!(
        matches!(&http[0].action, RouteAction::Route(d) if d[0].destination.subset.as_deref() == Some("v2"))
    );
    assert_eq!(mesh.warnings.len(), 1);
    assert_eq!(
        relative(&mesh.warnings[0].warning()),
        "team.yaml:14:5: warning: VirtualService/team: spec.http[1].match: no match of this rule falls within the match of spec.http[0] in VirtualService default/pay (root.yaml:1): Istio drops the rule there"
    );
}

#[test]
fn delegate_errors_are_positioned() {
    let one = |files: &[(&str, &str)]| match load(files) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    };
    let hidden = DELEGATE.replace("spec:\n", "spec:\n  exportTo: [other]\n");
    let again = DELEGATE.replace(
        "    route:\n    - destination:\n        host: pay\n        subset: v2\n",
        "    delegate: {name: x}\n",
    );
    let with_gw = DELEGATE.replace("spec:\n", "spec:\n  gateways: [gw]\n");
    let both = root("      name: team\n    route:\n    - destination:\n        host: pay\n");
    let team = root("      name: team\n");
    let got = [
        one(&[("root.yaml", &root("      name: nobody\n"))]),
        one(&[
            ("root.yaml", &team),
            ("team.yaml", &hidden),
            ("dr.yaml", SUBSETS),
        ]),
        one(&[("team.yaml", &again), ("dr.yaml", SUBSETS)]),
        one(&[("team.yaml", &with_gw), ("dr.yaml", SUBSETS)]),
        one(&[
            ("root.yaml", &both),
            ("team.yaml", DELEGATE),
            ("dr.yaml", SUBSETS),
        ]),
    ];
    let want = [
        vec!["root.yaml:14:5: error: VirtualService/pay: spec.http[0].delegate: delegate default/nobody: no VirtualService without hosts of that name"],
        vec!["root.yaml:14:5: error: VirtualService/pay: spec.http[0].delegate: delegate default/team is not exported to namespace default (its exportTo)"],
        vec!["team.yaml:10:5: error: VirtualService/team: spec.http[0].delegate: a delegate VirtualService cannot delegate again: Istio supports one level"],
        vec![
            "team.yaml:6:3: error: VirtualService/team: spec.gateways: a delegate VirtualService (no hosts) must have no gateways: the root's apply",
            "team.yaml:6:14: error: VirtualService/team: spec.gateways[0]: unknown gateway default/gw: no Gateway of that namespace and name",
        ],
        vec!["root.yaml:16:5: error: VirtualService/pay: spec.http[0].route: a rule with delegate cannot have route: the delegate's rules route"],
    ];
    assert_eq!(got, want);
}

#[test]
fn export_to_and_two_virtual_services_for_one_host() {
    let exported = VS_HEAD.replace("spec:\n", "spec:\n  exportTo: [\".\", other]\n")
        + "  http:\n  - route:\n    - destination:\n        host: pay\n";
    let mesh = load(&[("f.yaml", &exported)]).unwrap();
    let vs = mesh.virtual_services.values().next().unwrap();
    assert!(vs.export_to.admits("default") && vs.export_to.admits("other"));
    assert!(!vs.export_to.admits("third"));
    let bad = VS_HEAD.replace("spec:\n", "spec:\n  exportTo: [\"~\", \"*\"]\n")
        + "  http:\n  - route:\n    - destination:\n        host: pay\n";
    assert_eq!(
        errors(&bad),
        ["f.yaml:6:14: error: VirtualService/pay: spec.exportTo[0]: `~` (exported nowhere) must be alone"]
    );
    let second = super::vs("pay-too", "pay");
    let second = second.as_str();
    let first = super::vs("pay", "pay");
    assert_eq!(
        load(&[("a.yaml", &first), ("b.yaml", second)]).unwrap_err(),
        ["b.yaml:7:5: error: VirtualService/pay-too: spec.hosts[0]: host pay.default.svc.cluster.local is already routed by VirtualService default/pay (a.yaml:1): sidecars take one VirtualService per host (Istio's IST0109 conflict); merge the rules, or bind both to a gateway, where they merge"]
    );
}

#[test]
fn deprecated_fields_warn_and_kubectl_fields_are_ignored() {
    let text = vs_rule("    websocketUpgrade: true\n    mirror: {host: pay}\n    mirrorPercent: 5\n    corsPolicy:\n      allowOrigin: [https://a.example]\n")
        .replace("  name: pay\n", "  name: pay\n  uid: 1f2e\n  resourceVersion: \"42\"\n  generation: 2\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n  managedFields: [{manager: kubectl}]\n  annotations: {a: b}\n")
        + "status:\n  conditions: []\n";
    let mesh = load(&[("f.yaml", &text)]).unwrap();
    let warnings: Vec<String> = mesh
        .warnings
        .iter()
        .map(|w| relative(&w.warning()))
        .collect();
    assert_eq!(
        warnings,
        [
            "f.yaml:18:5: warning: VirtualService/pay: spec.http[0].websocketUpgrade: `websocketUpgrade` is deprecated in Istio and has no effect: WebSocket upgrades work on every route",
            "f.yaml:20:5: warning: VirtualService/pay: spec.http[0].mirrorPercent: `mirrorPercent` is deprecated in Istio: write `mirrorPercentage: {value: N}`",
            "f.yaml:22:7: warning: VirtualService/pay: spec.http[0].corsPolicy.allowOrigin: `allowOrigin` is deprecated in Istio: write `allowOrigins: [{exact: ORIGIN}]`",
        ]
    );
    let rule = &mesh.virtual_services.values().next().unwrap().http[0];
    assert_eq!(rule.mirrors[0].percentage, 5.0);
    assert_eq!(rule.cors.as_ref().unwrap().allow_origins.len(), 1);
}
