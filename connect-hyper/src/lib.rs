//! The hyper glue that every hyper-based adapter of [`connect_typed`] shares, whatever its runtime:
//! the per-connection service that hands requests to a [`Router`](connect_typed::Router) under a
//! request-body limit, the server and client bodies, the peer's identity for handlers, [`Limits`],
//! rustls configurations, a runtime-free graceful shutdown, [`serve_connection`] and [`BatchedWrites`]
//! (server connection IO that sends many small responses in few writes).
//!
//! An adapter (connect-tokio, connect-smol) adds only what its runtime decides: a [`ServerRuntime`]
//! (listener, tasks, timer, the IO types behind `hyper::rt`) and the connection pool of its client.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod accept;
mod balance;
mod budget;
mod buffers;
mod client_body;
mod conn;
mod graceful;
mod header_watch;
mod io;
mod limits;
mod peer;
mod server;
mod service;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;
mod watch;

pub use accept::{accept_loop, within};
pub use balance::{BalanceSettings, Balanced, BalancedBody, Resolver};
pub use buffers::{give_read_buffer, take_read_buffer};
pub use client_body::{transport_error, ClientBody};
pub use conn::{http_builder, serve_connection};
pub use graceful::{GracefulShutdown, Watcher};
pub use io::{BatchedWrites, HOLD_LIMIT};
pub use limits::{Limits, DEFAULT_HTTP2_MAX_FRAME_SIZE};
pub use peer::PeerAddr;
#[cfg(feature = "tls")]
pub use peer::PeerCertificates;
pub use server::{Server, ServerHandle, ServerRuntime, ServiceFuture};
pub use service::{ConnectionService, DrainTimer, ServerBody};
pub use transport::{TransportBuilder, TransportSettings};
