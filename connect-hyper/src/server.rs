//! The server, generic over the runtime that accepts, spawns and sleeps: HTTP/1.1 and h2c on one
//! port, HTTP/2 over TLS, limits, graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use connect_typed::Router;
use futures_channel::oneshot;
use futures_util::future::{AbortHandle, Abortable};
use hyper::rt::{Read, Write};
use hyper::service::Service;
use hyper_util::server::conn::auto::{self, Connection, HttpServerConnExec};

use crate::accept::accept_loop;
use crate::budget::{Budget, ResponseBudget};
use crate::conn::http_builder;
use crate::graceful::Watcher;
use crate::header_watch::HeaderWatch;
use crate::limits::Limits;
use crate::peer::PeerAddr;
use crate::service::{ConnectionService, DrainTimer, ServerBody};
use crate::watch::{
    first_bytes, ConnectionClock, ConnectionCount, ConnectionPolicy, ConnectionStats,
};

/// The future of [`ConnectionService`], which the executor's HTTP/2 streams run.
pub type ServiceFuture =
    <ConnectionService as Service<http::Request<hyper::body::Incoming>>>::Future;

/// What a runtime brings to a [`Server`]: its listener and streams, tasks, timer, and the IO types
/// hyper reads and writes. Implemented by `connect_tokio::TokioRuntime` and
/// `connect_smol::SmolRuntime`.
pub trait ServerRuntime: Send + Sync + 'static {
    /// A TCP listener.
    type Listener: Send + Sync + 'static;
    /// An accepted TCP stream.
    type Stream: Send + 'static;
    /// The executor hyper spawns HTTP/2 streams on.
    type Executor: HttpServerConnExec<ServiceFuture, ServerBody> + Clone + Send + Sync + 'static;
    /// hyper's timer (header read timeout, keep-alive).
    type Timer: hyper::rt::Timer + Clone + Send + Sync + 'static;
    /// A plain stream as hyper's IO.
    type Io: Read + Write + Unpin + Send + 'static;
    /// A TLS stream as hyper's IO.
    #[cfg(feature = "tls")]
    type TlsIo: Read + Write + Unpin + Send + 'static;

    /// A listener bound to `addr`.
    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    /// The address `listener` listens on.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;
    /// Completes once `stream` has something to read (bytes, its end, or an error). The server
    /// waits for it before it builds the connection's state, so that a connection that sends
    /// nothing holds only its socket and a small task.
    fn readable(stream: &Self::Stream) -> impl Future<Output = ()> + Send;
    /// The next connection, with its peer's address.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
    /// Runs `future` in the background.
    fn spawn(future: impl Future<Output = ()> + Send + 'static);
    /// Completes after `duration`.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static;
    /// The executor for hyper.
    fn executor() -> Self::Executor;
    /// The timer for hyper.
    fn timer() -> Self::Timer;
    /// An accepted stream as hyper's IO (with `TCP_NODELAY` set).
    fn io(stream: Self::Stream) -> Self::Io;
    /// The server side of a TLS handshake on `stream`, and the client's certificate chain.
    #[cfg(feature = "tls")]
    fn tls_accept(
        config: Arc<rustls::ServerConfig>,
        stream: Self::Stream,
    ) -> impl Future<Output = io::Result<(Self::TlsIo, Option<crate::PeerCertificates>)>> + Send;
}

/// Serves a [`Router`] on a TCP listener of runtime `R`: HTTP/1.1 and HTTP/2 with prior knowledge
/// (h2c) on the same port, or HTTP/2 and HTTP/1.1 over TLS (chosen by ALPN) with the `tls` feature.
///
/// Each request gets a [`PeerAddr`] (and, over TLS, the client's
/// [`PeerCertificates`](crate::PeerCertificates)) in its extensions, which handlers read through
/// `Context::extensions`.
///
/// With [`Server::alt_svc`], every response carries an `Alt-Svc` header, so that clients learn of
/// an HTTP/3 endpoint of the same service (connect-h3 serves it; `connect_h3::alt_svc(port)` makes
/// the value).
pub struct Server<R> {
    router: Router,
    limits: Limits,
    alt_svc: Option<http::HeaderValue>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
    runtime: std::marker::PhantomData<fn() -> R>,
}

