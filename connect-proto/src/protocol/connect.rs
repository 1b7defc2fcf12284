//! Connect wire forms: the error JSON, the EndStream message, unary trailers, GET queries.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::json::{self, Value};
use crate::metadata::decode_base64_into;
use crate::protocol::headers::CONNECT_TRAILER_PREFIX;
use crate::status::{Code, ErrorDetail, Status};

/// The JSON name of a code. Codes outside the known range use connect-go's `code_<n>` form so that they
/// survive a round trip; `ok` is not an error, so it is sent as `unknown`.
fn code_to_json(code: Code) -> String {
    match code.name() {
        _ if code.is_ok() => "unknown".to_owned(),
        Some(name) => name.to_owned(),
        None => format!("code_{}", code.as_u32()),
    }
}

/// The inverse of [`code_to_json`]; `None` for unknown names and for `ok`, which is no error.
fn code_from_json(name: &str) -> Option<Code> {
    let code = match name.strip_prefix("code_") {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Code::from_u32(digits.parse().ok()?)
        }
        _ => Code::from_name(name)?,
    };
    (!code.is_ok()).then_some(code)
}

fn error_to_json(status: &Status) -> Value {
    let mut obj = vec![(
        "code".to_owned(),
        Value::String(code_to_json(status.code())),
    )];
    if !status.message().is_empty() {
        obj.push(("message".into(), Value::String(status.message().to_owned())));
    }
    if !status.details().is_empty() {
        let details = status
            .details()
            .iter()
            .map(|d| {
                let mut detail = vec![
                    ("type".to_owned(), Value::String(d.type_name.clone())),
                    (
                        "value".to_owned(),
                        Value::String(STANDARD_NO_PAD.encode(&d.value)),
                    ),
                ];
                if let Some(debug) = &d.debug {
                    // Text that is not JSON goes as a JSON string rather than break the body.
                    let debug = json::parse(debug.as_bytes())
                        .unwrap_or_else(|_| Value::String(debug.clone()));
                    detail.push(("debug".to_owned(), debug));
                }
                Value::Object(detail)
            })
            .collect();
        obj.push(("details".into(), Value::Array(details)));
    }
    Value::Object(obj)
}

/// Reads an error object; the `Err` says what was wrong, for EndStream diagnostics. A missing, null,
/// non-string or unrecognized `code` (or `ok`, which is no error) is `fallback`: the message and
/// details of such an error still reach the caller (conformance: `error/unrecognized-code`).
fn error_from_json(value: &Value, fallback: Code) -> Result<Status, String> {
    let obj = match value {
        Value::Object(_) => value,
        _ => return Err("error is not a JSON object".into()),
    };
    let code = match obj.get("code") {
        Some(Value::String(name)) => code_from_json(name).unwrap_or(fallback),
        _ => fallback,
    };
    let message = match obj.get("message") {
        None | Some(Value::Null) => "",
        Some(Value::String(m)) => m,
        Some(_) => return Err("error message is not a string".into()),
    };
    let mut status = Status::new(code, message);
    match obj.get("details") {
        None | Some(Value::Null) => {}
        Some(Value::Array(details)) => {
            for detail in details {
                status = status.with_detail(detail_from_json(detail)?);
            }
        }
        Some(_) => return Err("error details are not an array".into()),
    }
    Ok(status)
}

fn detail_from_json(value: &Value) -> Result<ErrorDetail, String> {
    let obj = match value {
        Value::Object(_) => value,
        _ => return Err("error detail is not a JSON object".into()),
    };
    let type_name = match obj.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t,
        _ => return Err("error detail has no type".into()),
    };
    // An empty message serializes to no bytes, and an encoder may omit the field for it.
    let mut bytes = Vec::new();
    match obj.get("value") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) => decode_base64_into(v.as_bytes(), &mut bytes)
            .ok_or_else(|| format!("error detail {type_name:?} has a value that is not base64"))?,
        Some(_) => return Err(format!("error detail {type_name:?} has a non-string value")),
    }
    let mut detail = ErrorDetail::new(type_name.as_str(), bytes);
    // `type.googleapis.com/` alone names no type once its prefix is stripped.
    if detail.type_name.is_empty() {
        return Err("error detail has no type".into());
    }
    detail.debug = obj
        .get("debug")
        .filter(|d| !d.is_null())
        .map(Value::to_json);
    Ok(detail)
}

