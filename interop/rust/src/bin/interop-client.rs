//! Calls a third-party `interop.v1.InteropService` server and prints one line per check:
//! `CHECK <kind> PASS|FAIL|NA <detail>`.
//!
//! `interop-client --target http://127.0.0.1:PORT --protocol connect|grpc|grpcweb
//!  --http-version 1.1|2 --codec proto|json [--checks KIND,KIND,...]`
//!
//! Without `--checks` it runs the matrix's kinds (`MATRIX`, in `driver.py`'s order). Two more
//! kinds run only when named (`interop/nginx.sh` does): `unary_get` (Connect GET) and
//! `error_metadata` (headers and trailers of an error).

use std::future::Future;
use std::time::{Duration, Instant};

use connect_tokio::{HyperTransport, TokioRuntime};
use connect_typed::Client;
use connect_typed::{CallOptions, ClientConfig, Code, Codec, Protocol, Status};
use futures_util::StreamExt;
use http::HeaderValue;
use interop::proto::interop::v1::{ErrorDetail, InteropServiceClient, Request};
use interop::DETAIL_TYPE;

type Svc = InteropServiceClient<HyperTransport>;
type Check = Result<String, String>;

/// The kinds that run without `--checks`: the columns of `driver.py`'s table.
const MATRIX: [&str; 8] = [
    "unary",
    "server_stream",
    "client_stream",
    "bidi",
    "error",
    "metadata",
    "deadline",
    "gzip",
];
/// The kinds that run only when `--checks` names them.
const EXTRA: [&str; 2] = ["unary_get", "error_metadata"];

struct Args {
    target: String,
    protocol: Protocol,
    http2: bool,
    codec: Codec,
    checks: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: interop-client --target URL --protocol connect|grpc|grpcweb --http-version 1.1|2 --codec proto|json [--checks KIND,...]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        target: String::new(),
        protocol: Protocol::Connect,
        http2: false,
        codec: Codec::Proto,
        checks: MATRIX.map(str::to_owned).to_vec(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match (arg.as_str(), value.as_str()) {
            ("--target", v) => a.target = v.to_owned(),
            ("--protocol", "connect") => a.protocol = Protocol::Connect,
            ("--protocol", "grpc") => a.protocol = Protocol::Grpc,
            ("--protocol", "grpcweb") => a.protocol = Protocol::GrpcWeb,
            ("--http-version", "1.1") => a.http2 = false,
            ("--http-version", "2") => a.http2 = true,
            ("--codec", "proto") => a.codec = Codec::Proto,
            ("--codec", "json") => a.codec = Codec::Json,
            ("--checks", v) => {
                a.checks = v.split(',').map(str::to_owned).collect();
                if !a
                    .checks
                    .iter()
                    .all(|k| MATRIX.contains(&k.as_str()) || EXTRA.contains(&k.as_str()))
                {
                    usage()
                }
            }
            _ => usage(),
        }
    }
    if a.target.is_empty() {
        usage()
    }
    a
}

fn req(text: &str) -> Request {
    Request {
        text: text.to_owned(),
        ..Default::default()
    }
}

fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn show(status: &Status) -> String {
    format!(
        "{}: {}",
        status.code().name().unwrap_or("?"),
        status.message()
    )
}

async fn unary(c: &Svc) -> Check {
    let r = c.unary(&req("hello")).await.map_err(|s| show(&s))?;
    expect(r.message().text == "hello", || {
        format!("text {:?}", r.message().text)
    })?;
    Ok("echoed".into())
}

async fn server_stream(c: &Svc) -> Check {
    let mut request = req("s");
    request.count = 3;
    let mut stream = c.server_stream(&request).await.map_err(|s| show(&s))?;
    let mut indexes = Vec::new();
    while let Some(m) = stream.next().await {
        indexes.push(m.map_err(|s| show(&s))?.index);
    }
    expect(indexes == [0, 1, 2], || format!("indexes {indexes:?}"))?;
    Ok("3 messages".into())
}

async fn client_stream(c: &Svc) -> Check {
    let requests = futures_util::stream::iter(["a", "b", "c"].map(req));
    let r = c.client_stream(requests).await.map_err(|s| show(&s))?;
    let m = r.message();
    expect(m.text == "a,b,c" && m.index == 3, || {
        format!("got {:?} / {}", m.text, m.index)
    })?;
    Ok("3 requests joined".into())
}

