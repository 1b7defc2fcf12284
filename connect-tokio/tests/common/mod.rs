//! The tokio adapter under the shared end-to-end matrix.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use connect_proto::rpc::{BoxFuture, Router, Runtime};
use connect_testkit::{Adapter, Http, PeerDescriber, TestCerts, TestServer};
use connect_tokio::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use connect_tokio::tls::rustls::RootCertStore;
use connect_tokio::{HyperTransport, PeerAddr, PeerCertificates, Server, TokioRuntime};

/// Serves with [`Server`], calls with [`HyperTransport`].
#[derive(Debug, Default)]
pub struct Tokio;

fn roots() -> RootCertStore {
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
pub fn server_tls() -> connect_tokio::tls::rustls::ServerConfig {
    let certs = TestCerts::get();
    connect_tokio::tls::server_config_with_client_auth(
        vec![CertificateDer::from(certs.server_cert.clone())],
        key(&certs.server_key),
        roots(),
        false,
    )
    .expect("server TLS config")
}

/// The client TLS configuration: trusts the test CA, presents the test client certificate.
pub fn client_tls() -> connect_tokio::tls::rustls::ClientConfig {
    let certs = TestCerts::get();
    connect_tokio::tls::client_config(
        roots(),
        Some((
            vec![CertificateDer::from(certs.client_cert.clone())],
            key(&certs.client_key),
        )),
    )
    .expect("client TLS config")
}

impl Adapter for Tokio {
    type Transport = HyperTransport;

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(TokioRuntime)
    }

    fn serve(&self, router: Router, http: Http) -> BoxFuture<'static, TestServer> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let mut server = Server::new(router);
            let scheme = match http {
                Http::H2Tls => {
                    server = server.tls(server_tls());
                    "https"
                }
                Http::Http1 | Http::H2c => "http",
            };
            let handle = server.spawn(listener).expect("serve");
            let base = format!("{scheme}://127.0.0.1:{}", handle.local_addr().port())
                .parse()
                .expect("base URI");
            TestServer::new(base, move || Box::pin(handle.shutdown()))
        })
    }

    fn transport(&self, http: Http) -> HyperTransport {
        match http {
            Http::Http1 => HyperTransport::new(),
            Http::H2c => HyperTransport::http2(),
            Http::H2Tls => HyperTransport::builder().tls_config(client_tls()).build(),
        }
    }

    fn peer_describer(&self) -> Option<PeerDescriber> {
        Some(Arc::new(|extensions: &http::Extensions| {
            let PeerAddr(addr) = extensions.get::<PeerAddr>()?;
            let cert = match extensions.get::<PeerCertificates>() {
                Some(PeerCertificates(chain)) if !chain.is_empty() => " cert",
                _ => "",
            };
            Some(format!("{addr}{cert}"))
        }))
    }
}

/// Runs a check on a fresh multi-threaded tokio runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}
