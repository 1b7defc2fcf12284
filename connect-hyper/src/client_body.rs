//! The client side: hyper's response body as the typed layer wants it.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use connect_typed::TransportError;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// A response body from hyper whose errors carry the HTTP/2 reset code, so that the call machine maps
/// `RST_STREAM` codes to status codes.
#[derive(Debug)]
pub struct ClientBody {
    inner: Incoming,
}

impl ClientBody {
    /// Wraps hyper's response body.
    pub fn new(inner: Incoming) -> Self {
        ClientBody { inner }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|result| result.map_err(transport_error)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A hyper error as a [`TransportError`]: a reset when an HTTP/2 reason is found in its sources.
pub fn transport_error<E: StdError + Send + Sync + 'static>(error: E) -> TransportError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(reason) = e.downcast_ref::<h2::Error>().and_then(h2::Error::reason) {
            return TransportError::reset(connect_typed::Reset::H2(reason.into()), error);
        }
        source = e.source();
    }
    TransportError::connection(error)
}
