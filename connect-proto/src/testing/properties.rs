//! Properties of every parser of the core, each a function of arbitrary bytes that panics when its
//! property fails: what the parser fuzz targets run (through `connect_proto::fuzzing`), and what
//! `tests/fuzz_inputs.rs` replays their seeds and crash inputs through on stable. Beyond "no panic":
//! parsers round-trip through their encoders, and outputs stay within the configured limits.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::format::Reader;
use crate::envelope::{self, Envelope, EnvelopeDecoder, PREFIX_LEN};
use crate::metadata;
use crate::protocol::{connect, grpc, grpc_web};
use crate::timeout;
use crate::{Code, Codec, ContentType};

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
fn decompress_bounded(algorithm: &dyn crate::Compressor, data: &[u8]) {
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
