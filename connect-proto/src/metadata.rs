//! Custom metadata: binary (`-bin`) values and the header names an application may not set.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::protocol::Protocol;

/// Whether a header carries binary metadata (its name ends in `-bin`).
pub fn is_binary(name: &HeaderName) -> bool {
    name.as_str().ends_with("-bin")
}

/// Encodes a binary metadata value: standard base64 without padding.
pub fn encode_binary(value: &[u8]) -> HeaderValue {
    todo!("helper B")
}

/// Decodes a binary metadata value: split on `,` (values joined by proxies), each part padded or
/// unpadded standard base64 (URL-safe alphabet accepted too), concatenated.
pub fn decode_binary(value: &HeaderValue) -> Result<Bytes, InvalidBinaryMetadata> {
    todo!("helper B")
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

/// Whether `name` is owned by the protocol (framing, content type, encoding, timeout, status...) so that
/// application metadata must not set it; such entries are dropped when a call sends metadata.
pub fn is_reserved(protocol: Protocol, name: &HeaderName) -> bool {
    todo!("helper B")
}

/// Copies the application's entries of `from` into `to`, skipping reserved names.
pub fn merge_application(protocol: Protocol, from: &HeaderMap, to: &mut HeaderMap) {
    todo!("helper B")
}
