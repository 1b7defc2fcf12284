//! gRPC wire forms: status headers/trailers, percent-encoded messages, status details.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use crate::metadata::{decode_binary, encode_binary};
use crate::protocol::headers::{GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS_BIN};
use crate::status::{Code, ErrorDetail, Status};

/// Whether a byte of `grpc-message` is sent as is: `%x20-24 / %x26-7E`, so `%` itself is escaped.
fn is_unreserved(b: u8) -> bool {
    matches!(b, 0x20..=0x24 | 0x26..=0x7e)
}

/// Percent-encodes `grpc-message`: bytes of the UTF-8 form outside `%x20-24 / %x26-7E` become `%XX`
/// (upper-case hex; space stays a space) (PROTOCOL-TRAPS 15). A space at either end is escaped too:
/// HTTP strips whitespace around a field value (httparse does in gRPC-Web trailer frames), which would
/// otherwise drop it. Any decoder decodes `%20`.
pub fn encode_message(message: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    for (i, &b) in bytes.iter().enumerate() {
        let edge_space = b == b' ' && (i == 0 || i + 1 == bytes.len());
        if is_unreserved(b) && !edge_space {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Decodes `grpc-message`. Never fails: malformed escapes (`%zz`, a trailing `%`) are kept as written
/// and invalid UTF-8 is replaced, so the message is never dropped.
pub fn decode_message(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b == b'%' {
            let hi = value.get(i + 1).and_then(|&c| char::from(c).to_digit(16));
            let lo = value.get(i + 2).and_then(|&c| char::from(c).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                // Two hex digits are at most 0xff.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Protobuf wire primitives: just enough for `google.rpc.Status` and `google.protobuf.Any`.
mod wire {
    pub(super) const VARINT: u8 = 0;
    pub(super) const FIXED64: u8 = 1;
    pub(super) const LEN: u8 = 2;
    pub(super) const FIXED32: u8 = 5;

    pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub(super) fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
        put_varint(out, u64::from(field) << 3 | u64::from(wire_type));
    }

    pub(super) fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
        put_tag(out, field, LEN);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    /// One field as read: its number and its value.
    pub(super) enum Value<'a> {
        Varint(u64),
        Len(&'a [u8]),
        /// Fixed-width values; neither message we read has one, so only their size matters.
        Fixed,
    }

    /// Reads fields one by one from a message; `None` from `next_field` on malformed input ends the
    /// parse, which the caller reports as "not a message".
    pub(super) struct Reader<'a> {
        buf: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub(super) fn new(buf: &'a [u8]) -> Self {
            Reader { buf }
        }

        fn varint(&mut self) -> Option<u64> {
            let mut v: u64 = 0;
            for i in 0..10 {
                let (&b, rest) = self.buf.split_first()?;
                self.buf = rest;
                // The tenth byte may only carry the top bit of a u64.
                if i == 9 && b > 1 {
                    return None;
                }
                v |= u64::from(b & 0x7f) << (7 * i);
                if b < 0x80 {
                    return Some(v);
                }
            }
            None
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if n > self.buf.len() {
                return None;
            }
            let (head, rest) = self.buf.split_at(n);
            self.buf = rest;
            Some(head)
        }

        /// `Ok(None)` at the end of the message, `Err(())` on malformed input (truncation, groups, an
        /// invalid wire type or field number 0).
        pub(super) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, ()> {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let tag = self.varint().ok_or(())?;
            let field = u32::try_from(tag >> 3).map_err(|_| ())?;
            if field == 0 {
                return Err(());
            }
            let value = match (tag & 7) as u8 {
                VARINT => Value::Varint(self.varint().ok_or(())?),
                FIXED64 => {
                    self.take(8).ok_or(())?;
                    Value::Fixed
                }
                LEN => {
                    let len = usize::try_from(self.varint().ok_or(())?).map_err(|_| ())?;
                    Value::Len(self.take(len).ok_or(())?)
                }
                FIXED32 => {
                    self.take(4).ok_or(())?;
                    Value::Fixed
                }
                // Groups (3, 4) are deprecated and absent from these messages; 6 and 7 do not exist.
                _ => return Err(()),
            };
            Ok(Some((field, value)))
        }
    }
}

/// Serializes a `google.rpc.Status` (code, message, details as `google.protobuf.Any`), so that it fits
/// `grpc-status-details-bin` (PROTOCOL-TRAPS 16).
pub fn encode_status_details(status: &Status) -> Bytes {
    let mut out = Vec::new();
    let code = status.code().as_u32();
    if code != 0 {
        wire::put_tag(&mut out, 1, wire::VARINT);
        // int32 on the wire: a value above i32::MAX is negative there and sign-extended to 64 bits.
        wire::put_varint(&mut out, i64::from(code as i32) as u64);
    }
    if !status.message().is_empty() {
        wire::put_bytes(&mut out, 2, status.message().as_bytes());
    }
    for detail in status.details() {
        let mut any = Vec::new();
        wire::put_bytes(&mut any, 1, detail.type_url().as_bytes());
        if !detail.value.is_empty() {
            wire::put_bytes(&mut any, 2, &detail.value);
        }
        wire::put_bytes(&mut out, 3, &any);
    }
    Bytes::from(out)
}

/// Parses a `google.rpc.Status`; `None` when the bytes are not one. Unknown fields are skipped; a known
/// field with the wrong wire type makes the bytes "not one". An `Any` type URL keeps only its last path
/// segment, the type name.
pub fn decode_status_details(bytes: &[u8]) -> Option<Status> {
    let mut code = 0u32;
    let mut message = String::new();
    let mut details = Vec::new();
    let mut reader = wire::Reader::new(bytes);
    while let Some((field, value)) = reader.next_field().ok()? {
        match (field, value) {
            // int32: the low 32 bits of the (possibly sign-extended) varint.
            (1, wire::Value::Varint(v)) => code = v as u32,
            (2, wire::Value::Len(b)) => message = String::from_utf8_lossy(b).into_owned(),
            (3, wire::Value::Len(b)) => details.push(decode_any(b)?),
            (1..=3, _) => return None,
            _ => {}
        }
    }
    let mut status = Status::new(Code::from_u32(code), message);
    *status.details_mut() = details;
    Some(status)
}

fn decode_any(bytes: &[u8]) -> Option<ErrorDetail> {
    let mut type_url = String::new();
    let mut value: &[u8] = &[];
    let mut reader = wire::Reader::new(bytes);
    while let Some((field, v)) = reader.next_field().ok()? {
        match (field, v) {
            (1, wire::Value::Len(b)) => type_url = String::from_utf8_lossy(b).into_owned(),
            (2, wire::Value::Len(b)) => value = b,
            (1 | 2, _) => return None,
            _ => {}
        }
    }
    let type_name = type_url.rsplit('/').next().unwrap_or_default();
    Some(ErrorDetail::new(type_name, Bytes::copy_from_slice(value)))
}

/// Writes `grpc-status`, `grpc-message` (when non-empty) and `grpc-status-details-bin` (when the
/// status has details) for `result`, replacing any status entries already in `trailers`.
pub fn write_status(result: Result<(), &Status>, trailers: &mut HeaderMap) {
    strip_status(trailers);
    let status = match result {
        Ok(()) => {
            trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
            return;
        }
        Err(status) => status,
    };
    trailers.insert(GRPC_STATUS, HeaderValue::from(status.code().as_u32()));
    if !status.message().is_empty() {
        // Percent-encoding leaves only visible ASCII and spaces, which a header value allows.
        if let Ok(v) = HeaderValue::from_str(&encode_message(status.message())) {
            trailers.insert(GRPC_MESSAGE, v);
        }
    }
    if !status.details().is_empty() {
        trailers.insert(
            GRPC_STATUS_DETAILS_BIN,
            encode_binary(&encode_status_details(status)),
        );
    }
}

/// Reads the status from trailers (or a trailers-only head): `None` when `grpc-status` is absent;
/// `grpc-status: 0` is success whatever else is present; a `grpc-status` that is not a decimal number
/// is an `internal` error saying so (wrapped as `Some(Err)`). The details come from
/// `grpc-status-details-bin` when present and decodable (an undecodable one is ignored rather than
/// hiding the real status); the code and message of the headers win over those inside the details.
pub fn read_status(trailers: &HeaderMap) -> Option<Result<(), Status>> {
    let raw = trailers.get(GRPC_STATUS)?.as_bytes();
    let digits = raw.trim_ascii();
    let code = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
        .then(|| std::str::from_utf8(digits).ok()?.parse::<u32>().ok())
        .flatten();
    let Some(code) = code else {
        return Some(Err(Status::internal(format!(
            "invalid grpc-status {:?} from peer",
            String::from_utf8_lossy(raw)
        ))));
    };
    if code == 0 {
        return Some(Ok(()));
    }
    let message = trailers
        .get(GRPC_MESSAGE)
        .map(|v| decode_message(v.as_bytes()))
        .unwrap_or_default();
    let mut status = Status::new(Code::from_u32(code), message);
    if let Some(details) = trailers
        .get(GRPC_STATUS_DETAILS_BIN)
        .and_then(|v| decode_binary(v).ok())
        .and_then(|b| decode_status_details(&b))
    {
        *status.details_mut() = details.details().to_vec();
    }
    Some(Err(status))
}

/// The status for an HTTP/2 RST_STREAM (PROTOCOL-TRAPS 19): REFUSED_STREAM (0x7) → unavailable,
/// CANCEL (0x8) → canceled, ENHANCE_YOUR_CALM (0xb) → resource_exhausted, others → internal.
pub fn status_from_reset(reason: u32) -> Status {
    match reason {
        0x7 => Status::unavailable("stream refused by peer (RST_STREAM REFUSED_STREAM)"),
        0x8 => Status::canceled("stream canceled by peer (RST_STREAM CANCEL)"),
        0xb => Status::resource_exhausted("peer asked to slow down (RST_STREAM ENHANCE_YOUR_CALM)"),
        0xc => Status::new(
            crate::status::Code::PERMISSION_DENIED,
            "transport security too weak for the peer (RST_STREAM INADEQUATE_SECURITY)",
        ),
        _ => Status::internal(format!(
            "stream reset by peer (RST_STREAM code {reason:#x})"
        )),
    }
}

/// Removes the status entries (`grpc-status`, `grpc-message`, `grpc-status-details-bin`) from trailers,
/// leaving the application's metadata.
pub fn strip_status(trailers: &mut HeaderMap) {
    trailers.remove(GRPC_STATUS);
    trailers.remove(GRPC_MESSAGE);
    trailers.remove(GRPC_STATUS_DETAILS_BIN);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trap15_grpc_message_percent_encoding() {
        assert_eq!(encode_message("hello world"), "hello world");
        assert_eq!(encode_message("100%"), "100%25");
        assert_eq!(encode_message("a\r\nb\t"), "a%0D%0Ab%09");
        assert_eq!(encode_message("héllo"), "h%C3%A9llo");
        assert_eq!(encode_message("~!$&"), "~!$&");
        assert_eq!(encode_message("\u{7f}"), "%7F");
        assert_eq!(decode_message(b"h%C3%A9llo"), "héllo");
        assert_eq!(decode_message(b"h%c3%a9llo"), "héllo");
        assert_eq!(decode_message(b"100%25"), "100%");
    }

    /// Found by the `call_pair` fuzz target: over gRPC-Web, `"0,\"t "` arrived as `"0,\"t"`.
    #[test]
    fn trap15_grpc_message_spaces_at_the_ends_survive_trimming() {
        assert_eq!(encode_message(" a b "), "%20a b%20");
        assert_eq!(encode_message(" "), "%20");
        assert_eq!(decode_message(b"%20a b%20"), " a b ");
        let mut trailers = HeaderMap::new();
        write_status(Err(&Status::new(Code::INTERNAL, "0,\"t ")), &mut trailers);
        let block = crate::protocol::grpc_web::encode_trailers(&trailers);
        let parsed = crate::protocol::grpc_web::decode_trailers(&block).unwrap();
        let status = read_status(&parsed).unwrap().unwrap_err();
        assert_eq!(status.message(), "0,\"t ");
    }

    #[test]
    fn trap15_grpc_message_decode_never_fails() {
        assert_eq!(decode_message(b"100%"), "100%");
        assert_eq!(decode_message(b"%zz%4"), "%zz%4");
        assert_eq!(decode_message(b"%4g"), "%4g");
        assert_eq!(decode_message(b"a%FFb"), "a\u{fffd}b");
        assert_eq!(decode_message(b"raw \xc3\xa9"), "raw é");
        assert_eq!(decode_message(b""), "");
    }

    fn sample() -> Status {
        Status::new(Code::NOT_FOUND, "no such thing")
            .with_detail(ErrorDetail::new(
                "google.rpc.RetryInfo",
                &b"\x0a\x02\x08\x01"[..],
            ))
            .with_detail(ErrorDetail::new("x.Empty", Bytes::new()))
    }

    #[test]
    fn trap16_status_details_bin() {
        let status = sample();
        let bytes = encode_status_details(&status);
        assert_eq!(
            &bytes[..4],
            b"\x08\x05\x12\x0d",
            "code 5, then a 13-byte message"
        );
        assert_eq!(decode_status_details(&bytes), Some(status.clone()));

        let mut trailers = HeaderMap::new();
        write_status(Err(&status), &mut trailers);
        assert_eq!(trailers.get(GRPC_STATUS).unwrap(), "5");
        assert_eq!(trailers.get(GRPC_MESSAGE).unwrap(), "no such thing");
        let bin = trailers.get(GRPC_STATUS_DETAILS_BIN).unwrap();
        assert!(!bin.as_bytes().contains(&b'='), "emitted unpadded");
        assert_eq!(read_status(&trailers), Some(Err(status)));
    }

    #[test]
    fn trap16_headers_win_over_details() {
        let inner =
            Status::new(Code::INTERNAL, "inner").with_detail(ErrorDetail::new("a.B", &b"\x01"[..]));
        let mut trailers = HeaderMap::new();
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("7"));
        trailers.insert(GRPC_MESSAGE, HeaderValue::from_static("outer%21"));
        trailers.insert(
            GRPC_STATUS_DETAILS_BIN,
            encode_binary(&encode_status_details(&inner)),
        );
        let status = read_status(&trailers).unwrap().unwrap_err();
        assert_eq!(status.code(), Code::PERMISSION_DENIED);
        assert_eq!(status.message(), "outer!");
        assert_eq!(status.details(), inner.details());

        // Undecodable details do not hide the status.
        trailers.insert(GRPC_STATUS_DETAILS_BIN, HeaderValue::from_static("!!"));
        let status = read_status(&trailers).unwrap().unwrap_err();
        assert_eq!(status.code(), Code::PERMISSION_DENIED);
        assert!(status.details().is_empty());
    }

    #[test]
    fn status_details_skip_unknown_fields_and_reject_malformed() {
        let mut bytes = vec![
            0x08, 0x03, // code 3
            0x20, 0x96, 0x01, // field 4 varint
            0x29, 1, 2, 3, 4, 5, 6, 7, 8, // field 5 fixed64
            0x35, 1, 2, 3, 4, // field 6 fixed32
            0x3a, 0x02, b'h', b'i', // field 7 bytes
        ];
        bytes.extend_from_slice(&[
            0x1a, 0x0b, 0x0a, 0x05, b'x', b'/', b'a', b'.', b'B', 0x18, 0x01, 0x12, 0x00,
        ]);
        let status = decode_status_details(&bytes).unwrap();
        assert_eq!(status.code(), Code::INVALID_ARGUMENT);
        assert_eq!(status.details()[0].type_name, "a.B");
        assert!(status.details()[0].value.is_empty());

        assert_eq!(decode_status_details(b"").map(|s| s.code()), Some(Code::OK));
        for bad in [
            &b"\x08"[..],                                    // truncated varint
            b"\x12\x05ab",                                   // truncated length
            b"\x0b\x0c",                                     // group
            b"\x0e",                                         // wire type 6
            b"\x00\x01",                                     // field 0
            b"\x0a\x00",                                     // code with the wrong wire type
            b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", // varint overflow
            b"\x1a\x02\x0b\x00",                             // group inside Any
        ] {
            assert_eq!(decode_status_details(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn negative_and_unknown_codes_survive() {
        let status = Status::new(Code::from_u32(u32::MAX), "");
        let bytes = encode_status_details(&status);
        assert_eq!(bytes.len(), 11, "int32 -1 is a 10-byte varint");
        assert_eq!(decode_status_details(&bytes), Some(status));
    }

    #[test]
    fn trap14_status_presence() {
        let mut trailers = HeaderMap::new();
        assert_eq!(read_status(&trailers), None);
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        trailers.insert(GRPC_MESSAGE, HeaderValue::from_static("ignored"));
        assert_eq!(read_status(&trailers), Some(Ok(())));
        for bad in ["", "abc", "-1", "1.0", "99999999999"] {
            trailers.insert(GRPC_STATUS, HeaderValue::from_str(bad).unwrap());
            let status = read_status(&trailers).unwrap().unwrap_err();
            assert_eq!(status.code(), Code::INTERNAL, "{bad}");
            assert!(status.message().contains("invalid grpc-status"), "{bad}");
        }
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("99"));
        let status = read_status(&trailers).unwrap().unwrap_err();
        assert_eq!(status.code(), Code::from_u32(99));
    }

    #[test]
    fn write_status_ok_and_strip() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-app", HeaderValue::from_static("1"));
        write_status(Err(&sample()), &mut trailers);
        write_status(Ok(()), &mut trailers);
        assert_eq!(trailers.get(GRPC_STATUS).unwrap(), "0");
        assert!(trailers.get(GRPC_MESSAGE).is_none());
        assert!(trailers.get(GRPC_STATUS_DETAILS_BIN).is_none());
        strip_status(&mut trailers);
        assert_eq!(trailers.len(), 1);
        assert_eq!(trailers.get("x-app").unwrap(), "1");
    }

    #[test]
    fn trap19_rst_stream_codes() {
        assert_eq!(status_from_reset(0x7).code(), Code::UNAVAILABLE);
        assert_eq!(status_from_reset(0x8).code(), Code::CANCELED);
        assert_eq!(status_from_reset(0xb).code(), Code::RESOURCE_EXHAUSTED);
        for other in [0x0, 0x1, 0x2, 0xd, 0xdead] {
            assert_eq!(status_from_reset(other).code(), Code::INTERNAL);
        }
    }

    fn arb_status() -> impl Strategy<Value = Status> {
        (
            1u32..=u32::MAX,
            ".*",
            proptest::collection::vec(
                (
                    "[a-z][a-z0-9_.]{0,20}",
                    proptest::collection::vec(any::<u8>(), 0..32),
                ),
                0..3,
            ),
        )
            .prop_map(|(code, message, details)| {
                details.into_iter().fold(
                    Status::new(Code::from_u32(code), message),
                    |s, (name, value)| s.with_detail(ErrorDetail::new(name, value)),
                )
            })
    }

    proptest! {
        #[test]
        fn grpc_message_round_trips(message in ".*") {
            let encoded = encode_message(&message);
            prop_assert!(HeaderValue::from_str(&encoded).is_ok());
            prop_assert_eq!(decode_message(encoded.as_bytes()), message);
        }

        #[test]
        fn decode_message_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_message(&bytes);
        }

        #[test]
        fn status_details_round_trip(status in arb_status()) {
            prop_assert_eq!(decode_status_details(&encode_status_details(&status)), Some(status));
        }

        #[test]
        fn status_details_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_status_details(&bytes);
        }

        #[test]
        fn trailers_round_trip(status in arb_status()) {
            let mut trailers = HeaderMap::new();
            write_status(Err(&status), &mut trailers);
            prop_assert_eq!(read_status(&trailers), Some(Err(status)));
        }
    }
}
