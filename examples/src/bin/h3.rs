//! The demo's tour over HTTP/3: the same server and clients as `demo`, with connect-h3's server and
//! transport on QUIC. Run it with `cargo run -p examples --bin h3`.
//!
//! QUIC is always TLS, so the example mints a certificate authority and a certificate for
//! `localhost` at start; the client trusts that authority.

use connect_h3::{H3Transport, Server};
use connect_tokio::TokioRuntime;
use examples::proto::demo::v1::GreetServiceServer;
use examples::Greeter;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (ca, chain, key) = certificates()?;

    // One UDP port serves all three protocols over HTTP/3.
    let router = connect_tokio::router().service(GreetServiceServer::new(Greeter));
    let tls = connect_tokio::tls::server_config(chain, key)?;
    let server = Server::new(router, tls).bind("127.0.0.1:0".parse()?)?;
    let base: http::Uri = format!("https://localhost:{}", server.local_addr().port()).parse()?;
    println!("HTTP/3 server listening on {base} (UDP)");
    println!(
        "(every call below goes over HTTP/3: the HTTP versions in the headings are the TCP demo's)"
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let transport = H3Transport::new(connect_tokio::tls::client_config(roots, None)?);
    // One pooled QUIC connection carries every call of the tour.
    examples::tour(&base, TokioRuntime, |_http2| transport.clone()).await?;

    server.shutdown().await;
    println!("\nserver shut down (GOAWAY, then the connection closed); bye");
    Ok(())
}

/// A CA certificate, and a chain and key for `localhost` signed by it.
fn certificates() -> Result<
    (
        CertificateDer<'static>,
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    ),
    rcgen::Error,
> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?
        .signed_by(&key, &ca, &ca_key)?;
    Ok((
        ca.der().clone(),
        vec![cert.der().clone()],
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    ))
}
