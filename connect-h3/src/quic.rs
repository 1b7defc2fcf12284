//! quinn under h3's QUIC traits.
//!
//! h3 does HTTP/3 (frames, QPACK, control streams) over any QUIC stack that implements its
//! `h3::quic` traits; this module implements them for quinn. The h3-quinn crate does too, but two
//! things an RPC adapter needs are out of its reach: a server must learn that a client stopped
//! reading a response (`STOP_SENDING`, the only sign of a cancelled unary call whose request was
//! already read) while its handler is still working and nothing is being written, and sending
//! `STOP_SENDING` must be possible at any time (h3-quinn's receive stream panics when asked to while
//! a read is pending). Here:
//!
//! - every accepted request stream leaves a [`Stopped`] future behind (taken with
//!   [`StopWatch::take`]), which completes when the client stops reading the response;
//! - a receive stream dropped before its end tells the peer to stop sending with the side's code
//!   (`H3_NO_ERROR` on a server done with a request body, `H3_REQUEST_CANCELLED` on a client that
//!   gave up a response), and a send stream dropped before it was finished is reset instead of
//!   being ended cleanly, so that a cut-off response never looks complete;
//! - reads hand quinn's received chunks up without copying.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::future::BoxFuture;
use h3::error::Code;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use quinn::VarInt;

/// `H3_NO_ERROR`.
pub(crate) const H3_NO_ERROR: u64 = 0x100;
/// `H3_INTERNAL_ERROR`.
pub(crate) const H3_INTERNAL_ERROR: u64 = 0x102;
/// `H3_REQUEST_CANCELLED`.
pub(crate) const H3_REQUEST_CANCELLED: u64 = 0x10c;

/// Which end of the connection this is: it decides the codes streams dropped early are closed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    /// `STOP_SENDING` for a receive stream dropped before its end.
    fn stop_code(self) -> u64 {
        match self {
            // RFC 9114, 4.1: a server that does not need the rest of a request says H3_NO_ERROR.
            Side::Server => H3_NO_ERROR,
            Side::Client => H3_REQUEST_CANCELLED,
        }
    }

    /// `RESET_STREAM` for a send stream dropped before it was finished.
    fn reset_code(self) -> u64 {
        match self {
            Side::Server => H3_INTERNAL_ERROR,
            Side::Client => H3_REQUEST_CANCELLED,
        }
    }
}

/// Completes with the code of the peer's `STOP_SENDING` on a response stream (`None` once the
/// stream was finished and acknowledged, or the connection is gone).
pub(crate) type Stopped = BoxFuture<'static, Option<u64>>;

/// The [`Stopped`] futures of a server connection's request streams, by stream id, until the request
/// handler takes its own.
#[derive(Clone, Default)]
pub(crate) struct StopWatch {
    futures: Arc<Mutex<HashMap<u64, Stopped>>>,
}

impl StopWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Stopped>> {
        self.futures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The [`Stopped`] future of request stream `id`.
    pub(crate) fn take(&self, id: StreamId) -> Option<Stopped> {
        self.lock().remove(&id.into_inner())
    }
}

fn stream_id(id: quinn::StreamId) -> StreamId {
    // Both are QUIC stream ids, integers below 2^62 (quinn's come off the wire as varints).
    StreamId::try_from(u64::from(id)).expect("a QUIC stream id is a varint")
}

fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

fn connection_error(error: quinn::ConnectionError) -> ConnectionErrorIncoming {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: close.error_code.into_inner(),
            }
        }
        quinn::ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn stream_connection_error(error: quinn::ConnectionError) -> StreamErrorIncoming {
    StreamErrorIncoming::ConnectionErrorIncoming {
        connection_error: connection_error(error),
    }
}

type Accepting<T> = BoxFuture<'static, Result<T, quinn::ConnectionError>>;

/// A quinn connection as h3 sees it.
pub(crate) struct Connection {
    conn: quinn::Connection,
    side: Side,
    accept_bi: Option<Accepting<(quinn::SendStream, quinn::RecvStream)>>,
    accept_uni: Option<Accepting<quinn::RecvStream>>,
    opener: Opener,
    stops: Option<StopWatch>,
}

