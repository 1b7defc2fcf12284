//! The in-memory pair of `connect_proto::testing`, and raw exchanges (`raw`): one side's machine fed
//! hand-written wire input.

#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod raw;

pub use connect_proto::testing::{
    client_config, lookup, metadata, rich_error, server_config, Observed, Pair, Replies, Script,
    BIDI_STREAM, CLIENT_STREAM, METHODS, SERVER_STREAM, UNARY,
};
