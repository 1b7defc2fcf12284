//! Per-call state machines: [`ServerCall`] and [`ClientCall`], and what both sides share.

mod client;
mod server;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName};

pub use client::{CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit};
pub use server::{ServerCall, ServerConfig, ServerEvent, ServerTransmit};

use crate::compression::{CompressionRegistry, Compressor, DecompressError};
use crate::envelope::{self, flags, Envelope, EnvelopeDecoder, TooLarge};
use crate::protocol::grpc;
use crate::status::{Code, Status, UsageError};

/// Why a call's HTTP stream ended abruptly: the input of both machines' `recv_reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reset {
    /// The peer reset the stream with this HTTP/2 error code (RST_STREAM, RFC 9113 §7).
    H2(u32),
    /// The peer reset the stream with this HTTP/3 error code (RESET_STREAM or STOP_SENDING,
    /// RFC 9114 §8.1).
    H3(u64),
    /// The connection failed or closed under the call (over HTTP/1.1, the only way a call ends
    /// early).
    ConnectionLost,
}

impl Reset {
    /// HTTP/3's `H3_EXCESSIVE_LOAD`.
    pub const H3_EXCESSIVE_LOAD: u64 = 0x107;
    /// HTTP/3's `H3_REQUEST_REJECTED`.
    pub const H3_REQUEST_REJECTED: u64 = 0x10b;
    /// HTTP/3's `H3_REQUEST_CANCELLED`.
    pub const H3_REQUEST_CANCELLED: u64 = 0x10c;

    /// The outcome of a call whose response stream was reset (PROTOCOL-TRAPS 19): refused →
    /// `unavailable`, cancelled → `canceled`, "slow down" → `resource_exhausted`, a lost
    /// connection → `unavailable`, anything else → `internal`.
    pub fn status(self) -> Status {
        match self {
            Reset::H2(code) => grpc::status_from_reset(code),
            Reset::H3(Self::H3_REQUEST_REJECTED) => {
                Status::unavailable("stream refused by peer (H3_REQUEST_REJECTED)")
            }
            Reset::H3(Self::H3_REQUEST_CANCELLED) => {
                Status::canceled("stream canceled by peer (H3_REQUEST_CANCELLED)")
            }
            Reset::H3(Self::H3_EXCESSIVE_LOAD) => {
                Status::resource_exhausted("peer asked to slow down (H3_EXCESSIVE_LOAD)")
            }
            Reset::H3(code) => Status::internal(format!(
                "stream reset by peer (HTTP/3 error code {code:#x})"
            )),
            Reset::ConnectionLost => Status::unavailable("the connection failed"),
        }
    }
}

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reset::H2(code) => write!(f, "HTTP/2 stream reset (code {code:#x})"),
            Reset::H3(code) => write!(f, "HTTP/3 stream reset (code {code:#x})"),
            Reset::ConnectionLost => f.write_str("connection lost"),
        }
    }
}

/// The largest body or envelope accepted off the wire for a message limit of `max`. Limits apply to
/// the uncompressed message, and a compressor may expand incompressible data slightly, so a compressed
/// message just under the limit must still fit; raw messages are checked against `max` exactly.
fn wire_limit(max: usize) -> usize {
    max.saturating_add(max / 128 + 64)
}

/// `resource_exhausted` for a raw message over the limit.
#[inline]
fn check_raw_size(len: usize, max: usize, what: &str) -> Result<(), Status> {
    if len > max {
        return Err(too_large(len, max, what));
    }
    Ok(())
}

#[cold]
fn too_large(len: usize, max: usize, what: &str) -> Status {
    Status::resource_exhausted(format!(
        "{what} message of {len} bytes exceeds the limit of {max}"
    ))
}

/// Which side's messages a machine receives: the server reads requests, the client responses. The
/// two differ only in words and in whose fault a corrupt message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Incoming {
    Requests,
    Responses,
}