/// Full duplex: each request is sent only after the previous response arrived.
async fn bidi(c: &Svc) -> Check {
    let (tx, rx) = futures_channel::mpsc::unbounded();
    tx.unbounded_send(req("0")).map_err(|e| e.to_string())?;
    let mut stream = c.bidi_stream(rx).await.map_err(|s| show(&s))?;
    for i in 0..3 {
        let m = stream
            .next()
            .await
            .ok_or(format!("stream ended before response {i}"))?
            .map_err(|s| show(&s))?;
        expect(m.text == i.to_string() && m.index == i, || {
            format!("response {i}: {:?} / {}", m.text, m.index)
        })?;
        if i < 2 {
            tx.unbounded_send(req(&(i + 1).to_string()))
                .map_err(|e| e.to_string())?;
        }
    }
    drop(tx);
    if let Some(extra) = stream.next().await {
        return Err(format!(
            "unexpected item after close: {:?}",
            extra.map(|m| m.text)
        ));
    }
    Ok("3 ping-pongs, full duplex".into())
}

fn check_error(status: &Status, reason: &str) -> Result<(), String> {
    use buffa::Message;
    expect(
        status.code() == Code::FAILED_PRECONDITION && status.message() == "interop failure",
        || format!("wrong error {}", show(status)),
    )?;
    let detail = status
        .details()
        .iter()
        .find(|d| d.type_name == DETAIL_TYPE)
        .ok_or_else(|| format!("no {DETAIL_TYPE} detail in {:?}", status.details()))?;
    let decoded = ErrorDetail::decode(&mut &detail.value[..]).map_err(|e| e.to_string())?;
    expect(decoded.reason == reason, || {
        format!("detail reason {:?}", decoded.reason)
    })
}

fn failing(text: &str) -> Request {
    Request {
        text: text.to_owned(),
        fail_code: "failed_precondition".into(),
        fail_message: "interop failure".into(),
        ..Default::default()
    }
}

/// A unary error and an error that ends a server stream after two messages, both with a detail.
async fn error(c: &Svc) -> Check {
    match c.unary(&failing("unary-boom")).await {
        Ok(_) => return Err("unary call succeeded".into()),
        Err(status) => check_error(&status, "unary-boom").map_err(|e| format!("unary: {e}"))?,
    }
    let mut request = failing("stream-boom");
    request.count = 2;
    let mut stream = c.server_stream(&request).await.map_err(|s| show(&s))?;
    let mut got = 0;
    loop {
        match stream.next().await {
            Some(Ok(_)) => got += 1,
            Some(Err(status)) => {
                check_error(&status, "stream-boom").map_err(|e| format!("stream: {e}"))?;
                break;
            }
            None => return Err("stream ended without an error".into()),
        }
    }
    expect(got == 2, || format!("{got} messages before the error"))?;
    Ok("code, message and detail (unary, server stream)".into())
}

fn echo_options(value: &'static str) -> CallOptions {
    let mut options = CallOptions::default();
    options
        .headers
        .insert("x-echo", HeaderValue::from_static(value));
    options
}

fn header<'a>(map: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    map.get(name).and_then(|v| v.to_str().ok())
}

/// Request headers come back as response headers and trailers (unary and server stream).
async fn metadata(c: &Svc) -> Check {
    let r = c
        .unary_with_options(&req("m"), echo_options("unary-value"))
        .await
        .map_err(|s| show(&s))?;
    expect(
        header(r.headers(), "x-echo-header") == Some("unary-value"),
        || format!("unary headers {:?}", r.headers()),
    )?;
    expect(
        header(r.trailers(), "x-echo-trailer") == Some("unary-value"),
        || format!("unary trailers {:?}", r.trailers()),
    )?;
    let mut request = req("m");
    request.count = 1;
    let mut stream = c
        .server_stream_with_options(&request, echo_options("stream-value"))
        .await
        .map_err(|s| show(&s))?;
    expect(
        header(stream.headers(), "x-echo-header") == Some("stream-value"),
        || format!("stream headers {:?}", stream.headers()),
    )?;
    while let Some(m) = stream.next().await {
        m.map_err(|s| show(&s))?;
    }
    let trailers = stream.trailers().cloned().unwrap_or_default();
    expect(
        header(&trailers, "x-echo-trailer") == Some("stream-value"),
        || format!("stream trailers {trailers:?}"),
    )?;
    Ok("headers and trailers (unary, server stream)".into())
}

/// Connect GET (the client's `use_get`): the unary method has no side effects, so its request
/// travels in the query of a GET; the echo and the response header and trailer come back.
async fn unary_get(c: &Svc) -> Check {
    let r = c
        .unary_with_options(&req("get"), echo_options("get-value"))
        .await
        .map_err(|s| show(&s))?;
    expect(r.message().text == "get", || {
        format!("text {:?}", r.message().text)
    })?;
    expect(
        header(r.headers(), "x-echo-header") == Some("get-value")
            && header(r.trailers(), "x-echo-trailer") == Some("get-value"),
        || format!("headers {:?}, trailers {:?}", r.headers(), r.trailers()),
    )?;
    Ok("echoed, with header and trailer".into())
}

