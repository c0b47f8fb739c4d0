//! Tokens checked while streams are open: revocation and expiry cut the
//! stream with UNAUTHENTICATED, deregister the sidecar and stop issuance.

use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::{eventually, json, metric, node, serve, Running, CANARY};
use crate::bootstrap::SidecarSpec;
use crate::ca::token::{TokenAuthority, TokenClaims};
use crate::serve::token_watch::CHECK_INTERVAL;
use crate::xds::CLUSTER_TYPE;

const HOUR: Duration = Duration::from_secs(3600);

fn tokens(cp: &Running) -> TokenAuthority {
    TokenAuthority::load_or_create(&cp._state.path().join("state")).unwrap()
}

struct Stream {
    _requests: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse>,
}

/// An ADS stream for `spec` presenting `token`; Err if refused at open.
async fn open(cp: &Running, spec: &SidecarSpec, token: &str) -> Result<Stream, tonic::Status> {
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.xds))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(8);
    tx.send(DiscoveryRequest {
        node: Some(node(spec)),
        type_url: CLUSTER_TYPE.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    let value = format!("Bearer {token}").parse().unwrap();
    req.metadata_mut().insert("authorization", value);
    let mut responses = client.stream_aggregated_resources(req).await?.into_inner();
    responses.message().await?;
    Ok(Stream {
        _requests: tx,
        responses,
    })
}

/// Reads until the stream ends; its status and when it came.
async fn closing_status(stream: &mut Stream) -> (tonic::Status, Instant) {
    loop {
        match stream.responses.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended OK"),
            Err(status) => return (status, Instant::now()),
        }
    }
}

async fn has_leaf(cp: &Running, id: &str) -> bool {
    !json(cp.admin, "/debug/ca").await["leaves"][id].is_null()
}

#[tokio::test]
async fn a_revoked_token_cuts_its_open_stream_within_the_check_interval() {
    let cp = serve(CANARY).await;
    let spec = SidecarSpec::new("ledger", 9100);
    let id = spec.node_id();
    let authority = tokens(&cp);
    let token = authority
        .issue("ledger", "default", "ledger", HOUR)
        .unwrap();
    let jti = authority.verify(&token, SystemTime::now()).unwrap().jti;
    let mut stream = open(&cp, &spec, &token).await.unwrap();
    eventually("a leaf for ledger", || has_leaf(&cp, &id)).await;
    let issued = metric(cp.admin, "trellis_ca_certificates_issued_total").await;

    // Another process revokes it, as `trellis token --revoke` does.
    let revoked_at = Instant::now();
    tokens(&cp).revoke(&jti).unwrap();
    let (status, closed_at) = closing_status(&mut stream).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("token revoked"), "{status:?}");
    let took = closed_at - revoked_at;
    assert!(
        took <= CHECK_INTERVAL + Duration::from_millis(500),
        "{took:?}"
    );

    let refused = r#"trellis_xds_streams_refused_total{reason="revoked"}"#;
    assert_eq!(metric(cp.admin, refused).await.as_deref(), Some("1"));
    // Deregistered at once, leaf dropped, nothing issued since.
    let sidecars = json(cp.admin, "/debug/ca").await;
    assert!(sidecars["leaves"][&id].is_null(), "{sidecars}");
    assert_eq!(
        metric(cp.admin, "trellis_ca_certificates_issued_total").await,
        issued
    );
    // Envoy reconnects with the same token: refused at open.
    let again = open(&cp, &spec, &token).await.err().unwrap();
    assert_eq!(again.code(), Code::Unauthenticated);
    assert_eq!(metric(cp.admin, refused).await.as_deref(), Some("2"));
    assert!(!has_leaf(&cp, &id).await);
}

#[tokio::test]
async fn a_token_that_expires_cuts_its_open_stream() {
    let cp = serve(CANARY).await;
    let spec = SidecarSpec::new("ledger", 9100);
    let authority = tokens(&cp);
    let valid = authority
        .issue("ledger", "default", "ledger", HOUR)
        .unwrap();
    let mut claims: TokenClaims = authority.verify(&valid, SystemTime::now()).unwrap();
    // Stops verifying (exp + 60 s of leeway) two seconds from now.
    claims.exp = claims.iat - 58;
    claims.iat -= 100;
    let token = authority.sign(&claims);
    let opened = Instant::now();
    let mut stream = open(&cp, &spec, &token).await.unwrap();
    let (status, closed_at) = closing_status(&mut stream).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("token expired"), "{status:?}");
    let took = closed_at - opened;
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let refused = r#"trellis_xds_streams_refused_total{reason="expired"}"#;
    assert_eq!(metric(cp.admin, refused).await.as_deref(), Some("1"));
}

#[test]
fn no_leaf_is_issued_for_a_token_revoked_before_the_stream_was_cut() {
    let state = tempfile::tempdir().unwrap();
    let ca = crate::ca::Ca::load_or_create(&crate::ca::CaConfig {
        state_dir: state.path().to_path_buf(),
        plugin: None,
    })
    .unwrap();
    let authority = std::sync::Arc::new(TokenAuthority::load_or_create(state.path()).unwrap());
    let certs = crate::serve::certs::Certs::new(std::sync::Arc::new(ca), Some(authority.clone()));
    let proxy = crate::registry::Proxy::from_node(&node(&SidecarSpec::new("a", 9001))).unwrap();
    let token = authority.issue("a", "default", "a", HOUR).unwrap();
    let claims = authority.verify(&token, SystemTime::now()).unwrap();
    certs.presented(&proxy.id, Some(claims.clone()));
    let mesh = crate::config::model::MeshSettings::default();
    let now = SystemTime::now();
    assert!(certs.for_proxy(&proxy, &mesh, now, "").is_ok());
    // Revoked, then the leaf is due (root rotation re-issues all).
    authority.revoke(&claims.jti).unwrap();
    certs.reissue_all();
    let err = certs.for_proxy(&proxy, &mesh, now, "").err().unwrap();
    assert!(err.to_string().contains("token revoked"), "{err}");
    assert!(certs.leaves().is_empty());
    // Another node that presented no token (`--insecure-xds`) still gets one.
    certs.presented(&proxy.id, None);
    assert!(certs.for_proxy(&proxy, &mesh, now, "").is_ok());
}
