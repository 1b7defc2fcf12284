//! Sans-IO core of the Connect, gRPC and gRPC-Web protocols: only the per-call state machines.
//!
//! One state machine per call and side ([`ServerCall`], [`ClientCall`]) consumes HTTP-level input
//! (heads, body chunks, trailers, end of body, resets, the current time) and emits HTTP-level output:
//! envelopes, compression, size limits, timeouts, status codes and error details, metadata, and each
//! protocol's wire forms. No sockets, no async runtime, no clock, no message serialization: adapters
//! move bytes and time in and out, and the typed layer (`connect-typed`) turns payloads into messages.
//!
//! The whole public API is below; the modules are private.
//!
//! | group | items |
//! |---|---|
//! | call machines | [`ServerCall`], [`ClientCall`], their configs, events, transmits, [`MessageWriter`], [`Reset`] |
//! | calls described | [`MethodInfo`], [`StreamType`], [`Protocol`], [`Codec`], [`ContentType`], [`CallOptions`] |
//! | outcomes | [`Status`], [`Code`], [`ErrorDetail`], [`UsageError`] |
//! | compression | [`Compressor`], [`CompressionRegistry`], the built-in algorithms, [`read_bounded`] |
//! | envelopes | [`EnvelopeDecoder`], [`Envelope`], [`encode_envelope`], [`envelope_flags`] |
//! | metadata | [`encode_binary_header`], [`decode_binary_header`], [`is_binary_header`] |
//! | timeouts | [`parse_connect_timeout`], [`parse_grpc_timeout`] and their `format_` pairs |
//! | time | [`Instant`] (`web_time` on wasm32, where std's panics) |
//! | testing (feature `testing`) | `testing`: the two machines in memory on a virtual clock |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod call;
mod compression;
mod envelope;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod json;
mod metadata;
mod protocol;
mod status;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod timeout;

pub use call::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit, MessageWriter, Reset,
    ServerCall, ServerConfig, ServerEvent, ServerTransmit,
};
#[cfg(feature = "br")]
pub use compression::Brotli;
#[cfg(feature = "deflate")]
pub use compression::Deflate;
#[cfg(feature = "gzip")]
pub use compression::Gzip;
#[cfg(feature = "snappy")]
pub use compression::Snappy;
#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
pub use compression::Zstd;
pub use compression::{read_bounded, CompressionRegistry, Compressor, DecompressError};
pub use envelope::{
    encode as encode_envelope, flags as envelope_flags, Envelope, EnvelopeDecoder,
    TooLarge as EnvelopeTooLarge,
};
pub use metadata::{
    decode_binary as decode_binary_header, encode_binary as encode_binary_header,
    is_binary as is_binary_header, is_protocol_header, InvalidBinaryMetadata,
};
pub use protocol::{Codec, ContentType, MethodInfo, Protocol, StreamType};
pub use status::{Code, ErrorDetail, Status, UsageError};
pub use time::Instant;
pub use timeout::{
    format_connect_timeout, format_grpc_timeout, parse_connect_timeout, parse_grpc_timeout,
    InvalidTimeout,
};

/// Each protocol's wire forms (Connect's error JSON and EndStream, gRPC's status headers, gRPC-Web's
/// trailer frame), which only the machines need: public for the benchmarks and fuzzing, not a
/// stable API.
#[doc(hidden)]
pub mod wire {
    pub use crate::protocol::{connect, grpc, grpc_web};
}
