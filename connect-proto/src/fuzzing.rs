//! Entry points for the cargo-fuzz targets in `fuzz/` (STYLE 8: each target is one line into here).
//!
//! Compiled only with the `fuzzing` feature and hidden from the docs: this is not API. Every function
//! panics when a property fails, which is what libFuzzer reports. The properties go beyond "no panic":
//! parsers round-trip through their encoders, outputs stay within the configured limits, the call
//! machines never speak after their final status, and a client↔server pair delivers exactly what the
//! application sent whatever the chunking.
//!
//! The call machines are driven by scripts: [`ServerScript`], [`ClientScript`] and [`PairScript`]
//! implement [`arbitrary::Arbitrary`] over a small self-describing byte format (a tag byte per operation,
//! little-endian `u16` lengths). The format is ours rather than `#[derive(Arbitrary)]`'s so that
//! [`write_seed_corpora`] can write real exchanges of the pair as seeds, which is how the corpora start.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::compression::{CompressionRegistry, Compressor};
use crate::envelope::{self, flags, Envelope, EnvelopeDecoder, PREFIX_LEN};
use crate::metadata;
use crate::protocol::{connect, grpc, grpc_web, headers as h};
use crate::testing::{Pair, Replies, Script, Wire, METHODS};
use crate::timeout;
use crate::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit, Code, Codec, ContentType,
    ErrorDetail, Instant, MethodInfo, Protocol, ServerCall, ServerConfig, ServerEvent,
    ServerTransmit, Status, StreamType,
};

// ---------------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------------

/// Envelope decoder under any chunking. Input: `u16` LE limit, a count byte and that many chunk sizes,
/// then the body. Checks: chunked decoding equals one-chunk decoding; re-encoding the envelopes gives the
/// consumed bytes back; no payload over the limit; what stays buffered after draining is less than one
/// prefix plus the limit (nothing once poisoned).
pub fn envelope(data: &[u8]) {
    let mut u = Reader::new(data);
    let limit = usize::from(u.u16());
    let cuts: Vec<usize> = (0..u.u8() % 16).map(|_| usize::from(u.u8())).collect();
    let wire = Bytes::copy_from_slice(u.rest());

    let decode_chunked = |chunks: &mut dyn Iterator<Item = Bytes>| {
        let mut decoder = EnvelopeDecoder::new(limit);
        let mut out = Vec::new();
        let mut error = None;
        for chunk in chunks {
            decoder.push(chunk);
            loop {
                match decoder.decode() {
                    Ok(Some(e)) => {
                        assert!(e.data.len() <= limit, "payload over the limit");
                        out.push(e);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!(e.len > limit as u64 && e.max == limit);
                        assert_eq!(decoder.buffered_len(), 0, "poisoned decoder holds bytes");
                        error = Some(e);
                        break;
                    }
                }
            }
            if error.is_none() {
                assert!(
                    decoder.buffered_len() < PREFIX_LEN + limit,
                    "buffered too much"
                );
            }
        }
        (out, error, decoder.buffered_len())
    };

    let whole = decode_chunked(&mut std::iter::once(wire.clone()));
    let mut rest = wire.clone();
    let mut sizes = cuts.iter().cycle();
    let mut chunks = std::iter::from_fn(|| {
        if rest.is_empty() {
            return None;
        }
        let n = sizes
            .next()
            .map_or(rest.len(), |&n| n.max(1))
            .min(rest.len());
        Some(rest.split_to(n))
    });
    let chunked = decode_chunked(&mut chunks);
    assert_eq!(whole.0, chunked.0, "chunking changed the envelopes");
    assert_eq!(whole.1, chunked.1, "chunking changed the error");
    assert_eq!(whole.2, chunked.2, "chunking changed what is buffered");

    let mut encoded = Vec::new();
    for Envelope { flags, data } in whole.0 {
        let (head, tail) = envelope::encode(flags, data);
        encoded.extend_from_slice(&head);
        encoded.extend_from_slice(tail.as_deref().unwrap_or_default());
    }
    if whole.1.is_none() {
        assert_eq!(encoded.len() + whole.2, wire.len());
    }
    assert_eq!(
        &wire[..encoded.len()],
        &encoded[..],
        "envelopes do not round-trip"
    );
}

/// The gRPC-Web trailers frame: a parsed block re-encodes to one that parses to the same map, and the
/// status read from it (as the client does) is well-formed.
pub fn grpc_web_trailers(data: &[u8]) {
    let Ok(map) = grpc_web::decode_trailers(data) else {
        return;
    };
    let again = grpc_web::decode_trailers(&grpc_web::encode_trailers(&map));
    assert_eq!(again.as_ref(), Ok(&map), "trailers do not round-trip");
    if let Some(Err(status)) = grpc::read_status(&map) {
        assert!(!status.code().is_ok(), "an error with code ok");
    }
}

/// Connect's error JSON: a decoded error encodes to JSON that decodes to the same status.
pub fn connect_error(data: &[u8]) {
    let Some(status) = connect::decode_error(data, Code::UNKNOWN) else {
        return;
    };
    assert!(!status.code().is_ok());
    let encoded = connect::encode_error(&status);
    assert_eq!(
        connect::decode_error(&encoded, Code::UNKNOWN).as_ref(),
        Some(&status),
        "error does not round-trip through {}",
        String::from_utf8_lossy(&encoded)
    );
}

/// Connect's EndStream message: decode, encode, decode gives the same error and metadata.
pub fn connect_end_stream(data: &[u8]) {
    let end = match connect::decode_end_stream(data) {
        Ok(end) => end,
        Err(status) => {
            assert_eq!(status.code(), Code::INTERNAL);
            return;
        }
    };
    let encoded = connect::encode_end_stream(end.error.as_ref(), &end.metadata);
    assert_eq!(
        connect::decode_end_stream(&encoded).as_ref(),
        Ok(&end),
        "EndStream does not round-trip through {}",
        String::from_utf8_lossy(&encoded)
    );
}

/// `Connect-Timeout-Ms` and `grpc-timeout`: parsed values format back within the grammar and to the
/// same (Connect) or a slightly larger (gRPC, coarser unit) duration; any duration formats within the
/// grammar and parses back to no less than itself unless clamped.
pub fn timeout(data: &[u8]) {
    if let Ok(d) = timeout::parse_connect_timeout(data) {
        let s = timeout::format_connect_timeout(d);
        assert_eq!(s.as_bytes(), trim_leading_zeros(data), "{d:?}");
    }
    if let Ok(d) = timeout::parse_grpc_timeout(data) {
        let s = timeout::format_grpc_timeout(d);
        assert!(s.len() <= 9, "{s}");
        let back =
            timeout::parse_grpc_timeout(s.as_bytes()).expect("formatted grpc-timeout parses");
        assert!(back >= d, "{d:?} -> {s} -> {back:?}");
    }
    let mut u = Reader::new(data);
    let d = Duration::new(u.u64(), u.u32() % 1_000_000_000);
    let connect = timeout::format_connect_timeout(d);
    let back =
        timeout::parse_connect_timeout(connect.as_bytes()).expect("formatted Connect timeout");
    assert!(back >= d || connect == "9999999999", "{d:?} -> {connect}");
    let grpc = timeout::format_grpc_timeout(d);
    let back = timeout::parse_grpc_timeout(grpc.as_bytes()).expect("formatted grpc-timeout");
    assert!(back >= d || grpc == "99999999H", "{d:?} -> {grpc}");
    assert!(
        d.is_zero() || !back.is_zero(),
        "a live deadline formatted as zero"
    );
}

