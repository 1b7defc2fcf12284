//! Quick slices of the conformance runner for `cargo test`: the Basic and Timeouts suites over
//! every protocol, codec, compression, HTTP version and TLS setting with ours on both sides, and
//! the Basic suite with the connect-es peers (skipped without Node). The full run is
//! `conformance-runner`.

/// The slices share two cores; timing cases run one slice at a time.
#[cfg(conformance_protos)]
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[cfg(conformance_protos)]
fn options(patterns: &[&str], node: bool) -> Option<conformance::runner::Options> {
    use std::path::PathBuf;
    use std::time::Duration;

    use conformance::arrangement::CasePattern;

    let suites_dir = conformance::shared_dir().join("conformance/testsuites");
    if !suites_dir.is_dir() {
        println!(
            "skipped: conformance test suites not found at {}",
            suites_dir.display()
        );
        return None;
    }
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Some(conformance::runner::Options {
        suites_dir,
        config: crate_dir.join("config/all.yaml"),
        known_failing: Some(crate_dir.join("known-failing.txt")),
        known_flaky: Some(crate_dir.join("known-flaky.txt")),
        run: patterns
            .iter()
            .map(|p| CasePattern::parse(p).expect("a pattern"))
            .collect(),
        protocols: Vec::new(),
        arrangements: Vec::new(),
        node_dir: node.then(|| crate_dir.join("node")),
        our_binaries: Some(conformance::peer::OurBinaries {
            server: env!("CARGO_BIN_EXE_conformance-server").into(),
            client: env!("CARGO_BIN_EXE_conformance-client").into(),
        }),
        parallel: 32,
        case_timeout: Duration::from_secs(20),
        verbose: false,
    })
}

#[cfg(conformance_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_timeouts_pass_with_ours_on_both_sides() {
    use conformance::arrangement::Arrangement;

    let Some(options) = options(&["Basic/**", "Timeouts/**"], false) else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let summary = conformance::runner::run(options)
        .await
        .expect("the runner runs");
    assert!(summary.passed > 400, "{summary:?}");
    assert_eq!(summary.failed, 0, "{summary:?}");
    assert_eq!(
        summary.per_arrangement.keys().collect::<Vec<_>>(),
        [&Arrangement::Ours],
        "{summary:?}"
    );
}

#[cfg(conformance_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_passes_with_the_node_peers() {
    use conformance::arrangement::Arrangement;

    let Some(options) = options(&["Basic/**"], true) else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let summary = conformance::runner::run(options)
        .await
        .expect("the runner runs");
    if let Some(reason) = &summary.peers_skipped {
        println!("skipped: Node peers: {reason}");
        return;
    }
    assert_eq!(summary.failed, 0, "{summary:?}");
    // Basic has no mode: every case runs with the connect-es client against our server and with
    // our client against the connect-es server; ours on both sides instead for bidi over HTTP/1.1
    // (in place of the Node server) and for HTTP/3 (in place of both: Node has no HTTP/3).
    let runs = |a| summary.per_arrangement.get(&a).copied().unwrap_or(0);
    let h3: usize = summary
        .ours_because
        .iter()
        .filter(|(reason, _)| reason.starts_with("HTTP/3"))
        .map(|(_, n)| *n)
        .sum();
    assert!(runs(Arrangement::NodeClient) > 400, "{summary:?}");
    assert!(runs(Arrangement::NodeServer) > 400, "{summary:?}");
    assert!(h3 > 0, "{summary:?}");
    assert_eq!(
        runs(Arrangement::NodeClient) + h3,
        runs(Arrangement::NodeServer) + runs(Arrangement::Ours),
        "{summary:?}"
    );
}

#[cfg(not(conformance_protos))]
#[test]
fn basic_suite_passes() {
    conformance::print_skipped("conformance smoke test");
}
