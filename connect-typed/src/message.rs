//! Typed messages over payload bytes: zero-copy request views and owned messages, proto or JSON.

use buffa::view::{HasMessageView, OwnedView};
use buffa::DecodeError;
use bytes::Bytes;

use crate::codec;
use connect_proto::Codec;
use connect_proto::{Code, Status};

/// A decoded request message that borrows from the received payload: no copies of strings and
/// bytes. It is buffa's generated handle (`FooOwnedView`): read fields with its accessors
/// (`request.name()`), the whole view with `request.view()`, or convert with
/// `request.to_owned_message()`. For the JSON codec the message is parsed into its owned form and
/// re-encoded once to build the view.
pub type RequestView<M> = <M as HasMessageView>::ViewHandle;

/// Decodes a request payload into a view (server side: malformed input is `invalid_argument`).
pub fn decode_request<M>(codec: Codec, payload: Bytes) -> Result<RequestView<M>, Status>
where
    M: HasMessageView + serde::de::DeserializeOwned,
{
    RequestDecoder::<M>::default().decode(codec, payload)
}

/// A decoder of proto request payloads into views of `M`, in place of buffa's: generated code
/// implements it for batch-shaped messages (see `connect-build`).
pub trait ViewDecoder<M: HasMessageView>: Send + Sync + 'static {
    /// Decodes `buf`: exactly what
    /// [`MessageView::decode_view`](buffa::view::MessageView::decode_view) decodes, rejecting what it rejects.
    fn decode_view<'a>(&self, buf: &'a [u8]) -> Result<M::View<'a>, DecodeError>;
}

/// How the server turns request payloads of message type `M` into [`RequestView`]s: buffa's view
/// decoder (the default), or a [`ViewDecoder`]. JSON payloads are parsed the same way either way.
pub struct RequestDecoder<M: HasMessageView> {
    proto: Option<&'static dyn ViewDecoder<M>>,
}

impl<M: HasMessageView> RequestDecoder<M> {
    /// A decoder whose proto payloads go through `proto`.
    pub const fn new(proto: &'static dyn ViewDecoder<M>) -> Self {
        RequestDecoder { proto: Some(proto) }
    }

    /// Decodes one request payload (malformed input is `invalid_argument`).
    pub fn decode(self, codec: Codec, payload: Bytes) -> Result<RequestView<M>, Status>
    where
        M: serde::de::DeserializeOwned,
    {
        let view = match codec {
            Codec::Proto => match self.proto {
                Some(decoder) => owned_view(payload, decoder),
                None => OwnedView::decode(payload),
            }
            .map_err(|e| Status::invalid_argument(format!("invalid proto request message: {e}"))),
            Codec::Json => {
                let message: M = codec::decode(Codec::Json, &payload)?;
                OwnedView::from_owned(&message).map_err(|e| {
                    Status::internal(format!("re-encoding a JSON request failed: {e}"))
                })
            }
        };
        view.map(Into::into)
    }
}

/// Decodes `payload` with `decoder` into a view that owns the payload.
///
/// The one `unsafe` block of this crate. buffa's [`OwnedView::decode`] does the same with the view
/// type's own decoder and offers no safe way to use another one, so this states its contract here.
#[allow(unsafe_code)]
fn owned_view<M: HasMessageView>(
    payload: Bytes,
    decoder: &dyn ViewDecoder<M>,
) -> Result<OwnedView<M::View<'static>>, DecodeError> {
    // SAFETY: `decode_view` is generic over the lifetime of its input, so the view it returns can
    // borrow from that input or from `'static` data and from nothing else (not even the decoder).
    // The input is `payload`'s heap buffer, which `Bytes` never moves or frees while a handle is
    // alive: moving `payload` into the `OwnedView` keeps it alive as long as the view, and
    // `OwnedView` drops the view first. That is the invariant `OwnedView::from_parts` asks for, and
    // the one `OwnedView::decode` relies on.
    unsafe {
        let input: &'static [u8] = std::mem::transmute::<&[u8], &'static [u8]>(&payload);
        let view = decoder.decode_view(input)?;
        Ok(OwnedView::from_parts(payload, view))
    }
}

