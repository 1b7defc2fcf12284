//! What the hyper-based adapters (connect-tokio, connect-smol) need to run the matrix: TLS
//! configurations from the [`TestCerts`](crate::TestCerts) and a [`PeerDescriber`] of
//! connect-hyper's peer types.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use connect_hyper::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use connect_hyper::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use connect_hyper::{Limits, PeerAddr, PeerCertificates, Server, ServerRuntime, TransportSettings};
use connect_typed::{BoxFuture, Client, Router, Runtime, Transport};
use connect_typed::{Code, Codec, Protocol};
use futures_util::StreamExt;

use crate::proto::testkit::v1::{EchoRequest, EchoServiceClient};
use crate::suite::{echo, CALL_LIMIT};
use crate::{Adapter, Http, PeerDescriber, Suite, TestCerts, TestServer};

mod client;
mod limits;
mod memory;

pub use memory::{resident_bytes, IDLE_HTTP2_BYTES, SILENT_TCP_BYTES};

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

/// What the hyper-level checks need beyond [`Adapter`]: a server with [`Limits`], and a client
/// transport with a given TLS configuration.
pub trait HyperAdapter: Adapter {
    /// Like [`Adapter::serve`], with `limits`.
    fn serve_with_limits(
        &self,
        router: Router,
        http: Http,
        limits: Limits,
    ) -> BoxFuture<'static, TestServer>;

    /// A transport for `https` URIs with `config` (HTTP/2 or HTTP/1.1 by ALPN).
    fn transport_with_tls(&self, config: ClientConfig) -> Self::Transport;

    /// A transport built from `settings`.
    fn transport_with_settings(&self, settings: TransportSettings) -> Self::Transport;
}

fn client<A: HyperAdapter>(
    suite: &Suite<A>,
    transport: A::Transport,
    base: &http::Uri,
    protocol: Protocol,
) -> EchoServiceClient<A::Transport> {
    EchoServiceClient::new(Client::new(
        transport,
        base.clone(),
        connect_typed::ClientConfig::new(protocol, Codec::Proto),
        suite.runtime.clone(),
    ))
}

impl<A: HyperAdapter> Suite<A> {
    /// A request body over [`Limits::max_request_body`]: refused up front when its length is
    /// announced, reset when it streams past the limit; the handler is dropped either way. Small calls
    /// still work. Over HTTP/1.1 and h2c.
    pub async fn request_body_limit(&self) {
        let mut limits = Limits::default();
        limits.max_request_body = Some(4096);
        for http in [Http::Http1, Http::H2c] {
            let router = self.router(connect_typed::ServerConfig::default());
            let serve = self.adapter.serve_with_limits(router, http, limits.clone());
            let server = self.call("starting a server", serve).await;
            let client = client(
                self,
                self.adapter.transport(http),
                server.base(),
                Protocol::Connect,
            );
            // Unary: Content-Length says it all.
            let big = EchoRequest {
                padding: vec![0; 8192],
                ..echo("big")
            };
            let status = self
                .call(format!("{http:?}"), client.unary(&big))
                .await
                .unwrap_err();
            assert_ne!(status.code(), Code::OK, "{http:?}");
            let ok = self
                .call(format!("{http:?}"), client.unary(&echo("small")))
                .await
                .unwrap();
            assert_eq!(ok.message().text, "small");
            // Streaming: each message is small, together they cross the limit. Paced, so that the
            // body's length is unknown when the request starts.
            let tag = format!("body-limit-{http:?}");
            let (runtime, first) = (self.runtime.clone(), tag.clone());
            let requests = futures_util::stream::iter(0..10).then(move |i| {
                let tag = if i == 0 { first.clone() } else { String::new() };
                let pause = runtime.sleep_until(runtime.now() + Duration::from_millis(5));
                async move {
                    pause.await;
                    EchoRequest {
                        padding: vec![0; 1024],
                        tag,
                        ..echo("chunk")
                    }
                }
            });
            let result = self
                .call(format!("{http:?}"), client.client_stream(requests))
                .await;
            assert!(
                result.is_err(),
                "{http:?}: a body over the limit was served"
            );
            self.assert_dropped(&tag).await;
            server.stop_within(&*self.runtime, CALL_LIMIT).await;
        }
    }