impl Incoming {
    fn what(self) -> &'static str {
        match self {
            Incoming::Requests => "request",
            Incoming::Responses => "response",
        }
    }

    /// A message that is not in its announced encoding: the client's fault is `invalid_argument`, a
    /// server's bad response is `internal` (PROTOCOL-TRAPS 29).
    fn corrupt(self) -> Code {
        match self {
            Incoming::Requests => Code::INVALID_ARGUMENT,
            Incoming::Responses => Code::INTERNAL,
        }
    }

    /// The next envelope of a body, or `resource_exhausted` for one announced over the limit.
    fn next_envelope(self, decoder: &mut EnvelopeDecoder) -> Result<Option<Envelope>, Status> {
        decoder.decode().map_err(|TooLarge { len, max }| {
            Status::resource_exhausted(format!(
                "{} message of {len} bytes exceeds the limit of {max}",
                self.what()
            ))
        })
    }

    /// An envelope's message: decompressed when flagged so (an error when the sender declared no
    /// compression), else checked against the limit.
    fn open(
        self,
        envelope: Envelope,
        compression: Option<&Arc<dyn Compressor>>,
        max: usize,
    ) -> Result<Bytes, Status> {
        if envelope.flags & flags::COMPRESSED == 0 {
            check_raw_size(envelope.data.len(), max, self.what())?;
            return Ok(envelope.data);
        }
        match compression {
            Some(c) => decompress(c, &envelope.data, max, self.corrupt()),
            None => Err(Status::internal(format!(
                "protocol error: compressed message but the {} declared no compression",
                self.what()
            ))),
        }
    }

    /// A whole Connect unary body's message: decompressed, or checked against the limit.
    fn open_body(
        self,
        body: Bytes,
        compression: Option<&Arc<dyn Compressor>>,
        max: usize,
    ) -> Result<Bytes, Status> {
        match compression {
            Some(c) => decompress(c, &body, max, self.corrupt()),
            None => {
                check_raw_size(body.len(), max, self.what())?;
                Ok(body)
            }
        }
    }

    /// Adds a chunk of a Connect unary body, refusing a body that can only be over the limit.
    fn collect(self, body: &mut BodyCollector, chunk: Bytes, max: usize) -> Result<(), Status> {
        if body.push(chunk, wire_limit(max)) {
            return Ok(());
        }
        Err(Status::resource_exhausted(format!(
            "{} message exceeds the limit of {max} bytes",
            self.what()
        )))
    }
}

/// The algorithm an encoding header names: `Ok(None)` for identity (no header, an empty one or
/// `identity`), `Err(name)` for a name `registry` does not have.
fn named_compression<'a>(
    registry: &CompressionRegistry,
    name: Option<&'a str>,
) -> Result<Option<Arc<dyn Compressor>>, &'a str> {
    match name.map(str::trim) {
        None | Some("") | Some("identity") => Ok(None),
        Some(name) => registry.get(name).cloned().map(Some).ok_or(name),
    }
}

/// Compresses `payload` when an algorithm is in use and the payload is at least `min` bytes.
/// Returns the bytes to send and whether they are compressed.
///
/// With `min` 0 every message is compressed, an empty one too: a peer told to expect an encoding
/// may check that the request carries it (the conformance reference server does, and a Connect
/// unary request only names its encoding when its body is compressed).
fn compress(
    algorithm: Option<&Arc<dyn Compressor>>,
    min: usize,
    payload: Bytes,
) -> Result<(Bytes, bool), Status> {
    match algorithm {
        Some(c) if payload.len() >= min => c.compress(&payload).map(|b| (b, true)).map_err(|e| {
            Status::internal(format!("failed to compress message with {}: {e}", c.name()))
        }),
        _ => Ok((payload, false)),
    }
}

