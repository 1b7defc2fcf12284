//! HTTP/3 interop with a third-party peer (aioquic, driven by `interop/h3_check.py`):
//!
//! - `interop-h3 serve --cert PEM --key PEM`: serves `interop.v1.InteropService` over HTTP/3
//!   (connect-h3) on 127.0.0.1 and prints `listening on 127.0.0.1:PORT`;
//! - `interop-h3 call --url https://HOST:PORT --ca PEM`: calls `Unary` on that server over HTTP/3
//!   with the Connect protocol and JSON (what a peer's small server can answer), once to succeed
//!   and once to fail, and prints `CHECK <name> PASS|FAIL <detail>` per check.

use connect_h3::{H3Transport, Server};
use connect_tokio::TokioRuntime;
use connect_typed::{CallOptions, Client, ClientConfig, Code, Codec, Protocol};
use http::HeaderValue;
use interop::proto::interop::v1::{InteropServiceClient, InteropServiceServer, Request};
use interop::Interop;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

type Error = Box<dyn std::error::Error>;

fn usage() -> ! {
    eprintln!("usage: interop-h3 serve --cert PEM --key PEM | call --url URL --ca PEM");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| usage());
    let mut options = std::collections::HashMap::new();
    while let (Some(name), Some(value)) = (args.next(), args.next()) {
        options.insert(name, value);
    }
    let option = |name: &str| options.get(name).cloned().unwrap_or_else(|| usage());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match command.as_str() {
        "serve" => runtime.block_on(serve(&option("--cert"), &option("--key"))),
        "call" => runtime.block_on(call(&option("--url"), &option("--ca"))),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("interop-h3: {e}");
        std::process::exit(1);
    }
}

async fn serve(cert: &str, key: &str) -> Result<(), Error> {
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let tls = connect_tokio::tls::server_config(chain, key)?;
    let router = connect_tokio::router().service(InteropServiceServer::new(Interop));
    let server = Server::new(router, tls).bind(([127, 0, 0, 1], 0).into())?;
    println!("listening on {}", server.local_addr());
    // Runs until killed (the checker stops it by PID).
    std::future::pending::<()>().await;
    Ok(())
}

async fn call(url: &str, ca: &str) -> Result<(), Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let tls = connect_tokio::tls::client_config(roots, None)?;
    let client = InteropServiceClient::new(Client::new(
        H3Transport::new(tls),
        url.parse()?,
        ClientConfig::new(Protocol::Connect, Codec::Json),
        TokioRuntime,
    ));
    let mut failed = false;
    let mut report = |name: &str, result: Result<String, String>| {
        let (verdict, detail) = match result {
            Ok(detail) => ("PASS", detail),
            Err(detail) => {
                failed = true;
                ("FAIL", detail)
            }
        };
        println!("CHECK {name} {verdict} {detail}");
    };

    let mut options = CallOptions::default();
    options
        .headers
        .insert("x-echo", HeaderValue::from_static("over-h3"));
    let unary = client
        .unary_with_options(
            &Request {
                text: "hello over HTTP/3".into(),
                ..Default::default()
            },
            options,
        )
        .await;
    report(
        "connect-unary",
        match unary {
            Ok(response) if response.message().text == "hello over HTTP/3" => {
                let echoed = response
                    .headers()
                    .get("x-echo-header")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if echoed == "over-h3" {
                    Ok("message and header echoed".into())
                } else {
                    Err(format!("x-echo-header {echoed:?}"))
                }
            }
            Ok(response) => Err(format!("text {:?}", response.message().text)),
            Err(status) => Err(status.to_string()),
        },
    );

    let failing = client
        .unary(&Request {
            text: "boom".into(),
            fail_code: "not_found".into(),
            fail_message: "no such thing".into(),
            ..Default::default()
        })
        .await;
    report(
        "connect-unary-error",
        match failing {
            Err(status)
                if status.code() == Code::NOT_FOUND && status.message() == "no such thing" =>
            {
                Ok(format!("{status}"))
            }
            Err(status) => Err(format!("unexpected status {status}")),
            Ok(_) => Err("the failing call succeeded".into()),
        },
    );
    if failed {
        return Err("some checks failed".into());
    }
    Ok(())
}
