//! TLS with client certificates (mutual TLS). At start the example mints a certificate authority,
//! a server certificate for `localhost` and two client certificates, one signed by that authority
//! and one by a stranger. The server demands a certificate signed by its authority; the handler
//! reads the client's chain from `connect_tokio::PeerCertificates` and answers with its subject.
//! Run it with `cargo run -p examples --bin mtls`.

use connect_tokio::tls::rustls::RootCertStore;
use connect_tokio::{HyperTransport, PeerCertificates, Server, TokioRuntime};
use connect_typed::{
    Client, ClientConfig, Code, Codec, Context, HandlerStream, Protocol, RequestView, Response,
    Status, Streaming,
};
use examples::proto::demo::v1::{
    GreetRequest, GreetResponse, GreetService, GreetServiceClient, GreetServiceServer,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A certificate authority that signs the others.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key)?;
        Ok(Authority { cert, key })
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A certificate for `dns_names` with the given common name and organization.
    fn issue(
        &self,
        dns_names: &[&str],
        common_name: &str,
        organization: &str,
    ) -> Result<Identity, rcgen::Error> {
        let key = KeyPair::generate()?;
        let names = dns_names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Identity {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        })
    }
}

/// The subject of the client's leaf certificate, as `CN=..., O=...`.
fn client_subject(ctx: &Context) -> Option<String> {
    let PeerCertificates(chain) = ctx.extensions().get::<PeerCertificates>()?;
    let (_, leaf) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
    Some(leaf.subject().to_string())
}

/// Greets the caller by the subject of its certificate.
struct WhoAmI;

impl GreetService for WhoAmI {
    async fn greet(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        // The server requires a certificate, so a call without one never gets here; the check
        // stays for servers that make client certificates optional.
        let subject = client_subject(&ctx).ok_or_else(|| {
            Status::new(Code::UNAUTHENTICATED, "a client certificate is required")
        })?;
        println!("  server: call from certificate subject {subject}");
        Ok(Response::new(GreetResponse {
            greeting: format!("Hello, {}! You are {subject}.", request.name()),
            ..Default::default()
        }))
    }

    async fn hello(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        self.greet(ctx, request).await
    }

    async fn greet_many(
        &self,
        _ctx: Context,
        _request: RequestView<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        Err(Status::unimplemented("only Greet and Hello"))
    }

    async fn greet_all(
        &self,
        _ctx: Context,
        _requests: Streaming<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        Err(Status::unimplemented("only Greet and Hello"))
    }

    async fn chat(
        &self,
        _ctx: Context,
        _requests: Streaming<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        Err(Status::unimplemented("only Greet and Hello"))
    }
}

/// A generated client over HTTP/2 and TLS that trusts `ca` and presents `identity`, if any.
fn client(
    base: &http::Uri,
    ca: CertificateDer<'static>,
    identity: Option<Identity>,
) -> Result<GreetServiceClient<HyperTransport>, Box<dyn std::error::Error>> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let tls = connect_tokio::tls::client_config(roots, identity.map(|i| (i.chain, i.key)))?;
    let transport = HyperTransport::builder()
        .http2_only(true)
        .tls_config(tls)
        .build();
    Ok(GreetServiceClient::new(Client::new(
        transport,
        base.clone(),
        ClientConfig::new(Protocol::Grpc, Codec::Proto),
        TokioRuntime,
    )))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ca = Authority::new("Example CA")?;
    let server_identity = ca.issue(&["localhost"], "localhost", "Example Servers")?;
    let alice = ca.issue(&[], "alice", "Example Clients")?;
    let stranger = Authority::new("Somebody Else's CA")?.issue(&[], "mallory", "Elsewhere")?;

    // The server trusts client certificates signed by `ca`, and requires one.
    let mut client_roots = RootCertStore::empty();
    client_roots.add(ca.der())?;
    let tls = connect_tokio::tls::server_config_with_client_auth(
        server_identity.chain,
        server_identity.key,
        client_roots,
        true,
    )?;
    let router = connect_tokio::router().service(GreetServiceServer::new(WhoAmI));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(router).tls(tls).spawn(listener)?;
    // The certificate names `localhost`, so that is the name the clients call.
    let base: http::Uri = format!("https://localhost:{}", server.local_addr().port()).parse()?;
    println!("server listening on {base} (TLS, client certificates required)");

    let request = GreetRequest {
        name: "Alice".to_owned(),
        ..Default::default()
    };

    println!("\n== with a certificate signed by the server's CA");
    let response = client(&base, ca.der(), Some(alice))?
        .greet(&request)
        .await?;
    println!("  client: {}", response.message().greeting);

    println!("\n== with a certificate from another CA");
    let error = client(&base, ca.der(), Some(stranger))?
        .greet(&request)
        .await
        .unwrap_err();
    println!("  client: refused, {:?}: {}", error.code(), error.message());

    println!("\n== without a certificate");
    let error = client(&base, ca.der(), None)?
        .greet(&request)
        .await
        .unwrap_err();
    println!("  client: refused, {:?}: {}", error.code(), error.message());

    server.shutdown().await;
    println!("\nserver shut down; bye");
    Ok(())
}
