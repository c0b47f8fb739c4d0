//! The application behind every path: an HTTP/1.1 server on 127.0.0.1 that
//! answers every request with 200 and the same body, on a runtime and
//! thread of its own so the load generator's tasks do not delay it.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running app; dropping it stops the server and joins its thread.
pub struct App {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl App {
    /// Starts the server answering `body_bytes` bytes on a free port.
    pub fn start(body_bytes: usize) -> anyhow::Result<App> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let body = Bytes::from(vec![b'x'; body_bytes]);
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("dataplane-app".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = accept_loop(listener, body) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(App {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

async fn accept_loop(listener: TcpListener, body: Bytes) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The runtime ends with block_on, cancelling the connection tasks.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