fn trim_leading_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len() - 1);
    &digits[start..]
}

/// `grpc-message` percent-decoding never fails; the encoding of any text is a valid header value that
/// decodes to the text, so decoded messages survive a second trip.
pub fn grpc_message(data: &[u8]) {
    let decoded = grpc::decode_message(data);
    for text in [decoded.as_str(), &String::from_utf8_lossy(data)] {
        let encoded = grpc::encode_message(text);
        assert!(HeaderValue::from_str(&encoded).is_ok(), "{encoded:?}");
        // Whitespace around a field value is not part of it: what is there would be lost.
        assert_eq!(
            encoded.trim(),
            encoded,
            "whitespace at an end of {encoded:?}"
        );
        assert_eq!(grpc::decode_message(encoded.as_bytes()), text);
    }
}

/// `-bin` metadata: a decoded value re-encodes unpadded to a value that decodes to the same bytes, and
/// any bytes round-trip.
pub fn binary_metadata(data: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        if let Ok(bytes) = metadata::decode_binary(&value) {
            let encoded = metadata::encode_binary(&bytes);
            assert!(!encoded.as_bytes().contains(&b'='), "padded");
            assert_eq!(metadata::decode_binary(&encoded), Ok(bytes));
        }
    }
    let encoded = metadata::encode_binary(data);
    assert_eq!(metadata::decode_binary(&encoded).as_deref(), Ok(data));
}

/// Connect GET query: a decoded request re-encodes to a query that decodes to the same request. The
/// first byte says whether `connect=v1` is required.
pub fn connect_get_query(data: &[u8]) {
    let Some((&require, query)) = data.split_first() else {
        return;
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let get = match connect::decode_get_query(query, require & 1 == 1) {
        Ok(get) => get,
        Err(status) => {
            assert_eq!(status.code(), Code::INVALID_ARGUMENT);
            return;
        }
    };
    let encoded =
        connect::encode_get_query(&get.encoding, &get.message, get.compression.as_deref());
    assert!(http::uri::PathAndQuery::try_from(format!("/p?{encoded}")).is_ok());
    assert_eq!(
        connect::decode_get_query(&encoded, true).as_ref(),
        Ok(&get),
        "GET query does not round-trip through {encoded}"
    );
}

/// Content-type classification: a classified type with a known codec formats to a content type of the
/// same protocol, codec and streaming form.
pub fn content_type(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(ct) = ContentType::parse(text) else {
        return;
    };
    assert_eq!(ct.codec, Codec::from_name(&ct.codec_name));
    let Some(codec) = ct.codec else { return };
    let formatted = ContentType::format(ct.protocol, ct.connect_streaming, codec);
    let again = ContentType::parse(formatted).expect("formatted content type parses");
    assert_eq!(
        (again.protocol, again.codec, again.connect_streaming),
        (ct.protocol, ct.codec, ct.connect_streaming)
    );
}

/// `grpc-status-details-bin` (a `google.rpc.Status`): decoded details round-trip through the encoder,
/// and a status written into trailers reads back the same.
pub fn grpc_status_details(data: &[u8]) {
    let Some(status) = grpc::decode_status_details(data) else {
        return;
    };
    let encoded = grpc::encode_status_details(&status);
    assert_eq!(
        grpc::decode_status_details(&encoded).as_ref(),
        Some(&status)
    );
    if !status.code().is_ok() {
        let mut trailers = HeaderMap::new();
        grpc::write_status(Err(&status), &mut trailers);
        assert_eq!(grpc::read_status(&trailers), Some(Err(status)));
    }
}

/// gzip under a size limit (first two bytes, LE): output never exceeds the limit, and what decompressed
/// compresses and decompresses back.
#[cfg(feature = "gzip")]
pub fn decompress_gzip(data: &[u8]) {
    decompress_bounded(&crate::compression::Gzip::default(), data);
}

/// brotli under a size limit (first two bytes, LE), as [`decompress_gzip`].
#[cfg(feature = "br")]
pub fn decompress_br(data: &[u8]) {
    decompress_bounded(&crate::compression::Brotli::default(), data);
}

/// deflate (zlib or bare) under a size limit (first two bytes, LE), as [`decompress_gzip`].
#[cfg(feature = "deflate")]
pub fn decompress_deflate(data: &[u8]) {
    decompress_bounded(&crate::compression::Deflate::default(), data);
}

/// snappy (framed) under a size limit (first two bytes, LE), as [`decompress_gzip`].
#[cfg(feature = "snappy")]
pub fn decompress_snappy(data: &[u8]) {
    decompress_bounded(&crate::compression::Snappy, data);
}

/// zstd under a size limit (first two bytes, LE), as [`decompress_gzip`].
#[cfg(feature = "zstd")]
pub fn decompress_zstd(data: &[u8]) {
    decompress_bounded(&crate::compression::Zstd::default(), data);
}

#[cfg(any(
    feature = "gzip",
    feature = "zstd",
    feature = "br",
    feature = "deflate",
    feature = "snappy"
))]
fn decompress_bounded(algorithm: &dyn Compressor, data: &[u8]) {
    let mut u = Reader::new(data);
    let limit = usize::from(u.u16());
    let input = u.rest();
    let Ok(output) = algorithm.decompress(input, limit) else {
        return;
    };
    assert!(
        output.len() <= limit,
        "{} bytes over a limit of {limit}",
        output.len()
    );
    let again = algorithm.compress(&output).expect("compress");
    assert_eq!(algorithm.decompress(&again, limit).ok(), Some(output));
}

// ---------------------------------------------------------------------------------------------------
// The byte format of scripts
// ---------------------------------------------------------------------------------------------------

/// Reads the script format: missing bytes read as zero, lengths are clamped to what is left.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    fn u8(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.u16()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head.to_vec()
    }
    fn headers(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..self.u8() % 16)
            .map(|_| (self.bytes(), self.bytes()))
            .collect()
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Writes the script format (for seeds).
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        let n = b.len().min(usize::from(u16::MAX));
        self.u16(n as u16);
        self.0.extend_from_slice(&b[..n]);
    }
    fn headers(&mut self, headers: &[(Vec<u8>, Vec<u8>)]) {
        let n = headers.len().min(15);
        self.u8(n as u8);
        for (name, value) in &headers[..n] {
            self.bytes(name);
            self.bytes(value);
        }
    }
}

/// Implements `Arbitrary` through a type's `read` (which consumes the whole input).
macro_rules! arbitrary_via_reader {
    ($ty:ty) => {
        impl<'a> Arbitrary<'a> for $ty {
            fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
                let len = u.len();
                Ok(<$ty>::read(&mut Reader::new(u.bytes(len)?)))
            }
            fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
                Ok(<$ty>::read(&mut Reader::new(u.take_rest())))
            }
        }
    };
}

/// At most this many operations per script, so one input stays fast.
const MAX_OPS: usize = 200;

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];
const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];
/// `lz4` is a name nobody here supports.
const COMPRESSIONS: [Option<&str>; 7] = [
    None,
    Some("gzip"),
    Some("zstd"),
    Some("br"),
    Some("deflate"),
    Some("snappy"),
    Some("lz4"),
];

fn pick<T: Copy>(u: &mut Reader<'_>, options: &[T]) -> T {
    options[usize::from(u.u8()) % options.len()]
}

