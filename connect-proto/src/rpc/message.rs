//! Typed messages over payload bytes: zero-copy request views and owned messages, proto or JSON.

use buffa::view::{HasMessageView, OwnedView};
use bytes::Bytes;

use crate::codec;
use crate::protocol::Codec;
use crate::status::{Code, Status};

/// A decoded request message that borrows from the received payload: no copies of strings and bytes.
///
/// Read fields through [`OwnedView::reborrow`] (`request.reborrow().name`), or convert with
/// [`OwnedView::to_owned_message`]. For the JSON codec the message is parsed into its owned form and
/// re-encoded once to build the view.
pub type RequestView<M> = OwnedView<<M as HasMessageView>::View<'static>>;

/// Decodes a request payload into a view (server side: malformed input is `invalid_argument`).
pub fn decode_request<M>(codec: Codec, payload: Bytes) -> Result<RequestView<M>, Status>
where
    M: HasMessageView + serde::de::DeserializeOwned,
{
    match codec {
        Codec::Proto => OwnedView::decode(payload)
            .map_err(|e| Status::invalid_argument(format!("invalid proto request message: {e}"))),
        Codec::Json => {
            let message: M = codec::decode(Codec::Json, &payload)?;
            OwnedView::from_owned(&message)
                .map_err(|e| Status::internal(format!("re-encoding a JSON request failed: {e}")))
        }
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
