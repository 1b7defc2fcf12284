//! The byte format of the call scripts ([`ServerScript`](super::ServerScript),
//! [`ClientScript`](super::ClientScript), [`PairScript`](super::PairScript)) and the parser
//! properties' inputs: a tag byte per operation, little-endian integers, `u16` lengths. Any bytes
//! read as some script (missing bytes read as zero, lengths are clamped to what is left), so the
//! fuzzers' inputs are scripts; and scripts write back to the bytes they came from, so real exchanges
//! become seeds.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::compression::CompressionRegistry;
use crate::envelope;
use crate::{Code, Codec, ErrorDetail, Protocol, Status};

/// Reads the script format: missing bytes read as zero, lengths are clamped to what is left.
pub(super) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub(super) fn u8(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }
    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub(super) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub(super) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    pub(super) fn bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.u16()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head.to_vec()
    }
    pub(super) fn headers(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..self.u8() % 16)
            .map(|_| (self.bytes(), self.bytes()))
            .collect()
    }
    /// Operations read by `op` until the input ends, at most [`MAX_OPS`].
    pub(super) fn ops<T>(&mut self, mut op: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let mut ops = Vec::new();
        while !self.is_empty() && ops.len() < MAX_OPS {
            ops.push(op(self));
        }
        ops
    }
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Writes the script format (for seeds).
#[derive(Default)]
pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn u8(&mut self, b: u8) {
        self.0.push(b);
    }
    pub(super) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn bytes(&mut self, b: &[u8]) {
        let n = b.len().min(usize::from(u16::MAX));
        self.u16(n as u16);
        self.0.extend_from_slice(&b[..n]);
    }
    pub(super) fn headers(&mut self, headers: &[(Vec<u8>, Vec<u8>)]) {
        let n = headers.len().min(15);
        self.u8(n as u8);
        for (name, value) in &headers[..n] {
            self.bytes(name);
            self.bytes(value);
        }
    }
}

/// At most this many operations per script, so one input stays fast.
const MAX_OPS: usize = 200;

pub(super) const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];
pub(super) const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];
/// `lz4` is a name nobody here supports.
pub(super) const COMPRESSIONS: [Option<&str>; 7] = [
    None,
    Some("gzip"),
    Some("zstd"),
    Some("br"),
    Some("deflate"),
    Some("snappy"),
    Some("lz4"),
];

pub(super) fn pick<T: Copy>(u: &mut Reader<'_>, options: &[T]) -> T {
    options[usize::from(u.u8()) % options.len()]
}

pub(super) fn header_map(pairs: &[(Vec<u8>, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

/// An envelope of `payload`, compressed with `algorithm` (by name) when the name is known.
pub(super) fn encode_envelope(flag: u8, algorithm: Option<&str>, payload: &[u8]) -> Bytes {
    let registry = CompressionRegistry::default();
    let payload = match algorithm.and_then(|name| registry.get(name)) {
        Some(c) => c.compress(payload).unwrap_or_default(),
        None => Bytes::copy_from_slice(payload),
    };
    let (head, tail) = envelope::encode(flag, payload);
    let mut out = head.to_vec();
    out.extend_from_slice(tail.as_deref().unwrap_or_default());
    Bytes::from(out)
}

/// A status from the script: code 0 is success.
pub(super) fn outcome(
    code: u32,
    message: &[u8],
    details: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), Status> {
    if code == 0 {
        return Ok(());
    }
    let mut status = Status::new(Code::from_u32(code), String::from_utf8_lossy(message));
    for (name, value) in details {
        status = status.with_detail(ErrorDetail::new(
            String::from_utf8_lossy(name),
            value.clone(),
        ));
    }
    Err(status)
}