impl<R> Clone for Server<R> {
    fn clone(&self) -> Self {
        Server {
            router: self.router.clone(),
            limits: self.limits.clone(),
            alt_svc: self.alt_svc.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
            runtime: std::marker::PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Server<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Server");
        s.field("router", &self.router)
            .field("limits", &self.limits)
            .field("alt_svc", &self.alt_svc);
        #[cfg(feature = "tls")]
        s.field("tls", &self.tls.is_some());
        s.finish()
    }
}

impl<R: ServerRuntime> Server<R> {
    /// A server of `router` with default [`Limits`], in plain text.
    pub fn new(router: Router) -> Self {
        Server {
            router,
            limits: Limits::default(),
            alt_svc: None,
            #[cfg(feature = "tls")]
            tls: None,
            runtime: std::marker::PhantomData,
        }
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds `Alt-Svc: value` to every response over HTTP/1.1 and HTTP/2 (refusals and errors
    /// included), advertising another endpoint of this service: typically HTTP/3 on a UDP port of
    /// the same host, `connect_h3::alt_svc(port)` (for example `h3=":443"; ma=86400`). Clients that
    /// understand it (browsers, over `https` only) may switch to that endpoint for later requests;
    /// others ignore it. Off by default.
    pub fn alt_svc(mut self, value: http::HeaderValue) -> Self {
        self.alt_svc = Some(value);
        self
    }

    /// Serves TLS with `config`. Its ALPN list is set to `h2`, `http/1.1` when empty; to make client
    /// certificates available to handlers, configure a client certificate verifier on it.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: rustls::ServerConfig) -> Self {
        self.tls = Some(Arc::new(crate::tls::with_default_alpn(config)));
        self
    }

    /// Serves `listener` until `signal` completes, then shuts down gracefully: stops accepting, lets
    /// in-flight calls finish (up to [`Limits::shutdown_timeout`]) and closes idle connections.
    pub async fn serve_with_shutdown(
        self,
        listener: R::Listener,
        signal: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let builder = Arc::new(http_builder(&self.limits, R::executor(), R::timer()));
        let shutdown_timeout = self.limits.shutdown_timeout;
        let max_connections = self.limits.max_connections;
        let shared = Arc::new(Shared {
            policy: ConnectionPolicy::from_limits(&self.limits),
            response_buffer_total: self
                .limits
                .response_buffer_total
                .map(|limit| Arc::new(Budget::new(limit))),
            timer: Arc::new(R::timer()),
        });
        let server = Arc::new(self);
        let listener = Arc::new(listener);
        let count = Arc::new(ConnectionCount::default());
        let accept = {
            let count = count.clone();
            move || {
                let (listener, count) = (listener.clone(), count.clone());
                async move {
                    if let Some(max) = max_connections {
                        count.below(max).await;
                    }
                    R::accept(&listener).await
                }
            }
        };
        let serve = |stream, peer, watcher| {
            let (server, builder, shared) = (server.clone(), builder.clone(), shared.clone());
            let open = count.open();
            R::spawn(async move {
                server
                    .serve_connection(&builder, &shared, watcher, stream, peer)
                    .await;
                drop(open);
            });
        };
        accept_loop(accept, signal, R::sleep, serve, shutdown_timeout).await;
        Ok(())
    }

    /// Starts serving `listener` in a background task; the returned handle shuts it down.
    pub fn spawn(self, listener: R::Listener) -> io::Result<ServerHandle> {
        let local_addr = R::local_addr(&listener)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel::<()>();
        let (abort, registration) = AbortHandle::new_pair();
        let serve = self.serve_with_shutdown(listener, async move {
            let _ = stopped.await;
        });
        R::spawn(async move {
            let _ = Abortable::new(serve, registration).await;
            let _ = done_tx.send(());
        });
        Ok(ServerHandle {
            local_addr,
            stop: Some(stop),
            abort,
            done,
        })
    }

    async fn serve_connection(
        &self,
        builder: &auto::Builder<R::Executor>,
        shared: &Shared,
        watcher: Watcher,
        stream: R::Stream,
        peer: SocketAddr,
    ) {
        // Connection management starts at accept: the first request's deadline counts from here.
        let mut managed = (!shared.policy.is_inert()).then(|| {
            let stats = Arc::new(ConnectionStats::new(shared.policy.max_requests));
            (ConnectionClock::new(&shared.policy), stats)
        });
        // Nothing is built for a connection until it has sent something: a silent connection costs
        // its socket and this task.
        let clock = managed.as_mut().map(|(clock, stats)| (clock, &**stats));
        let shutdown = watcher.shutdown_signal();
        if !first_bytes(R::readable(&stream), shutdown, clock, &shared.timer).await {
            return;
        }
        let service = self.service(shared, peer, managed.as_ref().map(|(_, s)| s));
        #[cfg(feature = "tls")]
        if let Some(config) = &self.tls {
            let timeout = self.limits.header_read_timeout.map(R::sleep);
            // On the heap, as the connection below: only while the handshake runs.
            let handshake = Box::pin(R::tls_accept(config.clone(), stream));
            let Some(Ok((tls, certificates))) = crate::within(handshake, timeout).await else {
                return;
            };
            let service = service.with_certificates(certificates);
            let io = HeaderWatch::new(tls, managed.as_ref().map(|(_, s)| s.clone()));
            let conn = Box::pin(builder.serve_connection(io, service));
            return run(conn, shared, watcher, managed).await;
        }
        let io = HeaderWatch::new(R::io(stream), managed.as_ref().map(|(_, s)| s.clone()));
        let conn = Box::pin(builder.serve_connection(io, service));
        run(conn, shared, watcher, managed).await;
    }

    /// The connection's hyper service.
    fn service(
        &self,
        shared: &Shared,
        peer: SocketAddr,
        stats: Option<&Arc<ConnectionStats>>,
    ) -> ConnectionService {
        let budget = ResponseBudget {
            connection: self
                .limits
                .response_buffer_per_connection
                .map(|limit| Arc::new(Budget::new(limit))),
            server: shared.response_buffer_total.clone(),
        };
        let mut service = ConnectionService::new(
            self.router.clone(),
            PeerAddr(peer),
            self.limits.max_request_body,
        )
        .with_drain_timer(shared.timer.clone())
        .with_budget(budget)
        .with_alt_svc(self.alt_svc.clone());
        if let Some(stats) = stats {
            service = service.with_stats(stats.clone());
        }
        service
    }
}

/// What every connection of a server shares.
struct Shared {
    policy: ConnectionPolicy,
    response_buffer_total: Option<Arc<Budget>>,
    timer: DrainTimer,
}

/// A connection's hyper state: hyper's and h2's, a few kilobytes.
type Conn<'a, I, E> = Pin<Box<Connection<'a, HeaderWatch<I>, ConnectionService, E>>>;

/// Serves one connection, under the server's connection management ([`ConnectionPolicy`]) when
/// `managed` has its clock and stats.
///
/// The connection's state is on the heap, built by the caller: held by value in a future, it would
/// be copied into every future that awaits it, and the spawned task would be as large from its
/// start, before the client sent anything (10.7 KB per connection, where tonic's task is 2.4 KB;
/// measured with heaptrack).
async fn run<I, E>(
    mut conn: Conn<'_, I, E>,
    shared: &Shared,
    watcher: Watcher,
    managed: Option<(ConnectionClock<'_>, Arc<ConnectionStats>)>,
) where
    I: Read + Write + Unpin + 'static,
    E: HttpServerConnExec<ServiceFuture, ServerBody>,
{
    match managed {
        None => {
            // Connection errors (a client that went away) end only this connection.
            let _ = watcher.watch(conn.as_mut()).await;
        }
        Some((mut clock, stats)) => {
            watcher
                .watch_managed(conn.as_mut(), &mut clock, &stats, &shared.timer)
                .await;
        }
    }
}

/// A running server started with [`Server::spawn`].
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    abort: AbortHandle,
    done: oneshot::Receiver<()>,
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
        let _ = (&mut self.done).await;
    }
}

impl Drop for ServerHandle {
    /// A handle dropped without [`ServerHandle::shutdown`] stops the server at once.
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.abort.abort();
        }
    }
}