/// Decompresses a received message, bounded by `limit` (PROTOCOL-TRAPS 11: a zero-length body is never
/// handed to the decompressor).
///
/// Input that is not in the announced encoding is the sender's fault (PROTOCOL-TRAPS 29): a server
/// answers it with `invalid_argument` (`corrupt` is that code); a client reports a server's bad
/// response as `internal`. Sizes past our limits are `resource_exhausted` on both sides.
fn decompress(
    algorithm: &Arc<dyn Compressor>,
    data: &[u8],
    limit: usize,
    corrupt: Code,
) -> Result<Bytes, Status> {
    if data.is_empty() {
        return Ok(Bytes::new());
    }
    algorithm.decompress(data, limit).map_err(|e| match e {
        DecompressError::TooLarge { limit } => Status::resource_exhausted(format!(
            "message larger than {limit} bytes after decompression"
        )),
        DecompressError::TooMuchMemory(why) => Status::resource_exhausted(format!(
            "message compressed with {} needs too much memory to decompress: {why}",
            algorithm.name()
        )),
        DecompressError::Corrupt(e) => Status::new(
            corrupt,
            format!("message is not valid {} data: {e}", algorithm.name()),
        ),
    })
}

/// The first allocation of a streaming [`Outbox`]'s gathering buffer; later ones are at least as
/// large.
const OUTBOX_STREAM_CAPACITY: usize = 4 * 1024;

/// The least room an [`Outbox`] makes before a message is written in place: most messages then fit
/// without the buffer growing while they are written.
const IN_PLACE_MIN_SPARE: usize = 1024;

/// A call's queued transmits, with small envelopes gathered into one growing buffer: consecutive small
/// messages leave as one body chunk, framed by a single copy into that buffer, with no allocation per
/// message (STYLE 4). Large payloads (over [`envelope::COPY_THRESHOLD`]) are not copied: the buffer is
/// flushed and they follow behind their own prefix. Every other transmit flushes the buffer first, so
/// order is kept: queued transmits always precede the gathered bytes.
#[derive(Debug)]
struct Outbox<T> {
    queue: std::collections::VecDeque<T>,
    pending: BytesMut,
    data: fn(Bytes) -> T,
    gather: bool,
}

impl<T> Outbox<T> {
    /// An outbox whose `Data` transmits are made by `data`. Only `streaming` outboxes gather (their
    /// buffer starts at [`OUTBOX_STREAM_CAPACITY`]): where one message is sent, each envelope is
    /// framed into a buffer of its own size, as gathering would only add a reallocation.
    fn new(data: fn(Bytes) -> T, streaming: bool) -> Self {
        Outbox {
            queue: std::collections::VecDeque::new(),
            pending: BytesMut::new(),
            data,
            gather: streaming,
        }
    }

    /// Queues a transmit behind everything gathered so far.
    fn push(&mut self, transmit: T) {
        self.flush();
        self.queue.push_back(transmit);
    }

    /// Frames one payload as an envelope.
    ///
    /// # Panics
    ///
    /// As [`envelope::encode`], for payloads over `u32::MAX` bytes (callers check their send limit).
    fn push_envelope(&mut self, flag: u8, payload: Bytes) {
        if payload.len() > envelope::COPY_THRESHOLD || !self.gather {
            self.flush();
            push_envelope(&mut self.queue, self.data, flag, payload);
            return;
        }
        let needed = envelope::PREFIX_LEN + payload.len();
        if self.pending.capacity() - self.pending.len() < needed {
            if self.pending.capacity() == 0 {
                self.pending = BytesMut::with_capacity(needed.max(OUTBOX_STREAM_CAPACITY));
            } else {
                self.pending.reserve(needed);
            }
        }
        // The length fits: the payload is at most COPY_THRESHOLD bytes.
        self.pending
            .extend_from_slice(&envelope::encode_prefix(flag, payload.len() as u32));
        self.pending.extend_from_slice(&payload);
    }