impl Connection {
    /// The client side of `conn`.
    pub(crate) fn client(conn: quinn::Connection) -> Self {
        Connection::new(conn, Side::Client, None)
    }

    /// The server side of `conn`; `stops` collects the [`Stopped`] futures of its requests.
    pub(crate) fn server(conn: quinn::Connection, stops: StopWatch) -> Self {
        Connection::new(conn, Side::Server, Some(stops))
    }

    fn new(conn: quinn::Connection, side: Side, stops: Option<StopWatch>) -> Self {
        Connection {
            opener: Opener {
                conn: conn.clone(),
                side,
                open_bi: None,
                open_uni: None,
            },
            conn,
            side,
            accept_bi: None,
            accept_uni: None,
            stops,
        }
    }
}

impl<B: Buf> quic::Connection<B> for Connection {
    type RecvStream = RecvStream;
    type OpenStreams = Opener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RecvStream, ConnectionErrorIncoming>> {
        let conn = &self.conn;
        let accepting = self.accept_uni.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.accept_uni().await })
        });
        let result = ready!(accepting.as_mut().poll(cx));
        self.accept_uni = None;
        let recv = result.map_err(connection_error)?;
        Poll::Ready(Ok(RecvStream::new(recv, self.side)))
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, ConnectionErrorIncoming>> {
        let conn = &self.conn;
        let accepting = self.accept_bi.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.accept_bi().await })
        });
        let result = ready!(accepting.as_mut().poll(cx));
        self.accept_bi = None;
        let (send, recv) = result.map_err(connection_error)?;
        let mut send = SendStream::new(send, self.side);
        if let Some(stops) = &self.stops {
            let stopped = send.stream.stopped();
            let stopped: Stopped =
                Box::pin(async move { stopped.await.ok().flatten().map(VarInt::into_inner) });
            stops.lock().insert(u64::from(send.stream.id()), stopped);
            send.stops = Some(stops.clone());
        }
        Poll::Ready(Ok(BidiStream {
            send,
            recv: RecvStream::new(recv, self.side),
        }))
    }

    fn opener(&self) -> Opener {
        Opener {
            conn: self.conn.clone(),
            side: self.side,
            open_bi: None,
            open_uni: None,
        }
    }
}

impl<B: Buf> quic::OpenStreams<B> for Connection {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        <Opener as quic::OpenStreams<B>>::poll_open_bidi(&mut self.opener, cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
        <Opener as quic::OpenStreams<B>>::poll_open_send(&mut self.opener, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        self.conn.close(varint(code.value()), reason);
    }
}

/// Opens streams on a quinn connection.
pub(crate) struct Opener {
    conn: quinn::Connection,
    side: Side,
    open_bi: Option<Accepting<(quinn::SendStream, quinn::RecvStream)>>,
    open_uni: Option<Accepting<quinn::SendStream>>,
}

impl Clone for Opener {
    fn clone(&self) -> Self {
        Opener {
            conn: self.conn.clone(),
            side: self.side,
            open_bi: None,
            open_uni: None,
        }
    }
}

impl<B: Buf> quic::OpenStreams<B> for Opener {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        let conn = &self.conn;
        let opening = self.open_bi.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.open_bi().await })
        });
        let result = ready!(opening.as_mut().poll(cx));
        self.open_bi = None;
        let (send, recv) = result.map_err(stream_connection_error)?;
        Poll::Ready(Ok(BidiStream {
            send: SendStream::new(send, self.side),
            recv: RecvStream::new(recv, self.side),
        }))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
        let conn = &self.conn;
        let opening = self.open_uni.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.open_uni().await })
        });
        let result = ready!(opening.as_mut().poll(cx));
        self.open_uni = None;
        let send = result.map_err(stream_connection_error)?;
        Poll::Ready(Ok(SendStream::new(send, self.side)))
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        self.conn.close(varint(code.value()), reason);
    }
}

/// Both directions of a request stream.
pub(crate) struct BidiStream<B> {
    send: SendStream<B>,
    recv: RecvStream,
}

impl<B: Buf> quic::BidiStream<B> for BidiStream<B> {
    type SendStream = SendStream<B>;
    type RecvStream = RecvStream;

