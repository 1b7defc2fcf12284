//! protoc plugin: reads a `CodeGeneratorRequest` on stdin, writes a `CodeGeneratorResponse` with
//! buffa's message code, the connect service code and a root module file `connect_generated.rs`.
//!
//! Parameters (comma-separated `key=value`): `connect_typed_path=<path>` (default `::connect_typed`),
//! `services=false` to generate messages only, `root=<file name>` for the root module file.

use std::io::{Read, Write};

use buffa::Message;
use buffa_codegen::generated::compiler::code_generator_response::{Feature, File};
use buffa_codegen::generated::compiler::CodeGeneratorResponse;
use buffa_codegen::CodeGenConfig;
use connect_build::ServiceOptions;

fn run(input: &[u8]) -> Result<CodeGeneratorResponse, String> {
    let request = buffa_codegen::decode_request(input)?;
    let mut options = ServiceOptions::default();
    let mut root = "connect_generated.rs".to_owned();
    if let Some(parameter) = request.parameter.as_deref() {
        for pair in parameter.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
            match key.trim() {
                "connect_typed_path" => options.runtime_crate = value.trim().to_owned(),
                "services" => options.generate_services = value.trim() != "false",
                "root" => root = value.trim().to_owned(),
                "element_memory_limit" => {}
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
    }
    let mut codegen = CodeGenConfig::default();
    codegen.generate_views = true;
    codegen.generate_json = true;
    let files = connect_build::generate_with_root(
        &request.proto_file,
        &request.file_to_generate,
        &codegen,
        &options,
        Some((&root, true)),
    )
    .map_err(|e| e.to_string())?;
    let mut response = CodeGeneratorResponse {
        supported_features: Some(
            Feature::FEATURE_PROTO3_OPTIONAL as u64 | Feature::FEATURE_SUPPORTS_EDITIONS as u64,
        ),
        minimum_edition: Some(998),
        maximum_edition: Some(1000),
        ..Default::default()
    };
    for file in files {
        response.file.push(File {
            name: Some(file.name),
            content: Some(file.content),
            ..Default::default()
        });
    }
    Ok(response)
}

fn main() {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("protoc-gen-connect-rust: reading stdin: {e}");
        std::process::exit(1);
    }
    let response = run(&input).unwrap_or_else(|error| CodeGeneratorResponse {
        error: Some(error),
        ..Default::default()
    });
    let bytes = response.encode_to_vec();
    if let Err(e) = std::io::stdout().write_all(&bytes) {
        eprintln!("protoc-gen-connect-rust: writing stdout: {e}");
        std::process::exit(1);
    }
}
