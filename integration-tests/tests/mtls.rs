//! STRICT and PERMISSIVE mTLS between real Envoys,
//! the caller's SPIFFE ID in `x-forwarded-client-cert`, a policy change
//! without restart, and mixed adoption (meshed ↔ unmeshed).

use std::time::Duration;

use trellis_integration_tests::backend::XFCC_ECHO_HEADER;
use trellis_integration_tests::*;

/// How long a policy change may take to reach the Envoys.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

fn peer_auth(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  \
         namespace: istio-system\nspec:\n  mtls:\n    mode: {mode}\n"
    )
}

/// A plaintext request straight to a sidecar's inbound port, on a fresh
/// connection: Some(status) if it got an HTTP answer.
async fn plaintext_status(inbound_port: u16) -> Option<u16> {
    let client = Client::new();
    let r = client.get(inbound_port, "payment", "/", &[]).await;
    r.ok().map(|r| r.status)
}

/// The caller identity the payment backend saw, via the client's sidecar.
async fn caller_via_mesh(client: &MeshClient) -> anyhow::Result<(u16, String)> {
    let reply = client.get("payment", &[]).await?;
    let xfcc = reply.headers.get(XFCC_ECHO_HEADER).cloned();
    Ok((reply.status, xfcc.unwrap_or_default()))
}

async fn mesh_of_two(config: &ConfigDir) -> (Trellis, Instance, MeshClient) {
    payment::payment_mesh(config, Behavior::Ok).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_plaintext_and_forwards_the_caller_identity() {
    let config = ConfigDir::with(&[("peer-auth.yaml", &peer_auth("STRICT"))]).unwrap();
    let (_trellis, payment, client) = mesh_of_two(&config).await;
    let want = "URI=spiffe://cluster.local/ns/default/sa/client";
    let (status, xfcc) = wait_until(CHANGE_TIMEOUT, Duration::from_millis(50), || async {
        let (status, xfcc) = caller_via_mesh(&client).await.ok()?;
        (status == 200).then_some((status, xfcc))
    })
    .await
    .map(|(v, _)| v)
    .expect("a request through the client's sidecar succeeds");
    assert_eq!(status, 200);
    assert!(xfcc.contains(want), "XFCC {xfcc:?} lacks {want}");
    let inbound = payment.sidecar.spec.inbound_port;
    assert_eq!(
        plaintext_status(inbound).await,
        None,
        "STRICT must refuse plaintext on the inbound port"
    );
    let tally = client.tally("payment", &[], 50, 2).await;
    assert_eq!(tally.ok(), 50, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_accepts_both_until_strict_is_written() {
    let config = ConfigDir::new().unwrap();
    let (_trellis, payment, client) = mesh_of_two(&config).await;
    let inbound = payment.sidecar.spec.inbound_port;
    // PERMISSIVE (the default): plaintext from an unmeshed caller works ...
    assert_eq!(plaintext_status(inbound).await, Some(200));
    // ... and meshed callers use mTLS: the app sees their identity.
    let (status, xfcc) = caller_via_mesh(&client).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        xfcc.contains("spiffe://cluster.local/ns/default/sa/client"),
        "{xfcc:?}"
    );

    config
        .write("peer-auth.yaml", &peer_auth("STRICT"))
        .unwrap();
    let (_, took) = wait_until(CHANGE_TIMEOUT, Duration::from_millis(50), || async {
        plaintext_status(inbound).await.is_none().then_some(())
    })
    .await
    .expect("STRICT takes effect without a restart");
    eprintln!("STRICT in force after {took:?}");
    let tally = client.tally("payment", &[], 50, 2).await;
    assert_eq!(tally.ok(), 50, "meshed traffic keeps working: {tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshed_service_calls_an_unmeshed_one_in_plaintext() {
    let legacy = Backend::start("legacy", "v1").await.unwrap();
    let entry = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: legacy\nspec:\n  \
         hosts:\n  - legacy\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n    \
         targetPort: {}\n  location: MESH_INTERNAL\n  resolution: STATIC\n  endpoints:\n  - address: 127.0.0.1\n",
        legacy.port()
    );
    // STRICT mesh-wide: it governs what meshed services accept, not how they
    // call endpoints without a sidecar.
    let config = ConfigDir::with(&[
        ("legacy.yaml", &entry),
        ("peer-auth.yaml", &peer_auth("STRICT")),
    ])
    .unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("", "legacy"), 1)
        .await
        .unwrap();
    let tally = client.tally("legacy", &[], 20, 2).await;
    assert_eq!(tally.get("legacy v1"), 20, "{tally:?}");
    // No endpoint takes mTLS, so the cluster Envoy holds has no auto-mTLS
    // matches (each would cost Envoy a TLS context that is never used).
    let dump = client.sidecar.config_dump().await.unwrap();
    let legacy = active_clusters(&dump)
        .into_iter()
        .find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(&subset_cluster("", "legacy")))
        })
        .expect("the legacy cluster in /config_dump");
    assert!(legacy.get("transport_socket_matches").is_none(), "{legacy}");
}