fn header_map(pairs: &[(Vec<u8>, Vec<u8>)]) -> HeaderMap {
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

fn header_pairs(map: &HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// An envelope of `payload`, compressed with `algorithm` (by name) when the name is known.
fn encode_envelope(flag: u8, algorithm: Option<&str>, payload: &[u8]) -> Bytes {
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
fn outcome(code: u32, message: &[u8], details: &[(Vec<u8>, Vec<u8>)]) -> Result<(), Status> {
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

// ---------------------------------------------------------------------------------------------------
// ServerCall
// ---------------------------------------------------------------------------------------------------

/// A request head and a sequence of inputs and application commands for one [`ServerCall`].
#[derive(Clone, Debug, PartialEq)]
pub struct ServerScript {
    /// Index into the methods; 4 and up: a path no handler serves.
    pub method: u8,
    /// 0 POST, 1 GET, 2 PUT.
    pub http_method: u8,
    /// Query string (Connect GET).
    pub query: Vec<u8>,
    /// Request headers.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Receive limit.
    pub max_recv: u16,
    /// Send limit.
    pub max_send: u16,
    /// Bit 0: require `Connect-Protocol-Version`; bit 1: the server supports no compression.
    pub options: u8,
    /// The operations, in order.
    pub ops: Vec<ServerOp>,
}

/// One input or application command of a [`ServerScript`].
#[derive(Clone, Debug, PartialEq)]
pub enum ServerOp {
    /// A raw body chunk.
    Data(Vec<u8>),
    /// An envelope with these flags, its payload compressed with the algorithm at this index of
    /// gzip, zstd (others: none).
    Envelope(u8, u8, Vec<u8>),
    /// End of the request body.
    End,
    /// Stream reset.
    Reset,
    /// The clock advances by this many milliseconds, then `handle_timeout`.
    Advance(u16),
    /// `send_headers`.
    SendHeaders(Vec<(Vec<u8>, Vec<u8>)>),
    /// `send_message`, or for odd lengths `message_writer` (then dropped unsent when the first byte
    /// is 0xff).
    SendMessage(Vec<u8>),
    /// `finish`: code (0 is Ok), message, details (type, value), trailers.
    Finish(
        u32,
        Vec<u8>,
        Vec<(Vec<u8>, Vec<u8>)>,
        Vec<(Vec<u8>, Vec<u8>)>,
    ),
    /// `cancel`.
    Cancel,
}

impl ServerScript {
    fn read(u: &mut Reader<'_>) -> Self {
        let mut script = ServerScript {
            method: u.u8(),
            http_method: u.u8(),
            query: u.bytes(),
            headers: u.headers(),
            max_recv: u.u16(),
            max_send: u.u16(),
            options: u.u8(),
            ops: Vec::new(),
        };
        while !u.is_empty() && script.ops.len() < MAX_OPS {
            script.ops.push(match u.u8() % 9 {
                0 => ServerOp::Data(u.bytes()),
                1 => ServerOp::Envelope(u.u8(), u.u8(), u.bytes()),
                2 => ServerOp::End,
                3 => ServerOp::Reset,
                4 => ServerOp::Advance(u.u16()),
                5 => ServerOp::SendHeaders(u.headers()),
                6 => ServerOp::SendMessage(u.bytes()),
                7 => ServerOp::Finish(u.u32(), u.bytes(), u.headers(), u.headers()),
                _ => ServerOp::Cancel,
            });
        }
        script
    }

    /// The script in its byte format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.method);
        w.u8(self.http_method);
        w.bytes(&self.query);
        w.headers(&self.headers);
        w.u16(self.max_recv);
        w.u16(self.max_send);
        w.u8(self.options);
        for op in &self.ops {
            match op {
                ServerOp::Data(d) => {
                    w.u8(0);
                    w.bytes(d);
                }
                ServerOp::Envelope(f, c, d) => {
                    w.u8(1);
                    w.u8(*f);
                    w.u8(*c);
                    w.bytes(d);
                }
                ServerOp::End => w.u8(2),
                ServerOp::Reset => w.u8(3),
                ServerOp::Advance(ms) => {
                    w.u8(4);
                    w.u16(*ms);
                }
                ServerOp::SendHeaders(hs) => {
                    w.u8(5);
                    w.headers(hs);
                }
                ServerOp::SendMessage(d) => {
                    w.u8(6);
                    w.bytes(d);
                }
                ServerOp::Finish(code, message, details, trailers) => {
                    w.u8(7);
                    w.u32(*code);
                    w.bytes(message);
                    w.headers(details);
                    w.headers(trailers);
                }
                ServerOp::Cancel => w.u8(8),
            }
        }
        w.0
    }
}

arbitrary_via_reader!(ServerScript);

/// Checks what a [`ServerCall`] emits against the rules every driver relies on.
#[derive(Default)]
struct ServerWatch {
    client_streams: bool,
    head: bool,
    ended: bool,
    reset: bool,
    /// `Finished` was emitted.
    over: bool,
    input_closed: bool,
    messages: usize,
}

impl ServerWatch {
    fn drain(&mut self, call: &mut ServerCall, max_recv: usize) {
        while let Some(t) = call.poll_transmit() {
            assert!(!self.reset, "transmit after reset: {t:?}");
            assert!(!self.ended, "transmit after the response ended: {t:?}");
            match t {
                ServerTransmit::Head(_) => {
                    assert!(!self.head, "second response head");
                    self.head = true;
                }
                ServerTransmit::Data(_) => assert!(self.head, "data before the head"),
                ServerTransmit::Trailers(_) => {
                    assert!(self.head, "trailers before the head");
                    assert_eq!(call.protocol(), Some(Protocol::Grpc), "HTTP trailers");
                    self.ended = true;
                }
                ServerTransmit::End => {
                    assert!(self.head, "end before the head");
                    self.ended = true;
                }
                ServerTransmit::Reset => self.reset = true,
            }
            if self.ended || self.reset {
                assert!(
                    call.is_finished(),
                    "response ended but the call is not finished"
                );
            }
        }
        while let Some(e) = call.poll_event() {
            assert!(!self.over, "event after the final status: {e:?}");
            match e {
                ServerEvent::Message(m) => {
                    assert!(!self.input_closed, "message after InputClosed");
                    assert!(m.len() <= max_recv, "message over the receive limit");
                    self.messages += 1;
                    assert!(
                        self.client_streams || self.messages <= 1,
                        "second unary message"
                    );
                }
                ServerEvent::InputClosed => {
                    assert!(!self.input_closed, "InputClosed twice");
                    self.input_closed = true;
                }
                ServerEvent::Finished(outcome) => {
                    if let Err(status) = outcome {
                        assert!(!status.code().is_ok(), "failed with ok");
                    }
                    assert!(call.is_finished());
                    self.over = true;
                }
            }
        }
    }
}

/// Drives one [`ServerCall`] through a script, checking after every step.
pub fn server_call(script: ServerScript) {
    let start = Instant::now();
    let mut now = start;
    let method = METHODS.get(usize::from(script.method)).copied();
    let path = method.map_or("/test.v1.Echo/Missing", |m| m.path);
    let mut uri = format!("http://fuzz{path}");
    if !script.query.is_empty() {
        uri.push('?');
        uri.push_str(&String::from_utf8_lossy(&script.query));
    }
    let mut request = http::Request::new(());
    *request.uri_mut() = uri.parse().unwrap_or_else(|_| path.parse().expect("path"));
    *request.method_mut() = match script.http_method % 3 {
        0 => Method::POST,
        1 => Method::GET,
        _ => Method::PUT,
    };
    *request.headers_mut() = header_map(&script.headers);
    let (parts, ()) = request.into_parts();
    let max_recv = usize::from(script.max_recv);
    let max_send = usize::from(script.max_send);
    let config = ServerConfig {
        compression: if script.options & 2 != 0 {
            CompressionRegistry::empty()
        } else {
            CompressionRegistry::default()
        },
        compress_min_bytes: 16,
        max_recv_message_size: max_recv,
        max_send_message_size: max_send,
        require_connect_protocol_version: script.options & 1 != 0,
    };
    let mut call = ServerCall::new(&config, method, &parts, now);
    let mut watch = ServerWatch {
        client_streams: method.is_some_and(|m| m.stream_type.client_streams()),
        ..ServerWatch::default()
    };
    watch.drain(&mut call, max_recv);

    for op in &script.ops {
        match op {
            ServerOp::Data(d) => call.recv_data(Bytes::copy_from_slice(d)),
            ServerOp::Envelope(f, c, d) => call.recv_data(encode_envelope(
                *f,
                [Some("gzip"), Some("zstd")]
                    .get(usize::from(*c))
                    .copied()
                    .flatten(),
                d,
            )),
            ServerOp::End => call.recv_end(None),
            ServerOp::Reset => {
                call.recv_reset(crate::Reset::H2(0x8));
                watch.reset = true;
                watch.drain(&mut call, max_recv);
                assert!(call.is_finished());
                assert!(watch.over, "reset without a final status");
            }
            ServerOp::Cancel => {
                let was_finished = call.is_finished();
                call.cancel();
                watch.drain(&mut call, max_recv);
                assert!(call.is_finished() && watch.over);
                assert!(was_finished || watch.reset, "cancel without a reset");
            }
            ServerOp::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                let deadline = call.poll_timeout();
                call.handle_timeout(now);
                watch.drain(&mut call, max_recv);
                if deadline.is_some_and(|d| d <= now) {
                    assert!(call.is_finished(), "deadline passed but the call goes on");
                }
                // A second, spurious timeout changes nothing.
                call.handle_timeout(now);
                assert!(call.poll_transmit().is_none() && call.poll_event().is_none());
            }
            ServerOp::SendHeaders(hs) => {
                let _ = call.send_headers(header_map(hs));
            }
            ServerOp::SendMessage(d) => {
                // Odd lengths are written in place; those starting with 0xff are then dropped unsent.
                if d.len() % 2 == 1 {
                    let mut writer = call.message_writer();
                    writer.buffer().extend_from_slice(d);
                    if d[0] != 0xff {
                        let _ = writer.send();
                    }
                } else {
                    let _ = call.send_message(Bytes::copy_from_slice(d));
                }
            }
            ServerOp::Finish(code, message, details, trailers) => {
                let was_finished = call.is_finished();
                let _ = call.finish(outcome(*code, message, details), header_map(trailers));
                assert!(call.is_finished(), "finish left the call open");
                watch.drain(&mut call, max_recv);
                if !was_finished {
                    assert!(
                        watch.ended || watch.reset,
                        "finished without ending the response"
                    );
                    assert!(watch.over, "finished without a final event");
                }
            }
        }
        watch.drain(&mut call, max_recv);
        if call.is_finished() {
            assert!(
                call.poll_timeout().is_none(),
                "a finished call wants a timer"
            );
        }
    }
    // The connection goes away: every call reaches its final event.
    call.recv_reset(crate::Reset::ConnectionLost);
    watch.reset = true;
    watch.drain(&mut call, max_recv);
    assert!(watch.over);
}

// ---------------------------------------------------------------------------------------------------
// ClientCall
// ---------------------------------------------------------------------------------------------------

/// Client settings and a sequence of commands and response inputs for one [`ClientCall`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClientScript {
    /// Index into Connect, gRPC, gRPC-Web.
    pub protocol: u8,
    /// Index into proto, JSON.
    pub codec: u8,
    /// Index into the methods.
    pub method: u8,
    /// Index into none, gzip, zstd, an unknown name.
    pub send_compression: u8,
    /// Bit 0: Connect GET; bit 1: accept no compression; bit 2: a timeout.
    pub options: u8,
    /// The timeout in milliseconds (with `options` bit 2).
    pub timeout_ms: u16,
    /// Receive limit.
    pub max_recv: u16,
    /// The operations, in order.
    pub ops: Vec<ClientOp>,
}

/// One application command or response input of a [`ClientScript`].
#[derive(Clone, Debug, PartialEq)]
pub enum ClientOp {
    /// `send_message`, or for odd lengths `message_writer` (then dropped unsent when the first byte
    /// is 0xff).
    SendMessage(Vec<u8>),
    /// `close_send`.
    CloseSend,
    /// `cancel`.
    Cancel,
    /// The response head: HTTP status and headers.
    RecvHead(u16, Vec<(Vec<u8>, Vec<u8>)>),
    /// A raw body chunk.
    Data(Vec<u8>),
    /// An envelope (flags, compression index into gzip, zstd, payload).
    Envelope(u8, u8, Vec<u8>),
    /// HTTP trailers.
    Trailers(Vec<(Vec<u8>, Vec<u8>)>),
    /// End of the response body without trailers.
    End,
    /// Reset with an HTTP/2 code (`u32::MAX`: the connection failed).
    Reset(u32),
    /// The clock advances by this many milliseconds, then `handle_timeout`.
    Advance(u16),
}

impl ClientScript {
    fn read(u: &mut Reader<'_>) -> Self {
        let mut script = ClientScript {
            protocol: u.u8(),
            codec: u.u8(),
            method: u.u8(),
            send_compression: u.u8(),
            options: u.u8(),
            timeout_ms: u.u16(),
            max_recv: u.u16(),
            ops: Vec::new(),
        };
        while !u.is_empty() && script.ops.len() < MAX_OPS {
            script.ops.push(match u.u8() % 10 {
                0 => ClientOp::SendMessage(u.bytes()),
                1 => ClientOp::CloseSend,
                2 => ClientOp::Cancel,
                3 => ClientOp::RecvHead(u.u16(), u.headers()),
                4 => ClientOp::Data(u.bytes()),
                5 => ClientOp::Envelope(u.u8(), u.u8(), u.bytes()),
                6 => ClientOp::Trailers(u.headers()),
                7 => ClientOp::End,
                8 => ClientOp::Reset(u.u32()),
                _ => ClientOp::Advance(u.u16()),
            });
        }
        script
    }

    /// The script in its byte format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.protocol);
        w.u8(self.codec);
        w.u8(self.method);
        w.u8(self.send_compression);
        w.u8(self.options);
        w.u16(self.timeout_ms);
        w.u16(self.max_recv);
        for op in &self.ops {
            match op {
                ClientOp::SendMessage(d) => {
                    w.u8(0);
                    w.bytes(d);
                }
                ClientOp::CloseSend => w.u8(1),
                ClientOp::Cancel => w.u8(2),
                ClientOp::RecvHead(status, hs) => {
                    w.u8(3);
                    w.u16(*status);
                    w.headers(hs);
                }
                ClientOp::Data(d) => {
                    w.u8(4);
                    w.bytes(d);
                }
                ClientOp::Envelope(f, c, d) => {
                    w.u8(5);
                    w.u8(*f);
                    w.u8(*c);
                    w.bytes(d);
                }
                ClientOp::Trailers(hs) => {
                    w.u8(6);
                    w.headers(hs);
                }
                ClientOp::End => w.u8(7),
                ClientOp::Reset(code) => {
                    w.u8(8);
                    w.u32(*code);
                }
                ClientOp::Advance(ms) => {
                    w.u8(9);
                    w.u16(*ms);
                }
            }
        }
        w.0
    }
}

