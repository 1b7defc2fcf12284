//! A TCP stream on async-io that remembers when its socket had nothing to read, and the adapter that
//! gives hyper a futures-io stream.

use std::io::{self, IoSlice, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use smol::io::{AsyncRead, AsyncWrite};
use smol::Async;

/// The server's and the client's TCP stream (wrapped in a [`HyperIo`] for hyper).
///
/// async-io's stream tries the `recv` first and asks the reactor only when it fails, so every time
/// an HTTP/2 connection task wakes for something else (a handler's response is ready, say) it makes a
/// `recv` that fails with `EAGAIN`: on a busy h2c server, 97 % of its `recv` calls (strace, echo at 256
/// concurrent calls). This stream goes to the socket again only once the reactor has reported it
/// readable since the last `EAGAIN` or short read, as tokio's readiness tracking does.
///
/// Only the one task that drives the connection reads from it (async-io's readiness is per task).
#[derive(Debug)]
pub struct TcpIo {
    inner: Arc<Async<std::net::TcpStream>>,
    /// The last read failed with `WouldBlock` and no readiness event has been seen since.
    read_blocked: bool,
}

impl TcpIo {
    /// Wraps an accepted or connected smol stream, with Nagle's algorithm off (RPC messages are
    /// small and latency-bound).
    pub fn new(stream: smol::net::TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        TcpIo {
            inner: stream.into(),
            read_blocked: false,
        }
    }
}

impl AsyncRead for TcpIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.read_blocked {
                // Pending (no syscall) until the reactor reports the socket readable.
                ready!(self.inner.poll_readable(cx))?;
                self.read_blocked = false;
            }
            let mut socket: &std::net::TcpStream = self.inner.get_ref();
            match socket.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_blocked = true,
                Ok(n) => {
                    // Less than asked for: the socket's receive queue is empty now, so the next
                    // read waits for the reactor instead of finding that out with an `EAGAIN`
                    // (data that arrives meanwhile is reported when the interest is registered).
                    self.read_blocked = n > 0 && n < buf.len();
                    return Poll::Ready(Ok(n));
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncWrite for TcpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.inner).poll_flush(cx)
    }

    /// Shuts the write side down (async-io's own `poll_close` only flushes), so that the peer reads
    /// the end of the stream.
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

/// The most bytes [`HyperIo`] reads at once.
#[cfg(test)]
const READ_CHUNK: usize = 64 * 1024;

/// hyper's IO traits over a futures-io stream (a [`TcpIo`], or TLS over one), for the server's and
/// the client's connections.
///
/// hyper reads into memory it has not initialised, which a futures-io stream cannot take, so an
/// adapter must hand the stream initialised memory. smol-hyper's `FuturesIo` zero-fills whatever
/// hyper offers before every read (for h2, its whole read buffer: kilobytes per read). This one
/// reads into a buffer of its own, filled with zeros once, up to 64 KiB at a time, and copies what
/// hyper asks for from it: fewer and larger reads than h2's own buffer sizes would make, and no
/// filling. The buffer is lent (`connect_hyper::take_read_buffer`) only while bytes arrive: a read
/// that finds the stream dry gives it back, so an idle connection, or one that never sent a byte,
/// holds none (before, each held its 64 KiB from its first read on).
#[derive(Debug)]
pub struct HyperIo<T> {
    io: T,
    read: Box<[u8]>,
    /// The part of `read` not yet handed to hyper.
    start: usize,
    end: usize,
}

impl<T> HyperIo<T> {
    /// Wraps a stream.
    pub fn new(io: T) -> Self {
        HyperIo {
            io,
            read: Box::default(),
            start: 0,
            end: 0,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start == this.end {
            if this.read.is_empty() {
                this.read = connect_hyper::take_read_buffer();
            }
            match Pin::new(&mut this.io).poll_read(cx, &mut this.read) {
                Poll::Ready(read) => this.end = read?,
                Poll::Pending => {
                    // Nothing to read: an idle connection holds no buffer.
                    connect_hyper::give_read_buffer(std::mem::take(&mut this.read));
                    return Poll::Pending;
                }
            }
            this.start = 0;
        }
        let n = buf.remaining().min(this.end - this.start);
        buf.put_slice(&this.read[this.start..this.start + n]);
        this.start += n;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected loopback pair: the client's stream and the server's, as a `TcpIo`.
    async fn tcp_pair() -> (smol::net::TcpStream, TcpIo) {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            smol::future::zip(smol::net::TcpStream::connect(addr), listener.accept()).await;
        (client.unwrap(), TcpIo::new(accepted.unwrap().0))
    }

    #[test]
    fn reads_what_arrives_after_the_socket_ran_dry_or_a_read_came_short() {
        smol::block_on(async {
            let (mut client, mut server) = tcp_pair().await;

            // Nothing to read yet: the read stays pending (and marks the socket dry).
            let mut buf = [0u8; 16];
            let pending = smol::future::poll_once(server.read(&mut buf)).await;
            assert!(pending.is_none());
            assert!(server.read_blocked);

            // Bytes that arrive later are read once the reactor reports them.
            client.write_all(b"hello").await.unwrap();
            let n = server.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"hello");
            // A short read emptied the socket: the next read waits for the reactor, no `recv` first,
            // and still gets what arrives after it.
            assert!(server.read_blocked);
            let pending = smol::future::poll_once(server.read(&mut buf)).await;
            assert!(pending.is_none());
            client.write_all(b"0123456789abcdefXY").await.unwrap();
            // A read that fills the buffer may have left more behind: the next one tries the socket.
            server.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"0123456789abcdef");
            assert!(!server.read_blocked);
            let n = server.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"XY");

            // Writes go straight through, and the end of the stream reads as 0.
            server.write_all(b"back").await.unwrap();
            server.close().await.unwrap();
            let mut echoed = Vec::new();
            client.read_to_end(&mut echoed).await.unwrap();
            assert_eq!(echoed, b"back");
            client.close().await.unwrap();
            drop(client);
            assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        });
    }

    #[test]
    fn hyper_reads_come_from_large_reads_in_order() {
        smol::block_on(async {
            let (mut client, server) = tcp_pair().await;
            let mut server = HyperIo::new(server);
            let data: Vec<u8> = (0..200_000).map(|i| (i * 7 % 251) as u8).collect();
            let writer = smol::spawn({
                let data = data.clone();
                async move {
                    client.write_all(&data).await.unwrap();
                    client.close().await.unwrap();
                    client
                }
            });
            let mut got = Vec::new();
            loop {
                let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 1000];
                let mut buf = hyper::rt::ReadBuf::uninit(&mut space);
                std::future::poll_fn(|cx| {
                    hyper::rt::Read::poll_read(Pin::new(&mut server), cx, buf.unfilled())
                })
                .await
                .unwrap();
                if buf.filled().is_empty() {
                    break;
                }
                assert!(server.end <= READ_CHUNK);
                got.extend_from_slice(buf.filled());
            }
            assert_eq!(
                got, data,
                "every byte, in order, then the end of the stream"
            );
            // Writes go straight through.
            let mut client = writer.await;
            std::future::poll_fn(|cx| {
                hyper::rt::Write::poll_write(Pin::new(&mut server), cx, b"ok")
            })
            .await
            .unwrap();
            std::future::poll_fn(|cx| hyper::rt::Write::poll_shutdown(Pin::new(&mut server), cx))
                .await
                .unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"ok");
        });
    }
}