/// An error keeps its metadata: the response header and trailer the handler set before failing
/// arrive in the error's `metadata()` (unary, and a server stream that fails after a message).
async fn error_metadata(c: &Svc) -> Check {
    let has_echo = |status: &Status, value: &str| {
        let m = status.metadata();
        expect(
            header(m, "x-echo-header") == Some(value) && header(m, "x-echo-trailer") == Some(value),
            || format!("{}; metadata {m:?}", show(status)),
        )
    };
    match c
        .unary_with_options(&failing("unary-boom"), echo_options("unary-error"))
        .await
    {
        Ok(_) => return Err("unary call succeeded".into()),
        Err(status) => {
            check_error(&status, "unary-boom").map_err(|e| format!("unary: {e}"))?;
            has_echo(&status, "unary-error").map_err(|e| format!("unary: {e}"))?;
        }
    }
    let mut request = failing("stream-boom");
    request.count = 1;
    let mut stream = c
        .server_stream_with_options(&request, echo_options("stream-error"))
        .await
        .map_err(|s| show(&s))?;
    loop {
        match stream.next().await {
            Some(Ok(_)) => {}
            Some(Err(status)) => {
                check_error(&status, "stream-boom").map_err(|e| format!("stream: {e}"))?;
                has_echo(&status, "stream-error").map_err(|e| format!("stream: {e}"))?;
                break;
            }
            None => return Err("stream ended without an error".into()),
        }
    }
    Ok("details, header and trailer of the error (unary, server stream)".into())
}

/// A 300 ms deadline on a call the server answers after 3 s.
async fn deadline(c: &Svc) -> Check {
    let mut request = req("slow");
    request.sleep_ms = 3000;
    let options = CallOptions {
        timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let start = Instant::now();
    let result = c.unary_with_options(&request, options).await;
    let elapsed = start.elapsed();
    match result {
        Ok(_) => Err("call succeeded".into()),
        Err(s) if s.code() == Code::DEADLINE_EXCEEDED && elapsed < Duration::from_millis(2000) => {
            Ok(format!(
                "deadline_exceeded after {} ms",
                elapsed.as_millis()
            ))
        }
        Err(s) => Err(format!("{} after {} ms", show(&s), elapsed.as_millis())),
    }
}

/// A 64 KiB request compressed with gzip; the response (same size) may come back compressed.
async fn gzip(c: &Svc) -> Check {
    let mut request = req("z");
    request.padding = vec![b'z'; 64 * 1024];
    let options = CallOptions {
        send_compression: Some(Some("gzip")),
        ..Default::default()
    };
    let r = c
        .unary_with_options(&request, options.clone())
        .await
        .map_err(|s| show(&s))?;
    expect(r.message().padding == request.padding, || {
        format!("padding of {} bytes", r.message().padding.len())
    })?;
    let requests = futures_util::stream::iter([request.clone(), request]);
    let r = c
        .client_stream_with_options(requests, options)
        .await
        .map_err(|s| show(&s))?;
    expect(r.message().index == 2, || "client stream".into())?;
    Ok("gzip requests (unary, client stream)".into())
}

async fn run<F: Future<Output = Check>>(kind: &str, f: F) {
    let line = match tokio::time::timeout(Duration::from_secs(15), f).await {
        Ok(Ok(detail)) => format!("CHECK {kind} PASS {detail}"),
        Ok(Err(detail)) => format!("CHECK {kind} FAIL {detail}"),
        Err(_) => format!("CHECK {kind} FAIL timed out after 15 s"),
    };
    println!("{}", line.replace('\n', " "));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let base: http::Uri = args.target.parse().unwrap_or_else(|_| usage());
    let transport = if args.http2 {
        HyperTransport::http2()
    } else {
        HyperTransport::new()
    };
    let config = ClientConfig::new(args.protocol, args.codec);
    let client = InteropServiceClient::new(Client::new(
        transport.clone(),
        base.clone(),
        config.clone(),
        TokioRuntime,
    ));
    let get_client = InteropServiceClient::new(Client::new(
        transport,
        base,
        ClientConfig {
            use_get: true,
            ..config
        },
        TokioRuntime,
    ));
    for kind in &args.checks {
        match kind.as_str() {
            "unary" => run(kind, unary(&client)).await,
            "server_stream" => run(kind, server_stream(&client)).await,
            "client_stream" => run(kind, client_stream(&client)).await,
            "bidi" if args.http2 => run(kind, bidi(&client)).await,
            "bidi" => println!("CHECK bidi NA full-duplex bidi needs HTTP/2"),
            "error" => run(kind, error(&client)).await,
            "metadata" => run(kind, metadata(&client)).await,
            "deadline" => run(kind, deadline(&client)).await,
            "gzip" => run(kind, gzip(&client)).await,
            "unary_get" if args.protocol == Protocol::Connect => {
                run(kind, unary_get(&get_client)).await
            }
            "unary_get" => println!("CHECK unary_get NA HTTP GET is Connect's alone"),
            "error_metadata" => run(kind, error_metadata(&client)).await,
            _ => unreachable!("parse_args accepts only known kinds"),
        }
    }
}
