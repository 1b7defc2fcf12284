//! A server connection's IO as the HTTP stack gets it.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};

/// The most bytes an HTTP/2 connection's writes are held back.
pub const HOLD_LIMIT: usize = crate::buffers::BUFFER_SIZE;

/// The most bytes an HTTP/2 connection reads at once (see [`BatchedWrites`]).
const READ_CHUNK: usize = crate::buffers::BUFFER_SIZE;

/// The first bytes of an HTTP/2 connection with prior knowledge.
const PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Wraps a server connection's IO so that many small responses leave in few writes.
///
/// - It offers no vectored writes. h2 then copies DATA frames under 1 KiB into its write buffer (with
///   vectored IO, only those under 256 bytes), so the frames of many streams can leave in one write
///   instead of one `writev` per chained frame.
/// - On HTTP/2 (the first bytes read are the HTTP/2 preface), writes are copied into a buffer and a
///   flush yields once before the bytes go out. A scheduler that runs a woken task next (tokio's LIFO
///   slot) otherwise has the connection task write each response as soon as its handler finishes it:
///   one system call per call. Yielding puts the connection task behind the other ready handlers, and
///   their responses leave together. The buffer is written through once it would pass [`HOLD_LIMIT`].
///
/// - On HTTP/2, reads take up to 64 KiB from the socket at once and hand h2 what it asks for from
///   that. h2 reads no more than the frame it is decoding has room for, so a busy connection made a
///   `recv` per 10 KB or so (1.5 per 15 KB request); fewer, larger reads cost one copy more and take
///   3–5 % off the server's CPU per call on 15 KB requests (`benches/`).
///
/// Both buffers are lent only while they hold bytes: the read buffer from a read until a read finds
/// the socket dry, the write buffer from a write until everything held went out. An idle connection
/// holds neither (each used to keep 64 KiB from its first read on: up to 128 MB for 2,000 idle
/// connections), and a few returned buffers are kept for the next connection that needs one.
///
/// HTTP/1.1 connections (and anything else) pass straight through. Over TLS the first bytes are a
/// handshake, so TLS streams are not worth wrapping.
///
/// connect-tokio's server wraps its TCP connections in this (measured in `benches/`: about 30 % less
/// server CPU per unary call under load). connect-smol's uses [`BatchedWrites::without_yield`]: smol's
/// executor does not run a woken task first, so yielding gained nothing there, but copying the frames
/// h2 writes between two flushes into one write takes 10–25 % off long server streams. Its reads are
/// not gathered here: connect-smol's `HyperIo` underneath already reads in chunks.
#[derive(Debug)]
pub struct BatchedWrites<T> {
    io: T,
    /// Whether the first bytes read were the HTTP/2 preface (`None`: nothing read yet).
    http2: Option<bool>,
    held: Vec<u8>,
    /// How much of `held` was written.
    written: usize,
    /// Whether a flush yields once before writing (see [`BatchedWrites::without_yield`]).
    yield_on_flush: bool,
    /// Whether the current flush already yielded once.
    yielded: bool,
    /// Whether HTTP/2 reads take [`READ_CHUNK`] bytes at once (see [`BatchedWrites::without_yield`]).
    chunked_reads: bool,
    /// HTTP/2 reads: the last chunk read from `io`, handed on as h2 asks.
    read: crate::buffers::ChunkedRead,
}

impl<T> BatchedWrites<T> {
    /// Wraps a freshly accepted connection, before anything was read from it.
    pub fn new(io: T) -> Self {
        BatchedWrites {
            io,
            http2: None,
            held: Vec::new(),
            written: 0,
            yield_on_flush: true,
            yielded: false,
            chunked_reads: true,
            read: crate::buffers::ChunkedRead::default(),
        }
    }

    /// Like [`new`](Self::new), but a flush writes what is held at once, without yielding first:
    /// for executors that do not run a woken task ahead of the others (smol's). Writes are still
    /// copied together, so the frames h2 writes between two flushes leave in one system call. Reads
    /// pass straight through.
    pub fn without_yield(io: T) -> Self {
        BatchedWrites {
            yield_on_flush: false,
            chunked_reads: false,
            ..Self::new(io)
        }
    }
}

impl<T: Write + Unpin> BatchedWrites<T> {
    /// Writes out everything held.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.held.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        // Nothing is held any more: the buffer goes back until the next write.
        crate::buffers::give_write_buffer(std::mem::take(&mut self.held));
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: Read + Unpin> BatchedWrites<T> {
    /// An HTTP/2 read: from what the last read of `io` brought, or a new read of up to
    /// [`READ_CHUNK`] bytes.
    fn poll_read_http2(
        &mut self,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            if buf.remaining() >= READ_CHUNK {
                return Pin::new(&mut self.io).poll_read(cx, buf);
            }
            ready!(self.read.poll_fill(&mut self.io, cx))?;
        }
        self.read.hand_on(&mut buf);
        Poll::Ready(Ok(()))
    }
}

