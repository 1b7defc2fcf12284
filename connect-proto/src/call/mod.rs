//! Per-call state machines: [`ServerCall`] and [`ClientCall`].

mod client;
mod server;

pub use client::{CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit};
pub use server::{ServerCall, ServerConfig, ServerEvent, ServerTransmit};
