//! The hyper server on tokio: connect-hyper's [`Server`](connect_hyper::Server) with tokio's listener,
//! tasks, timer and IO.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use connect_hyper::ServerRuntime;
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
    type Io = ScalarWrites<TokioIo<TcpStream>>;
    #[cfg(feature = "tls")]
    type TlsIo = TokioIo<tokio_rustls::server::TlsStream<TcpStream>>;

    async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
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

    fn io(stream: TcpStream) -> ScalarWrites<TokioIo<TcpStream>> {
        let _ = stream.set_nodelay(true);
        ScalarWrites(TokioIo::new(stream))
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

/// A connection's IO as the server's HTTP/2 writer gets it: without vectored writes. h2 then copies
/// DATA frames under 1 KiB into its write buffer (with vectored IO, only those under 256 bytes) and
/// writes the frames of many streams with one system call, where it would otherwise flush one `writev`
/// per chained frame. Unary calls and streams of a few small messages leave in far fewer writes (the
/// server's CPU per call drops by a fifth in `benches/`); a frame over 1 KiB is written as its header and
/// its payload, which costs long streams of coalesced 16 KiB chunks some of that back.
#[derive(Debug)]
pub struct ScalarWrites<T>(T);

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for ScalarWrites<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for ScalarWrites<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
