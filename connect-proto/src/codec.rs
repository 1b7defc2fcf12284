//! Message serialization for the typed layer: protobuf binary and the protobuf JSON mapping, via buffa.
//!
//! The call state machines only see payload bytes; these functions turn them into messages and back.

use bytes::Bytes;

use crate::protocol::Codec;
use crate::status::Status;

/// Serializes a message with `codec`. A message that cannot be serialized is an `internal` Status.
pub fn encode<M>(codec: Codec, message: &M) -> Result<Bytes, Status>
where
    M: buffa::Message + serde::Serialize,
{
    todo!("helper A")
}

/// Deserializes a message with `codec`. Malformed input is an `invalid_argument` Status naming the codec
/// (a server decoding a request); clients remap it to `internal`.
pub fn decode<M>(codec: Codec, payload: &[u8]) -> Result<M, Status>
where
    M: buffa::Message + serde::de::DeserializeOwned,
{
    todo!("helper A")
}