/// Serializes an error as Connect's JSON error body (PROTOCOL-TRAPS 1):
/// `{"code":"…","message":"…","details":[{"type":"…","value":"<unpadded base64>","debug":…}]}`.
/// `message` and `details` are omitted when empty, `debug` when absent. A code outside the known range
/// is written `code_<n>` (as connect-go does); a status with code `ok` is written as `unknown`.
pub fn encode_error(status: &Status) -> Bytes {
    Bytes::from(error_to_json(status).to_json())
}

/// Parses Connect's JSON error body; `None` when the body is not a valid error (not JSON, not an object,
/// `message` not a string, `details` malformed): the caller then answers from the HTTP status alone. A
/// missing, null or unknown `code` is `fallback` (the code of the HTTP status), keeping the message
/// and details. `code_<n>` is accepted for codes outside the known range. Detail values may be
/// standard or URL-safe base64, padded or not; a missing `value` is an empty message.
pub fn decode_error(body: &[u8], fallback: Code) -> Option<Status> {
    let value = json::parse(body).ok()?;
    error_from_json(&value, fallback).ok()
}

/// The contents of a Connect EndStream message.
#[derive(Clone, Debug, PartialEq)]
pub struct EndStream {
    /// The error, if the stream failed.
    pub error: Option<Status>,
    /// The trailers (`"metadata":{"key":["v1","v2"]}`); `-bin` values stay base64 as on the wire.
    pub metadata: HeaderMap,
}

/// Serializes an EndStream message (the payload, without the envelope): `{}` for a success without
/// trailers, `error` only on failure, `metadata` only when there are trailers. Values that are not
/// UTF-8 (obs-text a `HeaderValue` may hold) are converted lossily, since JSON strings must be Unicode.
pub fn encode_end_stream(error: Option<&Status>, metadata: &HeaderMap) -> Bytes {
    let mut obj = Vec::new();
    if let Some(status) = error {
        obj.push(("error".to_owned(), error_to_json(status)));
    }
    if !metadata.is_empty() {
        let mut md = Vec::new();
        for name in metadata.keys() {
            let values = metadata
                .get_all(name)
                .iter()
                .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            md.push((name.as_str().to_owned(), Value::Array(values)));
        }
        obj.push(("metadata".to_owned(), Value::Object(md)));
    }
    Bytes::from(Value::Object(obj).to_json())
}

/// Parses an EndStream message. `{}` is a successful end without trailers. An `error` whose code is
/// missing, null or unknown has code `unknown` (its message and details kept). An invalid message (not
/// JSON, not an object, an `error` that is not a valid error object, metadata not an object of string
/// arrays or not valid as headers) is an `internal` Status describing what was wrong.
pub fn decode_end_stream(body: &[u8]) -> Result<EndStream, Status> {
    let invalid = |why: &str| Status::internal(format!("invalid Connect EndStream message: {why}"));
    let obj = json::parse(body).map_err(|e| invalid(&format!("not JSON ({e})")))?;
    if !matches!(obj, Value::Object(_)) {
        return Err(invalid("not a JSON object"));
    }
    let error = match obj.get("error") {
        None | Some(Value::Null) => None,
        Some(e) => Some(error_from_json(e, Code::UNKNOWN).map_err(|why| invalid(&why))?),
    };
    let mut metadata = HeaderMap::new();
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(md)) => {
            for (name, values) in md {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| invalid(&format!("invalid metadata name {name:?}")))?;
                let Value::Array(values) = values else {
                    return Err(invalid(&format!("metadata {name:?} is not an array")));
                };
                for v in values {
                    let v = match v {
                        Value::String(s) => HeaderValue::from_str(s).ok(),
                        _ => None,
                    }
                    .ok_or_else(|| invalid(&format!("invalid metadata value for {name:?}")))?;
                    metadata.append(header.clone(), v);
                }
            }
        }
        Some(_) => return Err(invalid("metadata is not a JSON object")),
    }
    Ok(EndStream { error, metadata })
}

