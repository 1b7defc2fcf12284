//! The hyper server on async-io: HTTP/1.1 and h2c on one port, HTTP/2 over TLS, limits, graceful
//! shutdown. The per-connection work is connect-hyper's; this file accepts, handshakes and spawns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use connect_hyper::{
    accept_loop, serve_connection, within, ConnectionService, Limits, PeerAddr, Watcher,
};
use connect_proto::rpc::Router;
use futures_channel::oneshot;
use hyper_util::server::conn::auto;
use smol::net::{TcpListener, TcpStream};
use smol::{Task, Timer};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::runtime::SmolExecutor;

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
    tls: Option<futures_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Server");
        s.field("router", &self.router)
            .field("limits", &self.limits);
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
    pub fn tls(mut self, config: rustls::ServerConfig) -> Self {
        let config = connect_hyper::tls::with_default_alpn(config);
        self.tls = Some(futures_rustls::TlsAcceptor::from(Arc::new(config)));
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
        let shutdown_timeout = self.limits.shutdown_timeout;
        let server = Arc::new(self);
        let listener = Arc::new(listener);
        let accept = move || {
            let listener = listener.clone();
            async move { listener.accept().await }
        };
        let serve = |stream: TcpStream, peer, watcher| {
            let _ = stream.set_nodelay(true);
            let (server, builder) = (server.clone(), builder.clone());
            smol::spawn(async move {
                server
                    .serve_connection(&builder, watcher, stream, peer)
                    .await;
            })
            .detach();
        };
        let sleep = |duration| async move {
            Timer::after(duration).await;
        };
        accept_loop(accept, signal, sleep, serve, shutdown_timeout).await;
        Ok(())
    }

    /// Starts serving `listener` in a background task on smol's global executor; the returned handle
    /// shuts it down.
    pub fn spawn(self, listener: TcpListener) -> io::Result<ServerHandle> {
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = smol::spawn(self.serve_with_shutdown(listener, async move {
            let _ = stopped.await;
        }));
        Ok(ServerHandle {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    fn http_builder(&self) -> auto::Builder<SmolExecutor> {
        connect_hyper::http_builder(&self.limits, SmolExecutor, SmolTimer::new())
    }

    async fn serve_connection(
        &self,
        builder: &auto::Builder<SmolExecutor>,
        watcher: Watcher,
        stream: TcpStream,
        peer: SocketAddr,
    ) {
        let service = ConnectionService::new(
            self.router.clone(),
            PeerAddr(peer),
            self.limits.max_request_body,
        );
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &self.tls {
            let timeout = self.limits.header_read_timeout.map(|limit| async move {
                Timer::after(limit).await;
            });
            let Some(Ok(tls)) = within(acceptor.accept(stream), timeout).await else {
                return;
            };
            let certificates = crate::PeerCertificates::of(tls.get_ref().1);
            let service = service.with_certificates(certificates);
            serve_connection(builder, FuturesIo::new(tls), service, watcher).await;
            return;
        }
        serve_connection(builder, FuturesIo::new(stream), service, watcher).await;
    }
}

/// A running server started with [`Server::spawn`].
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    /// Dropping the task cancels it: a handle dropped without [`ServerHandle::shutdown`] stops
    /// accepting at once.
    task: Option<Task<io::Result<()>>>,
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
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
