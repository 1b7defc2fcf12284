//! The 5-byte envelope of streamed messages: one flags byte, a big-endian u32 length, the payload.
//!
//! Used by every streaming Connect call and by all gRPC and gRPC-Web bodies. The decoder only frames:
//! which flags are legal on which protocol (PROTOCOL-TRAPS 4, 11, 20) is decided by the protocol modules.

use std::collections::VecDeque;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// Envelope flag bits.
pub mod flags {
    /// The payload is compressed with the call's message encoding.
    pub const COMPRESSED: u8 = 0x01;
    /// Connect: the EndStream message (JSON), always the last envelope of a response stream.
    pub const END_STREAM: u8 = 0x02;
    /// gRPC-Web: the trailers frame, the last envelope of a response.
    pub const TRAILERS: u8 = 0x80;
}

/// Length of the envelope prefix.
pub(crate) const PREFIX_LEN: usize = 5;

/// Payloads up to this many bytes are copied behind their prefix by [`encode`]; larger ones are handed
/// back as a separate buffer.
///
/// One small copy is cheaper than a second write or a vectored-write entry per message, while copying a
/// large payload costs more than the extra buffer (the same trade-off as h2's `framed_write`).
pub(crate) const COPY_THRESHOLD: usize = 8 * 1024;

/// One decoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The flags byte as received; which bits are legal is the protocol's call.
    pub flags: u8,
    /// The payload, still compressed if `flags & COMPRESSED`.
    pub data: Bytes,
}

/// The prefix for a payload of `len` bytes.
pub(crate) fn encode_prefix(flags: u8, len: u32) -> [u8; PREFIX_LEN] {
    let [a, b, c, d] = len.to_be_bytes();
    [flags, a, b, c, d]
}

/// An envelope as one or two buffers: payloads up to 8 KiB are copied behind the
/// prefix and returned as `(envelope, None)`; larger ones are left in place and returned as
/// `(prefix, Some(payload))` so no copy is made (STYLE 4). Write the buffers in order.
///
/// # Panics
///
/// If `payload` is longer than `u32::MAX` bytes, which the wire format cannot express. Callers enforce
/// their (much smaller) send limit before framing, so reaching this is a bug in the caller.
pub fn encode(flags: u8, payload: Bytes) -> (Bytes, Option<Bytes>) {
    let len = u32::try_from(payload.len()).expect("envelope payload longer than u32::MAX");
    let prefix = encode_prefix(flags, len);
    if payload.len() <= COPY_THRESHOLD {
        let mut buf = BytesMut::with_capacity(PREFIX_LEN + payload.len());
        buf.extend_from_slice(&prefix);
        buf.extend_from_slice(&payload);
        (buf.freeze(), None)
    } else {
        (Bytes::copy_from_slice(&prefix), Some(payload))
    }
}

/// The envelope's length prefix announced more than the limit allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// The announced payload length.
    pub len: u64,
    /// The limit in force.
    pub max: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message of {} bytes exceeds the limit of {} bytes",
            self.len, self.max
        )
    }
}

impl std::error::Error for TooLarge {}

/// Incremental decoder fed body chunks of any size.
///
/// Chunks are queued as they arrive rather than appended to one growing buffer, so a payload that lies
/// inside a single chunk comes out as a zero-copy slice of it; a payload spanning chunks is copied once,
/// into one allocation of exactly its announced size. Each length prefix is checked against the limit
/// as soon as its 5 bytes are in, before anything is reserved for the payload.
///
/// After [`TooLarge`], the decoder is poisoned: it drops what it holds, discards further chunks and
/// repeats the error, because the stream can no longer be framed.
///
/// ```
/// use bytes::Bytes;
/// use connect_proto::{EnvelopeDecoder, Envelope};
///
/// let mut decoder = EnvelopeDecoder::new(1024);
/// decoder.push(Bytes::from_static(&[0, 0, 0, 0, 2, b'h']));
/// assert_eq!(decoder.decode(), Ok(None)); // incomplete is a status, not an error
/// decoder.push(Bytes::from_static(b"i"));
/// let envelope = decoder.decode().unwrap().unwrap();
/// assert_eq!(envelope, Envelope { flags: 0, data: Bytes::from_static(b"hi") });
/// assert_eq!(decoder.buffered_len(), 0);
/// ```
#[derive(Debug)]
pub struct EnvelopeDecoder {
    max_message_size: usize,
    /// Non-empty chunks, the front one possibly partly consumed.
    chunks: VecDeque<Bytes>,
    /// Sum of the lengths of `chunks`.
    buffered: usize,
    poisoned: Option<TooLarge>,
}