/// Writes trailers into unary response headers as `trailer-<name>` (PROTOCOL-TRAPS 5), every value of a
/// multi-valued name included.
pub fn trailers_to_headers(trailers: &HeaderMap, headers: &mut HeaderMap) {
    for (name, value) in trailers {
        let prefixed = format!("{CONNECT_TRAILER_PREFIX}{name}");
        // A valid name behind a valid prefix is a valid name; nothing is dropped in practice.
        if let Ok(prefixed) = HeaderName::from_bytes(prefixed.as_bytes()) {
            headers.append(prefixed, value.clone());
        }
    }
}

/// Splits unary response headers into (headers, trailers), stripping the `trailer-` prefix. Header names
/// are case-insensitive (a `HeaderName` is lower-case), so `Trailer-Foo` is a trailer too. A bare
/// `trailer-` with nothing after it stays a header.
pub fn split_unary_trailers(headers: HeaderMap) -> (HeaderMap, HeaderMap) {
    let mut rest = HeaderMap::new();
    let mut trailers = HeaderMap::new();
    let mut current: Option<HeaderName> = None;
    // `into_iter` names only the first value of each header; the following ones reuse it.
    for (name, value) in headers {
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = &current else { continue };
        let stripped = name
            .as_str()
            .strip_prefix(CONNECT_TRAILER_PREFIX)
            .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok());
        match stripped {
            Some(trailer) => trailers.append(trailer, value),
            None => rest.append(name.clone(), value),
        };
    }
    (rest, trailers)
}

/// The parameters of a Connect GET request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetRequest {
    /// The codec name from `encoding`.
    pub encoding: String,
    /// The `compression` parameter, if any (not `identity`).
    pub compression: Option<String>,
    /// The message bytes after base64/percent decoding, still compressed if `compression` is set.
    pub message: Bytes,
}

