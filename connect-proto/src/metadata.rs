//! Custom metadata: binary (`-bin`) values and the header names an application may not set.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::protocol::Protocol;

/// Whether a header carries binary metadata (its name ends in `-bin`).
pub fn is_binary(name: &HeaderName) -> bool {
    name.as_str().ends_with("-bin")
}

/// Encodes a binary metadata value: standard base64 without padding (PROTOCOL-TRAPS 17).
pub fn encode_binary(value: &[u8]) -> HeaderValue {
    let encoded = STANDARD_NO_PAD.encode(value);
    // The base64 alphabet is a subset of the visible ASCII a header value allows.
    HeaderValue::from_str(&encoded).expect("base64 is a valid header value")
}

/// Decodes a binary metadata value: split on `,` (values joined by proxies, optional whitespace around
/// each part), each part padded or unpadded standard base64 (URL-safe alphabet accepted too),
/// concatenated. An empty value is an empty byte string.
pub fn decode_binary(value: &HeaderValue) -> Result<Bytes, InvalidBinaryMetadata> {
    let mut out = Vec::new();
    for part in value.as_bytes().split(|&b| b == b',') {
        let part = part.trim_ascii();
        if !part.is_empty() {
            decode_base64_into(part, &mut out).ok_or(InvalidBinaryMetadata)?;
        }
    }
    Ok(Bytes::from(out))
}

/// Lenient base64 as peers actually send it: padding optional (canonical when present), non-zero
/// trailing bits tolerated as Go's default decoder does.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes standard or URL-safe base64, padded or not, appending to `out`; `None` when it is neither.
///
/// Shared with the Connect wire forms (error detail values, GET messages), which accept the same
/// variants.
pub(crate) fn decode_base64_into(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    // A part mixing both alphabets is rejected: no encoder produces that.
    let url_safe = input.iter().any(|&b| b == b'-' || b == b'_');
    let engine = if url_safe {
        &LENIENT_URL_SAFE
    } else {
        &LENIENT_STANDARD
    };
    engine.decode_vec(input, out).ok()
}

/// A `-bin` value that is not base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidBinaryMetadata;

impl std::fmt::Display for InvalidBinaryMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("binary metadata is not valid base64")
    }
}

impl std::error::Error for InvalidBinaryMetadata {}

