//! The hyper server on async-io: connect-hyper's [`Server`](connect_hyper::Server) with async-io's
//! listener and timer, smol's executor, and `smol-hyper`'s IO adapter over our [`TcpIo`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use connect_hyper::{BatchedWrites, ServerRuntime};
use smol::net::{TcpListener, TcpStream};
use smol_hyper::rt::SmolTimer;

use crate::io::{HyperIo, TcpIo};
use crate::runtime::{SmolExecutor, SmolRuntime};

/// Serves a [`Router`](crate::Router) on a smol (async-io) [`TcpListener`]: HTTP/1.1 and HTTP/2
/// with prior knowledge (h2c) on the same port, or HTTP/2 and HTTP/1.1 over TLS (chosen by ALPN)
/// with the `tls` feature; limits and graceful shutdown. Each request gets a
/// [`PeerAddr`](crate::PeerAddr) (and, over TLS, the client's certificates) in its extensions.
/// Connections run on smol's global executor.
pub type Server = connect_hyper::Server<SmolRuntime>;

impl ServerRuntime for SmolRuntime {
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Executor = SmolExecutor;
    type Timer = SmolTimer;
    type Io = BatchedWrites<HyperIo<TcpIo>>;
    #[cfg(feature = "tls")]
    type TlsIo = HyperIo<futures_rustls::server::TlsStream<TcpIo>>;

    async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn readable(stream: &TcpStream) {
        let socket: std::sync::Arc<smol::Async<std::net::TcpStream>> = stream.clone().into();
        // An error is for the connection's first read to find.
        let _ = socket.readable().await;
    }

    fn accept(
        listener: &TcpListener,
    ) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        listener.accept()
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(future).detach();
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }

    fn executor() -> SmolExecutor {
        SmolExecutor
    }

    fn timer() -> SmolTimer {
        SmolTimer::new()
    }

    fn io(stream: TcpStream) -> BatchedWrites<HyperIo<TcpIo>> {
        BatchedWrites::without_yield(HyperIo::new(TcpIo::new(stream)))
    }

    #[cfg(feature = "tls")]
    fn tls_accept(
        config: std::sync::Arc<rustls::ServerConfig>,
        stream: TcpStream,
    ) -> impl Future<Output = io::Result<(Self::TlsIo, Option<crate::PeerCertificates>)>> + Send
    {
        let stream = TcpIo::new(stream);
        async move {
            let tls = futures_rustls::TlsAcceptor::from(config)
                .accept(stream)
                .await?;
            let certificates = crate::PeerCertificates::of(tls.get_ref().1);
            Ok((HyperIo::new(tls), certificates))
        }
    }
}
