//! gRPC wire forms: status headers/trailers, percent-encoded messages, status details.

use bytes::Bytes;
use http::HeaderMap;

use crate::status::{Code, Status};

/// Percent-encodes `grpc-message`: bytes outside `%x20-24 / %x26-7E` become `%XX` (space stays a space).
pub fn encode_message(message: &str) -> String {
    todo!("helper B")
}

/// Decodes `grpc-message`. Never fails: malformed escapes are kept as written, invalid UTF-8 is
/// replaced, so the message is never dropped.
pub fn decode_message(value: &[u8]) -> String {
    todo!("helper B")
}

/// Serializes a `google.rpc.Status` (code, message, details as `google.protobuf.Any`).
pub fn encode_status_details(status: &Status) -> Bytes {
    todo!("helper B")
}

/// Parses a `google.rpc.Status`; `None` when the bytes are not one.
pub fn decode_status_details(bytes: &[u8]) -> Option<Status> {
    todo!("helper B")
}

/// Writes `grpc-status`, `grpc-message` (when non-empty) and `grpc-status-details-bin` (when the
/// status has details) for `result`.
pub fn write_status(result: Result<(), &Status>, trailers: &mut HeaderMap) {
    todo!("helper B")
}

/// Reads the status from trailers (or a trailers-only head): `None` when `grpc-status` is absent;
/// a `grpc-status` that is not a number is an `internal` error saying so (wrapped as `Some(Err)`).
/// The details come from `grpc-status-details-bin` when present and decodable; the code and message of
/// the headers win over those inside the details.
pub fn read_status(trailers: &HeaderMap) -> Option<Result<(), Status>> {
    todo!("helper B")
}

/// The status for an HTTP/2 RST_STREAM (PROTOCOL-TRAPS 19): REFUSED_STREAM (0x7) → unavailable,
/// CANCEL (0x8) → canceled, ENHANCE_YOUR_CALM (0xb) → resource_exhausted, others → internal.
pub fn status_from_reset(reason: u32) -> Status {
    todo!("helper B")
}

/// Removes the status entries (`grpc-status`, `grpc-message`, `grpc-status-details-bin`) from trailers,
/// leaving the application's metadata.
pub fn strip_status(trailers: &mut HeaderMap) {
    todo!("helper B")
}

#[allow(dead_code)]
fn _uses(_: Code) {}
