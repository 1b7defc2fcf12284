//! A quick slice of the conformance runner for `cargo test`: the Basic suite over every protocol,
//! codec, compression, HTTP version and TLS setting. The full run is `conformance-runner`.

#[cfg(conformance_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_suite_passes() {
    use std::path::PathBuf;
    use std::time::Duration;

    use conformance::runner::{run, Options};
    use conformance::suite::Pattern;

    let suites_dir = conformance::shared_dir().join("conformance/testsuites");
    if !suites_dir.is_dir() {
        println!(
            "skipped: conformance test suites not found at {}",
            suites_dir.display()
        );
        return;
    }
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let summary = run(Options {
        suites_dir,
        config: crate_dir.join("config/all.yaml"),
        known_failing: Some(crate_dir.join("known-failing.txt")),
        known_flaky: Some(crate_dir.join("known-flaky.txt")),
        run: vec![Pattern::new("Basic/**"), Pattern::new("Timeouts/**")],
        protocols: Vec::new(),
        parallel: 32,
        case_timeout: Duration::from_secs(20),
        verbose: false,
    })
    .await
    .expect("the runner runs");
    assert!(summary.passed > 400, "{summary:?}");
    assert_eq!(summary.failed, 0, "{summary:?}");
}

#[cfg(not(conformance_protos))]
#[test]
fn basic_suite_passes() {
    conformance::print_skipped("conformance smoke test");
}
