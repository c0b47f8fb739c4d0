//! Self-tests of the harness that need no control plane: a static Envoy in
//! front of the test backends, the client, and the admin readers.

use std::time::Duration;

use trellis_integration_tests::{free_port, Backend, Behavior, Client, Envoy};

fn static_bootstrap(admin: u16, listen: u16, backend: u16) -> String {
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: outbound
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound
          route_config:
            virtual_hosts:
            - name: app
              domains: ["app"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: app }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{ socket_address: {{ address: 127.0.0.1, port_value: {backend} }} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_envoy_routes_by_host_to_a_backend() {
    let backend = Backend::start("app", "v1").await.unwrap();
    let (admin, listen) = (free_port(), free_port());
    let envoy = Envoy::start_yaml(
        "static envoy",
        &static_bootstrap(admin, listen, backend.port()),
        admin,
    )
    .await
    .unwrap();
    envoy
        .wait_listener("outbound", Duration::from_secs(5))
        .await
        .unwrap();
    envoy
        .wait_healthy_endpoints("app", 1, Duration::from_secs(5))
        .await
        .unwrap();

    let client = Client::new();
    let tally = client.tally(listen, "app", &[], 100, 8).await;
    assert_eq!(tally.get("app v1"), 100, "{tally:?}");
    let unknown = client.get(listen, "other", "/", &[]).await.unwrap();
    assert_eq!(unknown.status, 404);

    let stats = envoy.stats().await.unwrap();
    assert_eq!(
        stats.get("cluster.app.upstream_rq_200"),
        Some(&100),
        "stats"
    );
    let dump = envoy.config_dump().await.unwrap();
    assert!(dump.to_string().contains("\"domains\":[\"app\"]"));
    assert_eq!(backend.hits(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_behaviours() {
    let b = Backend::start_with("svc", "v2", Behavior::FailEveryNth(2))
        .await
        .unwrap();
    let client = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.get(b.port(), "svc", "/", &[]).await.unwrap().status);
    }
    assert_eq!(statuses, [200, 503, 200, 503]);

    b.set_behavior(Behavior::Always(500));
    assert_eq!(
        client.get(b.port(), "svc", "/", &[]).await.unwrap().status,
        500
    );

    b.set_behavior(Behavior::Delay(Duration::from_millis(200)));
    let r = client.get(b.port(), "svc", "/x", &[]).await.unwrap();
    assert_eq!((r.status, r.version()), (200, Some("v2")));
    assert!(r.elapsed >= Duration::from_millis(200));
}
