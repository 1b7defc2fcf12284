//! smol / async-io adapter for [`connect_typed`]: serve a [`Router`] over HTTP/1.1, h2c and HTTP/2
//! over TLS, and call servers with a pooled [`SmolTransport`], with no tokio runtime.
//!
//! hyper carries HTTP/1.1 and HTTP/2 over async-io sockets (`smol-hyper` implements `hyper::rt` for
//! them), spawns on smol's global executor and keeps time with async-io's timers. Everything else
//! (the connection service, the request-body limit, peer identity, TLS configurations, graceful
//! shutdown) is `connect-hyper`, shared with connect-tokio; protocol logic is `connect-proto`'s. The
//! server, client and runtime work under any executor that runs on async-io's reactor: smol's,
//! `async_std::task::block_on`, `async-global-executor`.
//!
//! Served from one core, it makes about the same instructions per call as connect-tokio; under load it
//! makes more system calls (1.6 against 0.6 per unary call at 16 streams): async-io's reactor arms a
//! timer and re-arms its notifier at every wake-up, hands wake-ups between its own thread and the
//! executor's, and re-registers a socket each time it is waited on. Expect 0.90–1.05× connect-tokio's
//! throughput (`benches/README.md`).
//!
//! No tokio runtime is built: hyper (always) and h2 still depend on the tokio crate, for its channels
//! (`sync`) and IO traits (`io-util`) only; none of its reactor, timers or executor (`rt`, `net`,
//! `time`) is enabled, which `test.sh` checks with `cargo tree`.
//!
//! ```no_run
//! # async fn demo(router: connect_typed::Router) -> std::io::Result<()> {
//! use connect_smol::Server;
//!
//! let listener = smol::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let server = Server::new(router).spawn(listener)?;
//! println!("serving on {}", server.local_addr());
//! server.shutdown().await; // finishes in-flight calls
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod io;
mod runtime;
mod server;

pub use client::{ResponseFuture, SmolTransport, SmolTransportBuilder};
/// TLS helpers (feature `tls`): rustls with the ring provider.
#[cfg(feature = "tls")]
pub use connect_hyper::tls;
#[cfg(feature = "tls")]
pub use connect_hyper::PeerCertificates;
pub use connect_hyper::ServerHandle;
pub use connect_hyper::{ClientBody, Limits, PeerAddr, ServerBody};
pub use io::{HyperIo, TcpIo};
pub use runtime::{SmolExecutor, SmolRuntime};
pub use server::Server;

pub use connect_hyper::{BalanceSettings, Balanced};
pub use connect_typed::{Client, Router};

/// A router whose calls use async-io's clock and timers.
pub fn router() -> Router {
    Router::new(SmolRuntime)
}

/// A typed-layer client of the server at `base` over a default [`SmolTransport`] (HTTP/1.1, or
/// HTTP/2 when TLS negotiates it). Wrap it in a generated client: `FooServiceClient::new(client(...))`.
pub fn client(base: http::Uri, config: connect_typed::ClientConfig) -> Client<SmolTransport> {
    Client::new(SmolTransport::new(), base, config, SmolRuntime)
}

/// A transport over every address `name` (`http://echo.internal:8080`) resolves to, with smol's
/// resolver, resolved again in the background every
/// [`resolve_interval`](BalanceSettings::resolve_interval): calls spread over the servers by power
/// of two choices, unreachable ones are left out with backoff (see [`Balanced`]). For a fixed list
/// of servers, use [`Balanced::new`].
pub fn balanced_dns(
    transport: SmolTransport,
    name: &http::Uri,
    settings: BalanceSettings,
) -> std::io::Result<Balanced<SmolTransport>> {
    let resolver: connect_hyper::Resolver = std::sync::Arc::new(|host: String, port: u16| {
        Box::pin(async move { smol::net::resolve((host.as_str(), port)).await })
    });
    Balanced::dns(
        transport,
        name,
        resolver,
        std::sync::Arc::new(SmolRuntime),
        settings,
    )
}
