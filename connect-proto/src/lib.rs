//! Sans-IO core of the Connect, gRPC and gRPC-Web protocols.
//!
//! One state machine per call and side ([`ServerCall`], [`ClientCall`]) consumes HTTP-level input
//! (heads, body chunks, trailers, end of body, resets, the current time) and emits HTTP-level output.
//! No sockets, no async runtime, no clock: adapters move bytes and time in and out.
// One function may use `unsafe`: `rpc::message::owned_view`, which says why.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod call;
pub mod codec;
pub mod compression;
pub mod cors;
pub mod envelope;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod json;
pub mod metadata;
pub mod protocol;
#[cfg(feature = "rpc")]
pub mod rpc;
mod status;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
pub mod timeout;

pub use call::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit, MessageWriter, Reset,
    ServerCall, ServerConfig, ServerEvent, ServerTransmit,
};
pub use compression::{CompressionRegistry, Compressor};
pub use protocol::{Codec, ContentType, MethodInfo, Protocol, StreamType};
pub use status::{Code, ErrorDetail, Status, UsageError};
pub use time::Instant;
