//! HTTP/3 bodies as `http_body` bodies: a server's request body and a client's response body, read
//! from h3's receiving half of a request stream.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use connect_typed::{BoxError, Reset, TransportError};
use h3::error::StreamError;
use http_body::{Body, Frame, SizeHint};

use crate::quic::{self, H3_REQUEST_CANCELLED};

type ServerRecv = h3::server::RequestStream<quic::RecvStream, Bytes>;
type ClientRecv = h3::client::RequestStream<quic::RecvStream, Bytes>;

/// Reading a message body: DATA frames, then maybe a trailer section, then the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Data,
    Trailers,
    Done,
}

/// What both bodies read from: h3's server and client receiving halves have the same methods
/// without sharing a trait.
trait Recv {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>>;
    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, StreamError>>;
}

impl Recv for ServerRecv {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        self.poll_recv_data(cx)
            .map_ok(|data| data.map(|mut d| d.copy_to_bytes(d.remaining())))
    }

    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, StreamError>> {
        self.poll_recv_trailers(cx)
    }
}

impl Recv for ClientRecv {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        self.poll_recv_data(cx)
            .map_ok(|data| data.map(|mut d| d.copy_to_bytes(d.remaining())))
    }

    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, StreamError>> {
        self.poll_recv_trailers(cx)
    }
}

/// Polls the next frame of a body from `recv`.
fn poll_frame<R: Recv>(
    recv: &mut R,
    part: &mut Part,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
    loop {
        match *part {
            Part::Data => match ready!(recv.poll_data(cx)) {
                // h3 hands empty reads of DATA frames with no payload up as data too.
                Ok(Some(data)) if data.is_empty() => continue,
                Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(None) => *part = Part::Trailers,
                Err(e) => {
                    *part = Part::Done;
                    return Poll::Ready(Some(Err(e)));
                }
            },
            Part::Trailers => {
                let trailers = ready!(recv.poll_trailers(cx));
                *part = Part::Done;
                return Poll::Ready(match trailers {
                    Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                });
            }
            Part::Done => return Poll::Ready(None),
        }
    }
}

/// The peer's reset of a stream, as the typed layer's [`Reset`]; any other failure is a lost
/// connection.
pub(crate) fn reset_of(error: &StreamError) -> Reset {
    match error {
        StreamError::RemoteTerminate { code, .. } => Reset::H3(code.value()),
        _ => Reset::ConnectionLost,
    }
}

/// A server's request body, failing once more than its limit arrived.
pub(crate) struct RequestBody {
    recv: ServerRecv,
    part: Part,
    /// Bytes still allowed ([`Limits::max_request_body`](connect_hyper::Limits)).
    remaining: u64,
}

impl RequestBody {
    pub(crate) fn new(recv: ServerRecv, limit: Option<u64>) -> Self {
        RequestBody {
            recv,
            part: Part::Data,
            remaining: limit.unwrap_or(u64::MAX),
        }
    }
}

/// The request body crossed [`Limits::max_request_body`](connect_hyper::Limits).
#[derive(Debug)]
pub(crate) struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body larger than the server's limit")
    }
}

impl std::error::Error for BodyTooLarge {}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = ready!(poll_frame(&mut this.recv, &mut this.part, cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            let len = data.map_or(0, |d| d.len() as u64);
            if len > this.remaining {
                this.part = Part::Done;
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
            }
            this.remaining -= len;
        }
        Poll::Ready(
            frame.map(|f| {
                f.map_err(|e| Box::new(TransportError::reset(reset_of(&e), e)) as BoxError)
            }),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.part == Part::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A client's response body. Dropped before its end, it tells the server to stop sending
/// (`H3_REQUEST_CANCELLED`): that is how a call dropped mid-response is cancelled.
pub struct ResponseBody {
    recv: ClientRecv,
    part: Part,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("part", &self.part)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    pub(crate) fn new(recv: ClientRecv) -> Self {
        ResponseBody {
            recv,
            part: Part::Data,
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.part != Part::Done {
            self.recv
                .stop_sending(h3::error::Code::from(H3_REQUEST_CANCELLED));
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        let this = &mut *self;
        let frame = ready!(poll_frame(&mut this.recv, &mut this.part, cx));
        Poll::Ready(frame.map(|f| f.map_err(|e| TransportError::reset(reset_of(&e), e))))
    }

    fn is_end_stream(&self) -> bool {
        self.part == Part::Done
    }
}
