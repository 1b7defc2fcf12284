//! The one clock type of the crate.
//!
//! The core never reads the clock: every input that needs time takes a `now` argument. This alias exists
//! because `std::time::Instant::now()` panics in browsers, so on wasm32 the adapters use `web_time`.

#[cfg(not(target_arch = "wasm32"))]
pub use std::time::Instant;
#[cfg(target_arch = "wasm32")]
pub use web_time::Instant;
