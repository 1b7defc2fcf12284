fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    connect_build::Config::new()
        .files(&["proto/demo/v1/greet.proto", "proto/demo/v1/counter.proto"])
        .includes(&["proto"])
        .out_module("proto")
        .compile()?;
    Ok(())
}
