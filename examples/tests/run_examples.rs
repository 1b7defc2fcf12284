//! Every example binary runs to the end, exits 0 and prints what its README line promises, so that
//! none of them rots. Each runs as its own process, as `cargo run -p examples --bin NAME` would.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `exe` with `args`, waits at most a minute, and returns its standard output after checking
/// that it exited 0 and printed each of `expected`, in that order.
fn run(name: &str, exe: &str, args: &[&str], expected: &[&str]) -> String {
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: cannot start {exe}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = reader.join().expect("reader").expect("stdout is UTF-8");
    let errors = errors.join().expect("reader").unwrap_or_default();
    assert!(
        status.success(),
        "{name}: exited with {status}\n--- stdout\n{output}\n--- stderr\n{errors}"
    );
    let mut rest = output.as_str();
    for line in expected {
        match rest.find(line) {
            Some(at) => rest = &rest[at + line.len()..],
            None => panic!("{name}: expected {line:?} (in this order) in\n{output}"),
        }
    }
    output
}

#[test]
fn demo() {
    let output = run(
        "demo",
        env!("CARGO_BIN_EXE_demo"),
        &[],
        &[
            "== Connect over HTTP/1.1, JSON",
            "Greet(Ada)          -> Hello, Ada! (Connect from 127.0.0.1:",
            "== gRPC over HTTP/2 (h2c), proto",
            "== gRPC-Web over HTTP/1.1, proto",
            "Check(\"demo.v1.GreetService\") -> SERVING",
            "server shut down; bye",
        ],
    );
    // Each of the three protocols does all four kinds of RPC and the error.
    assert_eq!(output.matches("server stream GreetMany").count(), 9);
    assert_eq!(output.matches("bidi stream   Chat").count(), 6);
    assert_eq!(output.matches("(field \"name\")").count(), 3);
}

#[test]
fn smol() {
    let output = run(
        "smol",
        env!("CARGO_BIN_EXE_smol"),
        &[],
        &["(smol)", "GrpcWeb from 127.0.0.1:", "server shut down; bye"],
    );
    assert_eq!(output.matches("client stream GreetAll").count(), 3);
}

#[test]
fn h3() {
    let output = run(
        "h3",
        env!("CARGO_BIN_EXE_h3"),
        &[],
        &[
            "HTTP/3 server listening on https://localhost:",
            "server shut down",
        ],
    );
    assert_eq!(output.matches("bidi stream   Chat").count(), 6);
}

#[test]
fn axum() {
    run(
        "axum",
        env!("CARGO_BIN_EXE_axum"),
        &[],
        &["axum app listening on", "Greet(axum) -> Hello, axum!"],
    );
}

#[test]
fn interceptors() {
    run(
        "interceptors",
        env!("CARGO_BIN_EXE_interceptors"),
        &[],
        &[
            "Greet(Ada) -> unauthenticated: a bearer token is required",
            "Greet(Ada) -> Hello, Ada!",
            "Hello(Ada) -> Hello, Ada! (after 2 retries)",
        ],
    );
}

#[test]
fn otel() {
    let output = run(
        "otel",
        env!("CARGO_BIN_EXE_otel"),
        &[],
        &["== the traces, as the spans link up", "trace ", "trace "],
    );
    // Per trace: the application's span, then each call's client span with its server span as a
    // child, in both protocols.
    let summary = &output[output.find("== the traces").unwrap()..];
    assert_eq!(summary.matches("(Server rpc.system=").count(), 4);
    assert_eq!(summary.matches("(Client rpc.system=").count(), 4);
}

#[test]
fn streaming() {
    let output = run(
        "streaming",
        env!("CARGO_BIN_EXE_streaming"),
        &[],
        &[
            "server: sends greeting #1",
            "client: got #1 for Ada",
            "server: sends greeting #2",
            "client: got #5 for Ada",
            "client: sends Alan",
            "server: received Alan",
            "client: sends Barbara",
            "client: got Hello, Alan and Barbara and Edsger!",
            "server: heard Ken",
            "client: got Nice to meet you, Ken.",
            "client: says Dennis",
            "server: heard Dennis",
            "client: got Nice to meet you, Brian.",
            "client: chat over",
            "client: got #2 for Grace",
            "server: stream dropped after",
            "server shut down; bye",
        ],
    );
    // The client sees the first greeting long before the last is sent: it streams.
    let millis = |line: &str| -> u128 {
        let at = output.find(line).expect(line);
        let start = output[..at].rfind('[').unwrap() + 1;
        let text = &output[start..at];
        text.trim_start()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(millis("client: got #1 for Ada") + 300 <= millis("server: sends greeting #5"));
}

#[test]
fn mtls() {
    run(
        "mtls",
        env!("CARGO_BIN_EXE_mtls"),
        &[],
        &[
            "client certificates required",
            "server: call from certificate subject CN=alice, O=Example Clients",
            "client: Hello, Alice! You are CN=alice, O=Example Clients.",
            "== with a certificate from another CA",
            "client: refused, unavailable",
            "== without a certificate",
            "client: refused, unavailable",
            "server shut down; bye",
        ],
    );
}

#[test]
fn multi_service() {
    run(
        "multi_service",
        env!("CARGO_BIN_EXE_multi_service"),
        &[],
        &[
            "/demo.v1.CounterService/Increment",
            "/demo.v1.GreetService/Greet",
            "/grpc.health.v1.Health/Check",
            "GreetService.Hello(Ada)       -> Hello, Ada!",
            "CounterService.Increment(39) -> 42",
            "CounterService.Get()          -> 42",
            "Health.Check(\"demo.v1.GreetService\") -> SERVING",
            "Health.Check(\"demo.v1.CounterService\") -> NOT_SERVING",
            "Health.List() -> 3 services",
        ],
    );
}

#[test]
fn gateway() {
    let output = run(
        "gateway",
        env!("CARGO_BIN_EXE_gateway"),
        &[],
        &[
            // The exact time left depends on the machine's load; that there is one is the point.
            "backend: Greet(Ada) with request id r-1, about ",
            "client: Hello, Ada! (x-served-by: backend-1)",
            "backend: GreetMany(Grace) with request id r-2",
            "client: Hello #3, Grace!",
            "client: Hello, Alan and Barbara!",
            "backend: Greet(slow) with request id r-4, about ",
            "client: deadline_exceeded after about ",
            "servers shut down; bye",
        ],
    );
    assert!(!output.contains("no deadline"), "{output}");
    assert!(!output.contains("leaked"), "{output}");
    // The slow call did not wait for the backend's 5 s.
    let after = output
        .split("deadline_exceeded after about ")
        .nth(1)
        .unwrap();
    let millis: u64 = after.split(' ').next().unwrap().parse().unwrap();
    assert!(millis < 2000, "{output}");
}
