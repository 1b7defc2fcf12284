//! How long an HTTP/2 connection's incoming request head has been incomplete.
//!
//! hyper times an HTTP/1.1 request head from its first byte (`header_read_timeout`), but on HTTP/2
//! nothing times a HEADERS frame: a client that has made one request can then send the next
//! request's HEADERS a byte a second and hold the connection (and its stream slot) until the idle
//! timeout. [`HeaderWatch`] wraps a server connection's IO and follows the HTTP/2 framing of what the
//! HTTP stack reads, and the connection's watcher closes the connection once a header block (or a
//! frame header, or a control frame) has been incomplete for longer than
//! [`Limits::header_read_timeout`](crate::Limits::header_read_timeout). DATA payloads are not timed:
//! they are flow-controlled, and a slow upload is legitimate.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use hyper::rt::{Read, ReadBufCursor, Write};

use crate::buffers::ChunkedRead;

use crate::watch::ConnectionStats;

/// The client connection preface (RFC 9113, 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Where the incoming bytes are in HTTP/2's framing. Pure: fed the bytes the HTTP stack reads, it
/// says whether something timed is incomplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Framing {
    phase: Phase,
    /// The frame header read so far.
    header: [u8; 9],
    header_len: usize,
    /// Payload bytes of the current frame not read yet.
    payload_left: usize,
    /// Whether the current frame's payload is timed (anything but DATA).
    timed_payload: bool,
    /// A header block is open: a HEADERS (or PUSH_PROMISE) frame without END_HEADERS, until the
    /// CONTINUATION frame that has it is complete.
    in_header_block: bool,
    /// The current frame ends its header block.
    ends_header_block: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// This many bytes of the preface were seen.
    Preface(usize),
    Frames,
    /// Not HTTP/2 (HTTP/1.1 has hyper's own timeout): nothing to follow.
    Other,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            phase: Phase::Preface(0),
            header: [0; 9],
            header_len: 0,
            payload_left: 0,
            timed_payload: false,
            in_header_block: false,
            ends_header_block: false,
        }
    }
}

impl Framing {
    /// Follows `bytes`, the next ones the HTTP stack read.
    pub(crate) fn read(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.phase {
                Phase::Other => return,
                Phase::Preface(seen) => {
                    let n = bytes.len().min(PREFACE.len() - seen);
                    if bytes[..n] != PREFACE[seen..seen + n] {
                        self.phase = Phase::Other;
                        return;
                    }
                    self.phase = if seen + n == PREFACE.len() {
                        Phase::Frames
                    } else {
                        Phase::Preface(seen + n)
                    };
                    bytes = &bytes[n..];
                }
                Phase::Frames if self.payload_left > 0 => {
                    let n = bytes.len().min(self.payload_left);
                    self.payload_left -= n;
                    bytes = &bytes[n..];
                    if self.payload_left == 0 {
                        self.frame_done();
                    }
                }
                Phase::Frames => {
                    let n = bytes.len().min(9 - self.header_len);
                    self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                    self.header_len += n;
                    bytes = &bytes[n..];
                    if self.header_len == 9 {
                        self.header_len = 0;
                        self.frame_started();
                    }
                }
            }
        }
    }

    fn frame_started(&mut self) {
        let [l0, l1, l2, kind, flags, ..] = self.header;
        self.payload_left = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        self.timed_payload = kind != DATA;
        self.ends_header_block = false;
        match kind {
            HEADERS | PUSH_PROMISE | CONTINUATION => {
                self.in_header_block = true;
                self.ends_header_block = flags & END_HEADERS != 0;
            }
            _ => {}
        }
        if self.payload_left == 0 {
            self.frame_done();
        }
    }

    fn frame_done(&mut self) {
        if self.ends_header_block {
            self.in_header_block = false;
            self.ends_header_block = false;
        }
    }

    /// Whether something timed is incomplete: a frame header, a header block, or the payload of a
    /// frame other than DATA. (An incomplete preface is the first request's timeout's concern.)
    pub(crate) fn incomplete(&self) -> bool {
        self.phase == Phase::Frames
            && (self.header_len > 0
                || self.in_header_block
                || (self.payload_left > 0 && self.timed_payload))
    }

    /// Whether the bytes are not HTTP/2, so need not be looked at any more.
    fn is_other(&self) -> bool {
        self.phase == Phase::Other
    }
}

