//! Generates the benchmark service three times: for this project (connect-build), for tonic (prost)
//! and for connectrpc. No system `protoc`: protox parses the `.proto` for all three.

use std::path::PathBuf;

const PROTO: &str = "bench/v1/bench.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);

    connect_build::Config::new()
        .files(&[format!("proto/{PROTO}")])
        .includes(&["proto"])
        .out_module("ours")
        .compile()?;

    let fds = protox::compile([PROTO], ["proto"])?;
    std::fs::create_dir_all(out.join("tonic"))?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        .out_dir(out.join("tonic"))
        .compile_fds(fds.clone())?;

    let fds_path = out.join("bench.fds");
    std::fs::write(&fds_path, prost::Message::encode_to_vec(&fds))?;
    std::fs::create_dir_all(out.join("connectrpc"))?;
    connectrpc_build::Config::new()
        .descriptor_set(&fds_path)
        .files(&[PROTO])
        .out_dir(out.join("connectrpc"))
        .include_file("mod.rs")
        .compile()?;
    Ok(())
}
