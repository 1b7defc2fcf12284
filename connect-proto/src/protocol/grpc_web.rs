//! gRPC-Web wire forms: the trailers frame in the response body.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::status::Status;

/// Serializes trailers as the payload of a gRPC-Web trailers frame: `name: value\r\n` lines, names
/// lower-case, each value of a multi-valued name on its own line (PROTOCOL-TRAPS 20). The envelope
/// prefix is not included.
pub fn encode_trailers(trailers: &HeaderMap) -> Bytes {
    let mut out = Vec::new();
    for (name, value) in trailers {
        // `HeaderName` is already lower-case, and a `HeaderValue` cannot hold CR or LF.
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Bytes::from(out)
}

/// Parses a trailers frame payload with `httparse::parse_headers`: names in any case (lower-cased in
/// the map), duplicates kept in order, a missing final CRLF tolerated, an empty block giving an empty
/// map. A malformed block is an `internal` Status saying so.
pub fn decode_trailers(block: &[u8]) -> Result<HeaderMap, Status> {
    let malformed =
        |why: &str| Status::internal(format!("malformed gRPC-Web trailers frame: {why}"));
    // The frame holds header lines but, unlike an HTTP/1 head, no terminating empty line; peers differ
    // on whether the last line has its CRLF, so normalise to exactly one terminator.
    let lines = block.trim_ascii_end();
    if lines.is_empty() {
        return Ok(HeaderMap::new());
    }
    let mut buf = Vec::with_capacity(lines.len() + 4);
    buf.extend_from_slice(lines);
    buf.extend_from_slice(b"\r\n\r\n");

    // Every header needs its own line, so this bounds the count without a second pass.
    let max_headers = lines.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut parsed = vec![httparse::EMPTY_HEADER; max_headers];
    let consumed = match httparse::parse_headers(&buf, &mut parsed) {
        Ok(httparse::Status::Complete((consumed, _))) => consumed,
        Ok(httparse::Status::Partial) => return Err(malformed("incomplete header block")),
        Err(e) => return Err(malformed(&e.to_string())),
    };
    if consumed != buf.len() {
        return Err(malformed("empty line inside the header block"));
    }
    let mut map = HeaderMap::new();
    for header in parsed.iter().take_while(|h| !h.name.is_empty()) {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| malformed(&format!("invalid header name {:?}", header.name)))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| malformed(&format!("invalid value for {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Code;
    use proptest::prelude::*;

    #[test]
    fn trap20_grpc_web_trailers_any_case_duplicates() {
        let map = decode_trailers(
            b"Grpc-Status: 0\r\ngrpc-message: hi there\r\nX-Multi: a\r\nx-multi: b\r\n",
        )
        .unwrap();
        assert_eq!(map.get("grpc-status").unwrap(), "0");
        assert_eq!(map.get("grpc-message").unwrap(), "hi there");
        let multi: Vec<_> = map.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"]);
        assert_eq!(map.len(), 4);
    }

    #[test]
    fn trap20_grpc_web_trailers_line_endings() {
        for block in [
            &b"grpc-status: 5"[..],
            b"grpc-status: 5\r\n",
            b"grpc-status: 5\r\n\r\n",
            b"grpc-status:5\n",
            b"grpc-status:   5  \r\n",
        ] {
            let map = decode_trailers(block).unwrap();
            assert_eq!(map.get("grpc-status").unwrap(), "5", "{block:?}");
            assert_eq!(map.len(), 1);
        }
        assert!(decode_trailers(b"").unwrap().is_empty());
        assert!(decode_trailers(b"\r\n").unwrap().is_empty());
    }

    #[test]
    fn trap20_malformed_trailers_are_internal() {
        for bad in [
            &b"no colon here\r\n"[..],
            b"a: 1\r\n\r\nb: 2\r\n",
            b"bad name: 1\r\n",
            b": empty name\r\n",
            b"a: \x01\r\n",
        ] {
            let err = decode_trailers(bad).unwrap_err();
            assert_eq!(err.code(), Code::INTERNAL, "{bad:?}");
            assert!(err.message().contains("gRPC-Web trailers"), "{bad:?}");
        }
    }

    #[test]
    fn trap20_encode_one_line_per_value() {
        let mut map = HeaderMap::new();
        map.insert("grpc-status", HeaderValue::from_static("0"));
        map.append("X-Multi", HeaderValue::from_static("a"));
        map.append("x-multi", HeaderValue::from_static("b"));
        assert_eq!(
            &encode_trailers(&map)[..],
            b"grpc-status: 0\r\nx-multi: a\r\nx-multi: b\r\n"
        );
        assert!(encode_trailers(&HeaderMap::new()).is_empty());
    }

    fn arb_trailers() -> impl Strategy<Value = HeaderMap> {
        proptest::collection::vec(
            // Values as a peer can send them: no surrounding whitespace, which httparse trims.
            (
                "[a-zA-Z0-9][-a-zA-Z0-9_]{0,15}",
                "([!-~]([ -~]{0,20}[!-~])?)?",
            ),
            0..8,
        )
        .prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            map
        })
    }

    proptest! {
        #[test]
        fn trailers_round_trip(map in arb_trailers()) {
            prop_assert_eq!(decode_trailers(&encode_trailers(&map)).unwrap(), map);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_trailers(&bytes);
        }

        #[test]
        fn decode_never_panics_on_header_like_text(text in "([a-zA-Z: \r\n\t-]{0,12}\r?\n?){0,8}") {
            let _ = decode_trailers(text.as_bytes());
        }
    }
}
