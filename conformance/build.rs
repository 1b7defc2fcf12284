//! Compiles the conformance suite's protos from `$CONNECT_SHARED_DIR/conformance/proto` (default
//! `../shared` beside the workspace). Without them the crate builds with no generated code and its
//! binaries print that they were skipped.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=CONNECT_SHARED_DIR");
    println!("cargo::rustc-check-cfg=cfg(conformance_protos)");
    let shared = shared_dir();
    let proto_root = shared.join("conformance").join("proto");
    let package = proto_root.join("connectrpc/conformance/v1");
    println!("cargo:rerun-if-changed={}", package.display());
    let files = [
        "config",
        "service",
        "client_compat",
        "server_compat",
        "suite",
    ]
    .map(|name| package.join(format!("{name}.proto")));
    if !files.iter().all(|f| f.is_file()) {
        println!(
            "cargo:warning=conformance protos not found at {}: building without them",
            package.display()
        );
        return Ok(());
    }
    connect_build::Config::new()
        .files(&files)
        .includes(&[&proto_root])
        .out_module("conformance_proto")
        .compile()?;
    println!("cargo:rustc-cfg=conformance_protos");
    println!(
        "cargo:rustc-env=CONFORMANCE_SHARED_DIR_AT_BUILD={}",
        shared.display()
    );
    Ok(())
}

/// `$CONNECT_SHARED_DIR`, else `../shared` relative to the workspace root.
fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CONNECT_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    manifest.join("../../shared")
}