impl<M: HasMessageView> Default for RequestDecoder<M> {
    fn default() -> Self {
        RequestDecoder { proto: None }
    }
}

impl<M: HasMessageView> Clone for RequestDecoder<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: HasMessageView> Copy for RequestDecoder<M> {}

impl<M: HasMessageView> std::fmt::Debug for RequestDecoder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestDecoder")
            .field("generated", &self.proto.is_some())
            .finish()
    }
}

/// Decodes a response payload into an owned message (client side: malformed input is `internal`, since
/// the server broke the contract, not the caller).
pub fn decode_response<M>(codec: Codec, payload: &[u8]) -> Result<M, Status>
where
    M: buffa::Message + serde::de::DeserializeOwned,
{
    codec::decode(codec, payload).map_err(|status| {
        if status.code() == Code::INVALID_ARGUMENT {
            Status::internal(status.message().to_owned())
        } else {
            status
        }
    })
}

/// Serializes a message.
pub fn encode<M>(codec: Codec, message: &M) -> Result<Bytes, Status>
where
    M: buffa::Message + serde::Serialize,
{
    codec::encode(codec, message)
}

#[cfg(test)]
mod tests {
    use buffa::view::MessageView;
    use buffa::Message;
    use buffa_types::google::protobuf::FieldMask;

    use super::*;

    /// A hand-written decoder, as generated code writes them: the list sized ahead.
    struct Presized;

    impl ViewDecoder<FieldMask> for Presized {
        fn decode_view<'a>(
            &self,
            buf: &'a [u8],
        ) -> Result<<FieldMask as HasMessageView>::View<'a>, DecodeError> {
            use crate::codegen::{count_fields, Budget};
            let budget = Budget::new();
            let [paths] = count_fields(buf, [1]);
            let mut view = <FieldMask as HasMessageView>::View::<'a>::default();
            view.paths = buffa::view::RepeatedView::new(budget.vec(paths));
            view.merge_into_view(buf, budget.context())?;
            Ok(view)
        }
    }

    fn payload() -> Bytes {
        let mask = FieldMask {
            paths: vec!["a.b".to_owned(), "c".to_owned(), "é".to_owned()],
            ..Default::default()
        };
        Bytes::from(mask.encode_to_vec())
    }

    #[test]
    fn a_view_decoder_view_owns_its_payload() {
        let decoder = RequestDecoder::<FieldMask>::new(&Presized);
        // The view outlives every other handle on the payload, and is moved around.
        let view = decoder.decode(Codec::Proto, payload()).unwrap();
        let moved = vec![view];
        let paths: Vec<&str> = moved[0].paths().iter().copied().collect();
        assert_eq!(paths, ["a.b", "c", "é"]);
        assert_eq!(moved[0].to_owned_message().paths.len(), 3);
        let bytes = moved.into_iter().next().unwrap().into_bytes();
        assert_eq!(bytes, payload());
    }

    #[test]
    fn a_view_decoder_rejects_what_buffa_rejects() {
        let decoder = RequestDecoder::<FieldMask>::new(&Presized);
        for bad in [&b"\x0a\x05ab"[..], b"\x0a\x01\xff", b"\x08"] {
            let bad = Bytes::copy_from_slice(bad);
            assert!(
                OwnedView::<<FieldMask as HasMessageView>::View<'static>>::decode(bad.clone())
                    .is_err()
            );
            let status = decoder.decode(Codec::Proto, bad).unwrap_err();
            assert_eq!(status.code(), crate::Code::INVALID_ARGUMENT);
        }
        let json = RequestDecoder::<FieldMask>::new(&Presized)
            .decode(Codec::Json, Bytes::from_static(b"\"a.b,c\""))
            .unwrap();
        assert_eq!(json.paths().len(), 2);
    }
}
