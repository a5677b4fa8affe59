//! The listeners: HTTPS (and plain HTTP on loopback when configured), one task per connection,
//! a cap on connections, a TLS handshake timeout, a header read timeout, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;
use tracing::{debug, info};

/// Connections served at once per listener; the next ones wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 512;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The listener a request arrived on (set by the listener, never read from the request): the
/// scheme and port of the absolute URIs Ward writes into responses.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    pub scheme: &'static str,
    pub port: u16,
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish for up
/// to `grace`. With `tls`, every connection must complete a TLS handshake first.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => {
                    let origin = Listener {
                        scheme: "http",
                        port,
                    };
                    serve_connection(stream, peer, origin, app, watcher).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            let origin = Listener {
                                scheme: "https",
                                port,
                            };
                            serve_connection(tls, peer, origin, app, watcher).await
                        }
                        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
                        Err(_) => debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    info!("web listener closed; finishing open requests");
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    origin: Listener,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(origin);
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection).await {
        debug!(error = %e, "connection ended with an error");
    }
}