impl<T: Read + Unpin> Read for BatchedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.http2 {
            Some(true) if self.chunked_reads => return self.poll_read_http2(cx, buf),
            Some(_) => return Pin::new(&mut self.io).poll_read(cx, buf),
            None => {}
        }
        // The first read goes through a small buffer of ours (no larger than the caller's) to see
        // what it brought.
        let mut first = [MaybeUninit::<u8>::uninit(); 64];
        let len = buf.remaining().min(first.len());
        let mut read = ReadBuf::uninit(&mut first[..len]);
        ready!(Pin::new(&mut self.io).poll_read(cx, read.unfilled()))?;
        let filled = read.filled();
        if !filled.is_empty() {
            let common = filled.len().min(PREFACE.len());
            self.http2 = Some(filled[..common] == PREFACE[..common]);
        }
        buf.put_slice(filled);
        Poll::Ready(Ok(()))
    }
}

impl<T: Write + Unpin> Write for BatchedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.http2 != Some(true) {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        }
        if self.held.len() + buf.len() > HOLD_LIMIT {
            ready!(self.poll_write_held(cx))?;
            if buf.len() > HOLD_LIMIT {
                return Pin::new(&mut self.io).poll_write(cx, buf);
            }
        }
        if self.held.capacity() == 0 {
            self.held = crate::buffers::take_write_buffer();
        }
        self.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.held.len() > self.written {
            if self.yield_on_flush && !self.yielded {
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.poll_write_held(cx))?;
        }
        self.yielded = false;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_held(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    /// An in-memory connection: reads come from `incoming`, writes land in `sent`, a write takes at
    /// most `max_write` bytes.
    #[derive(Default)]
    struct Memory {
        incoming: Vec<u8>,
        sent: Vec<u8>,
        writes: usize,
        max_write: Option<usize>,
        reads: usize,
    }

    impl Read for Memory {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            mut buf: ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.incoming.len().min(buf.remaining());
            buf.put_slice(&self.incoming[..n]);
            self.incoming.drain(..n);
            self.reads += 1;
            Poll::Ready(Ok(()))
        }
    }

    impl Write for Memory {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max_write.unwrap_or(usize::MAX));
            self.sent.extend_from_slice(&buf[..n]);
            self.writes += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    /// A connection whose peer has sent `first`, read through the wrapper as the server's first read
    /// (with a 1 KiB buffer, so the wrapper's own 64-byte read takes only the start).
    fn connection(first: &[u8]) -> BatchedWrites<Memory> {
        read_first(
            BatchedWrites::new(Memory {
                incoming: first.to_vec(),
                ..Memory::default()
            }),
            first,
        )
    }

    fn read_first(mut conn: BatchedWrites<Memory>, first: &[u8]) -> BatchedWrites<Memory> {
        let mut space = [MaybeUninit::<u8>::uninit(); 1024];
        let mut buf = ReadBuf::uninit(&mut space);
        let mut reads = 0;
        while buf.filled().len() < first.len() {
            assert!(Pin::new(&mut conn)
                .poll_read(&mut cx(), buf.unfilled())
                .is_ready());
            reads += 1;
            assert!(reads <= first.len(), "reads make progress");
        }
        assert_eq!(buf.filled(), first, "every byte read arrives unchanged");
        conn
    }

    fn write(conn: &mut BatchedWrites<Memory>, bytes: &[u8]) -> usize {
        match Pin::new(conn).poll_write(&mut cx(), bytes) {
            Poll::Ready(Ok(n)) => n,
            other => panic!("write: {other:?}"),
        }
    }

    fn flush(conn: &mut BatchedWrites<Memory>) -> Poll<io::Result<()>> {
        Pin::new(conn).poll_flush(&mut cx())
    }

    const HTTP2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04\0\0\0\0\0\0\x03\0\0\0\x64\0\x04\0\x10\0\0\0\x06\0\0\x40\0";

    #[test]
    fn http2_writes_wait_for_a_flush_that_yields_once() {
        let mut conn = connection(HTTP2);
        assert_eq!(write(&mut conn, b"frame one "), 10);
        assert_eq!(write(&mut conn, b"frame two"), 9);
        assert!(conn.io.sent.is_empty(), "nothing leaves before a flush");
        assert!(flush(&mut conn).is_pending(), "the first flush yields");
        assert!(conn.io.sent.is_empty());
        assert!(matches!(flush(&mut conn), Poll::Ready(Ok(()))));
        assert_eq!(conn.io.sent, b"frame one frame two");
        assert_eq!(conn.io.writes, 1, "both writes left in one");
        assert!(
            matches!(flush(&mut conn), Poll::Ready(Ok(()))),
            "with nothing held a flush does not yield"
        );
    }

    #[test]
    fn without_yield_a_flush_writes_everything_held_at_once() {
        let memory = Memory {
            incoming: HTTP2.to_vec(),
            ..Memory::default()
        };
        let mut conn = read_first(BatchedWrites::without_yield(memory), HTTP2);
        write(&mut conn, b"frame one ");
        write(&mut conn, b"frame two");
        assert!(conn.io.sent.is_empty(), "nothing leaves before a flush");
        assert!(matches!(flush(&mut conn), Poll::Ready(Ok(()))));
        assert_eq!(conn.io.sent, b"frame one frame two");
        assert_eq!(conn.io.writes, 1, "both writes left in one");
    }

    #[test]
    fn http2_held_bytes_survive_partial_writes() {
        let mut conn = connection(HTTP2);
        conn.io.max_write = Some(3);
        assert_eq!(write(&mut conn, b"0123456789"), 10);
        assert!(flush(&mut conn).is_pending());
        assert!(matches!(flush(&mut conn), Poll::Ready(Ok(()))));
        assert_eq!(conn.io.sent, b"0123456789");
    }

    #[test]
    fn http2_writes_past_the_hold_limit_go_out_without_a_flush() {
        let mut conn = connection(HTTP2);
        let chunk = vec![7u8; HOLD_LIMIT / 4 + 1];
        for _ in 0..4 {
            assert_eq!(write(&mut conn, &chunk), chunk.len());
        }
        assert_eq!(
            conn.io.sent.len(),
            3 * chunk.len(),
            "the held bytes left when the fourth chunk would pass the limit"
        );
        assert!(conn.held.len() <= HOLD_LIMIT);
        // A single write over the limit is passed straight through.
        let big = vec![9u8; HOLD_LIMIT + 1];
        assert_eq!(write(&mut conn, &big), big.len());
        assert!(conn.held.is_empty());
        assert_eq!(conn.io.sent.len(), 4 * chunk.len() + big.len());
        // Shutting down writes out whatever is held.
        assert_eq!(write(&mut conn, b"last"), 4);
        assert!(matches!(
            Pin::new(&mut conn).poll_shutdown(&mut cx()),
            Poll::Ready(Ok(()))
        ));
        assert!(conn.io.sent.ends_with(b"last"));
    }

    #[test]
    fn http1_writes_pass_straight_through() {
        let mut conn = connection(b"POST /a.B/C HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(write(&mut conn, b"HTTP/1.1 200 OK\r\n"), 17);
        assert_eq!(conn.io.sent, b"HTTP/1.1 200 OK\r\n");
        assert!(matches!(flush(&mut conn), Poll::Ready(Ok(()))));
    }

    #[test]
    fn a_method_that_starts_like_the_preface_is_http1() {
        let mut conn = connection(b"PROPFIND / HTTP/1.1\r\n\r\n");
        assert_eq!(write(&mut conn, b"x"), 1);
        assert_eq!(conn.io.sent, b"x");
    }

    /// Reads `len` bytes through `conn` in reads of at most `size`; what arrived.
    fn read_all(conn: &mut BatchedWrites<Memory>, len: usize, size: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut space = vec![MaybeUninit::<u8>::uninit(); size];
        while got.len() < len {
            let mut buf = ReadBuf::uninit(&mut space);
            assert!(Pin::new(&mut *conn)
                .poll_read(&mut cx(), buf.unfilled())
                .is_ready());
            assert!(!buf.filled().is_empty(), "reads make progress");
            got.extend_from_slice(buf.filled());
        }
        got
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn http2_reads_take_large_chunks_and_hand_them_on_in_order() {
        let mut conn = connection(HTTP2);
        let data = payload(3 * READ_CHUNK + 1000);
        conn.io.incoming = data.clone();
        conn.io.reads = 0;
        assert_eq!(read_all(&mut conn, data.len(), 10_000), data);
        assert_eq!(conn.io.reads, 4, "three full chunks and the rest");
        // A read as large as a chunk goes straight to the connection once nothing is buffered.
        conn.io.incoming = payload(READ_CHUNK);
        assert_eq!(
            read_all(&mut conn, READ_CHUNK, READ_CHUNK),
            payload(READ_CHUNK)
        );
        assert_eq!(conn.io.reads, 5);
    }

    #[test]
    fn reads_pass_through_for_http1_and_without_yield() {
        let mut http1 = connection(b"GET / HTTP/1.1\r\n");
        http1.io.incoming = payload(5000);
        http1.io.reads = 0;
        assert_eq!(read_all(&mut http1, 5000, 1000), payload(5000));
        assert_eq!(http1.io.reads, 5);

        let memory = Memory {
            incoming: HTTP2.to_vec(),
            ..Memory::default()
        };
        let mut smol = read_first(BatchedWrites::without_yield(memory), HTTP2);
        smol.io.incoming = payload(5000);
        smol.io.reads = 0;
        assert_eq!(read_all(&mut smol, 5000, 1000), payload(5000));
        assert_eq!(smol.io.reads, 5);
    }
}
