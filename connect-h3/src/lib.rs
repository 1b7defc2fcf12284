//! HTTP/3 for [`connect_typed`]: serve a [`Router`](connect_typed::Router) over QUIC with [`Server`],
//! call servers over QUIC with [`H3Transport`]; Connect, gRPC and gRPC-Web, all four stream types.
//!
//! Built on [quinn](https://docs.rs/quinn) (QUIC, with rustls and the ring provider, like the rest
//! of the workspace) and [h3](https://docs.rs/h3) (HTTP/3 framing, QPACK, control streams). The
//! protocol stays in the core: this crate hands the router and the client the same
//! `http::Request`/`http::Response` heads, body chunks and trailers as the hyper adapters do, and
//! turns HTTP/3 stream resets into [`Reset::H3`](connect_typed::Reset) codes.
//!
//! Handlers see the same [`PeerAddr`] and [`PeerCertificates`] as with connect-hyper's servers, the
//! server takes the same [`Limits`], and the transport the same
//! [`TransportSettings`](connect_hyper::TransportSettings).
//!
//! ```no_run
//! # async fn demo(router: connect_typed::Router, tls: rustls::ServerConfig,
//! #               client_tls: rustls::ClientConfig) -> std::io::Result<()> {
//! let server = connect_h3::Server::new(router, tls).bind("127.0.0.1:4433".parse().unwrap())?;
//! let transport = connect_h3::H3Transport::new(client_tls);
//! // `Client::new(transport, "https://localhost:4433".parse()?, config, runtime)`, wrapped in a
//! // generated client, calls it.
//! server.shutdown().await; // GOAWAY, in-flight calls finish
//! # Ok(()) }
//! ```
//!
//! # Advertising HTTP/3
//!
//! Clients reach an HTTP/3 endpoint they know of; to let them find it, the HTTP/1.1 and HTTP/2
//! server of the same host says where it is with an `Alt-Svc` header on every response:
//!
//! ```no_run
//! # async fn demo(router: connect_typed::Router, tls: rustls::ServerConfig) -> std::io::Result<()> {
//! let h3 = connect_h3::Server::new(router.clone(), tls.clone()).bind("0.0.0.0:443".parse().unwrap())?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
//! let tcp = connect_tokio::Server::new(router)
//!     .tls(tls)
//!     .alt_svc(connect_h3::alt_svc(443)) // h3=":443"; ma=86400
//!     .spawn(listener)?;
//! # Ok(()) }
//! ```
//!
//! Browsers switch to HTTP/3 for `https` origins that send it; [`H3Transport`] does not read it
//! (choose the transport by URL), and an application that wants to can read the header from a
//! response's headers (`tests/alt_svc.rs` does, then calls the advertised port over HTTP/3).
//!
//! # Runtimes
//!
//! This crate runs on tokio, as quinn does by default: the server and the transport spawn tokio
//! tasks and sleep on tokio's timer. quinn itself is runtime-agnostic through its `Runtime` trait
//! (timers, UDP sockets, spawning), and ships an implementation for smol and async-std (its
//! `runtime-smol` feature); h3 needs only tokio's `sync` module, which runs anywhere. Running this
//! adapter on smol would take: quinn with `runtime-smol`, the endpoints built with
//! `quinn::Endpoint::new(.., Arc::new(quinn::SmolRuntime))`, and the few `tokio::spawn`,
//! `tokio::time` and `JoinSet` uses here replaced by the smol equivalents (a `ServerRuntime`-like
//! trait, as connect-hyper has, would let both share this code).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod client;
mod quic;
mod server;

pub use body::ResponseBody;
pub use client::{H3Transport, H3TransportBuilder};
pub use connect_hyper::{Limits, PeerAddr, PeerCertificates};
pub use server::{Server, ServerHandle};

/// The `Alt-Svc` header value that advertises HTTP/3 on `port` (for a day): what an HTTP/1.1 or
/// HTTP/2 server of the same host sends so that browsers and clients may switch to HTTP/3. Give it
/// to connect-tokio's or connect-smol's `Server::alt_svc` (connect-hyper's
/// `Server::alt_svc`), which adds it to every response.
pub fn alt_svc(port: u16) -> http::HeaderValue {
    http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400"))
        .unwrap_or_else(|_| http::HeaderValue::from_static("clear"))
}