/// A server connection's IO that tells its [`ConnectionStats`] since when the HTTP/2 framing of what
/// was read has been incomplete (see the module's documentation). Writes pass straight through.
///
/// While it watches, reads go through a buffer of its own (64 KiB, lent from the shared pool only
/// while it holds bytes, as [`BatchedWrites`](crate::BatchedWrites) lends its own): the bytes are
/// looked at once as they arrive and handed to the HTTP stack as it asks for them (hyper's read
/// cursor tells no one how much a read filled). Reading whole chunks here also means that the
/// `BatchedWrites` underneath reads straight from the socket into this buffer, so watching costs no
/// copy of its own. A connection that is not HTTP/2 is not watched: once its first bytes are
/// handed on, its reads pass straight through, as do those of a connection nothing watches.
#[derive(Debug)]
pub(crate) struct HeaderWatch<T> {
    io: T,
    framing: Framing,
    /// `None`: nothing watches the connection, and its reads pass straight through.
    stats: Option<Arc<ConnectionStats>>,
    /// While it watches: the last chunk read from `io`, handed on as the HTTP stack asks.
    read: ChunkedRead,
}

impl<T> HeaderWatch<T> {
    pub(crate) fn new(io: T, stats: Option<Arc<ConnectionStats>>) -> Self {
        let mut framing = Framing::default();
        if stats.is_none() {
            framing.phase = Phase::Other;
        }
        HeaderWatch {
            io,
            framing,
            stats,
            read: ChunkedRead::default(),
        }
    }
}

