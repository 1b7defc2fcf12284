//! The response body: chunks read from the fetch response's `ReadableStream` as they arrive.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use connect_typed::TransportError;
use http_body::{Body, Frame};
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStreamDefaultReader};

use crate::js;

/// Aborts a fetch (request and response body) when dropped before it was disarmed.
pub(crate) struct AbortOnDrop {
    controller: Option<AbortController>,
}

impl AbortOnDrop {
    pub(crate) fn new(controller: AbortController) -> Self {
        AbortOnDrop {
            controller: Some(controller),
        }
    }

    /// The fetch completed: nothing left to abort.
    fn disarm(&mut self) {
        self.controller = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(controller) = self.controller.take() {
            controller.abort();
        }
    }
}

/// The body of a fetch response, as `http_body` frames of the chunks the browser hands over, without
/// buffering. Fetch has no trailers: the body simply ends. Dropping it before its end aborts the fetch.
pub struct FetchBody {
    reader: Option<ReadableStreamDefaultReader>,
    read: Option<JsFuture>,
    abort: AbortOnDrop,
}

impl fmt::Debug for FetchBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchBody")
            .field("ended", &self.reader.is_none())
            .finish_non_exhaustive()
    }
}

impl FetchBody {
    /// `reader` is `None` for a response without a body.
    pub(crate) fn new(reader: Option<ReadableStreamDefaultReader>, abort: AbortOnDrop) -> Self {
        let mut body = FetchBody {
            reader,
            read: None,
            abort,
        };
        if body.reader.is_none() {
            body.abort.disarm();
        }
        body
    }

    fn end(&mut self) {
        self.reader = None;
        self.read = None;
        self.abort.disarm();
    }
}

impl Body for FetchBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        let this = self.get_mut();
        loop {
            let Some(reader) = &this.reader else {
                return Poll::Ready(None);
            };
            let read = this
                .read
                .get_or_insert_with(|| JsFuture::from(reader.read()));
            let result = match Pin::new(read).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result,
            };
            this.read = None;
            let chunk = match result.and_then(read_result) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Err(error) => {
                    // The stream is errored (network failure, abort): nothing more will come.
                    this.reader = None;
                    return Poll::Ready(Some(Err(TransportError::connection(format!(
                        "reading the response body failed: {}",
                        js::describe(&error)
                    )))));
                }
            };
            if !chunk.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_none()
    }
}

/// One `{ done, value }` of `reader.read()`: the chunk, or `None` at the end.
fn read_result(result: JsValue) -> Result<Option<Bytes>, JsValue> {
    if Reflect::get(&result, &JsValue::from_str("done"))?.is_truthy() {
        return Ok(None);
    }
    let value = Reflect::get(&result, &JsValue::from_str("value"))?;
    let chunk = value
        .dyn_into::<Uint8Array>()
        .map_err(|_| JsValue::from_str("a response body chunk is not a Uint8Array"))?;
    Ok(Some(Bytes::from(chunk.to_vec())))
}
