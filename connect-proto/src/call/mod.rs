//! Per-call state machines: [`ServerCall`] and [`ClientCall`], and what both sides share.

mod client;
mod server;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName};

pub use client::{CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit};
pub use server::{MessageWriter, ServerCall, ServerConfig, ServerEvent, ServerTransmit};

use crate::compression::{Compressor, DecompressError};
use crate::envelope::{self, flags};
use crate::status::{Code, Status};

/// The largest body or envelope accepted off the wire for a message limit of `max`. Limits apply to
/// the uncompressed message, and a compressor may expand incompressible data slightly, so a compressed
/// message just under the limit must still fit; raw messages are checked against `max` exactly.
fn wire_limit(max: usize) -> usize {
    max.saturating_add(max / 128 + 64)
}

/// `resource_exhausted` for a raw message over the limit.
fn check_raw_size(len: usize, max: usize, what: &str) -> Result<(), Status> {
    if len > max {
        return Err(Status::resource_exhausted(format!(
            "{what} message of {len} bytes exceeds the limit of {max}"
        )));
    }
    Ok(())
}

/// Compresses `payload` when an algorithm is in use and the payload is at least `min` bytes.
/// Returns the bytes to send and whether they are compressed.
///
/// With `min` 0 every message is compressed, an empty one too: a peer told to expect an encoding
/// may check that the request carries it (the conformance reference server does, and a Connect
/// unary request only names its encoding when its body is compressed).
fn compress(
    algorithm: Option<&Arc<dyn Compressor>>,
    min: usize,
    payload: Bytes,
) -> Result<(Bytes, bool), Status> {
    match algorithm {
        Some(c) if payload.len() >= min => c.compress(&payload).map(|b| (b, true)).map_err(|e| {
            Status::internal(format!("failed to compress message with {}: {e}", c.name()))
        }),
        _ => Ok((payload, false)),
    }
}

/// Decompresses a received message, bounded by `limit` (PROTOCOL-TRAPS 11: a zero-length body is never
/// handed to the decompressor).
///
/// Input that is not in the announced encoding is the sender's fault (PROTOCOL-TRAPS 29): a server
/// answers it with `invalid_argument` (`corrupt` is that code); a client reports a server's bad
/// response as `internal`. Sizes past our limits are `resource_exhausted` on both sides.
fn decompress(
    algorithm: &Arc<dyn Compressor>,
    data: &[u8],
    limit: usize,
    corrupt: Code,
) -> Result<Bytes, Status> {
    if data.is_empty() {
        return Ok(Bytes::new());
    }
    algorithm.decompress(data, limit).map_err(|e| match e {
        DecompressError::TooLarge { limit } => Status::resource_exhausted(format!(
            "message larger than {limit} bytes after decompression"
        )),
        DecompressError::TooMuchMemory(why) => Status::resource_exhausted(format!(
            "message compressed with {} needs too much memory to decompress: {why}",
            algorithm.name()
        )),
        DecompressError::Corrupt(e) => Status::new(
            corrupt,
            format!("message is not valid {} data: {e}", algorithm.name()),
        ),
    })
}

/// The first allocation of a streaming [`Outbox`]'s gathering buffer; later ones are at least as
/// large.
const OUTBOX_STREAM_CAPACITY: usize = 4 * 1024;

/// The least room an [`Outbox`] makes before a message is written in place: most messages then fit
/// without the buffer growing while they are written.
const IN_PLACE_MIN_SPARE: usize = 1024;

/// A call's queued transmits, with small envelopes gathered into one growing buffer: consecutive small
/// messages leave as one body chunk, framed by a single copy into that buffer, with no allocation per
/// message (STYLE 4). Large payloads (over [`envelope::COPY_THRESHOLD`]) are not copied: the buffer is
/// flushed and they follow behind their own prefix. Every other transmit flushes the buffer first, so
/// order is kept: queued transmits always precede the gathered bytes.
#[derive(Debug)]
struct Outbox<T> {
    queue: std::collections::VecDeque<T>,
    pending: BytesMut,
    data: fn(Bytes) -> T,
    gather: bool,
}