    /// Opens a message to be written in place at the end of the gathering buffer: for an enveloped
    /// message, a placeholder prefix is written first. Returns where the message starts. A gathering
    /// outbox makes room for a few messages; one that sends a single message lets the message's
    /// serializer size the buffer (the proto form reserves its exact size).
    #[inline]
    fn begin_in_place(&mut self, enveloped: bool) -> usize {
        if self.gather && self.pending.capacity() - self.pending.len() < IN_PLACE_MIN_SPARE {
            self.make_room();
        }
        let start = self.pending.len();
        if enveloped {
            self.pending.extend_from_slice(&[0; envelope::PREFIX_LEN]);
        }
        start
    }

    /// Room for a few more messages in a gathering buffer.
    #[cold]
    fn make_room(&mut self) {
        if self.pending.capacity() == 0 {
            self.pending = BytesMut::with_capacity(OUTBOX_STREAM_CAPACITY);
        } else {
            self.pending.reserve(OUTBOX_STREAM_CAPACITY);
        }
    }

    /// A stream's plain step, in a gathering outbox (a streaming side's: the only ones
    /// [`SendSide::plain_below`] admits): completes the enveloped in-place message that starts at
    /// `start` as an uncompressed one and opens the next behind it; returns where that one starts.
    #[inline]
    fn commit_and_begin(&mut self, start: usize) -> usize {
        debug_assert!(
            self.gather,
            "a plain step in an outbox that sends one message"
        );
        let len = self.pending.len() - start - envelope::PREFIX_LEN;
        // Callers checked the message against their send limit, which is below u32::MAX.
        let prefix = envelope::encode_prefix(0, len as u32);
        self.pending[start..start + envelope::PREFIX_LEN].copy_from_slice(&prefix);
        // `begin_in_place(true)`'s steps, written out: calling it here costs about 8 instructions
        // more per message of a long stream (callgrind).
        if self.pending.capacity() - self.pending.len() < IN_PLACE_MIN_SPARE {
            self.make_room();
        }
        let next = self.pending.len();
        self.pending.extend_from_slice(&[0; envelope::PREFIX_LEN]);
        next
    }

    /// The buffer an in-place message is written to (after what it already holds).
    #[inline]
    fn in_place_buffer(&mut self) -> &mut BytesMut {
        &mut self.pending
    }

    /// Drops the in-place message that starts at `start`.
    fn discard_in_place(&mut self, start: usize) {
        self.pending.truncate(start);
    }

    /// Takes the in-place message that starts at `start` out of the buffer, without the `prefix`
    /// bytes written before it.
    fn take_in_place(&mut self, start: usize, prefix: usize) -> BytesMut {
        let mut payload = if start == 0 {
            // The whole buffer: no split, which would make its allocation a shared one.
            std::mem::take(&mut self.pending)
        } else {
            self.pending.split_off(start)
        };
        bytes::Buf::advance(&mut payload, prefix);
        payload
    }

    /// Puts a message taken out with [`Outbox::take_in_place`] back at the end of the buffer; returns
    /// where it now starts.
    fn put_back_in_place(&mut self, message: BytesMut) -> usize {
        let start = self.pending.len();
        self.pending.unsplit(message);
        start
    }

    /// Completes the enveloped in-place message that starts at `start` with its prefix.
    #[inline]
    fn commit_in_place(&mut self, start: usize, flag: u8) {
        let len = self.pending.len() - start - envelope::PREFIX_LEN;
        // Callers check their send limit, which is below u32::MAX.
        let prefix = envelope::encode_prefix(flag, len as u32);
        self.pending[start..start + envelope::PREFIX_LEN].copy_from_slice(&prefix);
        if !self.gather {
            // Nothing else goes in this buffer: the chunk takes all of it.
            let chunk = std::mem::take(&mut self.pending).freeze();
            self.queue.push_back((self.data)(chunk));
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let chunk = self.pending.split().freeze();
            self.queue.push_back((self.data)(chunk));
        }
    }

    /// The next transmit: the queued ones, then everything gathered as one chunk.
    fn pop(&mut self) -> Option<T> {
        if let Some(transmit) = self.queue.pop_front() {
            return Some(transmit);
        }
        (!self.pending.is_empty()).then(|| (self.data)(self.pending.split().freeze()))
    }

