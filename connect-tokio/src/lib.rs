//! hyper + tokio adapter for [`connect_typed`]: serve a [`Router`] over HTTP/1.1, h2c and HTTP/2 over
//! TLS, call servers with a pooled [`HyperTransport`], and mount routers in tower or axum stacks.
//!
//! The adapter only moves bytes and time: protocol logic lives in `connect-proto`, whose typed layer
//! drives each call from the request and response bodies that hyper polls. So a call whose client goes
//! away (HTTP/2 `RST_STREAM`, a closed connection) is dropped with its handler, and a deadline is
//! enforced for as long as hyper drives the response.
//!
//! ```no_run
//! # async fn demo(router: connect_typed::Router) -> std::io::Result<()> {
//! use connect_tokio::{Server, TokioRuntime};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let server = Server::new(router).spawn(listener)?;
//! println!("serving on {}", server.local_addr());
//! server.shutdown().await; // finishes in-flight calls
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
mod axum_routes;
mod client;
mod runtime;
mod server;
mod service;
/// TLS helpers (feature `tls`): rustls with the ring provider.
#[cfg(feature = "tls")]
pub use connect_hyper::tls;

#[cfg(feature = "axum")]
pub use axum_routes::axum_router;
pub use client::{HyperTransport, HyperTransportBuilder, ResponseFuture};
#[cfg(feature = "tls")]
pub use connect_hyper::PeerCertificates;
pub use connect_hyper::ServerHandle;
pub use connect_hyper::{ClientBody, Limits, PeerAddr, ServerBody};
pub use runtime::TokioRuntime;
pub use server::Server;
pub use service::{ConnectService, ConnectServiceFuture};

pub use connect_hyper::{BalanceSettings, Balanced};
pub use connect_typed::{Client, Router};

/// A router whose calls use tokio's clock and timers.
pub fn router() -> Router {
    Router::new(TokioRuntime)
}

/// A typed-layer client of the server at `base` over a default [`HyperTransport`] (HTTP/1.1, or
/// HTTP/2 when TLS negotiates it). Wrap it in a generated client: `FooServiceClient::new(client(...))`.
pub fn client(base: http::Uri, config: connect_typed::ClientConfig) -> Client<HyperTransport> {
    Client::new(HyperTransport::new(), base, config, TokioRuntime)
}

/// A transport over every address `name` (`http://echo.internal:8080`) resolves to, with tokio's
/// resolver, resolved again in the background every
/// [`resolve_interval`](BalanceSettings::resolve_interval): calls spread over the servers by power
/// of two choices, unreachable ones are left out with backoff (see [`Balanced`]). For a fixed list
/// of servers, use [`Balanced::new`].
pub fn balanced_dns(
    transport: HyperTransport,
    name: &http::Uri,
    settings: BalanceSettings,
) -> std::io::Result<Balanced<HyperTransport>> {
    let resolver: connect_hyper::Resolver = std::sync::Arc::new(|host: String, port: u16| {
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((host.as_str(), port)).await?;
            Ok(addresses.collect())
        })
    });
    Balanced::dns(
        transport,
        name,
        resolver,
        std::sync::Arc::new(TokioRuntime),
        settings,
    )
}
