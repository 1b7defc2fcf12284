//! The tokio adapter under the shared end-to-end matrix.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use connect_proto::rpc::{BoxFuture, Router, Runtime};
use connect_testkit::hyper::HyperAdapter;
pub use connect_testkit::hyper::{client_tls, server_tls};
use connect_testkit::{Adapter, Http, PeerDescriber, TestServer};
use connect_tokio::tls::rustls::ClientConfig;
use connect_tokio::{HyperTransport, Limits, Server, TokioRuntime};

/// Serves with [`Server`], calls with [`HyperTransport`].
#[derive(Debug, Default)]
pub struct Tokio;

impl Adapter for Tokio {
    type Transport = HyperTransport;

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(TokioRuntime)
    }

    fn serve(&self, router: Router, http: Http) -> BoxFuture<'static, TestServer> {
        self.serve_with_limits(router, http, Limits::default())
    }

    fn transport(&self, http: Http) -> HyperTransport {
        match http {
            Http::Http1 => HyperTransport::new(),
            Http::H2c => HyperTransport::http2(),
            Http::H2Tls => HyperTransport::builder().tls_config(client_tls()).build(),
        }
    }

    fn peer_describer(&self) -> Option<PeerDescriber> {
        Some(connect_testkit::hyper::peer_describer())
    }
}

impl HyperAdapter for Tokio {
    fn serve_with_limits(
        &self,
        router: Router,
        http: Http,
        limits: Limits,
    ) -> BoxFuture<'static, TestServer> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
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

    fn transport_with_tls(&self, config: ClientConfig) -> HyperTransport {
        HyperTransport::builder().tls_config(config).build()
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
