//! The shared end-to-end matrix (connect-testkit) over real sockets on smol: every protocol × stream
//! type × HTTP version (HTTP/1.1, h2c, HTTP/2 over TLS) × codec, with errors, details, metadata,
//! trailers, deadlines, cancellation, compression, Connect GET, limits and graceful shutdown.

mod common;

connect_testkit::e2e_tests!(common::Smol::default(), smol::block_on);
// Request-body limit, client certificates over TLS, header read timeout; the client transport's
// connect timeout and idle pool.
connect_testkit::hyper_tests!(common::Smol::default(), smol::block_on);
// Client faults' codes, connection management, keep-alive, the response budget.
connect_testkit::limits_tests!(common::Smol::default(), smol::block_on);
