//! Our runner of the conformance suite over every configured protocol, codec, compression, HTTP
//! version and TLS setting: the connect-es (Node) client against our server and our client against
//! the connect-es server where they can, our client against our server for the rest (see
//! `conformance/README.md`). Ends with "N passed, M failed".
//!
//! Options: `--config FILE` (default `conformance/config/all.yaml`), `--known-failing FILE`
//! (default `conformance/known-failing.txt`), `--known-flaky FILE` (default
//! `conformance/known-flaky.txt`), `--protocol connect|grpc|grpc-web` (repeatable),
//! `--run PATTERN` (repeatable; `[node-client] PATTERN` for one arrangement),
//! `--arrangement node-client|node-server|ours` (repeatable), `--no-node` (ours on both sides for
//! everything), `--parallel N`, `--timeout SECONDS`, `-v`.

#[cfg(conformance_protos)]
fn main() -> std::process::ExitCode {
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Duration;

    use conformance::arrangement::{Arrangement, CasePattern};
    use conformance::proto::connectrpc::conformance::v1 as pb;
    use conformance::runner::{run, Options};

    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let suites_dir = conformance::shared_dir().join("conformance/testsuites");
    if !suites_dir.is_dir() {
        println!(
            "skipped: conformance test suites not found at {}",
            suites_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    let mut options = Options {
        suites_dir,
        config: crate_dir.join("config/all.yaml"),
        known_failing: Some(crate_dir.join("known-failing.txt")),
        known_flaky: Some(crate_dir.join("known-flaky.txt")),
        run: Vec::new(),
        protocols: Vec::new(),
        arrangements: Vec::new(),
        node_dir: Some(crate_dir.join("node")),
        our_binaries: None,
        parallel: 32,
        case_timeout: Duration::from_secs(20),
        verbose: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--config" => options.config = value().into(),
            "--known-failing" => options.known_failing = Some(value().into()),
            "--known-flaky" => options.known_flaky = Some(value().into()),
            "--run" => match CasePattern::parse(&value()) {
                Ok(pattern) => options.run.push(pattern),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            },
            "--arrangement" => match Arrangement::from_tag(&value()) {
                Some(arrangement) => options.arrangements.push(arrangement),
                None => {
                    eprintln!("--arrangement takes node-client, node-server or ours");
                    return ExitCode::from(2);
                }
            },
            "--no-node" => options.node_dir = None,
            "--parallel" => options.parallel = value().parse().unwrap_or(32),
            "--timeout" => {
                options.case_timeout = Duration::from_secs(value().parse().unwrap_or(20))
            }
            "--protocol" => options.protocols.push(match value().as_str() {
                "connect" => pb::Protocol::PROTOCOL_CONNECT,
                "grpc" => pb::Protocol::PROTOCOL_GRPC,
                "grpc-web" => pb::Protocol::PROTOCOL_GRPC_WEB,
                other => {
                    eprintln!("unknown protocol {other}");
                    return ExitCode::from(2);
                }
            }),
            "-v" | "--verbose" => options.verbose = true,
            other => {
                eprintln!("unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    if options.node_dir.is_some() {
        // The connect-es peers talk to our binaries, as the official runner's peers do.
        match conformance::peer::OurBinaries::locate() {
            Ok(binaries) => options.our_binaries = Some(binaries),
            Err(e) => {
                println!("error: {e}");
                println!("0 passed, 1 failed");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(summary) => {
            println!(
                "({} of the passed are known failures that failed as listed)",
                summary.known_failing
            );
            println!("{} passed, {} failed", summary.passed, summary.failed);
            if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("error: {e}");
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(conformance_protos))]
fn main() {
    conformance::print_skipped("conformance-runner");
    println!("0 passed, 0 failed");
}