impl<T: Read + Unpin> Read for HeaderWatch<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.read.is_empty() {
            let Some(stats) = this.stats.as_ref().filter(|_| !this.framing.is_other()) else {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            };
            let bytes = ready!(this.read.poll_fill(&mut this.io, cx))?;
            let was_incomplete = this.framing.incomplete();
            this.framing.read(bytes);
            match (was_incomplete, this.framing.incomplete()) {
                (false, true) => stats.set_incomplete_since(Some(Instant::now())),
                (true, false) => stats.set_incomplete_since(None),
                _ => {}
            }
        }
        this.read.hand_on(&mut buf);
        if this.read.is_empty() && this.framing.is_other() {
            // Not HTTP/2: its first bytes are handed on, the rest pass straight through.
            this.read.release();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: Write + Unpin> Write for HeaderWatch<T> {
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
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::ReadBuf;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        frame.extend_from_slice(&1u32.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    fn http2(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        frames.iter().for_each(|f| bytes.extend_from_slice(f));
        bytes
    }

    /// Whether the framing is incomplete after each byte of `bytes`, fed one at a time.
    fn incomplete_after_each_byte(bytes: &[u8]) -> Vec<bool> {
        let mut framing = Framing::default();
        bytes
            .iter()
            .map(|b| {
                framing.read(std::slice::from_ref(b));
                framing.incomplete()
            })
            .collect()
    }

    #[test]
    fn a_header_block_is_incomplete_until_its_end_headers() {
        let settings = frame(0x4, 0, &[]);
        let headers = frame(HEADERS, 0, b"abc");
        let continuation = frame(CONTINUATION, END_HEADERS, b"de");
        let bytes = http2(&[settings.clone(), headers.clone(), continuation.clone()]);
        let states = incomplete_after_each_byte(&bytes);
        let preface_end = PREFACE.len();
        assert!(!states[..preface_end].iter().any(|&s| s), "the preface");
        // SETTINGS: incomplete while its header arrives, complete at its end.
        let settings_end = preface_end + settings.len();
        assert!(states[preface_end..settings_end - 1].iter().all(|&s| s));
        assert!(!states[settings_end - 1]);
        // From the HEADERS frame's first byte to the CONTINUATION's last, incomplete throughout.
        let end = settings_end + headers.len() + continuation.len();
        assert!(states[settings_end..end - 1].iter().all(|&s| s));
        assert!(!states[end - 1], "complete with END_HEADERS");
    }

    #[test]
    fn data_payloads_are_not_timed_but_their_frame_headers_are() {
        let data = frame(DATA, 0, &[7; 20]);
        let bytes = http2(std::slice::from_ref(&data));
        let states = incomplete_after_each_byte(&bytes);
        let start = PREFACE.len();
        assert!(
            states[start..start + 8].iter().all(|&s| s),
            "the frame header"
        );
        assert!(!states[start + 8..].iter().any(|&s| s), "the payload");
    }

    /// An IO that hands out `chunks`, at most one per read (as much of it as the read takes), then
    /// the end of the stream.
    struct Chunks(std::collections::VecDeque<Vec<u8>>);

    impl Read for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            mut buf: ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(mut chunk) = self.0.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Reads `watch` to its end through cursors of `size` bytes.
    fn read_all<T: Read + Unpin>(watch: &mut HeaderWatch<T>, size: usize) -> Vec<u8> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            let mut space = vec![0u8; size];
            let mut buf = ReadBuf::new(&mut space);
            match Pin::new(&mut *watch).poll_read(&mut cx, buf.unfilled()) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return out,
                Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn watched_reads_hand_on_every_byte_and_follow_the_framing() {
        let bytes = http2(&[frame(0x4, 0, &[]), frame(HEADERS, 0, b"abc")]);
        let stats = Arc::new(ConnectionStats::new(None));
        let (first, second) = bytes.split_at(30);
        let chunks = Chunks([first.to_vec(), second.to_vec()].into());
        let mut watch = HeaderWatch::new(chunks, Some(stats.clone()));
        // Cursors smaller than what each read brought: the rest is handed on later, in order.
        assert_eq!(read_all(&mut watch, 7), bytes);
        assert!(
            stats.incomplete_since().is_some(),
            "a header block without END_HEADERS is incomplete"
        );

        // HTTP/1.1: the first read's bytes are handed on, then reads pass straight through and the
        // buffer goes back.
        let request = b"POST / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
        let chunks = Chunks([request[..10].to_vec(), request[10..].to_vec()].into());
        let mut watch = HeaderWatch::new(chunks, Some(Arc::new(ConnectionStats::new(None))));
        assert_eq!(read_all(&mut watch, 4), request);
        assert!(
            !watch.read.holds_buffer(),
            "an HTTP/1.1 connection keeps no read buffer"
        );
    }

    #[test]
    fn http1_is_not_followed() {
        let mut framing = Framing::default();
        framing.read(b"POST / HTTP/1.1\r\n");
        assert!(!framing.incomplete());
        assert!(framing.is_other());
        framing.read(&[0, 0, 1]);
        assert!(!framing.incomplete());
    }

    #[test]
    fn any_chunking_gives_the_same_state() {
        let bytes = http2(&[
            frame(0x4, 0, &[0, 3, 0, 0, 0, 100]),
            frame(HEADERS, 0, &[1; 30]),
            frame(CONTINUATION, END_HEADERS, &[2; 5]),
            frame(DATA, 1, &[3; 40]),
            frame(HEADERS, END_HEADERS, &[4; 7]),
        ]);
        let whole = {
            let mut framing = Framing::default();
            framing.read(&bytes);
            framing
        };
        for chunk in 1..bytes.len() {
            let mut framing = Framing::default();
            bytes.chunks(chunk).for_each(|c| framing.read(c));
            assert_eq!(framing, whole, "chunks of {chunk}");
        }
        assert!(!whole.incomplete());
    }
}