    /// The last queued transmit, when nothing is gathered behind it.
    fn last_mut(&mut self) -> Option<&mut T> {
        if self.pending.is_empty() {
            self.queue.back_mut()
        } else {
            None
        }
    }

    /// Bytes gathered for the next chunk.
    #[inline]
    fn gathered_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether a queued transmit (not yet polled) matches `test`.
    fn any_queued(&self, test: impl Fn(&T) -> bool) -> bool {
        self.queue.iter().any(test)
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.pending.clear();
    }
}

/// Frames one payload as an envelope and pushes it as one or two body chunks.
fn push_envelope<T>(
    out: &mut std::collections::VecDeque<T>,
    data: impl Fn(Bytes) -> T,
    flag: u8,
    payload: Bytes,
) {
    let (head, tail) = envelope::encode(flag, payload);
    out.push_back(data(head));
    if let Some(tail) = tail {
        out.push_back(data(tail));
    }
}

/// A message on its way out of a call: a payload serialized elsewhere, or one written in place at
/// the end of the call's send buffer (by a [`MessageWriter`]).
enum Outgoing {
    Payload(Bytes),
    /// Starts at `start` in the send buffer, behind a placeholder prefix of `prefix` bytes.
    InPlace {
        start: usize,
        prefix: usize,
    },
}

impl Outgoing {
    /// The message's length, `gathered` being the bytes in the send buffer.
    fn len(&self, gathered: usize) -> usize {
        match self {
            Outgoing::Payload(payload) => payload.len(),
            Outgoing::InPlace { start, prefix } => gathered - start - prefix,
        }
    }
}

/// Why a call does not take a message now.
enum Refusal {
    /// The call is over: the message is dropped without a word.
    Finished,
    /// The application broke the method's rules (a second message of a unary side, a message after
    /// `close_send`).
    Misuse(UsageError),
    /// The message is over the send limit: the call fails with this status.
    TooLarge(Status),
}

/// The send half of a call machine, the same on both sides (STYLE 12): one path for a message,
/// whether its payload was serialized elsewhere (`send_message`) or written in place by a
/// [`MessageWriter`].
trait SendSide {
    type Transmit;
    /// The call's queued transmits and send buffer.
    fn outbox(&mut self) -> &mut Outbox<Self::Transmit>;
    /// Bytes in the send buffer.
    fn gathered(&self) -> usize;
    /// Whether messages go out bare (a Connect unary body) rather than enveloped.
    fn bare_messages(&self) -> bool;
    /// Why a message of `len` bytes cannot be sent now, if it cannot.
    fn refusal(&self, len: usize) -> Option<Refusal>;
    /// Counts an admitted message.
    fn count_sent(&mut self);
    /// Ends the call with an error this side detected.
    fn fail_send(&mut self, status: Status);
    /// Queues an admitted message.
    fn queue_message(&mut self, message: Outgoing);
    /// The size below which an enveloped message written in place needs nothing but counting and
    /// its prefix: the call is open and takes more messages, nothing must go out before them (the
    /// head), and no compression applies to them. 0 when every message takes the whole path.
    fn plain_below(&self) -> usize;
}

/// [`SendSide::plain_below`] from the size limit and the compression settings of a side whose
/// messages otherwise go out plainly.
fn plain_size_bound(max_send: usize, compression: bool, compress_min: usize) -> usize {
    let limit = max_send.saturating_add(1);
    if compression {
        limit.min(compress_min)
    } else {
        limit
    }
}

/// Checks a message of `len` bytes and counts it when it may go out: `Ok(false)` when it is dropped
/// (the call is over, or the message was over the limit and failed the call).
fn admit<C: SendSide>(call: &mut C, len: usize) -> Result<bool, UsageError> {
    match call.refusal(len) {
        None => {
            call.count_sent();
            Ok(true)
        }
        Some(refusal) => refuse(call, refusal).map(|()| false),
    }
}