impl<T> Outbox<T> {
    /// An outbox whose `Data` transmits are made by `data`. Only `streaming` outboxes gather (their
    /// buffer starts at [`OUTBOX_STREAM_CAPACITY`]): where one message is sent, each envelope is
    /// framed into a buffer of its own size, as gathering would only add a reallocation.
    fn new(data: fn(Bytes) -> T, streaming: bool) -> Self {
        Outbox {
            queue: std::collections::VecDeque::new(),
            pending: BytesMut::new(),
            data,
            gather: streaming,
        }
    }

    /// Queues a transmit behind everything gathered so far.
    fn push(&mut self, transmit: T) {
        self.flush();
        self.queue.push_back(transmit);
    }

    /// Frames one payload as an envelope.
    ///
    /// # Panics
    ///
    /// As [`envelope::encode`], for payloads over `u32::MAX` bytes (callers check their send limit).
    fn push_envelope(&mut self, flag: u8, payload: Bytes) {
        if payload.len() > envelope::COPY_THRESHOLD || !self.gather {
            self.flush();
            push_envelope(&mut self.queue, self.data, flag, payload);
            return;
        }
        let needed = envelope::PREFIX_LEN + payload.len();
        if self.pending.capacity() - self.pending.len() < needed {
            if self.pending.capacity() == 0 {
                self.pending = BytesMut::with_capacity(needed.max(OUTBOX_STREAM_CAPACITY));
            } else {
                self.pending.reserve(needed);
            }
        }
        // The length fits: the payload is at most COPY_THRESHOLD bytes.
        self.pending
            .extend_from_slice(&envelope::encode_prefix(flag, payload.len() as u32));
        self.pending.extend_from_slice(&payload);
    }

    /// Opens a message to be written in place at the end of the gathering buffer: for an enveloped
    /// message, a placeholder prefix is written first. Returns where the message starts. A gathering
    /// outbox makes room for a few messages; one that sends a single message lets the message's
    /// serializer size the buffer (the proto form reserves its exact size).
    fn begin_in_place(&mut self, enveloped: bool) -> usize {
        if self.gather && self.pending.capacity() - self.pending.len() < IN_PLACE_MIN_SPARE {
            if self.pending.capacity() == 0 {
                self.pending = BytesMut::with_capacity(OUTBOX_STREAM_CAPACITY);
            } else {
                self.pending.reserve(OUTBOX_STREAM_CAPACITY);
            }
        }
        let start = self.pending.len();
        if enveloped {
            self.pending.extend_from_slice(&[0; envelope::PREFIX_LEN]);
        }
        start
    }

    /// The buffer an in-place message is written to (after what it already holds).
    fn in_place_buffer(&mut self) -> &mut BytesMut {
        &mut self.pending
    }

    /// Drops the in-place message that starts at `start`.
    fn discard_in_place(&mut self, start: usize) {
        self.pending.truncate(start);
    }

    /// Takes the in-place message that starts at `start` out of the buffer, without the `prefix`
    /// bytes written before it.
    fn take_in_place(&mut self, start: usize, prefix: usize) -> BytesMut {
        let mut payload = if start == 0 {
            // The whole buffer: no split, which would make its allocation a shared one.
            std::mem::take(&mut self.pending)
        } else {
            self.pending.split_off(start)
        };
        bytes::Buf::advance(&mut payload, prefix);
        payload
    }

    /// Puts a message taken out with [`Outbox::take_in_place`] back at the end of the buffer; returns
    /// where it now starts.
    fn put_back_in_place(&mut self, message: BytesMut) -> usize {
        let start = self.pending.len();
        self.pending.unsplit(message);
        start
    }

    /// Completes the enveloped in-place message that starts at `start` with its prefix.
    fn commit_in_place(&mut self, start: usize, flag: u8) {
        let len = self.pending.len() - start - envelope::PREFIX_LEN;
        // Callers check their send limit, which is below u32::MAX.
        let prefix = envelope::encode_prefix(flag, len as u32);
        self.pending[start..start + envelope::PREFIX_LEN].copy_from_slice(&prefix);
        if !self.gather {
            // Nothing else goes in this buffer: the chunk takes all of it.
            let chunk = std::mem::take(&mut self.pending).freeze();
            self.queue.push_back((self.data)(chunk));
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let chunk = self.pending.split().freeze();
            self.queue.push_back((self.data)(chunk));
        }
    }

