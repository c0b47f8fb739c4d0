//! Failover between members, against sockets that refuse or never answer
//! (the calls against a real etcd are in the replica system tests).

use std::time::Duration;

use super::*;

fn options(endpoints: Vec<String>) -> ConnectOptions {
    ConnectOptions {
        endpoints,
        tls: None,
        connect_timeout: Duration::from_millis(500),
        ping_interval: Duration::from_secs(1),
        ping_timeout: Duration::from_secs(2),
    }
}

/// An address nothing listens on (connections are refused).
fn refused() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn current(client: &Client) -> usize {
    client.members.current.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_refused_request_moves_to_the_next_member_and_wraps() {
    let client = Client::connect(&options(vec![refused(), refused()])).unwrap();
    assert_eq!(current(&client), 0);
    assert!(client.put("/k", b"v".to_vec(), 0).await.is_err());
    assert_eq!(current(&client), 1);
    assert!(client.range("/k", false).await.is_err());
    assert_eq!(current(&client), 0);
}

#[tokio::test]
async fn an_abandoned_request_moves_to_the_next_member() {
    // Accepts TCP (the kernel's backlog) but never speaks HTTP/2.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let client = Client::connect(&options(vec![silent_addr, refused()])).unwrap();
    let call = client.lease_grant(5);
    assert!(tokio::time::timeout(Duration::from_millis(200), call)
        .await
        .is_err());
    assert_eq!(current(&client), 1);
}

#[tokio::test]
async fn a_late_failure_on_a_member_already_left_does_not_skip_one() {
    let client = Client::connect(&options(vec![refused(), refused(), refused()])).unwrap();
    client.members.failed(0);
    // A second request that had started on member 0 fails afterwards.
    client.members.failed(0);
    assert_eq!(current(&client), 1);
}

#[test]
fn no_endpoints_is_an_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    assert!(matches!(
        Client::connect(&options(Vec::new())),
        Err(ClientError::NoEndpoints)
    ));
}
