//! The server under test: reads a `ServerCompatRequest` from stdin, serves the conformance service
//! as asked, writes a `ServerCompatResponse` to stdout, and serves until it is killed (closing stdin
//! does not stop it: the official runner closes it at once).

#[cfg(conformance_protos)]
fn main() -> std::io::Result<()> {
    use conformance::proto::connectrpc::conformance::v1 as pb;
    use conformance::wire::{read_message, write_message};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let request: pb::ServerCompatRequest = read_message(&mut std::io::stdin().lock())?
        .ok_or_else(|| std::io::Error::other("no ServerCompatRequest on stdin"))?;
    let (handle, response) = runtime.block_on(conformance::server::start(&request))?;
    write_message(&mut std::io::stdout().lock(), &response)?;
    // The official runner closes stdin right after writing the request; the server keeps serving
    // until it is killed (PROTOCOL-TRAPS 31).
    runtime.block_on(async move {
        let _handle = handle;
        std::future::pending::<()>().await
    });
    Ok(())
}

#[cfg(not(conformance_protos))]
fn main() {
    conformance::print_skipped("conformance-server");
}