arbitrary_via_reader!(ClientScript);

/// Checks what a [`ClientCall`] emits against the rules every driver relies on.
#[derive(Default)]
struct ClientWatch {
    head: bool,
    ended: bool,
    aborted: bool,
    headers: bool,
    messages: usize,
    finished: Option<bool>,
}

impl ClientWatch {
    /// Drains the outputs; returns whether anything was transmitted.
    fn drain(&mut self, call: &mut ClientCall, method: MethodInfo, max_recv: usize) -> bool {
        let mut transmitted = false;
        while let Some(t) = call.poll_transmit() {
            transmitted = true;
            assert!(!self.aborted, "transmit after abort: {t:?}");
            match t {
                ClientTransmit::Head(_) => {
                    assert!(!self.head, "second request head");
                    self.head = true;
                }
                ClientTransmit::Data(_) => {
                    assert!(self.head && !self.ended, "data outside the request body");
                }
                ClientTransmit::End => {
                    assert!(self.head && !self.ended, "end outside the request body");
                    self.ended = true;
                }
                ClientTransmit::Reset => {
                    assert!(self.head, "reset before the head");
                    self.aborted = true;
                }
            }
        }
        while let Some(e) = call.poll_event() {
            assert!(self.finished.is_none(), "event after Finished: {e:?}");
            match e {
                ClientEvent::Headers(_) => {
                    assert!(!self.headers && self.messages == 0, "headers out of place");
                    self.headers = true;
                }
                ClientEvent::Message(m) => {
                    assert!(m.len() <= max_recv, "message over the receive limit");
                    self.messages += 1;
                    assert!(method.stream_type.server_streams() || self.messages == 1);
                }
                ClientEvent::Finished { result, .. } => {
                    assert!(call.is_finished());
                    if result.is_ok() && !method.stream_type.server_streams() {
                        assert_eq!(self.messages, 1, "a unary success without its message");
                    }
                    self.finished = Some(result.is_ok());
                }
            }
        }
        assert_eq!(
            call.is_finished(),
            self.finished.is_some(),
            "is_finished disagrees"
        );
        if self.finished.is_some() {
            assert!(
                call.poll_timeout().is_none(),
                "a finished call wants a timer"
            );
        }
        transmitted
    }
}