    fn split(self) -> (SendStream<B>, RecvStream) {
        (self.send, self.recv)
    }
}

impl<B> quic::RecvStream for BidiStream<B> {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code);
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl<B: Buf> quic::SendStream<B> for BidiStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        quic::SendStream::<B>::poll_ready(&mut self.send, cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        quic::SendStream::<B>::poll_finish(&mut self.send, cx)
    }

    fn reset(&mut self, reset_code: u64) {
        quic::SendStream::<B>::reset(&mut self.send, reset_code);
    }

    fn send_id(&self) -> StreamId {
        quic::SendStream::<B>::send_id(&self.send)
    }
}

/// The receiving half of a stream.
pub(crate) struct RecvStream {
    stream: quinn::RecvStream,
    side: Side,
    /// The end, a reset or a `STOP_SENDING` was seen or sent: nothing is left to stop on drop.
    closed: bool,
}

impl RecvStream {
    fn new(stream: quinn::RecvStream, side: Side) -> Self {
        RecvStream {
            stream,
            side,
            closed: false,
        }
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.stream.stop(varint(self.side.stop_code()));
        }
    }
}

impl quic::RecvStream for RecvStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        // `read_chunk` is cancel-safe and registers the waker with the connection, so a fresh
        // future per poll loses nothing; chunks are quinn's received bytes, not copies.
        let read = ready!(pin!(self.stream.read_chunk(usize::MAX, true)).poll(cx));
        Poll::Ready(match read {
            Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
            Ok(None) => {
                self.closed = true;
                Ok(None)
            }
            Err(error) => {
                self.closed = true;
                Err(match error {
                    quinn::ReadError::Reset(code) => StreamErrorIncoming::StreamTerminated {
                        error_code: code.into_inner(),
                    },
                    quinn::ReadError::ConnectionLost(e) => stream_connection_error(e),
                    other => StreamErrorIncoming::Unknown(Box::new(other)),
                })
            }
        })
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.closed = true;
        let _ = self.stream.stop(varint(error_code));
    }

    fn recv_id(&self) -> StreamId {
        stream_id(self.stream.id())
    }
}

/// The sending half of a stream.
pub(crate) struct SendStream<B> {
    stream: quinn::SendStream,
    side: Side,
    /// The frame being written (quinn copies it into its send buffer as it goes).
    writing: Option<WriteBuf<B>>,
    /// Finished or reset: nothing to reset on drop.
    closed: bool,
    /// A server's request stream: its entry in the [`StopWatch`] goes with it.
    stops: Option<StopWatch>,
}

impl<B> SendStream<B> {
    fn new(stream: quinn::SendStream, side: Side) -> Self {
        SendStream {
            stream,
            side,
            writing: None,
            closed: false,
            stops: None,
        }
    }
}

impl<B> Drop for SendStream<B> {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.stream.reset(varint(self.side.reset_code()));
        }
        if let Some(stops) = &self.stops {
            stops.lock().remove(&u64::from(self.stream.id()));
        }
    }
}

fn write_error(error: quinn::WriteError) -> StreamErrorIncoming {
    match error {
        quinn::WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(e) => stream_connection_error(e),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

impl<B: Buf> quic::SendStream<B> for SendStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        while let Some(data) = self.writing.as_mut() {
            if !data.has_remaining() {
                self.writing = None;
                break;
            }
            let written = ready!(Pin::new(&mut self.stream).poll_write(cx, data.chunk()));
            match written {
                Ok(n) => data.advance(n),
                Err(e) => {
                    self.writing = None;
                    return Poll::Ready(Err(write_error(e)));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing.is_some() {
            // h3 waits for `poll_ready` between frames; a second frame now would be a bug in it.
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "a frame was sent before the previous one was written".to_owned(),
                ),
            });
        }
        self.writing = Some(data.into());
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.closed = true;
        Poll::Ready(
            self.stream
                .finish()
                .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
        )
    }

    fn reset(&mut self, reset_code: u64) {
        self.closed = true;
        let _ = self.stream.reset(varint(reset_code));
    }

    fn send_id(&self) -> StreamId {
        stream_id(self.stream.id())
    }
}
