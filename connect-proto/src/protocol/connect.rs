//! Connect wire forms: the error JSON, the EndStream message, unary trailers, GET queries.

use bytes::Bytes;
use http::HeaderMap;

use crate::status::Status;

/// Serializes an error as Connect's JSON error body:
/// `{"code":"…","message":"…","details":[{"type":"…","value":"<unpadded base64>","debug":…}]}`.
/// `message` and `details` are omitted when empty.
pub fn encode_error(status: &Status) -> Bytes {
    todo!("helper B")
}

/// Parses Connect's JSON error body; `None` when the body is not a valid error (not JSON, not an object,
/// no known `code` string). Unknown code names give `None` too: the caller then falls back to the HTTP
/// status. Details with invalid base64 are an invalid body.
pub fn decode_error(body: &[u8]) -> Option<Status> {
    todo!("helper B")
}

/// The contents of a Connect EndStream message.
#[derive(Clone, Debug, PartialEq)]
pub struct EndStream {
    /// The error, if the stream failed.
    pub error: Option<Status>,
    /// The trailers (`"metadata":{"key":["v1","v2"]}`); `-bin` values stay base64 as on the wire.
    pub metadata: HeaderMap,
}

/// Serializes an EndStream message (the payload, without the envelope).
pub fn encode_end_stream(error: Option<&Status>, metadata: &HeaderMap) -> Bytes {
    todo!("helper B")
}

/// Parses an EndStream message. An invalid message, or an `error` that lacks a valid code, is an
/// `internal` Status describing what was wrong.
pub fn decode_end_stream(body: &[u8]) -> Result<EndStream, Status> {
    todo!("helper B")
}

/// Writes trailers into unary response headers as `trailer-<name>`.
pub fn trailers_to_headers(trailers: &HeaderMap, headers: &mut HeaderMap) {
    todo!("helper B")
}

/// Splits unary response headers into (headers, trailers), stripping the `trailer-` prefix.
pub fn split_unary_trailers(headers: HeaderMap) -> (HeaderMap, HeaderMap) {
    todo!("helper B")
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

/// Decodes the query of a Connect GET request: `connect=v1` (optional unless `require_version`),
/// `encoding`, `message`, optional `base64=1` (then `message` is URL-safe base64, padded or not) and
/// `compression`. Parameters may come in any order; unknown ones are ignored. Errors are
/// `invalid_argument` (or `unimplemented` for a missing/unknown `connect` value when required).
pub fn decode_get_query(query: &str, require_version: bool) -> Result<GetRequest, Status> {
    todo!("helper B")
}

/// Encodes a Connect GET query string (without `?`): `connect=v1&encoding=…&message=…` with `base64=1`
/// and URL-safe unpadded base64 for binary messages (always for proto or compressed messages; JSON that
/// is not compressed is percent-encoded as text instead), plus `compression=` when given.
pub fn encode_get_query(codec: &str, message: &[u8], compression: Option<&str>) -> String {
    todo!("helper B")
}