/// Drives one [`ClientCall`] through a script, checking after every step.
pub fn client_call(script: ClientScript) {
    let start = Instant::now();
    let mut now = start;
    let method = pick(&mut Reader::new(&[script.method]), &METHODS);
    let mut config = ClientConfig::new(
        pick(&mut Reader::new(&[script.protocol]), &PROTOCOLS),
        pick(&mut Reader::new(&[script.codec]), &CODECS),
    );
    config.send_compression = pick(&mut Reader::new(&[script.send_compression]), &COMPRESSIONS)
        .and_then(|name| CompressionRegistry::default().get(name).map(|c| c.name()));
    config.use_get = script.options & 1 != 0;
    if script.options & 2 != 0 {
        config.compression = CompressionRegistry::empty();
    }
    config.compress_min_bytes = 16;
    config.max_recv_message_size = usize::from(script.max_recv);
    config.timeout =
        (script.options & 4 != 0).then(|| Duration::from_millis(u64::from(script.timeout_ms)));
    let max_recv = config.max_recv_message_size;
    let base: http::Uri = "http://fuzz".parse().expect("uri");
    let mut call = ClientCall::new(&config, method, &base, CallOptions::default(), now);
    let mut watch = ClientWatch::default();
    watch.drain(&mut call, method, max_recv);
    let recv_compression = ["gzip", "zstd"];

    for op in &script.ops {
        let finished_before = watch.finished.is_some();
        let mut transmitted = false;
        match op {
            ClientOp::SendMessage(d) => {
                // Odd lengths are written in place; those starting with 0xff are then dropped unsent.
                if d.len() % 2 == 1 {
                    let mut writer = call.message_writer();
                    writer.buffer().extend_from_slice(d);
                    if d[0] != 0xff {
                        let _ = writer.send();
                    }
                } else {
                    let _ = call.send_message(Bytes::copy_from_slice(d));
                }
            }
            ClientOp::CloseSend => {
                let _ = call.close_send();
            }
            ClientOp::Cancel => call.cancel(),
            ClientOp::RecvHead(status, hs) => {
                let mut response = http::Response::new(());
                *response.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
                *response.headers_mut() = header_map(hs);
                call.recv_head(response);
            }
            ClientOp::Data(d) => call.recv_data(Bytes::copy_from_slice(d)),
            ClientOp::Envelope(f, c, d) => call.recv_data(encode_envelope(
                *f,
                recv_compression.get(usize::from(*c)).copied(),
                d,
            )),
            ClientOp::Trailers(hs) => call.recv_end(Some(header_map(hs))),
            ClientOp::End => call.recv_end(None),
            ClientOp::Reset(code) => call.recv_reset(if *code == u32::MAX {
                crate::Reset::ConnectionLost
            } else if code & 0x8000_0000 != 0 {
                crate::Reset::H3(u64::from(code & 0x7fff_ffff))
            } else {
                crate::Reset::H2(*code)
            }),
            ClientOp::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                let deadline = call.poll_timeout();
                call.handle_timeout(now);
                transmitted |= watch.drain(&mut call, method, max_recv);
                if deadline.is_some_and(|d| d <= now) {
                    assert_eq!(
                        watch.finished,
                        Some(false),
                        "deadline passed but the call goes on"
                    );
                }
                call.handle_timeout(now);
            }
        }
        transmitted |= watch.drain(&mut call, method, max_recv);
        // Nothing at all happens after the final status, not even an abort.
        assert!(!(finished_before && transmitted), "transmit after Finished");
        if matches!(
            op,
            ClientOp::Reset(_) | ClientOp::End | ClientOp::Trailers(_)
        ) {
            assert!(
                watch.finished.is_some(),
                "the response ended but the call did not finish"
            );
        }
    }
    call.recv_end(None);
    watch.drain(&mut call, method, max_recv);
    assert!(
        watch.finished.is_some(),
        "the response ended but the call did not finish"
    );
}

// ---------------------------------------------------------------------------------------------------
// ClientCall ↔ ServerCall
// ---------------------------------------------------------------------------------------------------

/// One exchange between a [`ClientCall`] and a [`ServerCall`] in memory, with an application that
/// answers once the request stream closed, and body chunks cut to the given sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct PairScript {
    /// Index into Connect, gRPC, gRPC-Web.
    pub protocol: u8,
    /// Index into proto, JSON.
    pub codec: u8,
    /// Index into the methods.
    pub method: u8,
    /// Index into none, gzip, zstd, an unknown name.
    pub send_compression: u8,
    /// Bit 0: Connect GET; bit 1: the client supports no compression; bit 2: a timeout.
    pub options: u8,
    /// Messages smaller than this are not compressed (both sides).
    pub compress_min: u16,
    /// Request messages (a unary request takes the first, or an empty one).
    pub requests: Vec<Vec<u8>>,
    /// Response headers: name index, value.
    pub headers: Vec<(u8, Vec<u8>)>,
    /// Response messages (a unary success takes the first, or an empty one; a unary error none).
    pub responses: Vec<Vec<u8>>,
    /// The outcome: 0 is Ok, anything else that code with `message` and `details`.
    pub code: u32,
    /// The error message.
    pub message: Vec<u8>,
    /// Error details: type name, value.
    pub details: Vec<(Vec<u8>, Vec<u8>)>,
    /// Trailers: name index, value.
    pub trailers: Vec<(u8, Vec<u8>)>,
    /// Request body chunk sizes, cycling (empty: as sent).
    pub request_chunks: Vec<u8>,
    /// Response body chunk sizes, cycling (empty: as sent).
    pub response_chunks: Vec<u8>,
}

