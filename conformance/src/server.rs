//! Starting the server under test from a `ServerCompatRequest`.

use std::io;

use connect_tokio::{Server, ServerHandle, TokioRuntime};
use connect_typed::Router;
use connect_typed::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::proto::connectrpc::conformance::v1 as pb;
use crate::service::Conformance;

/// The router of the conformance service with the request's receive limit.
pub fn router(message_receive_limit: u32) -> Router {
    let mut config = ServerConfig {
        compress_min_bytes: 0,
        ..ServerConfig::default()
    };
    if message_receive_limit > 0 {
        config.max_recv_message_size = message_receive_limit as usize;
    }
    Router::new(TokioRuntime)
        .config(config)
        .service(pb::ConformanceServiceServer::new(Conformance))
}

/// Parses PEM certificates.
pub fn certs(pem: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    rustls_pemfile::certs(&mut &pem[..]).collect()
}

/// Parses a PEM private key.
pub fn key(pem: &[u8]) -> io::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut &pem[..])?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no private key in PEM"))
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("TLS configuration: {e}"))
}

/// The TLS configuration a `ServerCompatRequest` asks for (`None` for plain text).
pub fn tls_config(request: &pb::ServerCompatRequest) -> io::Result<Option<rustls::ServerConfig>> {
    if !request.use_tls {
        return Ok(None);
    }
    let creds = request
        .server_creds
        .as_option()
        .ok_or_else(|| tls_error("use_tls without server_creds"))?;
    let chain = certs(&creds.cert)?;
    let key = key(&creds.key)?;
    let config = if request.client_tls_cert.is_empty() {
        connect_tokio::tls::server_config(chain, key).map_err(tls_error)?
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs(&request.client_tls_cert)? {
            roots.add(cert).map_err(tls_error)?;
        }
        connect_tokio::tls::server_config_with_client_auth(chain, key, roots, true)
            .map_err(tls_error)?
    };
    Ok(Some(config))
}

/// A running server under test: connect-tokio's (HTTP/1.1, h2c, HTTP/2 over TLS) or connect-h3's.
#[derive(Debug)]
pub enum Handle {
    /// HTTP/1.1 and HTTP/2 over TCP.
    Tcp(ServerHandle),
    /// HTTP/3 over QUIC.
    H3(connect_h3::ServerHandle),
}

impl Handle {
    /// Shuts down gracefully.
    pub async fn shutdown(self) {
        match self {
            Handle::Tcp(handle) => handle.shutdown().await,
            Handle::H3(handle) => handle.shutdown().await,
        }
    }
}

/// Starts the server on 127.0.0.1 (an ephemeral port) as `request` asks; must run inside tokio.
///
/// HTTP/1.1 and h2c are served on the same TCP port, so both are served whichever is asked;
/// `HTTP_VERSION_3` gets connect-h3's server on a UDP port (QUIC is always TLS: it needs
/// `use_tls`).
pub async fn start(
    request: &pb::ServerCompatRequest,
) -> io::Result<(Handle, pb::ServerCompatResponse)> {
    if request.http_version == pb::HTTPVersion::HTTP_VERSION_3 {
        return start_h3(request);
    }
    let mut server = Server::new(router(request.message_receive_limit));
    let mut pem_cert = Vec::new();
    if let Some(config) = tls_config(request)? {
        server = server.tls(config);
        pem_cert = request
            .server_creds
            .as_option()
            .map(|creds| creds.cert.clone())
            .unwrap_or_default();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = server.spawn(listener)?;
    let response = pb::ServerCompatResponse {
        host: "127.0.0.1".to_owned(),
        port: handle.local_addr().port().into(),
        pem_cert,
        ..Default::default()
    };
    Ok((Handle::Tcp(handle), response))
}

/// The HTTP/3 server under test.
fn start_h3(request: &pb::ServerCompatRequest) -> io::Result<(Handle, pb::ServerCompatResponse)> {
    let config = tls_config(request)?
        .ok_or_else(|| tls_error("HTTP/3 needs TLS (use_tls with server_creds)"))?;
    let server = connect_h3::Server::new(router(request.message_receive_limit), config);
    let handle = server.bind(([127, 0, 0, 1], 0).into())?;
    let response = pb::ServerCompatResponse {
        host: "127.0.0.1".to_owned(),
        port: handle.local_addr().port().into(),
        pem_cert: request
            .server_creds
            .as_option()
            .map(|creds| creds.cert.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    Ok((Handle::H3(handle), response))
}
