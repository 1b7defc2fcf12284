//! The smol adapter under the shared end-to-end matrix.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use connect_proto::rpc::{BoxFuture, Router, Runtime};
use connect_smol::tls::rustls::ClientConfig;
use connect_smol::{Limits, Server, SmolRuntime, SmolTransport};
use connect_testkit::hyper::HyperAdapter;
pub use connect_testkit::hyper::{client_tls, server_tls};
use connect_testkit::{Adapter, Http, PeerDescriber, TestServer};

/// Serves with [`Server`], calls with [`SmolTransport`].
#[derive(Debug, Default)]
pub struct Smol;

impl Adapter for Smol {
    type Transport = SmolTransport;

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(SmolRuntime)
    }

    fn serve(&self, router: Router, http: Http) -> BoxFuture<'static, TestServer> {
        self.serve_with_limits(router, http, Limits::default())
    }

    fn transport(&self, http: Http) -> SmolTransport {
        match http {
            Http::Http1 => SmolTransport::new(),
            Http::H2c => SmolTransport::http2(),
            Http::H2Tls => SmolTransport::builder().tls_config(client_tls()).build(),
        }
    }

    fn peer_describer(&self) -> Option<PeerDescriber> {
        Some(connect_testkit::hyper::peer_describer())
    }
}

impl HyperAdapter for Smol {
    fn serve_with_limits(
        &self,
        router: Router,
        http: Http,
        limits: Limits,
    ) -> BoxFuture<'static, TestServer> {
        Box::pin(async move {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let mut server = Server::new(router).limits(limits);
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

    fn transport_with_tls(&self, config: ClientConfig) -> SmolTransport {
        SmolTransport::builder().tls_config(config).build()
    }
}