/// `send_message` of both machines.
fn send_payload<C: SendSide>(call: &mut C, payload: Bytes) -> Result<(), UsageError> {
    if admit(call, payload.len())? {
        call.queue_message(Outgoing::Payload(payload));
    }
    Ok(())
}

/// `message_writer` of both machines. A bare message (Connect unary), and one that can only be
/// dropped, are written without a placeholder prefix.
fn writer_for<'a, C: SendSide + 'a>(call: &'a mut C) -> (&'a mut C, usize, usize) {
    let (start, prefix) = begin_message(call);
    (call, start, prefix)
}

/// Begins a message in place: where it starts, and its placeholder prefix's length (none for a
/// bare message, or one the call will refuse).
fn begin_message<C: SendSide>(call: &mut C) -> (usize, usize) {
    let enveloped = !call.bare_messages() && call.refusal(0).is_none();
    let start = call.outbox().begin_in_place(enveloped);
    (start, if enveloped { envelope::PREFIX_LEN } else { 0 })
}

/// The machine a [`MessageWriter`] writes into: one of the two, dispatched statically (a message
/// of a stream goes through every method here, and each is small).
enum WriterCall<'a> {
    Server(&'a mut ServerCall),
    Client(&'a mut ClientCall),
}

/// Runs `$body` with `$c` bound to the writer's machine, whichever it is.
macro_rules! on_call {
    ($call:expr, $c:ident => $body:expr) => {
        match $call {
            WriterCall::Server($c) => $body,
            WriterCall::Client($c) => $body,
        }
    };
}

/// The side of a call a [`MessageWriter`] writes into.
trait WriterTarget {
    /// The send buffer, whose end the message is written at.
    fn send_buffer(&mut self) -> &mut BytesMut;
    /// Bytes in the send buffer.
    fn gathered_len(&self) -> usize;
    /// Takes the in-place message that starts at `start` out of the buffer, without its prefix.
    fn take_in_place(&mut self, start: usize, prefix: usize) -> BytesMut;
    /// Drops the in-place message that starts at `start`.
    fn discard_in_place(&mut self, start: usize);
    /// Sends the in-place message that starts at `start` as the call's next message.
    fn send_in_place(&mut self, start: usize, prefix: usize) -> Result<(), UsageError>;
}

impl<C: SendSide> WriterTarget for C {
    #[inline]
    fn send_buffer(&mut self) -> &mut BytesMut {
        self.outbox().in_place_buffer()
    }

    #[inline]
    fn gathered_len(&self) -> usize {
        self.gathered()
    }

    fn take_in_place(&mut self, start: usize, prefix: usize) -> BytesMut {
        self.outbox().take_in_place(start, prefix)
    }

    fn discard_in_place(&mut self, start: usize) {
        self.outbox().discard_in_place(start);
    }

    #[inline]
    fn send_in_place(&mut self, start: usize, prefix: usize) -> Result<(), UsageError> {
        let len = self.gathered() - start - prefix;
        match self.refusal(len) {
            None => {
                self.count_sent();
                self.queue_message(Outgoing::InPlace { start, prefix });
                Ok(())
            }
            Some(refusal) => {
                // Out of the buffer before the call answers the refusal (a failed call flushes it).
                self.outbox().discard_in_place(start);
                refuse(self, refusal)
            }
        }
    }
}

/// Answers a message that may not go out: dropped silently once the call is over, an error for the
/// application's misuse, the call failed for a message over the limit.
fn refuse<C: SendSide>(call: &mut C, refusal: Refusal) -> Result<(), UsageError> {
    match refusal {
        Refusal::Finished => Ok(()),
        Refusal::Misuse(misuse) => Err(misuse),
        Refusal::TooLarge(status) => {
            call.fail_send(status);
            Ok(())
        }
    }
}

/// A message being written in place: serialized straight into the call's send buffer, where
/// `send_message` takes a payload serialized elsewhere. Made by `ServerCall::message_writer` and
/// `ClientCall::message_writer`. Append the message's bytes to [`MessageWriter::buffer`], then
/// [`MessageWriter::send`] it; a writer dropped unsent leaves nothing behind.
#[must_use = "a message writer sends nothing unless `send` is called"]
pub struct MessageWriter<'a> {
    call: WriterCall<'a>,
    /// Where the message (its placeholder prefix first) starts in the send buffer.
    start: usize,
    /// The placeholder prefix's length: 0 for a Connect unary body, which is not enveloped.
    prefix: usize,
    /// Whether the message is still in the buffer, to be discarded on drop.
    open: bool,
    /// Messages shorter than this go out by [`send_and_continue`](Self::send_and_continue)'s plain
    /// path ([`SendSide::plain_below`], asked after each message that took the whole path; nothing
    /// but this writer changes the call meanwhile). 0 until asked.
    plain_below: usize,
}

