fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_build::Config::new()
        .files(&[
            "proto/acme/batch/v1/batch.proto",
            "proto/acme/greet/v1/greet.proto",
            "proto/acme/store/v1/store.proto",
        ])
        .includes(&["proto"])
        .out_module("proto")
        .compile()?;
    Ok(())
}
