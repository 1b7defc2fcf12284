//! What the server knows about the other end of a connection, put in each request's
//! [`http::Extensions`] and so visible to handlers through `Context::extensions`.

use std::net::SocketAddr;

/// The client's socket address.
///
/// ```
/// # fn handler(ctx: &connect_typed::Context) {
/// if let Some(connect_hyper::PeerAddr(addr)) = ctx.extensions().get() {
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

#[cfg(feature = "tls")]
impl PeerCertificates {
    /// The chain the client of `connection` presented, once its handshake is done; `None` without one.
    pub fn of(connection: &rustls::ServerConnection) -> Option<Self> {
        connection.peer_certificates().map(|chain| {
            PeerCertificates(std::sync::Arc::new(
                chain.iter().map(|c| c.clone().into_owned()).collect(),
            ))
        })
    }
}