impl std::fmt::Debug for MessageWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWriter")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<'a> MessageWriter<'a> {
    fn new(call: WriterCall<'a>, start: usize, prefix: usize) -> Self {
        MessageWriter {
            call,
            start,
            prefix,
            open: true,
            plain_below: 0,
        }
    }

    /// The buffer to append the message's bytes to. It holds other bytes before them: append only.
    #[inline]
    pub fn buffer(&mut self) -> &mut BytesMut {
        on_call!(&mut self.call, c => c.send_buffer())
    }

    /// The bytes written so far.
    #[inline]
    pub fn len(&self) -> usize {
        on_call!(&self.call, c => c.gathered_len()) - self.start - self.prefix
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message written so far, taken out of the call's buffer as it is: the call sends nothing.
    pub fn take(mut self) -> BytesMut {
        self.open = false;
        let (start, prefix) = (self.start, self.prefix);
        on_call!(&mut self.call, c => c.take_in_place(start, prefix))
    }

    /// Sends what was written as one message, exactly as `send_message` would send those bytes
    /// (limits, compression, the one message of a unary request or response).
    pub fn send(mut self) -> Result<(), UsageError> {
        self.open = false;
        let (start, prefix) = (self.start, self.prefix);
        on_call!(&mut self.call, c => c.send_in_place(start, prefix))
    }

    /// Sends what was written as one message, as [`send`](Self::send) does, and begins the next one
    /// behind it in the same buffer, as a new writer would: `Ok(true)` when the call takes another
    /// message, `Ok(false)` when it does not (a unary side after its message, a call that ended;
    /// what is written then is refused or dropped as a new writer's would be). A stream's ready
    /// messages are written one after another this way, without a writer each; the last one begun
    /// and not written is dropped with the writer.
    #[inline]
    pub fn send_and_continue(&mut self) -> Result<bool, UsageError> {
        let start = self.start;
        if self.len() < self.plain_below {
            // A stream's message under its plain bound: counted and framed where it stands, and the
            // next one begun behind it.
            self.start = on_call!(&mut self.call, c => {
                c.count_sent();
                c.outbox().commit_and_begin(start)
            });
            return Ok(true);
        }
        self.send_and_begin()
    }

    /// [`send_and_continue`](Self::send_and_continue) through the whole path: the message checked,
    /// counted and queued as `send` does it, the next one begun as a new writer would.
    #[inline(never)]
    fn send_and_begin(&mut self) -> Result<bool, UsageError> {
        let (start, prefix) = (self.start, self.prefix);
        let sent = on_call!(&mut self.call, c => c.send_in_place(start, prefix));
        let (start, prefix) = on_call!(&mut self.call, c => begin_message(&mut **c));
        (self.start, self.prefix) = (start, prefix);
        self.plain_below = match prefix {
            0 => 0,
            _ => on_call!(&self.call, c => c.plain_below()),
        };
        sent.map(|()| prefix > 0)
    }
}

