//! Listeners and server tasks for `serve`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::incoming::incoming;
use super::xds_tls::ServerCert;
use super::ServeError;
use crate::admin::{self, AdminState};
use crate::xds::{AdsServer, PeerLimit};

/// How long the servers get to finish after a shutdown signal before they
/// are cut: Envoy never ends its ADS stream by itself, so waiting longer
/// only delays the exit.
const DRAIN: Duration = Duration::from_millis(500);

/// HTTP/2 pings find Envoys that vanished without closing their stream, so
/// their grace period starts instead of lingering forever.
const KEEPALIVE: Duration = Duration::from_secs(30);

type ServerTask = JoinHandle<Result<(), ServeError>>;

/// Creates the state directory, readable by the control plane's user only
/// (it will hold the CA key).
pub(super) fn create_state_dir(path: &Path) -> Result<(), ServeError> {
    let err = |source| ServeError::StateDir {
        path: path.to_path_buf(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(path).map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    #[cfg(not(unix))]
    builder.create(path).map_err(err)?;
    Ok(())
}

/// Binds a listener, naming the server in the error.
pub(super) async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { what, addr, source })
}

/// Serves ADS on `listener` until `stop` fires, at most `per_peer`
/// connections per client address.
pub(super) fn spawn_grpc(
    ads: AdsServer,
    listener: TcpListener,
    tls: Option<Arc<ServerCert>>,
    per_peer: PeerLimit,
    stop: watch::Receiver<bool>,
) -> ServerTask {
    tokio::spawn(async move {
        let router = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE))
            .add_service(ads.into_service());
        let tcp = incoming(listener, per_peer, KEEPALIVE);
        // TLS is accepted by `xds_tls`, whose certificate is renewed while serving.
        match tls {
            Some(cert) => {
                let incoming = super::xds_tls::incoming(cert, tcp)?;
                router
                    .serve_with_incoming_shutdown(incoming, stopped(stop))
                    .await
            }
            None => {
                router
                    .serve_with_incoming_shutdown(tcp, stopped(stop))
                    .await
            }
        }
        .map_err(ServeError::Grpc)
    })
}

/// Serves the admin API on `listener` until `stop` fires.
pub(super) fn spawn_admin(
    state: AdminState,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> ServerTask {
    tokio::spawn(async move {
        axum::serve(listener, admin::router(state))
            .with_graceful_shutdown(stopped(stop))
            .await
            .map_err(ServeError::Admin)
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // An Err means the sender is gone, which also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// A server task that ended on its own is an error even when it returned Ok.
pub(super) fn flatten(
    joined: Result<Result<(), ServeError>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match joined {
        Ok(Ok(())) => Err(ServeError::Stopped("a server stopped unexpectedly".into())),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ServeError::Stopped(format!("a server task failed: {e}"))),
    }
}

/// Gives a stopping server [`DRAIN`] to finish, then cuts it.
pub(super) async fn drain(mut task: ServerTask) {
    if task.is_finished() {
        return;
    }
    if tokio::time::timeout(DRAIN, &mut task).await.is_err() {
        task.abort();
    }
}
