//! Serves `interop.v1.InteropService` on 127.0.0.1 for third-party clients:
//! `interop-server --runtime tokio|smol --port N` (HTTP/1.1 and h2c on one port, all three protocols).

use interop::proto::interop::v1::InteropServiceServer;
use interop::Interop;

fn usage() -> ! {
    eprintln!("usage: interop-server [--runtime tokio|smol] [--port N]");
    std::process::exit(2)
}

fn main() {
    let mut runtime = "tokio".to_owned();
    let mut port: u16 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runtime" => runtime = args.next().unwrap_or_else(|| usage()),
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let result = match runtime.as_str() {
        "tokio" => serve_tokio(port),
        "smol" => serve_smol(port),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("interop-server: {e}");
        std::process::exit(1);
    }
}

fn serve_tokio(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let router = connect_tokio::router().service(InteropServiceServer::new(Interop));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let server = connect_tokio::Server::new(router).spawn(listener)?;
        println!("listening on {} (tokio)", server.local_addr());
        // Runs until killed (the driver stops it by PID).
        std::future::pending::<()>().await;
        Ok(())
    })
}

fn serve_smol(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let router = connect_smol::router().service(InteropServiceServer::new(Interop));
        let listener = smol::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let server = connect_smol::Server::new(router).spawn(listener)?;
        println!("listening on {} (smol)", server.local_addr());
        // Runs until killed (the driver stops it by PID).
        std::future::pending::<()>().await;
        Ok(())
    })
}
