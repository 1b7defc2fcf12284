//! The browser adapter of `connect-proto`: Connect and gRPC-Web calls over `fetch`, with response
//! messages read incrementally from the body's `ReadableStream`.
//!
//! - [`FetchTransport`] implements the typed layer's [`Transport`](connect_typed::Transport):
//!   generated clients run on it unchanged. The request body is collected and sent in one piece; the
//!   response body is handed to the call machine chunk by chunk as the browser receives it, so a
//!   server stream yields each message when it arrives. Dropping a call or a response stream aborts
//!   the fetch through its `AbortController`.
//! - [`BrowserRuntime`] gives the typed layer the browser's clock (`performance.now`), timers
//!   (`setTimeout`) and tasks (`spawn_local`): deadlines are enforced by the call machine on it.
//!
//! What `fetch` can carry (see [`check_call`]): Connect and gRPC-Web, unary, server-streaming and
//! client-streaming (the request messages are sent together once the request stream ends).
//! gRPC needs HTTP trailers, which `fetch` does not expose, and bidi streaming needs a request body
//! that streams while the response is read: both fail at call time with `unimplemented`.
//!
//! ```ignore
//! use connect_typed::{ClientConfig, Codec, Protocol};
//! let client = GreetServiceClient::new(connect_wasm::client(
//!     "http://127.0.0.1:8080".parse().unwrap(),
//!     ClientConfig::new(Protocol::Connect, Codec::Proto),
//! ));
//! let reply = client.greet(&request).await?;
//! ```
//!
//! On targets other than wasm32 only the pure parts ([`check_call`]) exist, so that the workspace
//! builds and tests natively.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Elsewhere the browser items the crate docs link to do not exist: their links are checked where
// they do (`ci/package-check.sh` and docs.rs document the crate for wasm32).
#![cfg_attr(not(target_arch = "wasm32"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(target_arch = "wasm32")]
mod body;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod runtime;
mod support;
#[cfg(target_arch = "wasm32")]
mod transport;

#[cfg(target_arch = "wasm32")]
pub use body::FetchBody;
#[cfg(target_arch = "wasm32")]
pub use runtime::BrowserRuntime;
pub use support::{check_call, Credentials};
#[cfg(target_arch = "wasm32")]
pub use transport::FetchTransport;

/// A typed-layer client of the server at `base` over a default [`FetchTransport`] and the
/// [`BrowserRuntime`]. Wrap it in a generated client: `FooServiceClient::new(client(...))`.
#[cfg(target_arch = "wasm32")]
pub fn client(
    base: http::Uri,
    config: connect_typed::ClientConfig,
) -> connect_typed::Client<FetchTransport> {
    connect_typed::Client::new(FetchTransport::new(), base, config, BrowserRuntime)
}
