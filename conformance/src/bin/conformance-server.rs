//! The server under test: reads a `ServerCompatRequest` from stdin, serves the conformance service
//! as asked, writes a `ServerCompatResponse` to stdout, and serves until stdin closes or it is killed.

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
    // The runner stops the server by closing stdin or with a signal.
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut rest);
    runtime.block_on(async move {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), handle.shutdown()).await;
    });
    Ok(())
}

#[cfg(not(conformance_protos))]
fn main() {
    conformance::print_skipped("conformance-server");
}
