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
        ScalarWrites::new(TokioIo::new(stream))
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

/// A connection's IO as the server's HTTP stack gets it: without vectored writes, and on HTTP/2 with
/// writes held back until the connection has had one more turn.
///
/// - Without vectored writes, h2 copies DATA frames under 1 KiB into its write buffer (with vectored IO,
///   only those under 256 bytes), so the frames of many streams can leave in one write.
/// - On tokio's scheduler, a handler task that finishes a response wakes the connection task, which runs
///   next (the worker's LIFO slot) and writes that one response: one `sendto` per call. Once the
///   connection speaks HTTP/2 (its first bytes are the HTTP/2 preface), its writes are copied into a
///   buffer here, and a flush yields once before the bytes go out: the connection task goes to the back
///   of the run queue, the other ready handlers finish meanwhile, and their responses leave together.
///   The buffer is written through once it holds [`HOLD_LIMIT`] bytes, so memory stays bounded.
#[derive(Debug)]
pub struct ScalarWrites<T> {
    io: T,
    /// Whether the first bytes read were the HTTP/2 preface (`None`: nothing read yet).
    http2: Option<bool>,
    held: Vec<u8>,
    /// How much of `held` was written.
    written: usize,
    /// Whether this flush already yielded once.
    yielded: bool,
}

/// The most bytes an HTTP/2 connection's writes are held back.
const HOLD_LIMIT: usize = 64 * 1024;

impl<T> ScalarWrites<T> {
    fn new(io: T) -> Self {
        ScalarWrites {
            io,
            http2: None,
            held: Vec::new(),
            written: 0,
            yielded: false,
        }
    }
}

