fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto");
    connect_build::Config::new()
        .files(&["../proto/interop/v1/interop.proto"])
        .includes(&["../proto"])
        .out_module("proto")
        .compile()?;
    Ok(())
}
