//! Message serialization for the typed layer: protobuf binary and the protobuf JSON mapping, via buffa.
//!
//! The call state machines only see payload bytes; these functions turn them into messages and back.
//! JSON uses the serde impls buffa generates for the proto3 JSON mapping; as in connect-go, unknown
//! JSON fields are ignored (buffa's generated impls skip them), so an older server accepts a newer
//! client's messages.

use buffa::view::HasMessageView;
use bytes::{BufMut, Bytes, BytesMut};

use connect_proto::Codec;
use connect_proto::Status;

/// Serializes a message with `codec`. A message that cannot be serialized is an `internal` Status.
pub fn encode<M>(codec: Codec, message: &M) -> Result<Bytes, Status>
where
    M: buffa::Message + serde::Serialize,
{
    match codec {
        // The fallible form: a message over protobuf's 2 GiB limit would make `encode_to_bytes` panic.
        Codec::Proto => message
            .try_encode_to_bytes()
            .map_err(|err| Status::internal(format!("failed to encode proto message: {err}"))),
        Codec::Json => serde_json::to_vec(message)
            .map(Bytes::from)
            .map_err(|err| Status::internal(format!("failed to encode json message: {err}"))),
    }
}

/// Serializes `message` with `codec`, appending it to `buf` (the proto form reserves its exact size
/// first). `cache` is scratch space that callers encoding many messages keep between them. On error,
/// `buf` may hold part of the message: callers drop what was appended.
pub(crate) fn encode_into<M>(
    codec: Codec,
    message: &M,
    cache: &mut buffa::SizeCache,
    buf: &mut BytesMut,
) -> Result<(), Status>
where
    M: buffa::Message + serde::Serialize,
{
    match codec {
        Codec::Proto => {
            cache.clear();
            let size = buffa::checked_encode_size(message.compute_size(cache)).map_err(|err| {
                Status::internal(format!("failed to encode proto message: {err}"))
            })?;
            buf.reserve(size as usize);
            message.write_to(cache, buf);
            Ok(())
        }
        Codec::Json => serde_json::to_writer(buf.writer(), message)
            .map_err(|err| Status::internal(format!("failed to encode json message: {err}"))),
    }
}

/// Deserializes a message with `codec`. Malformed input is an `invalid_argument` Status naming the codec
/// (a server decoding a request); clients remap it to `internal`.
///
/// An empty payload is the default message in proto, but not valid JSON (connect-go agrees).
pub fn decode<M>(codec: Codec, payload: &[u8]) -> Result<M, Status>
where
    M: buffa::Message + serde::de::DeserializeOwned,
{
    match codec {
        Codec::Proto => M::decode_from_slice(payload).map_err(|err| decode_error(codec, err)),
        Codec::Json => serde_json::from_slice(payload).map_err(|err| decode_error(codec, err)),
    }
}

/// Deserializes a message into buffa's owned view handle (`FooOwnedView`), which keeps `payload`
/// alive and reads strings and bytes fields straight out of it.
///
/// With [`Codec::Proto`] this is zero-copy: the handle borrows `payload` itself. JSON has no wire form
/// a view can borrow, so the message is decoded, re-encoded as protobuf and viewed; handlers that take
/// views work with both codecs, and JSON pays one extra encode. Errors are as for [`decode`].
pub fn decode_view<M>(codec: Codec, payload: Bytes) -> Result<M::ViewHandle, Status>
where
    M: HasMessageView + serde::de::DeserializeOwned,
{
    match codec {
        Codec::Proto => M::decode_view_handle(payload).map_err(|err| decode_error(codec, err)),
        Codec::Json => {
            let message: M = decode(codec, &payload)?;
            buffa::OwnedView::<M::View<'static>>::from_owned(&message)
                .map(M::ViewHandle::from)
                // The JSON was valid, so only re-encoding can have failed: that is on us.
                .map_err(|err| Status::internal(format!("failed to view json message: {err}")))
        }
    }
}

