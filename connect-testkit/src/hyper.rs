//! What the hyper-based adapters (connect-tokio, connect-smol) need to run the matrix: TLS
//! configurations from the [`TestCerts`](crate::TestCerts) and a [`PeerDescriber`] of
//! connect-hyper's peer types.

use std::sync::Arc;

use connect_hyper::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use connect_hyper::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use connect_hyper::{PeerAddr, PeerCertificates};

use crate::{PeerDescriber, TestCerts};

/// Trusts the test CA.
pub fn roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(TestCerts::get().ca.clone()))
        .expect("test CA");
    roots
}

fn key(der: &[u8]) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec()))
}

/// The server TLS configuration: test server certificate, optional client certificates.
pub fn server_tls() -> ServerConfig {
    let certs = TestCerts::get();
    connect_hyper::tls::server_config_with_client_auth(
        vec![CertificateDer::from(certs.server_cert.clone())],
        key(&certs.server_key),
        roots(),
        false,
    )
    .expect("server TLS config")
}

/// The client TLS configuration: trusts the test CA, presents the test client certificate.
pub fn client_tls() -> ClientConfig {
    let certs = TestCerts::get();
    connect_hyper::tls::client_config(
        roots(),
        Some((
            vec![CertificateDer::from(certs.client_cert.clone())],
            key(&certs.client_key),
        )),
    )
    .expect("client TLS config")
}

/// Describes the peer from connect-hyper's [`PeerAddr`] and [`PeerCertificates`].
pub fn peer_describer() -> PeerDescriber {
    Arc::new(|extensions: &http::Extensions| {
        let PeerAddr(addr) = extensions.get::<PeerAddr>()?;
        let cert = match extensions.get::<PeerCertificates>() {
            Some(PeerCertificates(chain)) if !chain.is_empty() => " cert",
            _ => "",
        };
        Some(format!("{addr}{cert}"))
    })
}
