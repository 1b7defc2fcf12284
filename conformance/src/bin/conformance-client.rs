//! The client under test: reads `ClientCompatRequest`s from stdin until EOF, runs them
//! concurrently, and writes one `ClientCompatResponse` per request to stdout as each finishes.

#[cfg(conformance_protos)]
fn main() -> std::io::Result<()> {
    use conformance::client::{run, Transports};
    use conformance::proto::connectrpc::conformance::v1 as pb;
    use conformance::wire::{read_message, write_message};
    use pb::__buffa::oneof::client_compat_response::Result as CompatResult;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (results_tx, results_rx) = std::sync::mpsc::channel::<pb::ClientCompatResponse>();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        for response in results_rx {
            write_message(&mut stdout, &response)?;
        }
        Ok(())
    });
    let transports = Transports::default();
    let mut tasks = Vec::new();
    let mut stdin = std::io::stdin().lock();
    while let Some(request) = read_message::<pb::ClientCompatRequest>(&mut stdin)? {
        let (transports, results_tx) = (transports.clone(), results_tx.clone());
        tasks.push(runtime.spawn(async move {
            let mut response = run(&transports, request).await;
            // Only the reference client reports the HTTP status (our runner compares it).
            if let Some(CompatResult::Response(result)) = &mut response.result {
                result.http_status_code = None;
            }
            let _ = results_tx.send(response);
        }));
    }
    drop(results_tx);
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    writer
        .join()
        .map_err(|_| std::io::Error::other("writer thread panicked"))?
}

#[cfg(not(conformance_protos))]
fn main() {
    conformance::print_skipped("conformance-client");
}
