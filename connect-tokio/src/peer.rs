//! What the server knows about the other end of a connection, put in each request's
//! [`http::Extensions`] and so visible to handlers through `Context::extensions`.

use std::net::SocketAddr;

/// The client's socket address.
///
/// ```
/// # fn handler(ctx: &connect_proto::rpc::Context) {
/// if let Some(connect_tokio::PeerAddr(addr)) = ctx.extensions().get() {
///     println!("called from {addr}");
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The certificate chain the client presented during the TLS handshake (leaf first); absent when the
/// connection is plain or the client sent none.
#[cfg(feature = "tls")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificates(pub std::sync::Arc<Vec<rustls::pki_types::CertificateDer<'static>>>);
