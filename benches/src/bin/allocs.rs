//! Heap allocations per unary call, counted by a global allocator: the call machines alone (client,
//! server, both) and the typed rpc layer (generated server behind the router), per protocol.
//!
//! `cargo run --release -p connect-benches --bin allocs [-- --out FILE]`
// A counting `GlobalAlloc` needs `unsafe impl`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use connect_benches::pair::{self, protocol_name, PROTOCOLS};
use connect_benches::workload;
use connect_typed::ServerConfig;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CALLS: u64 = 1000;

/// Allocations and bytes per call of `f`, after a warm-up.
fn per_call(mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..10 {
        f();
    }
    let (a0, b0) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..CALLS {
        f();
    }
    let (a1, b1) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (
        (a1 - a0) as f64 / CALLS as f64,
        (b1 - b0) as f64 / CALLS as f64,
    )
}

fn main() {
    let out_path = std::env::args().skip_while(|a| a != "--out").nth(1);
    let server_config = ServerConfig::default();
    let echo: Bytes = workload::echo_request_bytes();
    let router = pair::rpc_router();
    let mut table = String::from(
        "| protocol | client machine | server machine | both machines | server rpc layer (router + generated handler) |\n|---|---:|---:|---:|---:|\n",
    );
    for protocol in PROTOCOLS {
        let client_config = pair::client_config(protocol);
        let (_, request) = pair::client_request(&client_config, pair::ECHO, echo.clone());
        let response_template = pair::serve(&server_config, pair::ECHO, &request, 1);
        let client = per_call(|| {
            let (mut client, _) = pair::client_request(&client_config, pair::ECHO, echo.clone());
            let response = response_template.iter().map(pair::copy_transmit).collect();
            pair::client_response(&mut client, response);
        });
        // The copy of the canned response above is the harness's, not the client's: subtract it.
        let copy = per_call(|| {
            let v: Vec<connect_proto::ServerTransmit> =
                response_template.iter().map(pair::copy_transmit).collect();
            std::hint::black_box(v);
        });
        let server = per_call(|| {
            std::hint::black_box(pair::serve(&server_config, pair::ECHO, &request, 1));
        });
        let both = per_call(|| {
            pair::unary_round_trip(&client_config, &server_config, echo.clone());
        });
        let rpc = per_call(|| {
            std::hint::black_box(pair::rpc_call(&router, pair::http_request(&request)));
        });
        // Building the http::Request (headers copied) is the HTTP stack's part: subtract it.
        let build = per_call(|| {
            std::hint::black_box(pair::http_request(&request));
        });
        let _ = writeln!(
            table,
            "| {} | {:.0} ({:.0} B) | {:.0} ({:.0} B) | {:.0} ({:.0} B) | {:.0} ({:.0} B) |",
            protocol_name(protocol),
            client.0 - copy.0,
            client.1 - copy.1,
            server.0,
            server.1,
            both.0,
            both.1,
            rpc.0 - build.0,
            rpc.1 - build.1,
        );
    }
    let text = format!(
        "# Heap allocations per unary call\n\nEcho of a 64-byte string, proto codec, no compression; \
         allocations (bytes) per call, averaged over {CALLS} calls after a warm-up. Machines: the \
         `ClientCall`/`ServerCall` state machines fed in memory (`benches/src/pair.rs`). rpc layer: \
         `Router::handle` with a generated server and handler, request body in one chunk, response \
         body collected (building the `http::Request` is not counted).\n\n{table}"
    );
    println!("{text}");
    if let Some(path) = out_path {
        std::fs::write(path, text).expect("write");
    }
}