impl EnvelopeDecoder {
    /// A decoder that refuses envelopes whose announced length exceeds `max_message_size`.
    pub fn new(max_message_size: usize) -> Self {
        EnvelopeDecoder {
            max_message_size,
            chunks: VecDeque::new(),
            buffered: 0,
            poisoned: None,
        }
    }

    /// Appends a chunk of body bytes.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() || self.poisoned.is_some() {
            return;
        }
        self.buffered += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// The next complete envelope, `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self) -> Result<Option<Envelope>, TooLarge> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        let Some(prefix) = self.peek_prefix() else {
            return Ok(None);
        };
        let flags = prefix[0];
        let announced = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        // On a 16-bit target a u32 may not fit a usize; it is then certainly over any limit.
        let len = match usize::try_from(announced) {
            Ok(len) if len <= self.max_message_size => len,
            _ => {
                let err = TooLarge {
                    len: u64::from(announced),
                    max: self.max_message_size,
                };
                self.chunks.clear();
                self.buffered = 0;
                self.poisoned = Some(err.clone());
                return Err(err);
            }
        };
        if self.buffered - PREFIX_LEN < len {
            return Ok(None);
        }
        self.advance(PREFIX_LEN);
        let data = self.take(len);
        Ok(Some(Envelope { flags, data }))
    }

    /// Bytes held that do not yet form a complete envelope.
    pub fn buffered_len(&self) -> usize {
        self.buffered
    }

    /// The next 5 bytes without consuming them, wherever the chunk boundaries fall.
    fn peek_prefix(&self) -> Option<[u8; PREFIX_LEN]> {
        if self.buffered < PREFIX_LEN {
            return None;
        }
        let mut prefix = [0u8; PREFIX_LEN];
        let mut filled = 0;
        for chunk in &self.chunks {
            let n = chunk.len().min(PREFIX_LEN - filled);
            prefix[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if filled == PREFIX_LEN {
                break;
            }
        }
        Some(prefix)
    }

    /// Drops `n` buffered bytes; the caller has checked that they are there.
    fn advance(&mut self, mut n: usize) {
        self.buffered -= n;
        while n > 0 {
            let front = self
                .chunks
                .front_mut()
                .expect("advance within buffered bytes");
            if front.len() > n {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }

    /// Removes and returns the next `len` buffered bytes; the caller has checked that they are there.
    fn take(&mut self, len: usize) -> Bytes {
        if len == 0 {
            return Bytes::new();
        }
        self.buffered -= len;
        let front = self.chunks.front_mut().expect("take within buffered bytes");
        if front.len() >= len {
            let data = front.split_to(len);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            return data;
        }
        let mut data = BytesMut::with_capacity(len);
        while data.len() < len {
            let front = self.chunks.front_mut().expect("take within buffered bytes");
            let n = front.len().min(len - data.len());
            data.extend_from_slice(&front[..n]);
            if n == front.len() {
                self.chunks.pop_front();
            } else {
                front.advance(n);
            }
        }
        data.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn concat(parts: (Bytes, Option<Bytes>)) -> Vec<u8> {
        let mut out = parts.0.to_vec();
        if let Some(rest) = parts.1 {
            out.extend_from_slice(&rest);
        }
        out
    }

    fn decode_all(decoder: &mut EnvelopeDecoder) -> Vec<Envelope> {
        let mut out = Vec::new();
        while let Some(envelope) = decoder.decode().unwrap() {
            out.push(envelope);
        }
        out
    }

    #[test]
    fn prefix_is_flags_then_big_endian_length() {
        assert_eq!(encode_prefix(0x81, 0x0102_0304), [0x81, 1, 2, 3, 4]);
    }

    #[test]
    fn round_trip() {
        let mut decoder = EnvelopeDecoder::new(1 << 20);
        for (flags, payload) in [
            (0, Bytes::from_static(b"hello")),
            (flags::COMPRESSED, Bytes::new()),
            (flags::END_STREAM, Bytes::from_static(b"{}")),
        ] {
            decoder.push(Bytes::from(concat(encode(flags, payload.clone()))));
            let envelope = decoder.decode().unwrap().unwrap();
            assert_eq!(envelope.flags, flags);
            assert_eq!(envelope.data, payload);
        }
        assert_eq!(decoder.decode(), Ok(None));
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn small_payloads_are_copied_large_ones_are_not() {
        let small = Bytes::from(vec![7u8; COPY_THRESHOLD]);
        let (first, rest) = encode(0, small);
        assert_eq!(first.len(), PREFIX_LEN + COPY_THRESHOLD);
        assert!(rest.is_none());

        let large = Bytes::from(vec![7u8; COPY_THRESHOLD + 1]);
        let (prefix, rest) = encode(1, large.clone());
        assert_eq!(&prefix[..], &encode_prefix(1, large.len() as u32)[..]);
        let rest = rest.unwrap();
        assert_eq!(rest.as_ptr(), large.as_ptr());
    }

    #[test]
    fn announced_4gib_is_refused_after_five_bytes() {
        let mut decoder = EnvelopeDecoder::new(1 << 20);
        decoder.push(Bytes::from_static(&[0, 0xff, 0xff]));
        assert_eq!(decoder.decode(), Ok(None));
        decoder.push(Bytes::from_static(&[0xff, 0xff]));
        let err = decoder.decode().unwrap_err();
        assert_eq!(
            err,
            TooLarge {
                len: u64::from(u32::MAX),
                max: 1 << 20
            }
        );
        // Poisoned: nothing more is held, and the error repeats.
        decoder.push(Bytes::from_static(&[0; 64]));
        assert_eq!(decoder.buffered_len(), 0);
        assert_eq!(decoder.decode(), Err(err));
    }

    #[test]
    fn exactly_the_limit_passes() {
        let mut decoder = EnvelopeDecoder::new(3);
        decoder.push(Bytes::from_static(&[0, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 4]));
        assert_eq!(decoder.decode().unwrap().unwrap().data, &[1, 2, 3][..]);
        assert_eq!(decoder.decode().unwrap_err().len, 4);
    }

    #[test]
    fn payload_inside_one_chunk_is_zero_copy() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&encode_prefix(0, 4));
        wire.extend_from_slice(b"abcd");
        wire.extend_from_slice(&encode_prefix(0, 3));
        wire.extend_from_slice(b"xyz");
        let chunk = Bytes::from(wire);
        let range = chunk.as_ptr_range();

        let mut decoder = EnvelopeDecoder::new(1024);
        decoder.push(chunk.clone());
        for expected in [&b"abcd"[..], b"xyz"] {
            let data = decoder.decode().unwrap().unwrap().data;
            assert_eq!(data, expected);
            assert!(range.contains(&data.as_ptr()));
        }
    }

    #[test]
    fn prefix_split_but_payload_in_one_chunk_is_zero_copy() {
        let second = Bytes::from_static(&[0, 2, b'o', b'k']);
        let mut decoder = EnvelopeDecoder::new(1024);
        decoder.push(Bytes::from_static(&[0, 0, 0]));
        decoder.push(second.clone());
        let data = decoder.decode().unwrap().unwrap().data;
        assert_eq!(data, &b"ok"[..]);
        assert!(second.as_ptr_range().contains(&data.as_ptr()));
    }

    #[test]
    fn spanning_payload_is_copied_into_one_exact_allocation() {
        let mut decoder = EnvelopeDecoder::new(1024);
        decoder.push(Bytes::from_static(&[0, 0, 0, 0, 6, b'a', b'b']));
        decoder.push(Bytes::from_static(b"cd"));
        assert_eq!(decoder.decode(), Ok(None));
        assert_eq!(decoder.buffered_len(), 9);
        decoder.push(Bytes::from_static(b"efNEXT"));
        let data = decoder.decode().unwrap().unwrap().data;
        assert_eq!(data, &b"abcdef"[..]);
        assert_eq!(decoder.buffered_len(), 4);
        assert_eq!(decoder.decode(), Ok(None));
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_envelopes(
            messages in prop::collection::vec(
                (any::<u8>(), prop::collection::vec(any::<u8>(), 0..(COPY_THRESHOLD + 64))),
                0..6,
            ),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut wire = Vec::new();
            for (flags, payload) in &messages {
                wire.extend(concat(encode(*flags, Bytes::from(payload.clone()))));
            }
            let wire = Bytes::from(wire);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort_unstable();

            let mut decoder = EnvelopeDecoder::new(COPY_THRESHOLD + 64);
            let mut got = Vec::new();
            for pair in cuts.windows(2) {
                decoder.push(wire.slice(pair[0]..pair[1]));
                got.extend(decode_all(&mut decoder));
            }
            let expected: Vec<Envelope> = messages
                .into_iter()
                .map(|(flags, payload)| Envelope { flags, data: Bytes::from(payload) })
                .collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(decoder.buffered_len(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
            max in 0usize..512,
        ) {
            let mut decoder = EnvelopeDecoder::new(max);
            let total: usize = chunks.iter().map(Vec::len).sum();
            let mut consumed = 0;
            for chunk in chunks {
                decoder.push(Bytes::from(chunk));
                loop {
                    match decoder.decode() {
                        Ok(Some(envelope)) => {
                            prop_assert!(envelope.data.len() <= max);
                            consumed += PREFIX_LEN + envelope.data.len();
                        }
                        Ok(None) => break,
                        Err(err) => {
                            prop_assert!(err.len > max as u64);
                            break;
                        }
                    }
                }
            }
            prop_assert!(consumed + decoder.buffered_len() <= total);
        }
    }
}