fn decode_error(codec: Codec, err: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("failed to decode {} message: {err}", codec.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use buffa_types::google::protobuf::{Struct, Timestamp, Value};
    use connect_proto::Code;

    fn sample_struct() -> Struct {
        let mut inner = Struct::new();
        inner.insert("ok", true);
        let mut message = Struct::new();
        message.insert("name", "connect");
        message.insert("count", 3.0);
        message.insert("inner", Value::from(inner));
        message
    }

    /// Serializing in place gives the same bytes as `encode`, message after message.
    #[test]
    fn encode_into_matches_encode() {
        let mut cache = buffa::SizeCache::new();
        for codec in [Codec::Proto, Codec::Json] {
            let mut buf = BytesMut::new();
            let mut expected = Vec::new();
            for i in 0..50 {
                let mut message = sample_struct();
                message.insert("i", f64::from(i));
                encode_into(codec, &message, &mut cache, &mut buf).unwrap();
                expected.extend_from_slice(&encode(codec, &message).unwrap());
            }
            assert_eq!(&buf[..], &expected[..], "{codec:?}");
        }
    }

    #[test]
    fn proto_round_trip() {
        let timestamp = Timestamp::from_unix(1_700_000_000, 123_000_000);
        let bytes = encode(Codec::Proto, &timestamp).unwrap();
        assert_eq!(
            decode::<Timestamp>(Codec::Proto, &bytes).unwrap(),
            timestamp
        );

        let message = sample_struct();
        let bytes = encode(Codec::Proto, &message).unwrap();
        assert_eq!(decode::<Struct>(Codec::Proto, &bytes).unwrap(), message);
    }

    #[test]
    fn json_round_trip() {
        let timestamp = Timestamp::from_unix(1_700_000_000, 123_000_000);
        let json = encode(Codec::Json, &timestamp).unwrap();
        assert_eq!(&json[..], br#""2023-11-14T22:13:20.123Z""#);
        assert_eq!(decode::<Timestamp>(Codec::Json, &json).unwrap(), timestamp);

        let message = sample_struct();
        let json = encode(Codec::Json, &message).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"name": "connect", "count": 3.0, "inner": {"ok": true}})
        );
        assert_eq!(decode::<Struct>(Codec::Json, &json).unwrap(), message);
    }

    #[test]
    fn empty_payload_is_default_in_proto_only() {
        assert_eq!(
            decode::<Timestamp>(Codec::Proto, b"").unwrap(),
            Timestamp::default()
        );
        assert_eq!(
            decode::<Timestamp>(Codec::Json, b"").unwrap_err().code(),
            Code::INVALID_ARGUMENT
        );
    }

    #[test]
    fn malformed_input_is_invalid_argument() {
        // Field 1, length-delimited, announcing 16 bytes that are not there.
        let err = decode::<Struct>(Codec::Proto, &[0x0a, 0x10, 0x01]).unwrap_err();
        assert_eq!(err.code(), Code::INVALID_ARGUMENT);
        assert!(err.message().contains("proto"), "{}", err.message());

        for bad in [
            &b"{"[..],
            b"[1, 2]",
            b"{\"a\": 1} trailing",
            b"\"not a timestamp\"",
        ] {
            let err = decode::<Timestamp>(Codec::Json, bad).unwrap_err();
            assert_eq!(err.code(), Code::INVALID_ARGUMENT);
            assert!(err.message().contains("json"), "{}", err.message());
        }
    }

    #[test]
    fn view_from_proto_borrows_the_payload() {
        let message = sample_struct();
        let payload = encode(Codec::Proto, &message).unwrap();
        let handle = decode_view::<Struct>(Codec::Proto, payload.clone()).unwrap();
        assert_eq!(handle.as_ref().bytes().as_ptr(), payload.as_ptr());
        assert_eq!(handle.as_ref().to_owned_message(), message);
    }

    #[test]
    fn view_from_json() {
        let message = sample_struct();
        let payload = encode(Codec::Json, &message).unwrap();
        let handle = decode_view::<Struct>(Codec::Json, payload).unwrap();
        assert_eq!(handle.as_ref().to_owned_message(), message);

        let err = decode_view::<Struct>(Codec::Json, Bytes::from_static(b"nope")).unwrap_err();
        assert_eq!(err.code(), Code::INVALID_ARGUMENT);
    }
}
