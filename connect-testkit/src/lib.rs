//! The end-to-end test matrix shared by the runtime adapters (connect-tokio, connect-smol and
//! connect-h3 run it): a test service, test certificates, and checks over every protocol × stream
//! type × HTTP version × codec that run against any [`Adapter`], on any runtime.
//!
//! An adapter's test file implements [`Adapter`] and expands [`e2e_tests!`] once.

mod certs;
#[cfg(feature = "hyper")]
pub mod hyper;
mod intercept;
mod service;
mod suite;

/// Code generated from `proto/testkit/v1/echo.proto`.
#[allow(missing_docs, unreachable_pub)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/proto.rs"));
}

pub use certs::{TestCerts, CLIENT_NAME};
pub use service::{requested_error, Echo, Lifetime, PeerDescriber, Tracker};
pub use suite::{bounded, Adapter, Case, Http, Suite, TestServer};
