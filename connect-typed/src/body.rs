//! HTTP bodies: the request body a client streams, and the erasure of foreign bodies into `Bytes` frames.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};

use crate::runtime::MaybeSend;
use connect_proto::Reset;

/// A boxed error from an HTTP stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A transport failure: the request could not be sent or the response was cut off.
#[derive(Debug)]
pub struct TransportError {
    reason: Reset,
    source: BoxError,
}

impl TransportError {
    /// A connection-level failure (refused, closed, TLS, ...).
    pub fn connection(source: impl Into<BoxError>) -> Self {
        TransportError {
            reason: Reset::ConnectionLost,
            source: source.into(),
        }
    }

    /// The peer reset the stream (HTTP/2 RST_STREAM, HTTP/3 RESET_STREAM or STOP_SENDING).
    pub fn reset(reason: Reset, source: impl Into<BoxError>) -> Self {
        TransportError {
            reason,
            source: source.into(),
        }
    }

    /// How the stream ended: a reset with its code, or [`Reset::ConnectionLost`].
    pub fn reason(&self) -> Reset {
        self.reason
    }

    /// The reason in a body error: a boxed [`TransportError`] carries one; any other error is a
    /// lost connection.
    pub(crate) fn reason_of(error: &BoxError) -> Reset {
        error
            .downcast_ref::<TransportError>()
            .map_or(Reset::ConnectionLost, TransportError::reason)
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Reset::ConnectionLost => write!(f, "transport error: {}", self.source),
            reset => write!(f, "{reset}: {}", self.source),
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A body of any `http-body` implementation, seen as `Bytes` frames with a boxed error.
pub(crate) trait BytesBody: MaybeSend {
    fn poll_bytes(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>;
}

impl<B> BytesBody for B
where
    B: Body + MaybeSend,
    B::Error: Into<BoxError>,
{
    fn poll_bytes(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.poll_frame(cx).map(|frame| {
            frame.map(|result| {
                result
                    .map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                    .map_err(Into::into)
            })
        })
    }
}

/// An erased body (`Send` except on wasm32).
pub(crate) type BoxedBody<'a> = Pin<Box<dyn BytesBody + 'a>>;

/// The request body of a client call: the call driver pushes the enveloped request messages as the
/// application produces them, the transport polls them out.
///
/// It ends after the last message, or fails with a [`TransportError`] when the call is cancelled, so
/// that the HTTP stack aborts the request (RST_STREAM) instead of ending it cleanly.
pub struct RequestBody {
    chan: Arc<BodyChannel>,
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}

impl RequestBody {
    /// A body that is already complete.
    pub fn full(data: Bytes) -> Self {
        let chan = Arc::new(BodyChannel::default());
        if !data.is_empty() {
            chan.push(data);
        }
        chan.close();
        RequestBody { chan }
    }

    /// Another handle on the same body, for a transport that sends a request again after a failure
    /// that came before any of its body was read (such as a connection that never came up): the new
    /// handle yields whatever the first has not. Reading from both would split the body between them.
    pub fn resend_handle(&self) -> Self {
        RequestBody {
            chan: self.chan.clone(),
        }
    }

    pub(crate) fn channel() -> (Self, Arc<BodyChannel>) {
        let chan = Arc::new(BodyChannel::default());
        (RequestBody { chan: chan.clone() }, chan)
    }
}

/// The producer side shared with a [`RequestBody`].
#[derive(Debug, Default)]
pub(crate) struct BodyChannel {
    state: Mutex<ChannelState>,
}

#[derive(Debug, Default)]
struct ChannelState {
    queue: VecDeque<Bytes>,
    buffered: usize,
    closed: bool,
    aborted: bool,
    /// The body's consumer, waiting for data.
    consumer: Option<Waker>,
    /// The call driver, waiting for room.
    producer: Option<Waker>,
}

impl BodyChannel {
    fn lock(&self) -> MutexGuard<'_, ChannelState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, data: Bytes) {
        let mut s = self.lock();
        s.buffered += data.len();
        s.queue.push_back(data);
        if let Some(w) = s.consumer.take() {
            w.wake();
        }
    }

    pub(crate) fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        if let Some(w) = s.consumer.take() {
            w.wake();
        }
    }

    pub(crate) fn abort(&self) {
        let mut s = self.lock();
        s.aborted = true;
        s.queue.clear();
        s.buffered = 0;
        if let Some(w) = s.consumer.take() {
            w.wake();
        }
    }

    /// Aborts the body unless it was closed: what is left of a finished body still goes out.
    pub(crate) fn abort_unless_closed(&self) {
        if !self.lock().closed {
            self.abort();
        }
    }

    /// Whether the producer may push more; otherwise registers to be woken when there is room.
    pub(crate) fn has_room(&self, limit: usize, cx: &Context<'_>) -> bool {
        let mut s = self.lock();
        if s.buffered < limit {
            return true;
        }
        s.producer = Some(cx.waker().clone());
        false
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        let mut s = self.chan.lock();
        if s.aborted {
            return Poll::Ready(Some(Err(TransportError::connection(
                "the call was cancelled",
            ))));
        }
        if let Some(data) = s.queue.pop_front() {
            s.buffered -= data.len();
            if let Some(w) = s.producer.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        s.consumer = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = self.chan.lock();
        s.closed && s.queue.is_empty() && !s.aborted
    }

    fn size_hint(&self) -> SizeHint {
        let s = self.chan.lock();
        if s.closed && !s.aborted {
            SizeHint::with_exact(s.buffered as u64)
        } else {
            let mut hint = SizeHint::new();
            hint.set_lower(s.buffered as u64);
            hint
        }
    }
}
