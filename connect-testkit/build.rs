fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    connect_build::Config::new()
        .files(&["proto/testkit/v1/echo.proto"])
        .includes(&["proto"])
        .out_module("proto")
        .compile()?;
    Ok(())
}