impl Drop for MessageWriter<'_> {
    fn drop(&mut self) {
        if self.open {
            let start = self.start;
            on_call!(&mut self.call, c => c.discard_in_place(start));
        }
    }
}

/// The messages both machines' writer-run tests send (compressed with gzip at 8 bytes and over,
/// refused over 20): short ones that take the plain path, one to compress, an empty one, then one
/// over the limit and one behind it.
#[cfg(test)]
const WRITER_RUN_MESSAGES: [&[u8]; 7] = [
    b"ab",
    b"compress me, please",
    b"cd",
    b"",
    b"ef",
    b"twenty-one bytes long",
    b"gh",
];

/// The flag for a message payload.
fn message_flag(compressed: bool) -> u8 {
    if compressed {
        flags::COMPRESSED
    } else {
        0
    }
}

/// Collects a non-enveloped body (Connect unary) under a size limit.
#[derive(Debug, Default)]
struct BodyCollector {
    chunks: Vec<Bytes>,
    len: usize,
}

impl BodyCollector {
    /// Adds a chunk; `false` once the body exceeds `limit`.
    fn push(&mut self, chunk: Bytes, limit: usize) -> bool {
        self.len = self.len.saturating_add(chunk.len());
        if self.len > limit {
            self.chunks.clear();
            return false;
        }
        if !chunk.is_empty() {
            self.chunks.push(chunk);
        }
        true
    }

    /// The whole body, without copying when it arrived in one chunk.
    fn take(&mut self) -> Bytes {
        self.len = 0;
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut buf = BytesMut::with_capacity(self.chunks.iter().map(Bytes::len).sum());
                for c in self.chunks.drain(..) {
                    buf.extend_from_slice(&c);
                }
                buf.freeze()
            }
        }
    }
}

/// Reads a header as a string, `None` when absent or not visible ASCII.
fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum T {
        Data(Bytes),
        End,
    }

    #[test]
    fn outbox_gathers_small_envelopes_and_keeps_order() {
        let mut out = Outbox::new(T::Data, true);
        out.push_envelope(0, Bytes::from_static(b"ab"));
        out.push_envelope(1, Bytes::from_static(b"c"));
        assert_eq!(out.gathered_len(), 13);
        assert!(out.last_mut().is_none());
        // A large payload flushes what was gathered and follows uncopied behind its prefix.
        let large = Bytes::from(vec![7u8; envelope::COPY_THRESHOLD + 1]);
        out.push_envelope(0, large.clone());
        out.push_envelope(0, Bytes::from_static(b"d"));
        out.push(T::End);
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(
                b"\0\0\0\0\x02ab\x01\0\0\0\x01c"
            )))
        );
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::copy_from_slice(&envelope::encode_prefix(
                0,
                large.len() as u32
            ))))
        );
        match out.pop() {
            Some(T::Data(d)) => {
                assert_eq!(d.as_ptr(), large.as_ptr(), "the large payload was copied")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(b"\0\0\0\0\x01d")))
        );
        assert_eq!(out.pop(), Some(T::End));
        assert_eq!(out.pop(), None);
        assert_eq!(out.gathered_len(), 0);
        // Gathered bytes come out when nothing is queued before them; clear drops everything.
        out.push_envelope(2, Bytes::new());
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(b"\x02\0\0\0\0")))
        );
        out.push_envelope(0, Bytes::from_static(b"x"));
        out.push(T::End);
        out.clear();
        assert_eq!(out.pop(), None);
        // Without gathering, every envelope is a chunk of its own.
        let mut out = Outbox::new(T::Data, false);
        out.push_envelope(0, Bytes::from_static(b"a"));
        out.push_envelope(0, Bytes::from_static(b"b"));
        assert_eq!(out.gathered_len(), 0);
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(b"\0\0\0\0\x01a")))
        );
        assert_eq!(
            out.pop(),
            Some(T::Data(Bytes::from_static(b"\0\0\0\0\x01b")))
        );
    }
}
