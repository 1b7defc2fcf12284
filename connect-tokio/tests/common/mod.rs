//! The tokio adapter under the shared end-to-end matrix.

#![allow(dead_code, unreachable_pub)]

use connect_testkit::hyper::HyperTestAdapter;
use connect_tokio::{HyperTransport, TokioRuntime};

/// Serves with [`connect_tokio::Server`], calls with [`HyperTransport`].
pub type Tokio = HyperTestAdapter<TokioRuntime, HyperTransport>;

/// Runs a check on a fresh multi-threaded tokio runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}