    /// Over TLS, handlers see the client's certificate chain; without one, they see none.
    pub async fn tls_client_certificates_reach_handlers(&self) {
        let router = self.router(connect_typed::ServerConfig::default());
        let serve = self.adapter.serve(router, Http::H2Tls);
        let server = self.call("starting a server", serve).await;
        let mut anonymous = client_tls();
        anonymous.client_auth_cert_resolver = connect_hyper::tls::client_config(roots(), None)
            .expect("client TLS config")
            .client_auth_cert_resolver;
        for (config, expect_cert) in [(client_tls(), true), (anonymous, false)] {
            let transport = self.adapter.transport_with_tls(config);
            let client = client(self, transport, server.base(), Protocol::Grpc);
            let response = self.call("a TLS call", client.unary(&echo("tls"))).await;
            let response = response.expect("a TLS call");
            let peer = response.headers()["x-peer"].to_str().unwrap_or_default();
            assert!(peer.starts_with("127.0.0.1:"), "{peer}");
            assert_eq!(peer.ends_with(" cert"), expect_cert, "{peer}");
        }
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// A client that opens a connection and never finishes its request head is disconnected after
    /// [`Limits::header_read_timeout`]. The silent client is a blocking socket on its own thread, so
    /// that the check needs no runtime's IO.
    pub async fn header_read_timeout_closes_silent_connections(&self) {
        let mut limits = Limits::default();
        limits.header_read_timeout = Some(Duration::from_millis(200));
        let router = self.router(connect_typed::ServerConfig::default());
        let serve = self.adapter.serve_with_limits(router, Http::Http1, limits);
        let server = self.call("starting a server", serve).await;
        let authority = server
            .base()
            .authority()
            .expect("base authority")
            .to_string();
        let (closed_tx, closed) = futures_channel::oneshot::channel();
        std::thread::spawn(move || {
            let read = || -> std::io::Result<()> {
                let mut socket = std::net::TcpStream::connect(&authority)?;
                socket.set_read_timeout(Some(Duration::from_secs(5)))?;
                socket.write_all(b"POST /testkit.v1.EchoService/Unary HTTP/1.1\r\nhost: x\r\n")?;
                // The server answers 408 or just closes; either way the read ends.
                let mut answer = Vec::new();
                socket.read_to_end(&mut answer).map(drop)
            };
            let _ = closed_tx.send(read());
        });
        let closed = self.call("the silent connection", closed).await;
        closed
            .expect("the reading thread answers")
            .expect("the silent connection was closed within 5 s");
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// Calls waiting for a fresh HTTP/2 connection that another call started are not failed when that
    /// call is dropped before the connection is up. (hyper-util's pool hands such waiters
    /// `CheckoutNoLongerWanted`, a connect error it does not retry; the transports send them again.)
    pub async fn cancelling_the_first_call_on_a_fresh_connection_fails_no_other(&self) {
        let router = self.router(connect_typed::ServerConfig::default());
        let serve = self.adapter.serve(router, Http::H2c);
        let server = self.call("starting a server", serve).await;
        // Whether the others are waiting for the connection when the first call is dropped is a race
        // with the connector; a few rounds, each on a fresh connection, make sure it is run into.
        for round in 0..4 {
            let transport = self.adapter.transport(Http::H2c);
            let client = client(self, transport, server.base(), Protocol::Grpc);
            // The first call starts connecting and is not polled again until it is dropped.
            let first_request = echo("first");
            let mut first = Box::pin(client.unary(&first_request));
            let pending = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::future::Future::poll(first.as_mut(), cx).is_pending())
            })
            .await;
            assert!(pending, "the first call finished at its first poll");
            // The others run as tasks of their own, as calls of other parts of an application would.
            let others: Vec<_> = (0..4)
                .map(|i| {
                    let (client, (done, result)) =
                        (client.clone(), futures_channel::oneshot::channel());
                    self.runtime.spawn(Box::pin(async move {
                        let _ = done.send(client.unary(&echo(&format!("other-{i}"))).await);
                    }));
                    result
                })
                .collect();
            // Let the others find the connection in progress and wait for it.
            self.sleep(Duration::from_millis(50)).await;
            drop(first);
            let results = self.call("the other calls", futures_util::future::join_all(others));
            for result in results.await {
                let result = result.expect("the call's task ends");
                assert!(result.is_ok(), "round {round}: {result:?}");
            }
        }
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }
}

