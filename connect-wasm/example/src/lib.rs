//! The example page's wasm module: `greet` and `greetMany` of the `GreetService` (from
//! `connect-build-tests`), called with the generated client over `connect-wasm`'s fetch transport.
//! `index.html` beside this crate is the page; `build.sh` builds `pkg/`. On other targets the crate
//! is empty.

#[cfg(target_arch = "wasm32")]
mod page;