/// Decodes `application/x-www-form-urlencoded` text: `%XX` escapes and `+` for space. `None` on a
/// malformed escape.
fn form_decode(input: &str) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so no decoder can misread a byte.
fn percent_encode(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Decodes the query of a Connect GET request (PROTOCOL-TRAPS 8): `connect=v1` (optional unless
/// `require_version`), `encoding`, `message`, optional `base64=1` (then `message` is URL-safe base64,
/// padded or not; the standard alphabet is tolerated) and `compression`. A leading `?` is ignored.
/// Parameters may come in any order; unknown ones are ignored; when one is repeated, the first wins.
/// Values are form-decoded (`%XX`, `+` for space).
///
/// Every error is `invalid_argument`, as in connect-go: a missing `connect` when required, a `connect`
/// other than `v1`, a missing `encoding` or `message` (the spec requires both; an empty message is
/// `message=`), a `base64` other than `0`/`1`, a malformed escape or invalid base64. Whether the codec
/// and compression are supported is for the caller to decide.
pub fn decode_get_query(query: &str, require_version: bool) -> Result<GetRequest, Status> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let bad = |why: String| Status::invalid_argument(format!("invalid Connect GET request: {why}"));
    let (mut connect, mut encoding, mut message, mut base64, mut compression) =
        (None, None, None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match form_decode(key).as_deref() {
            Some(b"connect") => &mut connect,
            Some(b"encoding") => &mut encoding,
            Some(b"message") => &mut message,
            Some(b"base64") => &mut base64,
            Some(b"compression") => &mut compression,
            _ => continue,
        };
        if slot.is_none() {
            let decoded = form_decode(value)
                .ok_or_else(|| bad(format!("malformed percent-encoding in {key:?}")))?;
            *slot = Some(decoded);
        }
    }
    match connect.as_deref() {
        None if require_version => return Err(bad("missing required parameter connect=v1".into())),
        None | Some(b"v1") => {}
        Some(other) => {
            return Err(bad(format!(
                "connect must be \"v1\", got {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    }
    let encoding = match encoding {
        Some(e) if !e.is_empty() => {
            String::from_utf8(e).map_err(|_| bad("encoding is not UTF-8".into()))?
        }
        _ => return Err(bad("missing required parameter encoding".into())),
    };
    let message = message.ok_or_else(|| bad("missing required parameter message".into()))?;
    let message = match base64.as_deref() {
        None | Some(b"" | b"0") => message,
        Some(b"1") => {
            let mut out = Vec::new();
            decode_base64_into(&message, &mut out)
                .ok_or_else(|| bad("message is not base64".into()))?;
            out
        }
        Some(other) => {
            return Err(bad(format!(
                "base64 must be \"1\", got {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    };
    let compression = match compression {
        None => None,
        Some(c) if c.is_empty() || c == b"identity" => None,
        Some(c) => Some(String::from_utf8(c).map_err(|_| bad("compression is not UTF-8".into()))?),
    };
    Ok(GetRequest {
        encoding,
        compression,
        message: Bytes::from(message),
    })
}

/// Encodes a Connect GET query string (without `?`): `connect=v1`, `base64=1`, `compression=…`,
/// `encoding=…`, `message=…`, in the order the protocol lists them, so that the same call always
/// gives the same URL (caches key on it). Binary messages (any codec but `json`, and every
/// compressed message) are URL-safe unpadded base64; uncompressed JSON is percent-encoded as text
/// instead, which keeps URLs readable. A `compression` of `identity` counts as none.
pub fn encode_get_query(codec: &str, message: &[u8], compression: Option<&str>) -> String {
    let compression = compression.filter(|c| !c.is_empty() && *c != "identity");
    let binary = codec != "json" || compression.is_some();
    let mut out = String::from("connect=v1");
    if binary {
        out.push_str("&base64=1");
    }
    if let Some(c) = compression {
        out.push_str("&compression=");
        percent_encode(c.as_bytes(), &mut out);
    }
    out.push_str("&encoding=");
    percent_encode(codec.as_bytes(), &mut out);
    out.push_str("&message=");
    if binary {
        // The URL-safe alphabet needs no escaping.
        out.push_str(&URL_SAFE_NO_PAD.encode(message));
    } else {
        percent_encode(message, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    /// Seen through the `connect_error` fuzz target's round-trip check: this decoded to a detail with
    /// an empty type, which encoded to JSON that no longer decoded.
    #[test]
    fn trap01_detail_type_that_is_only_the_prefix_is_invalid() {
        let body = br#"{"code":"internal","details":[{"type":"type.googleapis.com/"}]}"#;
        assert_eq!(decode_error(body, Code::UNKNOWN), None);
    }

    #[test]
    fn trap01_connect_error_json_shape() {
        let mut detail =
            ErrorDetail::new("type.googleapis.com/google.rpc.RetryInfo", &b"\x0a\x02"[..]);
        detail.debug = Some(json!({"retryDelay": "1s"}).to_string());
        let status = Status::new(Code::INVALID_ARGUMENT, "bad").with_detail(detail);
        let body = encode_error(&status);
        assert_eq!(
            json_of(&body),
            json!({
                "code": "invalid_argument",
                "message": "bad",
                "details": [{"type": "google.rpc.RetryInfo", "value": "CgI", "debug": {"retryDelay": "1s"}}]
            })
        );
        assert_eq!(decode_error(&body, Code::UNKNOWN), Some(status));
        assert_eq!(
            json_of(&encode_error(&Status::new(Code::NOT_FOUND, ""))),
            json!({"code": "not_found"})
        );
    }

    #[test]
    fn trap01_connect_error_decode_variants() {
        let d = decode_error(
            br#"{"code":"unavailable","details":[{"type":"a.B","value":"CgI="}]}"#,
            Code::UNKNOWN,
        )
        .unwrap();
        assert_eq!(d.code(), Code::UNAVAILABLE);
        assert_eq!(d.message(), "");
        assert_eq!(&d.details()[0].value[..], b"\x0a\x02");
        let d = decode_error(
            br#"{"code":"internal","message":"m","details":[{"type":"a.B"}],"x":1}"#,
            Code::UNKNOWN,
        )
        .unwrap();
        assert!(d.details()[0].value.is_empty());
        assert!(d.details()[0].debug.is_none());
        assert_eq!(
            decode_error(br#"{"code":"code_99"}"#, Code::UNKNOWN).map(|s| s.code()),
            Some(Code::from_u32(99))
        );
        for bad in [
            &b""[..],
            b"not json",
            b"[]",
            br#"{"code":"internal","message":5}"#,
            br#"{"code":"internal","details":{}}"#,
            br#"{"code":"internal","details":[{"value":""}]}"#,
            br#"{"code":"internal","details":[{"type":"a.B","value":"!!"}]}"#,
        ] {
            assert_eq!(
                decode_error(bad, Code::UNKNOWN),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// conformance `error/missing-code`, `error/null-code`, `error/unrecognized-code`: the code comes
    /// from the HTTP status (the fallback), the message and details from the body.
    #[test]
    fn connect_error_without_a_known_code_takes_the_fallback_and_keeps_its_message() {
        for body in [
            &br#"{"message":"oops","details":[{"type":"a.B","value":"CgI"}]}"#[..],
            br#"{"code":null,"message":"oops","details":[{"type":"a.B","value":"CgI"}]}"#,
            br#"{"code":3,"message":"oops","details":[{"type":"a.B","value":"CgI"}]}"#,
            br#"{"code":"foobar","message":"oops","details":[{"type":"a.B","value":"CgI"}]}"#,
            br#"{"code":"ok","message":"oops","details":[{"type":"a.B","value":"CgI"}]}"#,
            br#"{"code":"code_0","message":"oops","details":[{"type":"a.B","value":"CgI"}]}"#,
            br#"{"code":"INVALID_ARGUMENT","message":"oops","details":[{"type":"a.B","value":"CgI"}]}"#,
        ] {
            let status = decode_error(body, Code::UNAVAILABLE)
                .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(body)));
            assert_eq!(status.code(), Code::UNAVAILABLE);
            assert_eq!(status.message(), "oops");
            assert_eq!(&status.details()[0].value[..], b"\x0a\x02");
        }
        let status = decode_error(b"{}", Code::UNAUTHENTICATED).unwrap();
        assert_eq!(
            (status.code(), status.message()),
            (Code::UNAUTHENTICATED, "")
        );
        // EndStream: `unknown`.
        let end = decode_end_stream(br#"{"error":{"code":"foobar","message":"oops"}}"#).unwrap();
        let error = end.error.unwrap();
        assert_eq!((error.code(), error.message()), (Code::UNKNOWN, "oops"));
        for body in [
            &br#"{"error":{}}"#[..],
            br#"{"error":{"code":null,"message":"oops"}}"#,
            br#"{"error":{"message":"oops"}}"#,
        ] {
            let error = decode_end_stream(body).unwrap().error.unwrap();
            assert_eq!(error.code(), Code::UNKNOWN);
        }
    }

    #[test]
    fn unknown_and_ok_codes_encode() {
        let body = encode_error(&Status::new(Code::from_u32(42), "x"));
        assert_eq!(json_of(&body)["code"], "code_42");
        assert_eq!(
            decode_error(&body, Code::UNKNOWN).unwrap().code(),
            Code::from_u32(42)
        );
        let body = encode_error(&Status::new(Code::OK, "x"));
        assert_eq!(json_of(&body)["code"], "unknown");
    }

    #[test]
    fn trap04_end_stream() {
        assert_eq!(
            decode_end_stream(b"{}").unwrap(),
            EndStream {
                error: None,
                metadata: HeaderMap::new()
            }
        );
        assert_eq!(&encode_end_stream(None, &HeaderMap::new())[..], b"{}");

        let mut md = HeaderMap::new();
        md.append("x-a", hv("1"));
        md.append("x-a", hv("2"));
        md.append("x-b-bin", hv("AAE"));
        let status = Status::new(Code::ABORTED, "conflict");
        let body = encode_end_stream(Some(&status), &md);
        assert_eq!(
            json_of(&body),
            json!({"error": {"code": "aborted", "message": "conflict"},
                   "metadata": {"x-a": ["1", "2"], "x-b-bin": ["AAE"]}})
        );
        let end = decode_end_stream(&body).unwrap();
        assert_eq!(end.error, Some(status));
        assert_eq!(end.metadata, md);

        let end = decode_end_stream(br#"{"metadata":{"X-Upper":["v"]},"error":null}"#).unwrap();
        assert_eq!(end.metadata.get("x-upper").unwrap(), "v");
        assert!(end.error.is_none());
    }

    #[test]
    fn trap04_invalid_end_stream_is_internal() {
        for bad in [
            &b""[..],
            b"nope",
            b"[]",
            b"null",
            br#"{"error":"internal"}"#,
            br#"{"error":{"code":"internal","message":5}}"#,
            br#"{"metadata":[]}"#,
            br#"{"metadata":{"x":"v"}}"#,
            br#"{"metadata":{"x":[1]}}"#,
            br#"{"metadata":{"bad name":["v"]}}"#,
            br#"{"metadata":{"x":["a\nb"]}}"#,
        ] {
            let err = decode_end_stream(bad).unwrap_err();
            assert_eq!(
                err.code(),
                Code::INTERNAL,
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(err.message().contains("EndStream"), "{}", err.message());
        }
    }

    #[test]
    fn trap05_unary_trailer_prefix() {
        let mut trailers = HeaderMap::new();
        trailers.append("x-t", hv("1"));
        trailers.append("x-t", hv("2"));
        let mut headers = HeaderMap::new();
        headers.insert("content-type", hv("application/proto"));
        trailers_to_headers(&trailers, &mut headers);
        assert_eq!(
            headers.get_all("trailer-x-t").iter().collect::<Vec<_>>(),
            ["1", "2"]
        );

        headers.append(HeaderName::from_bytes(b"Trailer-Other").unwrap(), hv("o"));
        headers.append("trailer", hv("x-t"));
        headers.append("trailer-", hv("bare"));
        let (rest, got) = split_unary_trailers(headers);
        assert_eq!(got.get_all("x-t").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(got.get("other").unwrap(), "o");
        assert_eq!(got.len(), 3);
        assert_eq!(rest.get("content-type").unwrap(), "application/proto");
        assert_eq!(rest.get("trailer").unwrap(), "x-t");
        assert_eq!(rest.get("trailer-").unwrap(), "bare");
        assert_eq!(rest.len(), 3);
    }

    #[test]
    fn trap08_get_query_any_order_unknown_ignored() {
        let expected = GetRequest {
            encoding: "proto".into(),
            compression: None,
            message: Bytes::from_static(b"\xfb\xff"),
        };
        for q in [
            "connect=v1&encoding=proto&base64=1&message=-_8",
            "message=-_8&base64=1&encoding=proto",
            "?x=1&message=-_8=&base64=1&utm=&encoding=proto&connect=v1&compression=identity",
            "base64=1&message=%2B%2F8&encoding=proto&message=ignored",
        ] {
            assert_eq!(decode_get_query(q, false).as_ref(), Ok(&expected), "{q}");
        }
        let r =
            decode_get_query("encoding=json&message=%7B%22a%22%3A+1%7D&connect=v1", true).unwrap();
        assert_eq!(&r.message[..], br#"{"a": 1}"#);
        let r =
            decode_get_query("encoding=json&message=&compression=gzip&base64=1", false).unwrap();
        assert_eq!(r.compression.as_deref(), Some("gzip"));
        assert!(r.message.is_empty());
    }

    #[test]
    fn trap08_get_query_errors() {
        for (q, required) in [
            ("encoding=proto&message=", true),
            ("connect=v2&encoding=proto&message=", false),
            ("connect=v1&message=", false),
            ("connect=v1&encoding=&message=", false),
            ("connect=v1&encoding=proto", false),
            ("connect=v1&encoding=proto&base64=1&message=!!", false),
            ("connect=v1&encoding=proto&base64=yes&message=", false),
            ("connect=v1&encoding=json&message=%zz", false),
            ("connect=v1&encoding=json&message=%4", false),
        ] {
            let err = decode_get_query(q, required).unwrap_err();
            assert_eq!(err.code(), Code::INVALID_ARGUMENT, "{q}");
        }
    }

    #[test]
    fn trap08_get_query_encode() {
        // The protocol's order: connect, base64, compression, encoding, message.
        assert_eq!(
            encode_get_query("proto", b"\xfb\xff", None),
            "connect=v1&base64=1&encoding=proto&message=-_8"
        );
        assert_eq!(
            encode_get_query("json", br#"{"a": "b&c"}"#, None),
            "connect=v1&encoding=json&message=%7B%22a%22%3A%20%22b%26c%22%7D"
        );
        assert_eq!(
            encode_get_query("json", b"{}", Some("gzip")),
            "connect=v1&base64=1&compression=gzip&encoding=json&message=e30"
        );
        assert_eq!(
            encode_get_query("json", b"{}", Some("identity")),
            "connect=v1&encoding=json&message=%7B%7D"
        );
    }

    fn arb_status() -> impl Strategy<Value = Status> {
        (
            1u32..=u32::MAX,
            ".*",
            proptest::collection::vec(
                (
                    "[a-z][a-z0-9_.]{0,20}",
                    proptest::collection::vec(any::<u8>(), 0..32),
                    proptest::option::of(".*"),
                ),
                0..3,
            ),
        )
            .prop_map(|(code, message, details)| {
                details.into_iter().fold(
                    Status::new(Code::from_u32(code), message),
                    |s, (name, value, debug)| {
                        let mut d = ErrorDetail::new(name, value);
                        d.debug = debug.map(|text: String| {
                            let mut json = String::new();
                            crate::json::write_string(&text, &mut json);
                            json
                        });
                        s.with_detail(d)
                    },
                )
            })
    }

    fn arb_metadata() -> impl Strategy<Value = HeaderMap> {
        proptest::collection::vec(("[a-z0-9][-a-z0-9_]{0,15}", "[ -~]{0,20}"), 0..6).prop_map(
            |pairs| {
                let mut map = HeaderMap::new();
                for (name, value) in pairs {
                    map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), hv(&value));
                }
                map
            },
        )
    }

    proptest! {
        #[test]
        fn error_json_round_trips(status in arb_status()) {
            prop_assert_eq!(decode_error(&encode_error(&status), Code::UNKNOWN), Some(status));
        }

        #[test]
        fn end_stream_round_trips(status in proptest::option::of(arb_status()), md in arb_metadata()) {
            let end = decode_end_stream(&encode_end_stream(status.as_ref(), &md)).unwrap();
            prop_assert_eq!(end, EndStream { error: status, metadata: md });
        }

        #[test]
        fn unary_trailers_round_trip(trailers in arb_metadata()) {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", hv("application/json"));
            trailers_to_headers(&trailers, &mut headers);
            let (rest, got) = split_unary_trailers(headers);
            prop_assert_eq!(got, trailers);
            prop_assert_eq!(rest.len(), 1);
        }

        #[test]
        fn get_query_round_trips(
            json in any::<bool>(),
            message in proptest::collection::vec(any::<u8>(), 0..64),
            compression in proptest::option::of("[a-z]{1,8}"),
        ) {
            let codec = if json { "json" } else { "proto" };
            let query = encode_get_query(codec, &message, compression.as_deref());
            let req = decode_get_query(&query, true).unwrap();
            prop_assert_eq!(req.encoding, codec);
            prop_assert_eq!(&req.message[..], &message[..]);
            let expected = compression.filter(|c| c != "identity");
            prop_assert_eq!(req.compression, expected);
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_error(&bytes, Code::UNKNOWN);
            let _ = decode_end_stream(&bytes);
            let _ = decode_get_query(&String::from_utf8_lossy(&bytes), false);
        }

        #[test]
        fn get_query_parser_never_panics(query in "([a-z0-9]{0,8}(=[%+a-zA-Z0-9_=-]{0,8})?&?){0,6}") {
            let _ = decode_get_query(&query, true);
        }
    }
}
