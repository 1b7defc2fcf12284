//! The `google.rpc` detail types are generated from `proto/` by connect-build and checked in under
//! `src/generated/` (so that using connect-typed needs no build script): this test generates them
//! again and compares. `UPDATE_GENERATED=1 cargo test -p connect-typed --test generated` rewrites
//! them.

use std::path::Path;

#[test]
fn generated_detail_types_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = connect_build::Config::new()
        .files(&[root.join("proto/google/rpc/error_details.proto")])
        .includes(&[root.join("proto")])
        .out_module("types")
        .generate_services(false)
        .generate()
        .expect("the protos compile");
    let dir = root.join("src/generated");
    let update = std::env::var_os("UPDATE_GENERATED").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut stale = Vec::new();
    for file in &files {
        let path = dir.join(&file.name);
        if update {
            std::fs::write(&path, &file.content).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(file.content.as_str()) {
            stale.push(file.name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (UPDATE_GENERATED=1 rewrites them): {stale:?}"
    );
}
