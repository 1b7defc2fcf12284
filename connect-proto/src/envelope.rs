//! The 5-byte envelope of streamed messages: one flags byte, a big-endian u32 length, the payload.

use bytes::Bytes;

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
pub const PREFIX_LEN: usize = 5;

/// One decoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The flags byte as received; which bits are legal is the protocol's call.
    pub flags: u8,
    /// The payload, still compressed if `flags & COMPRESSED`.
    pub data: Bytes,
}

/// The prefix for a payload of `len` bytes.
pub fn encode_prefix(flags: u8, len: u32) -> [u8; PREFIX_LEN] {
    todo!("helper A")
}

/// An envelope as one or two buffers: small payloads are copied behind the prefix, large ones are left
/// in place and returned as a second buffer so no copy is made (STYLE 4).
pub fn encode(flags: u8, payload: Bytes) -> (Bytes, Option<Bytes>) {
    todo!("helper A")
}

/// The envelope's length prefix announced more than the limit allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// The announced payload length.
    pub len: u64,
    /// The limit in force.
    pub max: usize,
}

/// Incremental decoder fed body chunks of any size.
#[derive(Debug)]
pub struct EnvelopeDecoder {
    _p: (),
}

impl EnvelopeDecoder {
    /// A decoder that refuses envelopes whose announced length exceeds `max_message_size`.
    pub fn new(max_message_size: usize) -> Self {
        todo!("helper A")
    }

    /// Appends a chunk of body bytes.
    pub fn push(&mut self, chunk: Bytes) {
        todo!("helper A")
    }

    /// The next complete envelope, `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self) -> Result<Option<Envelope>, TooLarge> {
        todo!("helper A")
    }

    /// Bytes held that do not yet form a complete envelope.
    pub fn buffered_len(&self) -> usize {
        todo!("helper A")
    }
}
