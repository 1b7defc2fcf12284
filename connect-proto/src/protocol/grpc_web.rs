//! gRPC-Web wire forms: the trailers frame in the response body.

use bytes::Bytes;
use http::HeaderMap;

use crate::status::Status;

/// Serializes trailers as the payload of a gRPC-Web trailers frame: `name: value\r\n` lines, names
/// lower-case. The envelope prefix is not included.
pub fn encode_trailers(trailers: &HeaderMap) -> Bytes {
    todo!("helper B")
}

/// Parses a trailers frame payload (any case, duplicates kept, a missing final CRLF tolerated) with
/// `httparse::parse_headers`. Malformed blocks are an `internal` Status saying so.
pub fn decode_trailers(block: &[u8]) -> Result<HeaderMap, Status> {
    todo!("helper B")
}
