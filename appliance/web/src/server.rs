//! Listeners and connections: accept, TLS handshake, hyper (HTTP/1.1 and HTTP/2), drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::WebError;
use crate::router::{App, ConnInfo};

/// A client gets this long to finish its request head (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A client gets this long to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Request heads larger than this are refused (431) rather than buffered.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Open connections get this long to finish when the server stops.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Whether a listener speaks plain HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Plain,
    Tls,
}

/// Sockets bound before serving starts, so that bind errors surface at start-up and
/// port 0 can be resolved to the real port.
#[derive(Debug)]
pub struct BoundListeners {
    listeners: Vec<(ListenerKind, TcpListener)>,
}

impl BoundListeners {
    pub async fn bind(plain: &[SocketAddr], tls: &[SocketAddr]) -> Result<Self, WebError> {
        let wanted = plain
            .iter()
            .map(|a| (ListenerKind::Plain, *a))
            .chain(tls.iter().map(|a| (ListenerKind::Tls, *a)));
        let mut listeners = Vec::new();
        for (kind, addr) in wanted {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| WebError::Bind { addr, source })?;
            listeners.push((kind, listener));
        }
        Ok(BoundListeners { listeners })
    }

    /// The addresses actually bound, in the order given.
    pub fn local_addrs(&self) -> Vec<(ListenerKind, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(kind, l)| l.local_addr().ok().map(|a| (*kind, a)))
            .collect()
    }
}

/// Serves an [`App`] on bound listeners until cancelled.
#[derive(Debug)]
pub struct Server {
    app: App,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    pub fn new(app: App, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Server { app, tls }
    }

    /// Accepts connections until `shutdown` is cancelled, then lets open connections finish
    /// their current request for a bounded time.
    pub async fn run(
        self,
        listeners: BoundListeners,
        shutdown: CancellationToken,
    ) -> Result<(), WebError> {
        let mut tasks = tokio::task::JoinSet::new();
        for (kind, listener) in listeners.listeners {
            let acceptor = match kind {
                ListenerKind::Plain => None,
                ListenerKind::Tls => {
                    let config = self.tls.clone().ok_or(WebError::MissingTlsConfig {
                        addr: listener
                            .local_addr()
                            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
                    })?;
                    Some(TlsAcceptor::from(config))
                }
            };
            tasks.spawn(accept_loop(
                listener,
                kind,
                acceptor,
                self.app.clone(),
                shutdown.clone(),
            ));
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    acceptor: Option<TlsAcceptor>,
    app: App,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(http_builder());
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo { peer, kind };
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(&builder, watcher, stream, app, conn).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => serve_connection(&builder, watcher, tls, app, conn).await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain deadline; closing them");
    }
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    builder
}

async fn serve_connection<S>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    stream: S,
    app: App,
    conn: ConnInfo,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        async move {
            let started = Instant::now();
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let response = app.handle(req, conn).await;
            tracing::info!(
                target: "percloud::access",
                peer = %conn.peer,
                %method,
                path,
                status = response.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
            );
            Ok::<_, Infallible>(response)
        }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(peer = %conn.peer, %error, "connection ended with an error");
    }
}
