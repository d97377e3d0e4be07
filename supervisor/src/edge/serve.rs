//! The HTTP(S) accept loop: TCP connections, their TLS handshakes (bounded in number and in
//! time), and axum's router served on hyper with a header read timeout. `axum::serve` sets no
//! timeout at all, so a client that opens a connection and sends nothing, or a request
//! header a byte at a time (slowloris), would hold it for ever.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::edge::http::RemoteAddr;

/// TLS handshakes in progress at once; more connections are dropped until some finish, so a
/// flood of silent TCP connections costs a bounded amount of memory.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// How long clients have for the slow parts of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To complete the TLS handshake.
    pub tls_handshake: Duration,
    /// To send a request's headers, from its first byte or from the connection's start
    /// (keep-alive: from the previous response).
    pub http_headers: Duration,
}

/// Serves `app` on `listener` (TLS when `tls` is given) until `shutdown` completes; then
/// stops accepting and asks open connections to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let handshakes = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        match &tls {
            None => {
                tokio::spawn(serve_http(TokioIo::new(tcp), remote, app, timeouts, stop));
            }
            Some(acceptor) => {
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::warn!(%remote, "{MAX_PENDING_HANDSHAKES} TLS handshakes in progress: connection dropped");
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Some(tls) = handshake(&acceptor, tcp, remote, timeouts).await else {
                        return;
                    };
                    drop(permit);
                    serve_http(TokioIo::new(tls), remote, app, timeouts, stop).await;
                });
            }
        }
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    // The caller bounds how long the open connections may take.
    stop_tx.closed().await;
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
    timeouts: Timeouts,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(timeouts.tls_handshake, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%remote, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::info!(%remote, timeout = ?timeouts.tls_handshake, "TLS handshake timed out: connection closed");
            None
        }
    }
}

/// One connection's HTTP/1.1 requests (and its upgrade to a WebSocket), each request told the
/// client's address.
async fn serve_http<I>(
    io: TokioIo<I>,
    remote: SocketAddr,
    app: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut request: axum::http::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectInfo(RemoteAddr(remote)));
        request
    });
    let service = TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.http_headers);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        tracing::info!(%remote, timeout = ?timeouts.http_headers, "request headers too slow: connection closed");
                    } else {
                        tracing::debug!(%remote, "connection ended: {e}");
                    }
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