impl<T: hyper::rt::Write + Unpin> ScalarWrites<T> {
    /// Writes out everything held.
    fn poll_write_held(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        while self.written < self.held.len() {
            let n = std::task::ready!(
                std::pin::Pin::new(&mut self.io).poll_write(cx, &self.held[self.written..])
            )?;
            if n == 0 {
                return std::task::Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.held.clear();
        self.written = 0;
        std::task::Poll::Ready(Ok(()))
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for ScalarWrites<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if self.http2.is_some() {
            return std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        }
        // The first read, through a buffer of our own no larger than the caller's, to see what it
        // brought.
        const PREFACE: &[u8] = b"PRI * HTTP/2.0";
        let mut first = [std::mem::MaybeUninit::<u8>::uninit(); 64];
        let len = buf.remaining().min(first.len());
        let mut read_buf = hyper::rt::ReadBuf::uninit(&mut first[..len]);
        std::task::ready!(std::pin::Pin::new(&mut self.io).poll_read(cx, read_buf.unfilled()))?;
        let filled = read_buf.filled();
        if !filled.is_empty() {
            let common = filled.len().min(PREFACE.len());
            self.http2 = Some(filled[..common] == PREFACE[..common]);
        }
        buf.put_slice(filled);
        std::task::Poll::Ready(Ok(()))
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for ScalarWrites<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        if self.http2 != Some(true) {
            return std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        }
        if self.held.len() + buf.len() > HOLD_LIMIT {
            std::task::ready!(self.poll_write_held(cx))?;
            if buf.len() > HOLD_LIMIT {
                return std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
            }
        }
        self.held.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if self.held.len() > self.written {
            if !self.yielded {
                self.yielded = true;
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            std::task::ready!(self.poll_write_held(cx))?;
        }
        self.yielded = false;
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::ready!(self.poll_write_held(cx))?;
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use hyper::rt::{Read, ReadBuf, Write};
    use tokio::io::{AsyncRead, AsyncWriteExt, DuplexStream};

    use super::*;

    /// A connection whose far end the test holds.
    fn pair() -> (ScalarWrites<TokioIo<DuplexStream>>, DuplexStream) {
        let (near, far) = tokio::io::duplex(1 << 20);
        (ScalarWrites::new(TokioIo::new(near)), far)
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    /// Reads what the far end has received so far, without waiting.
    fn received(far: &mut DuplexStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut chunk);
            match Pin::new(&mut *far).poll_read(&mut cx(), &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    out.extend_from_slice(buf.filled())
                }
                _ => return out,
            }
        }
    }

    /// Sends `first` from the far end and reads it through the connection, as the server's first read.
    async fn first_read(
        near: &mut ScalarWrites<TokioIo<DuplexStream>>,
        far: &mut DuplexStream,
        first: &[u8],
    ) {
        far.write_all(first).await.unwrap();
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 1024];
        let mut buf = ReadBuf::uninit(&mut space);
        let mut read = 0;
        while read < first.len() {
            let before = buf.filled().len();
            std::future::poll_fn(|cx| Pin::new(&mut *near).poll_read(cx, buf.unfilled()))
                .await
                .unwrap();
            read += buf.filled().len() - before;
        }
        assert_eq!(buf.filled(), first);
    }

    fn write(near: &mut ScalarWrites<TokioIo<DuplexStream>>, bytes: &[u8]) -> usize {
        match Pin::new(near).poll_write(&mut cx(), bytes) {
            Poll::Ready(Ok(n)) => n,
            other => panic!("write: {other:?}"),
        }
    }

    #[tokio::test]
    async fn http2_writes_wait_for_a_flush_that_yields_once() {
        let (mut near, mut far) = pair();
        first_read(&mut near, &mut far, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        assert_eq!(write(&mut near, b"frame one "), 10);
        assert_eq!(write(&mut near, b"frame two"), 9);
        assert!(
            received(&mut far).is_empty(),
            "nothing leaves before a flush"
        );
        assert!(
            Pin::new(&mut near).poll_flush(&mut cx()).is_pending(),
            "the first flush yields"
        );
        assert!(received(&mut far).is_empty());
        assert!(matches!(
            Pin::new(&mut near).poll_flush(&mut cx()),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(received(&mut far), b"frame one frame two");
        // Nothing held: a flush does not yield.
        assert!(matches!(
            Pin::new(&mut near).poll_flush(&mut cx()),
            Poll::Ready(Ok(()))
        ));
    }

    #[tokio::test]
    async fn http2_writes_past_the_hold_limit_go_out_without_a_flush() {
        let (mut near, mut far) = pair();
        first_read(&mut near, &mut far, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let chunk = vec![7u8; HOLD_LIMIT / 4 + 1];
        for _ in 0..4 {
            assert_eq!(write(&mut near, &chunk), chunk.len());
        }
        let out = received(&mut far);
        assert_eq!(
            out.len(),
            3 * chunk.len(),
            "the held bytes left when the fourth would pass the limit"
        );
        assert!(near.held.len() <= HOLD_LIMIT);
        // A single write over the limit is passed straight through.
        let big = vec![9u8; HOLD_LIMIT + 1];
        let n = write(&mut near, &big);
        assert!(n > 0 && near.held.is_empty());
        assert_eq!(received(&mut far).len(), chunk.len() + n);
        // Shutting down writes out whatever is held.
        assert_eq!(write(&mut near, b"last"), 4);
        std::future::poll_fn(|cx| Pin::new(&mut near).poll_shutdown(cx))
            .await
            .unwrap();
        assert!(received(&mut far).ends_with(b"last"));
    }

    #[tokio::test]
    async fn http1_writes_pass_straight_through() {
        let (mut near, mut far) = pair();
        first_read(&mut near, &mut far, b"POST /a.B/C HTTP/1.1\r\n").await;
        assert_eq!(write(&mut near, b"HTTP/1.1 200 OK\r\n"), 17);
        assert_eq!(received(&mut far), b"HTTP/1.1 200 OK\r\n");
        assert!(matches!(
            Pin::new(&mut near).poll_flush(&mut cx()),
            Poll::Ready(Ok(()))
        ));
    }
}
