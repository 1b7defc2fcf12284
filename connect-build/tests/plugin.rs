//! The protoc plugin binary, fed a `CodeGeneratorRequest` the way protoc would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use buffa::Message;
use buffa_codegen::generated::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};

#[test]
fn plugin_answers_with_messages_services_and_root_module() {
    let protos = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../connect-build-tests/proto");
    let (descriptors, files) = connect_build::Config::new()
        .files(&[protos.join("acme/store/v1/store.proto")])
        .includes(&[&protos])
        .parse()
        .expect("parse");
    let request = CodeGeneratorRequest {
        file_to_generate: files,
        parameter: Some("connect_typed_path=::connect_typed".to_owned()),
        proto_file: descriptors,
        ..Default::default()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_protoc-gen-connect-rust"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&request.encode_to_vec())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let response = CodeGeneratorResponse::decode_from_slice(&output.stdout).expect("a response");
    assert_eq!(response.error, None);
    let names: Vec<_> = response
        .file
        .iter()
        .filter_map(|f| f.name.clone())
        .collect();
    assert!(
        names.contains(&"connect_generated.rs".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"acme.store.v1.store.__connect.rs".to_owned()),
        "{names:?}"
    );
    let services = response
        .file
        .iter()
        .find(|f| f.name.as_deref() == Some("acme.store.v1.store.__connect.rs"))
        .and_then(|f| f.content.clone())
        .unwrap();
    assert!(services.contains("pub trait StoreService"));
    assert!(services.contains("pub trait AdminService"));
    assert!(services.contains("no_side_effects: true"));
}

#[test]
fn plugin_reports_unknown_parameters() {
    let request = CodeGeneratorRequest {
        parameter: Some("bogus=1".to_owned()),
        ..Default::default()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_protoc-gen-connect-rust"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&request.encode_to_vec())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let response = CodeGeneratorResponse::decode_from_slice(&output.stdout).unwrap();
    assert!(response.error.unwrap().contains("bogus"));
}
