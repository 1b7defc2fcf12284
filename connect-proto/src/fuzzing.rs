//! Entry points for the cargo-fuzz targets in `fuzz/` (STYLE 8: each target is one line into here).
//!
//! Compiled only with the `fuzzing` feature and hidden from the docs: this is not API. The checks
//! themselves live in [`crate::testing`], where the stable tests run them too: the parsers'
//! properties, and the call machines under test driven by scripts. Here are only the `Arbitrary`
//! impls that turn the fuzzer's bytes into scripts (through the scripts' own byte format, so that
//! seeds can be written from real exchanges), and [`run`], the targets by name, through which the
//! tests replay seeds and crash inputs exactly as the targets would.

use arbitrary::{Arbitrary, Unstructured};

pub use crate::testing::properties::*;
pub use crate::testing::{
    call_pair, client_call, server_call, ClientOp, ClientScript, PairScript, ServerOp, ServerScript,
};

/// Implements `Arbitrary` through a script's byte format, which takes the whole input.
macro_rules! arbitrary_via_bytes {
    ($($ty:ty),*) => {$(
        impl<'a> Arbitrary<'a> for $ty {
            fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
                let len = u.len();
                Ok(<$ty>::from_bytes(u.bytes(len)?))
            }

            fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
                Ok(<$ty>::from_bytes(u.take_rest()))
            }
        }
    )*};
}

arbitrary_via_bytes!(ServerScript, ClientScript, PairScript);

/// The fuzz targets, by the names of `fuzz/fuzz_targets/*.rs` (but `view_decoder`, which fuzzes
/// generated code from `connect-build-tests`).
pub const TARGETS: [&str; 18] = [
    "envelope",
    "grpc_web_trailers",
    "connect_error",
    "connect_end_stream",
    "timeout",
    "grpc_message",
    "binary_metadata",
    "connect_get_query",
    "content_type",
    "grpc_status_details",
    "decompress_gzip",
    "decompress_zstd",
    "decompress_br",
    "decompress_deflate",
    "decompress_snappy",
    "server_call",
    "client_call",
    "call_pair",
];

/// Runs one input through the target of that name, as its fuzz target does; `false` for a name
/// that is no target (or one whose compression feature is off).
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "envelope" => envelope(data),
        "grpc_web_trailers" => grpc_web_trailers(data),
        "connect_error" => connect_error(data),
        "connect_end_stream" => connect_end_stream(data),
        "timeout" => timeout(data),
        "grpc_message" => grpc_message(data),
        "binary_metadata" => binary_metadata(data),
        "connect_get_query" => connect_get_query(data),
        "content_type" => content_type(data),
        "grpc_status_details" => grpc_status_details(data),
        #[cfg(feature = "gzip")]
        "decompress_gzip" => decompress_gzip(data),
        #[cfg(feature = "zstd")]
        "decompress_zstd" => decompress_zstd(data),
        #[cfg(feature = "br")]
        "decompress_br" => decompress_br(data),
        #[cfg(feature = "deflate")]
        "decompress_deflate" => decompress_deflate(data),
        #[cfg(feature = "snappy")]
        "decompress_snappy" => decompress_snappy(data),
        "server_call" => server_call(
            ServerScript::arbitrary_take_rest(Unstructured::new(data))
                .expect("any bytes are a script"),
        ),
        "client_call" => client_call(
            ClientScript::arbitrary_take_rest(Unstructured::new(data))
                .expect("any bytes are a script"),
        ),
        "call_pair" => call_pair(
            PairScript::arbitrary_take_rest(Unstructured::new(data))
                .expect("any bytes are a script"),
        ),
        _ => return false,
    }
    true
}