const METADATA_NAMES: [&str; 3] = ["x-meta", "x-other", "x-trace-bin"];

impl PairScript {
    fn read(u: &mut Reader<'_>) -> Self {
        let list = |u: &mut Reader<'_>, max: u8| (0..u.u8() % max).map(|_| u.bytes()).collect();
        let metadata = |u: &mut Reader<'_>| (0..u.u8() % 8).map(|_| (u.u8(), u.bytes())).collect();
        PairScript {
            protocol: u.u8(),
            codec: u.u8(),
            method: u.u8(),
            send_compression: u.u8(),
            options: u.u8(),
            compress_min: u.u16(),
            requests: list(u, 8),
            headers: metadata(u),
            responses: list(u, 8),
            code: u.u32(),
            message: u.bytes(),
            details: (0..u.u8() % 4).map(|_| (u.bytes(), u.bytes())).collect(),
            trailers: metadata(u),
            request_chunks: u.bytes(),
            response_chunks: u.bytes(),
        }
    }

    /// The script in its byte format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for b in [
            self.protocol,
            self.codec,
            self.method,
            self.send_compression,
            self.options,
        ] {
            w.u8(b);
        }
        w.u16(self.compress_min);
        let list = |w: &mut Writer, items: &[Vec<u8>]| {
            w.u8(items.len() as u8);
            items.iter().for_each(|i| w.bytes(i));
        };
        let metadata = |w: &mut Writer, items: &[(u8, Vec<u8>)]| {
            w.u8(items.len() as u8);
            for (n, v) in items {
                w.u8(*n);
                w.bytes(v);
            }
        };
        list(&mut w, &self.requests);
        metadata(&mut w, &self.headers);
        list(&mut w, &self.responses);
        w.u32(self.code);
        w.bytes(&self.message);
        w.u8(self.details.len() as u8);
        for (t, v) in &self.details {
            w.bytes(t);
            w.bytes(v);
        }
        metadata(&mut w, &self.trailers);
        w.bytes(&self.request_chunks);
        w.bytes(&self.response_chunks);
        w.0
    }

    fn method(&self) -> MethodInfo {
        pick(&mut Reader::new(&[self.method]), &METHODS)
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(
            pick(&mut Reader::new(&[self.protocol]), &PROTOCOLS),
            pick(&mut Reader::new(&[self.codec]), &CODECS),
        );
        if self.options & 2 != 0 {
            config.compression = CompressionRegistry::empty();
        }
        config.send_compression = pick(&mut Reader::new(&[self.send_compression]), &COMPRESSIONS)
            .and_then(|name| CompressionRegistry::default().get(name).map(|c| c.name()));
        config.use_get = self.options & 1 != 0;
        config.compress_min_bytes = usize::from(self.compress_min);
        config.timeout = (self.options & 4 != 0).then(|| Duration::from_secs(30));
        config
    }

    /// The request messages as a well-behaved client sends them.
    fn request_messages(&self) -> Vec<Bytes> {
        let all = self.requests.iter().map(|r| Bytes::copy_from_slice(r));
        if self.method().stream_type.client_streams() {
            all.collect()
        } else {
            vec![all.take(1).next().unwrap_or_default()]
        }
    }

    fn outcome(&self) -> Result<(), Status> {
        let details: Vec<_> = self
            .details
            .iter()
            .map(|(name, value)| {
                // Type names as a registry writes them: a letter, then letters and dots.
                let mut name: Vec<u8> = name
                    .iter()
                    .map(|b| b"abcxyz."[usize::from(b % 7)])
                    .collect();
                name.insert(0, b'a');
                (name, value.clone())
            })
            .collect();
        outcome(self.code, &self.message, &details)
    }

    /// The response messages as a well-behaved application sends them.
    fn response_messages(&self) -> Vec<Bytes> {
        let all = self.responses.iter().map(|r| Bytes::copy_from_slice(r));
        match (self.method().stream_type.server_streams(), self.code) {
            (true, _) => all.collect(),
            (false, 0) => vec![all.take(1).next().unwrap_or_default()],
            (false, _) => Vec::new(),
        }
    }
}

arbitrary_via_reader!(PairScript);

