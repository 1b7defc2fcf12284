//! ConnectRPC conformance for connect-proto: the server and client under test that the official
//! runner drives over stdin/stdout, and our own runner of the suite's test cases.
//!
//! The suite (protos, test cases, docs) is read from `$CONNECT_SHARED_DIR/conformance` (default
//! `../shared` beside the workspace). Without it, the crate builds with no generated code and the
//! binaries say they were skipped.

use std::path::PathBuf;

#[cfg(conformance_protos)]
#[allow(
    missing_docs,
    clippy::all,
    unreachable_pub,
    missing_debug_implementations
)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/conformance_proto.rs"));
}

#[cfg(conformance_protos)]
pub mod arrangement;
#[cfg(conformance_protos)]
pub mod client;
#[cfg(conformance_protos)]
pub mod compare;
#[cfg(conformance_protos)]
pub mod convert;
#[cfg(conformance_protos)]
pub mod peer;
#[cfg(conformance_protos)]
pub mod raw;
#[cfg(conformance_protos)]
pub mod reference;
#[cfg(conformance_protos)]
pub mod runner;
#[cfg(conformance_protos)]
pub mod server;
#[cfg(conformance_protos)]
pub mod service;
#[cfg(conformance_protos)]
pub mod suite;
pub mod wire;

/// Whether the conformance protos were found at build time.
pub const HAVE_PROTOS: bool = cfg!(conformance_protos);

/// The shared directory: `$CONNECT_SHARED_DIR`, else `../shared` relative to the workspace root.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("CONNECT_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    }
}

/// Prints why a binary does nothing when the protos were missing at build time.
pub fn print_skipped(what: &str) {
    println!(
        "skipped: {what}: conformance protos not found at {} when this crate was built",
        shared_dir().join("conformance/proto").display()
    );
}
