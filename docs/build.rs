// The guide's first chapter shows this file: it is what a crate using connect-build writes.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_build::Config::new()
        .files(&["proto/greet/v1/greet.proto"])
        .includes(&["proto"])
        .out_module("proto")
        .compile()?;
    Ok(())
}