    /// The next transmit: the queued ones, then everything gathered as one chunk.
    fn pop(&mut self) -> Option<T> {
        if let Some(transmit) = self.queue.pop_front() {
            return Some(transmit);
        }
        (!self.pending.is_empty()).then(|| (self.data)(self.pending.split().freeze()))
    }

    /// The last queued transmit, when nothing is gathered behind it.
    fn last_mut(&mut self) -> Option<&mut T> {
        if self.pending.is_empty() {
            self.queue.back_mut()
        } else {
            None
        }
    }

    /// Bytes gathered for the next chunk.
    fn gathered_len(&self) -> usize {
        self.pending.len()
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.pending.clear();
    }
}

/// Frames one payload as an envelope and pushes it as one or two body chunks.
fn push_envelope<T>(
    out: &mut std::collections::VecDeque<T>,
    data: impl Fn(Bytes) -> T,
    flag: u8,
    payload: Bytes,
) {
    let (head, tail) = envelope::encode(flag, payload);
    out.push_back(data(head));
    if let Some(tail) = tail {
        out.push_back(data(tail));
    }
}

/// The flag for a message payload.
fn message_flag(compressed: bool) -> u8 {
    if compressed {
        flags::COMPRESSED
    } else {
        0
    }
}

/// Collects a non-enveloped body (Connect unary) under a size limit.
#[derive(Debug, Default)]
struct BodyCollector {
    chunks: Vec<Bytes>,
    len: usize,
}

impl BodyCollector {
    /// Adds a chunk; `false` once the body exceeds `limit`.
    fn push(&mut self, chunk: Bytes, limit: usize) -> bool {
        self.len = self.len.saturating_add(chunk.len());
        if self.len > limit {
            self.chunks.clear();
            return false;
        }
        if !chunk.is_empty() {
            self.chunks.push(chunk);
        }
        true
    }

    /// The whole body, without copying when it arrived in one chunk.
    fn take(&mut self) -> Bytes {
        self.len = 0;
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut buf = BytesMut::with_capacity(self.chunks.iter().map(Bytes::len).sum());
                for c in self.chunks.drain(..) {
                    buf.extend_from_slice(&c);
                }
                buf.freeze()
            }
        }
    }
}

/// Reads a header as a string, `None` when absent or not visible ASCII.
fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum T {
        Data(Bytes),
        End,
    }

    #[test]
    fn outbox_gathers_small_envelopes_and_keeps_order() {
        let mut out = Outbox::new(T::Data, true);
        out.push_envelope(0, Bytes::from_static(b"ab"));
        out.push_envelope(1, Bytes::from_static(b"c"));
        assert_eq!(out.gathered_len(), 13);
        assert!(out.last_mut().is_none());
        // A large payload flushes what was gathered and follows uncopied behind its prefix.
        let large = Bytes::from(vec![7u8; envelope::COPY_THRESHOLD + 1]);
        out.push_envelope(0, large.clone());
        out.push_envelope(0, Bytes::from_static(b"d"));
        out.push(T::End);
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(
                b"\0\0\0\0\x02ab\x01\0\0\0\x01c"
            )))
        );
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::copy_from_slice(&envelope::encode_prefix(
                0,
                large.len() as u32
            ))))
        );
        match out.pop() {
            Some(T::Data(d)) => {
                assert_eq!(d.as_ptr(), large.as_ptr(), "the large payload was copied")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(b"\0\0\0\0\x01d")))
        );
        assert_eq!(out.pop(), Some(T::End));
        assert_eq!(out.pop(), None);
        assert_eq!(out.gathered_len(), 0);
        // Gathered bytes come out when nothing is queued before them; clear drops everything.
        out.push_envelope(2, Bytes::new());
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(b"\x02\0\0\0\0")))
        );
        out.push_envelope(0, Bytes::from_static(b"x"));
        out.push(T::End);
        out.clear();
        assert_eq!(out.pop(), None);
        // Without gathering, every envelope is a chunk of its own.
        let mut out = Outbox::new(T::Data, false);
        out.push_envelope(0, Bytes::from_static(b"a"));
        out.push_envelope(0, Bytes::from_static(b"b"));
        assert_eq!(out.gathered_len(), 0);
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(b"\0\0\0\0\x01a")))
        );
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(b"\0\0\0\0\x01b")))
        );
    }
}
