//! Values Istio rejects, per kind, and metadata rules.

use super::{dr, errors, vs_rule, VS_HEAD};

#[test]
fn values_istio_rejects_in_virtual_services() {
    assert_eq!(
        errors(&vs_rule("    retries:\n      attempts: -1\n")),
        ["f.yaml:13:7: error: VirtualService/pay: spec.http[0].retries.attempts: attempts cannot be negative"]
    );
    assert_eq!(
        errors(&vs_rule("    retries:\n      attempts: 0\n      retryOn: 5xx\n")),
        ["f.yaml:13:7: error: VirtualService/pay: spec.http[0].retries.attempts: retry policy configured while attempts is 0 (disabled): set attempts or remove the policy"]
    );
    assert_eq!(
        errors(&vs_rule(
            "    retries:\n      attempts: 2\n      retryOn: 5xx,bogus,503\n"
        )),
        [
            r#"f.yaml:14:7: error: VirtualService/pay: spec.http[0].retries.retryOn: "bogus" is not a valid retryOn policy: use HTTP status codes or 5xx, gateway-error, reset, reset-before-request, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, retriable-headers, envoy-ratelimited, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable"#
        ]
    );
    assert_eq!(
        errors(&vs_rule("    fault:\n      abort:\n        httpStatus: 700\n        percentage:\n          value: 150\n")),
        [
            "f.yaml:14:9: error: VirtualService/pay: spec.http[0].fault.abort.httpStatus: HTTP status 700 is not in range 200-599",
            "f.yaml:16:11: error: VirtualService/pay: spec.http[0].fault.abort.percentage.value: percentage 150 is not in 0..100",
        ]
    );
    let regex = format!("{VS_HEAD}  http:\n  - match:\n    - uri:\n        regex: \"/a(b\"\n    route:\n    - destination:\n        host: pay\n");
    assert_eq!(
        errors(&regex),
        [
            r#"f.yaml:11:9: error: VirtualService/pay: spec.http[0].match[0].uri.regex: invalid regex "/a(b": unclosed group"#
        ]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  http:\n  - redirect:\n      uri: /x\n      redirectCode: 200\n")),
        ["f.yaml:11:7: error: VirtualService/pay: spec.http[0].redirect.redirectCode: 200 is not a valid redirect code, must be 3xx"]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  http:\n  - timeout: 1s\n")),
        ["f.yaml:9:5: error: VirtualService/pay: spec.http[0]: one of route, redirect or directResponse is required"]
    );
    assert_eq!(
        errors(&format!(
            "{VS_HEAD}  - \"\"\n  http:\n  - route:\n    - destination:\n        host: pay\n"
        )),
        ["f.yaml:8:5: error: VirtualService/pay: spec.hosts[1]: host must not be empty"]
    );
    assert_eq!(
        errors(&vs_rule("        port:\n          number: 0\n")),
        ["f.yaml:13:11: error: VirtualService/pay: spec.http[0].route[0].destination.port.number: port number 0 is not in 1..65535"]
    );
}

#[test]
fn values_istio_rejects_in_service_entries() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: s\nspec:\n  hosts: [svc]\n";
    assert_eq!(
        errors(&format!("{se}  ports:\n  - number: 0\n    name: http\n  - number: 70000\n    name: grpc\n    protocol: FOO\n  resolution: NONE\n")),
        [
            "f.yaml:8:5: error: ServiceEntry/s: spec.ports[0].number: port number 0 is not in 1..65535",
            "f.yaml:10:5: error: ServiceEntry/s: spec.ports[1].number: port number 70000 is not in 1..65535",
            "f.yaml:12:5: error: ServiceEntry/s: spec.ports[1].protocol: protocol FOO is not supported yet: use HTTP, HTTP2, GRPC, TCP (or MONGO, MYSQL, REDIS, THRIFT, DUBBO: proxied as TCP), TLS or HTTPS",
        ]
    );
    let endpoints = "  ports:\n  - number: 80\n    name: web\n  resolution: STATIC\n  endpoints:\n  - address: example.com\n    ports:\n      foo: 8080\n    labels:\n      bad key: v\n";
    assert_eq!(
        errors(&format!("{se}{endpoints}")),
        [
            "f.yaml:8:5: error: ServiceEntry/s: spec.ports[0]: protocol is required (HTTP, HTTP2, GRPC, TCP, TLS or HTTPS) unless the port name starts with one",
            r#"f.yaml:12:5: error: ServiceEntry/s: spec.endpoints[0].address: endpoint address "example.com" is not an IP address (resolution STATIC)"#,
            r#"f.yaml:14:7: error: ServiceEntry/s: spec.endpoints[0].ports.foo: endpoint port "foo" is not a port name of the ServiceEntry"#,
            r#"f.yaml:16:7: error: ServiceEntry/s: spec.endpoints[0].labels.bad key: invalid label key "bad key": use [prefix/]name, name at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"#,
        ]
    );
}

#[test]
fn values_istio_rejects_in_destination_rules() {
    let policy = "  trafficPolicy:\n    loadBalancer:\n      simple: FASTEST\n    outlierDetection:\n      maxEjectionPercent: 101\n      interval: 0s\n    connectionPool:\n      http:\n        maxRetries: -1\n        h2UpgradePolicy: ALWAYS\n  subsets:\n  - name: V1\n    labels:\n      version: v1\n";
    assert_eq!(
        errors(&format!("{}{policy}", dr("d", "x"))),
        [
            r#"f.yaml:9:7: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.simple: unknown load balancer "FASTEST": use ROUND_ROBIN, LEAST_REQUEST, RANDOM or UNSPECIFIED"#,
            "f.yaml:11:7: error: DestinationRule/d: spec.trafficPolicy.outlierDetection.maxEjectionPercent: 101 is not in 0..100",
            r#"f.yaml:12:7: error: DestinationRule/d: spec.trafficPolicy.outlierDetection.interval: duration "0s" must be at least 1ms"#,
            "f.yaml:15:9: error: DestinationRule/d: spec.trafficPolicy.connectionPool.http.maxRetries: -1 must not be negative",
            r#"f.yaml:16:9: error: DestinationRule/d: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: unknown h2UpgradePolicy "ALWAYS": use DEFAULT, DO_NOT_UPGRADE or UPGRADE"#,
            r#"f.yaml:18:5: error: DestinationRule/d: spec.subsets[0].name: subset name "V1" is not a valid DNS-1123 label"#,
        ]
    );
}

#[test]
fn metadata_rules() {
    assert_eq!(
        errors("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {}\nspec:\n  host: x\n"),
        ["f.yaml:3:1: error: DestinationRule/-: metadata: metadata.name is required"]
    );
    assert_eq!(
        errors(&dr("Bad_Name", "x")),
        [
            r#"f.yaml:4:3: error: DestinationRule/Bad_Name: metadata.name: name "Bad_Name" is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.')"#
        ]
    );
    assert_eq!(
        errors("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: x\n"),
        ["f.yaml:1:1: error: DestinationRule/x: spec: spec is required"]
    );
}

#[test]
fn passthrough_load_balancer_needs_interception() {
    let policy = "  trafficPolicy:\n    loadBalancer:\n      simple: PASSTHROUGH\n";
    assert_eq!(
        errors(&format!("{}{policy}", dr("d", "x"))),
        [
            "f.yaml:9:7: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH needs transparent interception (the original destination address), which Trellis sidecars do not have: use ROUND_ROBIN, LEAST_REQUEST or RANDOM",
        ]
    );
}