/// Expands to one `#[test]` per hyper-level check of [`Suite`] over an adapter that implements
/// [`HyperAdapter`], like [`e2e_tests!`](crate::e2e_tests).
#[macro_export]
macro_rules! hyper_tests {
    ($adapter:expr, $block_on:path) => {
        $crate::e2e_tests!(@each $adapter, $block_on;
            request_body_limit, tls_client_certificates_reach_handlers,
            header_read_timeout_closes_silent_connections,
            cancelling_the_first_call_on_a_fresh_connection_fails_no_other,
            client_connect_timeout_ends_unanswered_connects, idle_pooled_connections_expire,
            default_http1_pool_lets_go_before_node_servers_do);
    };
}

/// Expands to the memory checks of [`Suite`] (one `#[test]` each), for a test binary of their own:
/// they measure the process's resident set, which other tests running alongside would disturb.
#[macro_export]
macro_rules! memory_tests {
    ($adapter:expr, $block_on:path) => {
        $crate::e2e_tests!(@each $adapter, $block_on; idle_connections_cost_little_memory);
    };
}

/// The matrix's adapter for a hyper-based runtime adapter: connect-hyper's [`Server`] on runtime `R`
/// (also the typed layer's runtime), called through transport `T`. connect-tokio's tests use
/// `HyperTestAdapter<TokioRuntime, HyperTransport>`, connect-smol's
/// `HyperTestAdapter<SmolRuntime, SmolTransport>`.
pub struct HyperTestAdapter<R, T> {
    types: std::marker::PhantomData<fn() -> (R, T)>,
}

impl<R, T> Default for HyperTestAdapter<R, T> {
    fn default() -> Self {
        HyperTestAdapter {
            types: std::marker::PhantomData,
        }
    }
}

impl<R, T> std::fmt::Debug for HyperTestAdapter<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<Self>())
    }
}

impl<R, T> Adapter for HyperTestAdapter<R, T>
where
    R: ServerRuntime + Runtime + Default,
    T: Transport + Clone + From<TransportSettings>,
{
    type Transport = T;

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(R::default())
    }

    fn serve(&self, router: Router, http: Http) -> BoxFuture<'static, TestServer> {
        self.serve_with_limits(router, http, Limits::default())
    }

    fn transport(&self, http: Http) -> T {
        let mut settings = TransportSettings::default();
        settings.http2_only = http == Http::H2c;
        if http == Http::H2Tls {
            settings.tls = Some(client_tls());
        }
        T::from(settings)
    }

    fn peer_describer(&self) -> Option<PeerDescriber> {
        Some(peer_describer())
    }
}

impl<R, T> HyperAdapter for HyperTestAdapter<R, T>
where
    R: ServerRuntime + Runtime + Default,
    T: Transport + Clone + From<TransportSettings>,
{
    fn serve_with_limits(
        &self,
        router: Router,
        http: Http,
        limits: Limits,
    ) -> BoxFuture<'static, TestServer> {
        Box::pin(async move {
            let listener = R::bind(([127, 0, 0, 1], 0).into())
                .await
                .expect("bind 127.0.0.1:0");
            let mut server = Server::<R>::new(router).limits(limits);
            let scheme = match http {
                Http::H3 => panic!(
                    "the hyper adapters do not serve HTTP/3: iterate `Suite::versions()`, not `Http::ALL`"
                ),
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

    fn transport_with_tls(&self, config: ClientConfig) -> T {
        let mut settings = TransportSettings::default();
        settings.tls = Some(config);
        T::from(settings)
    }

    fn transport_with_settings(&self, settings: TransportSettings) -> T {
        T::from(settings)
    }
}