/// Headers owned by HTTP itself or by the framing every protocol relies on. Connection-specific
/// headers are forbidden in HTTP/2, and the content headers describe a body the call machine frames.
const RESERVED_ALWAYS: &[&str] = &[
    "accept-encoding",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is owned by the protocol (framing, content type, encoding, timeout, status...) so that
/// application metadata must not set it; such entries are dropped when a call sends metadata.
///
/// - All protocols: `content-type`, `content-length`, `content-encoding`, `accept-encoding`, `te`,
///   `trailer`, `host`, and the HTTP/1 connection-specific headers (`connection`, `keep-alive`,
///   `proxy-connection`, `transfer-encoding`, `upgrade`).
/// - gRPC and gRPC-Web: every `grpc-*` name (status, message, details, timeout, encodings, and names
///   future versions may add).
/// - Connect: every `connect-*` name, and every `trailer-*` name, since a unary response's headers with
///   that prefix are read back as trailers (PROTOCOL-TRAPS 5).
///
/// `user-agent` (and gRPC-Web's `x-user-agent`) stays with the application: gRPC lets it prepend its own
/// product token. HTTP/2 pseudo-headers cannot occur, since a `HeaderName` cannot contain `:`.
pub(crate) fn is_reserved(protocol: Protocol, name: &HeaderName) -> bool {
    let name = name.as_str();
    if RESERVED_ALWAYS.contains(&name) {
        return true;
    }
    match protocol {
        Protocol::Grpc | Protocol::GrpcWeb => name.starts_with("grpc-"),
        Protocol::Connect => name.starts_with("connect-") || name.starts_with("trailer-"),
    }
}

/// Whether `name` belongs to any of the three protocols or to HTTP itself: `content-type`,
/// `content-length`, `content-encoding`, `accept-encoding`, `te`, `trailer`, `host`, the HTTP/1
/// connection-specific headers, and every `grpc-*`, `connect-*` and `trailer-*` name. Metadata to
/// forward from one call to another (an error a proxy received, say) keeps only the names for which
/// this is false.
pub fn is_protocol_header(name: &HeaderName) -> bool {
    is_reserved(Protocol::Grpc, name) || is_reserved(Protocol::Connect, name)
}

/// Copies the application's entries of `from` into `to` (appending, every value of a multi-valued
/// name), skipping reserved names.
pub(crate) fn merge_application(protocol: Protocol, from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !is_reserved(protocol, name) {
            to.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn trap17_bin_metadata_padded_unpadded() {
        assert_eq!(encode_binary(b"a"), "YQ");
        assert_eq!(encode_binary(b"ab"), "YWI");
        assert_eq!(encode_binary(b"abc"), "YWJj");
        assert_eq!(encode_binary(&[0xfb, 0xff]), "+/8");
        for v in ["YQ", "YQ=="] {
            assert_eq!(decode_binary(&hv(v)).unwrap(), &b"a"[..], "{v}");
        }
        for v in ["YWI", "YWI="] {
            assert_eq!(decode_binary(&hv(v)).unwrap(), &b"ab"[..], "{v}");
        }
        // URL-safe alphabet.
        assert_eq!(decode_binary(&hv("-_8")).unwrap(), &[0xfb, 0xff][..]);
        assert_eq!(decode_binary(&hv("+/8=")).unwrap(), &[0xfb, 0xff][..]);
        assert_eq!(decode_binary(&hv("")).unwrap(), &b""[..]);
        for bad in ["Y", "YQ===", "Y=Q=", "YQ==YQ", "!!", "+-8"] {
            assert_eq!(decode_binary(&hv(bad)), Err(InvalidBinaryMetadata), "{bad}");
        }
    }

    #[test]
    fn trap17_bin_metadata_split_on_comma() {
        assert_eq!(decode_binary(&hv("YQ==,YWI")).unwrap(), &b"aab"[..]);
        assert_eq!(decode_binary(&hv("YQ, YWI=")).unwrap(), &b"aab"[..]);
        assert_eq!(decode_binary(&hv("YQ ,\tYWJj")).unwrap(), &b"aabc"[..]);
        assert_eq!(decode_binary(&hv("YQ,,YQ")).unwrap(), &b"aa"[..]);
    }

    #[test]
    fn reserved_names_by_protocol() {
        let name = |s: &str| HeaderName::from_bytes(s.as_bytes()).unwrap();
        for p in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
            for n in [
                "content-type",
                "Content-Length",
                "content-encoding",
                "accept-encoding",
                "te",
                "transfer-encoding",
                "connection",
                "host",
            ] {
                assert!(is_reserved(p, &name(n)), "{p:?} {n}");
            }
            for n in [
                "user-agent",
                "x-user-agent",
                "authorization",
                "x-custom-bin",
            ] {
                assert!(!is_reserved(p, &name(n)), "{p:?} {n}");
            }
        }
        for n in [
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "grpc-timeout",
            "grpc-encoding",
            "grpc-accept-encoding",
            "grpc-future",
        ] {
            assert!(is_reserved(Protocol::Grpc, &name(n)), "{n}");
            assert!(is_reserved(Protocol::GrpcWeb, &name(n)), "{n}");
            assert!(!is_reserved(Protocol::Connect, &name(n)), "{n}");
        }
        for n in [
            "connect-protocol-version",
            "connect-timeout-ms",
            "connect-content-encoding",
            "connect-accept-encoding",
            "trailer-x",
        ] {
            assert!(is_reserved(Protocol::Connect, &name(n)), "{n}");
            assert!(!is_reserved(Protocol::Grpc, &name(n)), "{n}");
        }
    }

    #[test]
    fn merge_application_keeps_every_value_and_drops_reserved() {
        let mut from = HeaderMap::new();
        from.append("x-a", hv("1"));
        from.append("x-a", hv("2"));
        from.append("grpc-status", hv("0"));
        from.append("content-type", hv("text/plain"));
        from.append("connect-timeout-ms", hv("5"));
        let mut to = HeaderMap::new();
        to.append("x-a", hv("0"));
        merge_application(Protocol::Grpc, &from, &mut to);
        let values: Vec<_> = to.get_all("x-a").iter().collect();
        assert_eq!(values, ["0", "1", "2"]);
        assert!(to.get("grpc-status").is_none());
        assert!(to.get("content-type").is_none());
        assert_eq!(to.get("connect-timeout-ms").unwrap(), "5");
    }

    proptest! {
        #[test]
        fn bin_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode_binary(&encode_binary(&bytes)).unwrap(), &bytes[..]);
        }

        #[test]
        fn bin_parts_concatenate(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..16), 1..4),
            padded in any::<bool>(),
        ) {
            let engine = if padded { base64::engine::general_purpose::STANDARD } else { STANDARD_NO_PAD };
            let joined: Vec<String> = parts.iter().map(|p| engine.encode(p)).collect();
            let value = HeaderValue::from_str(&joined.join(", ")).unwrap();
            prop_assert_eq!(decode_binary(&value).unwrap(), parts.concat());
        }

        #[test]
        fn bin_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let _ = decode_binary(&value);
            }
        }
    }
}
