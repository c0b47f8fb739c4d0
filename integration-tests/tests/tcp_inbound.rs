//! TCP to sidecar-fronted instances against real Envoy, in the shape of
//! Istio's TCP traffic shifting: two `tcp-echo` sidecars (v1, v2) behind
//! STRICT mTLS, a client sidecar's egress port with a `tcp` rule 80/20.
//! An ALLOW policy by principal lets `client` in and closes `intruder`'s
//! connections (network RBAC, `tcp.rbac.denied`); the inbound sidecar
//! writes a TCP access log line per connection (turned on mesh-wide).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use trellis_integration_tests::mesh::ACCESS_LOGS_ON;
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// A client-first TCP app (like Istio's `tcp-echo`): after the client's
/// first bytes it answers with its name and closes. Client-first matters:
/// Envoy's network RBAC decides on the connection's first bytes from the
/// client.
async fn tcp_app(name: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                if s.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let _ = s.write_all(name.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

/// What a connection to `addr:port` reads, `None` if nothing.
async fn read_tcp(addr: &str, port: u16) -> Option<String> {
    let mut s = TcpStream::connect((addr, port)).await.ok()?;
    s.write_all(b"hi\n").await.ok()?;
    let mut out = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out));
    read.await.ok()?.ok()?;
    (!out.is_empty()).then_some(out)
}

fn config(port: u16) -> String {
    format!(
        r#"apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: istio-system}}
spec: {{mtls: {{mode: STRICT}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tcp-echo}}
spec:
  hosts: [tcp-echo]
  ports: [{{number: {port}, name: tcp, protocol: TCP}}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tcp-echo}}
spec:
  host: tcp-echo
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp-echo}}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{{port: {port}}}]
    route:
    - {{destination: {{host: tcp-echo, subset: v1}}, weight: 80}}
    - {{destination: {{host: tcp-echo, subset: v2}}, weight: 20}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: client}}
spec:
  workloadSelector: {{labels: {{app: client}}}}
  egress:
  - hosts: [./*]
  - port: {{number: {port}, protocol: TCP, name: tcp}}
    hosts: [./tcp-echo]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: intruder}}
spec:
  workloadSelector: {{labels: {{app: intruder}}}}
  egress:
  - hosts: [./*]
  - port: {{number: {port}, protocol: TCP, name: tcp}}
    bind: 127.0.0.2
    hosts: [./tcp-echo]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: tcp-echo-from-client}}
spec:
  selector: {{matchLabels: {{app: tcp-echo}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{principals: ["cluster.local/ns/default/sa/client"]}}}}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_to_sidecars_shifts_80_20_under_strict_mtls_with_rbac_and_logs() {
    let port = free_port();
    let dir =
        ConfigDir::with(&[("tcp.yaml", &config(port)), ("logs.yaml", ACCESS_LOGS_ON)]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let (app1, app2) = (tcp_app("v1").await, tcp_app("v2").await);
    let v1 = Sidecar::start(
        &trellis,
        "tcp-echo",
        &[("app", "tcp-echo"), ("version", "v1")],
        app1,
    );
    let v2 = Sidecar::start(
        &trellis,
        "tcp-echo",
        &[("app", "tcp-echo"), ("version", "v2")],
        app2,
    );
    let (v1, v2) = (v1.await.unwrap(), v2.await.unwrap());
    let client = Sidecar::start(&trellis, "client", &[("app", "client")], free_port());
    let intruder = Sidecar::start(&trellis, "intruder", &[("app", "intruder")], free_port());
    let (client, intruder) = (client.await.unwrap(), intruder.await.unwrap());
    client
        .wait_listener(&format!("127.0.0.1_{port}"), TIMEOUT)
        .await
        .unwrap();
    intruder
        .wait_listener(&format!("127.0.0.2_{port}"), TIMEOUT)
        .await
        .unwrap();
    for name in ["v1", "v2"] {
        let cluster = format!("outbound|{port}|{name}|tcp-echo.default.svc.cluster.local");
        client
            .wait_healthy_endpoints(&cluster, 1, TIMEOUT)
            .await
            .unwrap();
    }

    // The 80/20 split, over mTLS to the sidecars' inbound TCP chains.
    let (mut a, mut b) = (0, 0);
    for i in 0..200 {
        match read_tcp("127.0.0.1", port).await.as_deref() {
            Some("v1") => a += 1,
            Some("v2") => b += 1,
            other => panic!("connection {i}: {other:?}\n{}", v1.log()),
        }
    }
    println!("tcp to sidecars: v1 {a}/200, v2 {b}/200 (80/20 expected)");
    assert!(
        (140..=180).contains(&a),
        "{a}/200 to v1, expected about 160"
    );
    let handshakes =
        |s: &Sidecar| format!("listener.127.0.0.1_{}.ssl.handshake", s.spec.inbound_port);
    let mtls = v1.stat(&handshakes(&v1)).await.unwrap() + v2.stat(&handshakes(&v2)).await.unwrap();
    assert!(mtls >= 200, "every connection is mTLS: {mtls} handshakes");

    // ALLOW by principal: the intruder's connections are closed.
    let denied_before = v1.stat("tcp.rbac.denied").await.unwrap_or(0)
        + v2.stat("tcp.rbac.denied").await.unwrap_or(0);
    for _ in 0..5 {
        assert_eq!(read_tcp("127.0.0.2", port).await, None);
    }
    let denied = v1.stat("tcp.rbac.denied").await.unwrap_or(0)
        + v2.stat("tcp.rbac.denied").await.unwrap_or(0);
    assert_eq!(
        denied - denied_before,
        5,
        "every intruder connection denied"
    );
    assert!(
        read_tcp("127.0.0.1", port).await.is_some(),
        "client still let in"
    );

    // One JSON log line per connection on the inbound side.
    let want_cluster = format!("inbound|{app1}||");
    let (line, _) = wait_until(TIMEOUT, POLL, || async {
        let log = v1.log();
        log.lines().filter(|l| l.starts_with('{')).find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let ours =
                v["direction"] == "inbound" && v["upstream_cluster"] == want_cluster.as_str();
            ours.then_some(v)
        })
    })
    .await
    .unwrap_or_else(|e| panic!("no inbound TCP log line: {e}\n{}", v1.log()));
    assert_eq!(
        line["source_identity"],
        "spiffe://cluster.local/ns/default/sa/client"
    );
    assert_eq!(line["bytes_sent"], 2, "{line}");
    assert_eq!(line["bytes_received"], 3, "{line}");
}
