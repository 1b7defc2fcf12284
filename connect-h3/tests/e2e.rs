//! The shared end-to-end matrix (connect-testkit) over HTTP/3: every protocol × stream type × codec,
//! with errors, details, metadata, trailers, deadlines, cancellation, compression, Connect GET,
//! limits and graceful shutdown, our client against our server over QUIC on loopback.

mod common;

connect_testkit::e2e_tests!(common::H3, common::block_on);
