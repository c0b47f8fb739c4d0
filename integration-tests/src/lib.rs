//! Test harness for Trellis end-to-end tests: the real `trellis serve`, real
//! Envoy 1.40 sidecars, in-process HTTP backends and a client, all on
//! 127.0.0.1 with ports of their own so tests can run in parallel.
//!
//! The tests in `tests/*.rs` run the `trellis` binary that `cargo build
//! --workspace` leaves in the target directory (see [`trellis::trellis_bin`]);
//! the test command therefore builds first: `cargo build --workspace && cargo
//! test --workspace`. `make test` runs that (every sidecar on delta ADS, the
//! bootstrap default) and then the integration suite again with
//! `TRELLIS_TEST_ADS_MODE=sotw cargo test -p trellis-integration-tests`, so
//! both ADS modes stay tested end to end (see [`mod@ads_mode`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ads_mode;
pub mod backend;
pub mod canary_mesh;
pub mod child;
pub mod client;
pub mod envoy;
pub mod etcd;
pub mod fixture;
pub mod gateway;
pub mod grpc;
pub mod load;
pub mod locality;
pub mod mesh;
pub mod nack;
pub mod netns;
pub mod observed;
pub mod payment;
pub mod ports;
pub mod ratelimit;
pub mod raw_http;
pub mod rollout;
pub mod sidecar;
pub mod trellis;
pub mod wait;
pub mod webdriver;

pub use backend::{Backend, Behavior};
pub use canary_mesh::CanaryMesh;
pub use child::ChildGuard;
pub use client::{Client, Reply, Tally};
pub use envoy::{active_clusters, Envoy, Sidecar};
pub use fixture::{subset_cluster, Instance, MeshClient};
pub use load::{assert_no_failures, Load};
pub use mesh::ConfigDir;
pub use ports::free_port;
pub use trellis::{Trellis, TrellisOptions};
pub use wait::wait_until;

/// Path of the repository root (the workspace root).
pub fn repo_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Istio's Bookinfo samples. They are not part of the repository:
/// `make test-istio-samples` names the directory holding `bookinfo/` in
/// `TRELLIS_ISTIO_SAMPLES`; without it this panics, so a test that needs
/// the samples fails instead of passing silently.
pub fn bookinfo_dir() -> std::path::PathBuf {
    let Some(root) = std::env::var_os("TRELLIS_ISTIO_SAMPLES") else {
        panic!("TRELLIS_ISTIO_SAMPLES is not set: run `make test-istio-samples`");
    };
    let dir = std::path::PathBuf::from(root).join("bookinfo");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    dir
}
