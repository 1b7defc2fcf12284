//! The hyper server on tokio: connect-hyper's [`Server`](connect_hyper::Server) with tokio's listener,
//! tasks, timer and IO.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use connect_hyper::{BatchedWrites, ServerRuntime};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::runtime::TokioRuntime;

/// Serves a [`Router`](crate::Router) on a tokio [`TcpListener`]: HTTP/1.1 and HTTP/2 with prior
/// knowledge (h2c) on the same port, or HTTP/2 and HTTP/1.1 over TLS (chosen by ALPN) with the `tls`
/// feature; limits and graceful shutdown. Each request gets a [`PeerAddr`](crate::PeerAddr) (and,
/// over TLS, the client's certificates) in its extensions.
pub type Server = connect_hyper::Server<TokioRuntime>;

impl ServerRuntime for TokioRuntime {
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Executor = TokioExecutor;
    type Timer = TokioTimer;
    type Io = BatchedWrites<TokioIo<TcpStream>>;
    #[cfg(feature = "tls")]
    type TlsIo = TokioIo<tokio_rustls::server::TlsStream<TcpStream>>;

    async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn readable(stream: &TcpStream) {
        // An error is for the connection's first read to find.
        let _ = stream.readable().await;
    }

    fn accept(
        listener: &TcpListener,
    ) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        listener.accept()
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(future);
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep(duration)
    }

    fn executor() -> TokioExecutor {
        TokioExecutor::new()
    }

    fn timer() -> TokioTimer {
        TokioTimer::new()
    }

    fn io(stream: TcpStream) -> BatchedWrites<TokioIo<TcpStream>> {
        let _ = stream.set_nodelay(true);
        BatchedWrites::new(TokioIo::new(stream))
    }

    #[cfg(feature = "tls")]
    fn tls_accept(
        config: std::sync::Arc<rustls::ServerConfig>,
        stream: TcpStream,
    ) -> impl Future<Output = io::Result<(Self::TlsIo, Option<crate::PeerCertificates>)>> + Send
    {
        let _ = stream.set_nodelay(true);
        async move {
            let tls = tokio_rustls::TlsAcceptor::from(config)
                .accept(stream)
                .await?;
            let certificates = crate::PeerCertificates::of(tls.get_ref().1);
            Ok((TokioIo::new(tls), certificates))
        }
    }
}
