//! The user guide of connect-rust, as a crate: each chapter of `docs/guide/` is the documentation
//! of one module here, so `cargo test -p docs` compiles every Rust code block of the guide and runs
//! each one that is not marked `no_run` (those would serve until stopped).
//!
//! Code blocks reach the guide's generated code as `docs::proto` (in an application it is the
//! application's own module, `crate::proto`), and later chapters reuse the first chapter's service as
//! [`Greeter`].
#![doc = include_str!("../guide/README.md")]

/// Code generated from `proto/greet/v1/greet.proto` by connect-build (this crate's `build.rs`).
#[allow(missing_docs, unreachable_pub, missing_debug_implementations)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/proto.rs"));
}

use connect_typed::{Context, RequestView, Response, Status};
use proto::greet::v1::{GreetRequest, GreetResponse, GreetService};

/// The service of [the first chapter](first_service), for the chapters after it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Greeter;

impl GreetService for Greeter {
    async fn greet(
        &self,
        _ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        Ok(Response::new(GreetResponse {
            greeting: format!("Hello, {}!", request.name()),
            ..Default::default()
        }))
    }
}

/// Certificates for the TLS, mTLS and HTTP/3 chapters, minted at run time with rcgen: a certificate
/// authority, a server certificate for `localhost` and a client certificate, all in PEM, as they
/// would be read from files.
#[derive(Debug)]
pub struct Pki {
    /// The authority's certificate (what clients, and servers checking clients, trust).
    pub ca_pem: String,
    /// The server's certificate, for `localhost`.
    pub server_cert_pem: String,
    /// The server's private key.
    pub server_key_pem: String,
    /// A client certificate whose subject is `CN=alice`.
    pub client_cert_pem: String,
    /// The client's private key.
    pub client_key_pem: String,
}

impl Pki {
    /// Mints a fresh authority and the certificates it signs.
    pub fn mint() -> Result<Pki, rcgen::Error> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "Guide CA");
        let ca = ca.self_signed(&ca_key)?;
        let server_key = KeyPair::generate()?;
        let server = CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(
            &server_key,
            &ca,
            &ca_key,
        )?;
        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client.distinguished_name.push(DnType::CommonName, "alice");
        let client = client.signed_by(&client_key, &ca, &ca_key)?;
        Ok(Pki {
            ca_pem: ca.pem(),
            server_cert_pem: server.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }
}

macro_rules! chapters {
    ($($module:ident = $file:literal;)*) => {
        $(
            #[doc = include_str!(concat!("../guide/", $file))]
            pub mod $module {}
        )*
    };
}

chapters! {
    install = "01-install.md";
    first_service = "02-first-service.md";
    streaming = "03-streaming.md";
    errors = "04-errors.md";
    deadlines = "05-deadlines.md";
    headers = "06-headers-trailers.md";
    compression = "07-compression.md";
    tls = "08-tls.md";
    tower_axum = "09-tower-axum.md";
    smol = "10-smol.md";
    browser = "11-browser.md";
    interceptors = "12-interceptors-tracing.md";
    health_reflection = "13-health-reflection.md";
    http3 = "14-http3.md";
    production = "15-production.md";
    from_tonic = "16-from-tonic.md";
    from_connectrpc = "17-from-connectrpc.md";
}
