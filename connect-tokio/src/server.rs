//! The hyper server: HTTP/1.1 and h2c on one port, HTTP/2 over TLS, limits, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use connect_proto::rpc::{ResponseBody, Router};
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::peer::PeerAddr;

/// Connection and request limits of a [`Server`]. Message size limits are the router's
/// (`ServerConfig::max_recv_message_size`): the core enforces them per message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// The largest request body accepted, all messages together. A request announcing more in
    /// `Content-Length` gets `413`; a streamed body crossing it has its stream reset. `None`: no limit.
    pub max_request_body: Option<u64>,
    /// How long a client may take to send a request head on HTTP/1.1, and to finish the TLS handshake.
    pub header_read_timeout: Option<Duration>,
    /// The most concurrent HTTP/2 streams (calls) per connection.
    pub max_concurrent_streams: Option<u32>,
    /// Interval of HTTP/2 keep-alive pings; `None` sends none.
    pub keepalive_interval: Option<Duration>,
    /// How long to wait for a keep-alive ping's answer before closing the connection.
    pub keepalive_timeout: Duration,
    /// Whether HTTP/1.1 connections are kept open between requests.
    pub http1_keepalive: bool,
    /// How long a graceful shutdown waits for in-flight calls before closing connections; `None`
    /// waits as long as they take.
    pub shutdown_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body: None,
            header_read_timeout: Some(Duration::from_secs(30)),
            max_concurrent_streams: Some(256),
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            http1_keepalive: true,
            shutdown_timeout: None,
        }
    }
}

/// Serves a [`Router`] on a TCP listener: HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same
/// port, or HTTP/2 and HTTP/1.1 over TLS (chosen by ALPN) with the `tls` feature.
///
/// Each request gets a [`PeerAddr`] (and, over TLS, the client's
/// [`PeerCertificates`](crate::PeerCertificates)) in its extensions, which handlers read through
/// `Context::extensions`.
#[derive(Clone)]
pub struct Server {
    router: Router,
    limits: Limits,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Server");
        s.field("router", &self.router).field("limits", &self.limits);
        #[cfg(feature = "tls")]
        s.field("tls", &self.tls.is_some());
        s.finish()
    }
}

