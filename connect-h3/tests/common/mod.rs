//! The HTTP/3 adapter of the test matrix.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use connect_h3::{H3Transport, Limits, Server};
use connect_testkit::hyper::{client_tls, peer_describer, server_tls};
use connect_testkit::{Adapter, Http, PeerDescriber, TestServer};
use connect_tokio::TokioRuntime;
use connect_typed::{BoxFuture, Router, Runtime};

/// Serves with [`Server`] and calls with [`H3Transport`], over HTTP/3 only.
#[derive(Debug, Default)]
pub(crate) struct H3;

impl H3 {
    /// Like [`Adapter::serve`], with `limits`.
    pub(crate) fn serve_with_limits(
        &self,
        router: Router,
        limits: Limits,
    ) -> BoxFuture<'static, TestServer> {
        Box::pin(async move {
            let handle = Server::new(router, server_tls())
                .limits(limits)
                .bind(([127, 0, 0, 1], 0).into())
                .expect("bind 127.0.0.1:0 (UDP)");
            let base = format!("https://localhost:{}", handle.local_addr().port())
                .parse()
                .expect("base URI");
            TestServer::new(base, move || Box::pin(handle.shutdown()))
        })
    }
}

impl Adapter for H3 {
    type Transport = H3Transport;

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(TokioRuntime)
    }

    fn serve(&self, router: Router, http: Http) -> BoxFuture<'static, TestServer> {
        assert_eq!(http, Http::H3, "this adapter serves HTTP/3 only");
        self.serve_with_limits(router, Limits::default())
    }

    fn transport(&self, http: Http) -> H3Transport {
        assert_eq!(http, Http::H3, "this adapter calls over HTTP/3 only");
        // A stopped server's UDP port answers nothing (no RST as over TCP): a call after a shutdown
        // fails when the handshake times out, so the checks wait less than the default 10 s.
        H3Transport::builder()
            .tls_config(client_tls())
            .connect_timeout(Some(Duration::from_secs(2)))
            .build()
    }

    fn peer_describer(&self) -> Option<PeerDescriber> {
        Some(peer_describer())
    }

    fn supports(&self, http: Http) -> bool {
        http == Http::H3
    }
}

/// Runs `future` on a multi-threaded tokio runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}
