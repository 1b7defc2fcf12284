//! Benchmarks of connect-rust against tonic, connectrpc and a raw hyper floor.

/// This project's generated code.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod ours {
    include!(concat!(env!("OUT_DIR"), "/ours.rs"));
}

/// tonic + prost generated code.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod tonic_gen {
    include!(concat!(env!("OUT_DIR"), "/tonic/bench.v1.rs"));
}

/// connectrpc generated code.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod connectrpc_gen {
    include!(concat!(env!("OUT_DIR"), "/connectrpc/mod.rs"));
}

pub mod h2load;
pub mod load;
pub mod pair;
pub mod process;
pub mod report;
pub mod servers;
pub mod workload;
