//! Snapshot of the service code generated for `connect-build-tests/proto` (every RPC shape, two
//! packages, three services, well-known types, `NO_SIDE_EFFECTS`, doc comments).
//!
//! `UPDATE_SNAPSHOTS=1 cargo test -p connect-build --test snapshot` rewrites the expected files.

use std::path::PathBuf;

#[test]
fn generated_service_code_matches_snapshots() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let protos = root.join("../connect-build-tests/proto");
    let files = connect_build::Config::new()
        .files(&[
            protos.join("acme/greet/v1/greet.proto"),
            protos.join("acme/store/v1/store.proto"),
        ])
        .includes(&[&protos])
        .out_module("proto")
        .generate()
        .expect("code generation succeeds");

    let snapshots = root.join("tests/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut checked = 0;
    for file in files
        .iter()
        .filter(|f| f.name.ends_with(".__connect.rs") || f.name == "proto.rs")
    {
        let path = snapshots.join(&file.name);
        if update {
            std::fs::write(&path, &file.content).expect("write snapshot");
        } else {
            let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
                panic!(
                    "missing snapshot {}; run with UPDATE_SNAPSHOTS=1",
                    path.display()
                )
            });
            assert_eq!(
                expected, file.content,
                "{} differs from its snapshot; run with UPDATE_SNAPSHOTS=1 and review the diff",
                file.name
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 3, "two service files and the root module");
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = connect_build::Config::new()
        .files(&["does/not/exist.proto"])
        .includes(&["."])
        .generate()
        .expect_err("a missing file fails");
    assert!(err.to_string().contains("exist.proto"), "{err}");
}