fn metadata_map(items: &[(u8, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in items {
        let name = METADATA_NAMES[usize::from(*n) % METADATA_NAMES.len()];
        let value = if name.ends_with("-bin") {
            metadata::encode_binary(v)
        } else {
            let text: Vec<u8> = v.iter().map(|b| b'a' + b % 26).collect();
            HeaderValue::from_bytes(&text).expect("letters")
        };
        map.append(name, value);
    }
    map
}

/// Runs the exchange on the in-memory pair; returns the client's events, the server's events and
/// the trace.
fn run_pair(script: &PairScript) -> (Vec<ClientEvent>, Vec<ServerEvent>, Vec<Wire>) {
    let server_config = ServerConfig {
        compress_min_bytes: usize::from(script.compress_min),
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(
        &script.client_config(),
        server_config,
        script.method(),
        CallOptions::default(),
    );
    pair.record = true;
    pair.request_chunks = script.request_chunks.iter().map(|&n| n.into()).collect();
    pair.response_chunks = script.response_chunks.iter().map(|&n| n.into()).collect();
    pair.script = Script {
        headers: metadata_map(&script.headers),
        trailers: metadata_map(&script.trailers),
        outcome: script.outcome(),
        replies: Replies::Fixed(script.response_messages()),
        hang: false,
        in_place: false,
    };
    for message in script.request_messages() {
        pair.client
            .send_message(message)
            .expect("well-behaved client");
    }
    pair.client.close_send().expect("well-behaved client");
    while pair.step() {}
    assert!(
        !pair.observed.client_reset,
        "the client reset a well-behaved call"
    );
    let observed = pair.observed;
    (
        observed.client_events,
        observed.server_events,
        observed.trace,
    )
}

/// A client↔server exchange delivers what each application sent, whatever the chunking: the request
/// messages, the response headers, messages and trailers, and the outcome with its code, message and
/// details.
pub fn call_pair(script: PairScript) {
    let (client_events, server_events, _) = run_pair(&script);
    let requests: Vec<_> = server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message(m) => Some(m.clone()),
            ServerEvent::Finished(outcome) => {
                assert_eq!(outcome, &script.outcome(), "the server's outcome");
                None
            }
            ServerEvent::InputClosed => None,
        })
        .collect();
    assert_eq!(requests, script.request_messages(), "request messages");
    assert!(
        matches!(server_events.last(), Some(ServerEvent::Finished(_))),
        "the server's last event is Finished: {server_events:?}"
    );

    let mut messages = Vec::new();
    let mut headers = HeaderMap::new();
    let mut finished = None;
    for event in client_events {
        assert!(finished.is_none(), "event after Finished");
        match event {
            ClientEvent::Headers(h) => headers = h,
            ClientEvent::Message(m) => messages.push(m),
            ClientEvent::Finished { result, trailers } => finished = Some((result, trailers)),
        }
    }
    let (result, trailers) = finished.expect("the client finished");
    assert_eq!(result, script.outcome(), "outcome");
    assert_eq!(messages, script.response_messages(), "response messages");
    // Each name's values, in order, somewhere in what the client saw (a trailers-only response merges
    // headers and trailers).
    let contains = |map: &HeaderMap, expected: &HeaderMap| {
        expected.keys().all(|name| {
            let got: Vec<_> = map.get_all(name).iter().collect();
            let want: Vec<_> = expected.get_all(name).iter().collect();
            got.windows(want.len()).any(|w| w == want)
        })
    };
    let expected_headers = metadata_map(&script.headers);
    assert!(
        contains(&headers, &expected_headers) || contains(&trailers, &expected_headers),
        "response headers: got {headers:?} and trailers {trailers:?}"
    );
    assert!(
        contains(&trailers, &metadata_map(&script.trailers)),
        "trailers: got {trailers:?}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Targets by name, and their seeds
// ---------------------------------------------------------------------------------------------------

/// The fuzz targets, by the names of `fuzz/fuzz_targets/*.rs`.
pub const TARGETS: [&str; 18] = [
    "envelope",
    "grpc_web_trailers",
    "connect_error",
    "connect_end_stream",
    "timeout",
    "grpc_message",
    "binary_metadata",
    "connect_get_query",
    "content_type",
    "grpc_status_details",
    "decompress_gzip",
    "decompress_zstd",
    "decompress_br",
    "decompress_deflate",
    "decompress_snappy",
    "server_call",
    "client_call",
    "call_pair",
];

/// Runs one input through the target of that name, as the fuzz target would (for replaying seeds and
/// crash inputs in tests).
pub fn run(target: &str, data: &[u8]) {
    let mut u = Reader::new(data);
    match target {
        "envelope" => envelope(data),
        "grpc_web_trailers" => grpc_web_trailers(data),
        "connect_error" => connect_error(data),
        "connect_end_stream" => connect_end_stream(data),
        "timeout" => timeout(data),
        "grpc_message" => grpc_message(data),
        "binary_metadata" => binary_metadata(data),
        "connect_get_query" => connect_get_query(data),
        "content_type" => content_type(data),
        "grpc_status_details" => grpc_status_details(data),
        #[cfg(feature = "gzip")]
        "decompress_gzip" => decompress_gzip(data),
        #[cfg(feature = "zstd")]
        "decompress_zstd" => decompress_zstd(data),
        #[cfg(feature = "br")]
        "decompress_br" => decompress_br(data),
        #[cfg(feature = "deflate")]
        "decompress_deflate" => decompress_deflate(data),
        #[cfg(feature = "snappy")]
        "decompress_snappy" => decompress_snappy(data),
        "server_call" => server_call(ServerScript::read(&mut u)),
        "client_call" => client_call(ClientScript::read(&mut u)),
        "call_pair" => call_pair(PairScript::read(&mut u)),
        _ => {}
    }
}

type Corpora = std::collections::BTreeMap<&'static str, std::collections::BTreeSet<Vec<u8>>>;

/// Seed inputs for every target, taken from real exchanges of the client↔server pair: every protocol,
/// stream type, codec and compression, succeeding and failing, some with Connect GET and re-chunked
/// bodies. The machine targets get the exchanges replayed as scripts; the parser targets get the wire
/// forms found in them (envelopes, trailer blocks, EndStream and error bodies, header values, queries,
/// compressed payloads).
pub fn seed_corpora() -> Corpora {
    let mut seeds: Corpora = TARGETS.iter().map(|t| (*t, Default::default())).collect();
    let text = |n: usize| format!("{{\"n\":{n},\"text\":\"{}\"}}", "lorem ipsum ".repeat(12));
    for (protocol, method, codec, compression) in (0..3u8).flat_map(|p| {
        // Every compression but the last, which nobody supports.
        (0..4u8).flat_map(move |m| (0..2u8).flat_map(move |c| (0..6u8).map(move |z| (p, m, c, z))))
    }) {
        for (variant, code) in [(0u8, 0u32), (1, 9), (2, 0)] {
            // Variant 2: Connect GET where it applies, else small chunks and no timeout.
            let get = variant == 2 && protocol == 0 && method == 0;
            let script = PairScript {
                protocol,
                codec,
                method,
                send_compression: compression,
                options: u8::from(get) | if variant == 2 { 0 } else { 4 },
                compress_min: 0,
                requests: (0..3).map(|n| text(n).into_bytes()).collect(),
                headers: vec![(0, b"hello".to_vec()), (2, vec![0, 0xff])],
                responses: (3..5).map(|n| text(n).into_bytes()).collect(),
                code,
                message: "bad state: naïve 100% ✓".as_bytes().to_vec(),
                details: vec![(
                    b"google.rpc.RetryInfo".to_vec(),
                    b"\x0a\x02\x08\x05".to_vec(),
                )],
                trailers: vec![(1, b"bye".to_vec()), (2, vec![1])],
                request_chunks: if variant == 2 {
                    vec![7, 1, 200]
                } else {
                    Vec::new()
                },
                response_chunks: if variant == 2 {
                    vec![3, 100]
                } else {
                    Vec::new()
                },
            };
            let (_, _, trace) = run_pair(&script);
            add_trace_seeds(&mut seeds, &script, &trace);
        }
    }
    seeds
}

fn add_trace_seeds(seeds: &mut Corpora, script: &PairScript, trace: &[Wire]) {
    let mut add = |target: &'static str, data: Vec<u8>| {
        seeds.entry(target).or_default().insert(data);
    };
    let method = script.method();
    let mut server = ServerScript {
        method: script.method % 4,
        http_method: 0,
        query: Vec::new(),
        headers: Vec::new(),
        max_recv: u16::MAX,
        max_send: u16::MAX,
        options: 0,
        ops: Vec::new(),
    };
    let mut client = ClientScript {
        protocol: script.protocol % 3,
        codec: script.codec % 2,
        method: script.method % 4,
        send_compression: script.send_compression % COMPRESSIONS.len() as u8,
        options: script.options & 7,
        timeout_ms: 30_000,
        max_recv: u16::MAX,
        ops: script
            .request_messages()
            .iter()
            .map(|m| ClientOp::SendMessage(m.to_vec()))
            .collect(),
    };
    if method.stream_type.client_streams() {
        client.ops.push(ClientOp::CloseSend);
    }
    let (mut request_body, mut response_body) = (Vec::new(), Vec::new());
    let (mut request_encoding, mut response_encoding) = (None, None);
    let mut connect_unary_error = false;
    let mut maps = Vec::new();
    for wire in trace {
        match wire {
            Wire::RequestHead(parts) => {
                server.headers = header_pairs(&parts.headers);
                if parts.method == Method::GET {
                    server.http_method = 1;
                    let query = parts.uri.query().unwrap_or_default();
                    server.query = query.as_bytes().to_vec();
                    add("connect_get_query", [&[1][..], query.as_bytes()].concat());
                    if let Ok(get) = connect::decode_get_query(query, true) {
                        request_encoding = get.compression;
                        request_body = get.message.to_vec();
                    }
                }
                request_encoding = request_encoding.or_else(|| {
                    [
                        http::header::CONTENT_ENCODING,
                        h::CONNECT_CONTENT_ENCODING,
                        h::GRPC_ENCODING,
                    ]
                    .iter()
                    .find_map(|n| parts.headers.get(n)?.to_str().ok().map(str::to_owned))
                });
                maps.push(parts.headers.clone());
            }
            Wire::RequestData(d) => {
                request_body.extend_from_slice(d);
                server.ops.push(ServerOp::Data(d.to_vec()));
            }
            Wire::RequestEnd => server.ops.push(ServerOp::End),
            Wire::AppHeaders(hs) => server.ops.push(ServerOp::SendHeaders(header_pairs(hs))),
            Wire::AppMessage(m) => server.ops.push(ServerOp::SendMessage(m.to_vec())),
            Wire::AppFinish(result, trailers) => {
                let (code, message, details) = match result {
                    Ok(()) => (0, Vec::new(), Vec::new()),
                    Err(s) => (
                        s.code().as_u32(),
                        s.message().as_bytes().to_vec(),
                        s.details()
                            .iter()
                            .map(|d| (d.type_name.as_bytes().to_vec(), d.value.to_vec()))
                            .collect(),
                    ),
                };
                server.ops.push(ServerOp::Finish(
                    code,
                    message,
                    details,
                    header_pairs(trailers),
                ));
            }
            Wire::ResponseHead(parts) => {
                client.ops.push(ClientOp::RecvHead(
                    parts.status.as_u16(),
                    header_pairs(&parts.headers),
                ));
                connect_unary_error = parts.status != StatusCode::OK;
                response_encoding = [
                    http::header::CONTENT_ENCODING,
                    h::CONNECT_CONTENT_ENCODING,
                    h::GRPC_ENCODING,
                ]
                .iter()
                .find_map(|n| parts.headers.get(n)?.to_str().ok().map(str::to_owned));
                maps.push(parts.headers.clone());
            }
            Wire::ResponseData(d) => {
                response_body.extend_from_slice(d);
                client.ops.push(ClientOp::Data(d.to_vec()));
            }
            Wire::ResponseTrailers(t) => {
                client.ops.push(ClientOp::Trailers(header_pairs(t)));
                maps.push(t.clone());
            }
            Wire::ResponseEnd => client.ops.push(ClientOp::End),
            // A well-behaved exchange has no resets.
            Wire::RequestReset | Wire::ResponseReset => {}
        }
    }
    add("server_call", server.to_bytes());
    add("client_call", client.to_bytes());
    add("call_pair", script.to_bytes());

    let connect_unary = script.protocol % 3 == 0 && method.stream_type == StreamType::Unary;
    let add_compressed =
        |add: &mut dyn FnMut(&'static str, Vec<u8>), encoding: &Option<String>, data: &[u8]| {
            let target = match encoding.as_deref() {
                Some("gzip") => "decompress_gzip",
                Some("zstd") => "decompress_zstd",
                Some("br") => "decompress_br",
                Some("deflate") => "decompress_deflate",
                Some("snappy") => "decompress_snappy",
                _ => return Bytes::copy_from_slice(data),
            };
            add(target, [&[0xff, 0xff][..], data].concat());
            let registry = CompressionRegistry::default();
            let algorithm = registry
                .get(target.trim_start_matches("decompress_"))
                .expect("known");
            algorithm
                .decompress(data, 1 << 20)
                .expect("our own compressed data")
        };
    if connect_unary {
        let body = add_compressed(&mut add, &response_encoding, &response_body);
        if connect_unary_error {
            add("connect_error", body.to_vec());
        }
        if !request_body.is_empty() {
            add_compressed(&mut add, &request_encoding, &request_body);
        }
    } else {
        for (body, encoding) in [
            (&request_body, &request_encoding),
            (&response_body, &response_encoding),
        ] {
            add("envelope", [&[0xff, 0xff, 0][..], body].concat());
            add("envelope", [&[0x00, 0x04, 3, 1, 7, 200][..], body].concat());
            let mut decoder = EnvelopeDecoder::new(1 << 20);
            decoder.push(Bytes::copy_from_slice(body));
            while let Ok(Some(e)) = decoder.decode() {
                let payload = if e.flags & flags::COMPRESSED != 0 {
                    add_compressed(&mut add, encoding, &e.data)
                } else {
                    e.data
                };
                if e.flags & flags::END_STREAM != 0 && script.protocol % 3 == 0 {
                    add("connect_end_stream", payload.to_vec());
                    if let Ok(end) = connect::decode_end_stream(&payload) {
                        maps.push(end.metadata);
                    }
                } else if e.flags & flags::TRAILERS != 0 {
                    add("grpc_web_trailers", payload.to_vec());
                    if let Ok(t) = grpc_web::decode_trailers(&payload) {
                        maps.push(t);
                    }
                }
            }
        }
    }
    for map in &maps {
        for (name, value) in map {
            let bytes = value.as_bytes().to_vec();
            match name.as_str() {
                "content-type" => add("content_type", bytes),
                _ if name == h::CONNECT_TIMEOUT_MS || name == h::GRPC_TIMEOUT => {
                    add("timeout", bytes)
                }
                _ if name == h::GRPC_MESSAGE => add("grpc_message", bytes),
                n if n.ends_with("-bin") => {
                    if name == h::GRPC_STATUS_DETAILS_BIN {
                        if let Ok(details) = metadata::decode_binary(value) {
                            add("grpc_status_details", details.to_vec());
                        }
                    }
                    add("binary_metadata", bytes);
                }
                _ => {}
            }
        }
    }
}

/// Writes [`seed_corpora`] as `dir/<target>/<hash>`; returns how many files it wrote.
pub fn write_seed_corpora(dir: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for (target, seeds) in seed_corpora() {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        for seed in seeds {
            let mut hasher = DefaultHasher::new();
            seed.hash(&mut hasher);
            std::fs::write(
                target_dir.join(format!("seed-{:016x}", hasher.finish())),
                &seed,
            )?;
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Also writes the corpora when `CONNECT_FUZZ_CORPUS_DIR` is set (`fuzz/run.sh` does).
    #[test]
    fn every_target_has_seeds_that_pass_its_checks() {
        let corpora = seed_corpora();
        for (target, seeds) in &corpora {
            assert!(!seeds.is_empty(), "no seeds for {target}");
            for seed in seeds {
                run(target, seed);
            }
        }
        if let Some(dir) = std::env::var_os("CONNECT_FUZZ_CORPUS_DIR") {
            let n = write_seed_corpora(Path::new(&dir)).expect("write the seed corpora");
            println!("wrote {n} seeds to {}", Path::new(&dir).display());
        }
    }

    /// Inputs that once broke a target, kept in `fuzz/regressions/<target>/` after their fix.
    #[test]
    fn crash_inputs_stay_fixed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
        let mut replayed = 0;
        for target in TARGETS {
            let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("directory entry").path();
                println!("{target}: {}", path.display());
                run(target, &std::fs::read(&path).expect("read a crash input"));
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no crash inputs found in {}", dir.display());
    }

    #[test]
    fn scripts_round_trip_through_their_byte_format() {
        let corpora = seed_corpora();
        for seed in &corpora["server_call"] {
            assert_eq!(&ServerScript::read(&mut Reader::new(seed)).to_bytes(), seed);
        }
        for seed in &corpora["client_call"] {
            assert_eq!(&ClientScript::read(&mut Reader::new(seed)).to_bytes(), seed);
        }
        for seed in &corpora["call_pair"] {
            assert_eq!(&PairScript::read(&mut Reader::new(seed)).to_bytes(), seed);
        }
    }
}