impl Server {
    /// A server of `router` with default [`Limits`], in plain text.
    pub fn new(router: Router) -> Self {
        Server {
            router,
            limits: Limits::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves TLS with `config`. Its ALPN list is set to `h2`, `http/1.1` when empty; to make client
    /// certificates available to handlers, configure a client certificate verifier on it.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, mut config: rustls::ServerConfig) -> Self {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        self.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        self
    }

    /// Serves `listener` until `signal` completes, then shuts down gracefully: stops accepting, lets
    /// in-flight calls finish (up to [`Limits::shutdown_timeout`]) and closes idle connections.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let builder = Arc::new(self.http_builder());
        let server = Arc::new(self);
        let graceful = GracefulShutdown::new();
        let mut signal = std::pin::pin!(signal);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(_) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            let _ = stream.set_nodelay(true);
            let watcher = graceful.watcher();
            let (server, builder) = (server.clone(), builder.clone());
            tokio::spawn(async move {
                server.serve_connection(&builder, watcher, stream, peer).await;
            });
        }
        drop(listener);
        match server.limits.shutdown_timeout {
            Some(limit) => {
                let _ = tokio::time::timeout(limit, graceful.shutdown()).await;
            }
            None => graceful.shutdown().await,
        }
        Ok(())
    }

    /// Starts serving `listener` in a background task; the returned handle shuts it down.
    pub fn spawn(self, listener: TcpListener) -> io::Result<ServerHandle> {
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_with_shutdown(listener, async move {
            let _ = stopped.await;
        }));
        Ok(ServerHandle {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let limits = &self.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(limits.http1_keepalive);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .keep_alive_interval(limits.keepalive_interval)
            .keep_alive_timeout(limits.keepalive_timeout);
        builder
    }

    async fn serve_connection(
        &self,
        builder: &auto::Builder<TokioExecutor>,
        watcher: hyper_util::server::graceful::Watcher,
        stream: TcpStream,
        peer: SocketAddr,
    ) {
        let mut service = ConnectionService {
            router: self.router.clone(),
            peer: PeerAddr(peer),
            max_request_body: self.limits.max_request_body,
            #[cfg(feature = "tls")]
            certificates: None,
        };
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &self.tls {
            let handshake = acceptor.accept(stream);
            let tls = match self.limits.header_read_timeout {
                Some(limit) => match tokio::time::timeout(limit, handshake).await {
                    Ok(tls) => tls,
                    Err(_) => return,
                },
                None => handshake.await,
            };
            let Ok(tls) = tls else { return };
            service.certificates = tls.get_ref().1.peer_certificates().map(|chain| {
                crate::PeerCertificates(Arc::new(
                    chain.iter().map(|c| c.clone().into_owned()).collect(),
                ))
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            // Connection errors (a client that went away) end only this connection.
            let _ = watcher.watch(conn.into_owned()).await;
            return;
        }
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let _ = watcher.watch(conn.into_owned()).await;
    }
}

/// Accept errors that concern one connection only.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A running server started with [`Server::spawn`].
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shuts down gracefully and waits until in-flight calls are done.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServerHandle {
    /// A handle dropped without [`ServerHandle::shutdown`] stops the server at once.
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// The per-connection hyper service: adds the peer's identity to each request and enforces the
/// request body limit, then hands the request to the router.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: PeerAddr,
    max_request_body: Option<u64>,
    #[cfg(feature = "tls")]
    certificates: Option<crate::PeerCertificates>,
}

impl hyper::service::Service<http::Request<Incoming>> for ConnectionService {
    type Response = http::Response<ServerBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        #[cfg(feature = "tls")]
        if let Some(certificates) = &self.certificates {
            request.extensions_mut().insert(certificates.clone());
        }
        let Some(limit) = self.max_request_body else {
            let serve = self.router.handle(request);
            return Box::pin(async move { Ok(serve.await.map(ServerBody::rpc)) });
        };
        if request.body().size_hint().lower() > limit {
            let response = http::Response::builder()
                .status(http::StatusCode::PAYLOAD_TOO_LARGE)
                .body(ServerBody::empty())
                .unwrap_or_default();
            return Box::pin(async move { Ok(response) });
        }
        let trip = Arc::new(Trip::default());
        let request = request.map(|body| LimitedBody {
            inner: body,
            remaining: limit,
            trip: trip.clone(),
        });
        let serve = self.router.handle(request);
        Box::pin(async move {
            Ok(serve.await.map(|body| ServerBody {
                kind: Kind::Rpc {
                    body,
                    trip: Some(trip),
                },
            }))
        })
    }
}

/// Set when a request body crossed its limit, so that the response fails and the stream is reset.
#[derive(Debug, Default)]
struct Trip {
    tripped: AtomicBool,
    waker: AtomicWaker,
}

impl Trip {
    fn set(&self) {
        self.tripped.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn poll(&self, cx: &mut Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.tripped.load(Ordering::Acquire)
    }
}

/// A request body that fails once more than `remaining` bytes arrive.
struct LimitedBody {
    inner: Incoming,
    remaining: u64,
    trip: Arc<Trip>,
}

/// The request body crossed [`Limits::max_request_body`].
#[derive(Debug)]
struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body larger than the server's limit")
    }
}

impl std::error::Error for BodyTooLarge {}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > self.remaining {
                        self.trip.set();
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    self.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body of [`Server`]: an RPC response, or a plain HTTP answer (`413`). Its error makes
/// hyper reset the stream.
pub struct ServerBody {
    kind: Kind,
}

enum Kind {
    Rpc {
        body: ResponseBody,
        trip: Option<Arc<Trip>>,
    },
    Empty,
}

impl ServerBody {
    fn rpc(body: ResponseBody) -> Self {
        ServerBody {
            kind: Kind::Rpc { body, trip: None },
        }
    }

    fn empty() -> Self {
        ServerBody { kind: Kind::Empty }
    }
}

impl Default for ServerBody {
    fn default() -> Self {
        ServerBody::empty()
    }
}

impl std::fmt::Debug for ServerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBody").finish_non_exhaustive()
    }
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Rpc { body, trip } => {
                if trip.as_ref().is_some_and(|t| t.poll(cx)) {
                    self.kind = Kind::Empty;
                    return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                }
                Pin::new(body)
                    .poll_frame(cx)
                    .map(|frame| frame.map(|f| f.map_err(|never| match never {})))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Rpc { body, .. } => body.is_end_stream(),
        }
    }
}
