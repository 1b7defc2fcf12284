//! The binaries speak the official runner's stdin/stdout protocol: start the server under test,
//! send it calls through the client under test.

#[cfg(conformance_protos)]
#[test]
fn server_and_client_binaries_talk_the_runner_protocol() {
    use std::process::{Command, Stdio};

    use conformance::convert::pack;
    use conformance::proto::connectrpc::conformance::v1 as pb;
    use conformance::wire::{read_message, write_message};
    use pb::__buffa::oneof::client_compat_response::Result as CompatResult;

    let mut server = Command::new(env!("CARGO_BIN_EXE_conformance-server"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut server_in = server.stdin.take().unwrap();
    write_message(
        &mut server_in,
        &pb::ServerCompatRequest {
            protocol: pb::Protocol::PROTOCOL_GRPC.into(),
            http_version: pb::HTTPVersion::HTTP_VERSION_2.into(),
            ..Default::default()
        },
    )
    .unwrap();
    // The official runner closes the server's stdin at once: the server must go on serving.
    drop(server_in);
    let started: pb::ServerCompatResponse = read_message(server.stdout.as_mut().unwrap())
        .unwrap()
        .expect("a ServerCompatResponse");
    assert_eq!(started.host, "127.0.0.1");

    let mut client = Command::new(env!("CARGO_BIN_EXE_conformance-client"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client starts");
    let mut client_in = client.stdin.take().unwrap();
    // Each protocol with each codec: in JSON, the request echoed back in the response is a
    // `google.protobuf.Any`, written and read by two separate processes (neither shares the
    // other's type registry).
    let names = [
        "connect",
        "grpc",
        "grpc-web",
        "connect-json",
        "grpc-json",
        "grpc-web-json",
    ];
    let protocols = [
        pb::Protocol::PROTOCOL_CONNECT,
        pb::Protocol::PROTOCOL_GRPC,
        pb::Protocol::PROTOCOL_GRPC_WEB,
    ];
    for (i, name) in names.iter().enumerate() {
        let protocol = protocols[i % 3];
        let codec = if i < 3 {
            pb::Codec::CODEC_PROTO
        } else {
            pb::Codec::CODEC_JSON
        };
        let request = pb::UnaryRequest {
            request_data: b"hi".to_vec(),
            ..Default::default()
        };
        write_message(
            &mut client_in,
            &pb::ClientCompatRequest {
                test_name: (*name).to_owned(),
                http_version: pb::HTTPVersion::HTTP_VERSION_2.into(),
                protocol: protocol.into(),
                codec: codec.into(),
                compression: pb::Compression::COMPRESSION_GZIP.into(),
                host: started.host.clone(),
                port: started.port,
                stream_type: pb::StreamType::STREAM_TYPE_UNARY.into(),
                request_messages: vec![pack(&request, pb::UnaryRequest::TYPE_URL)],
                ..Default::default()
            },
        )
        .unwrap();
    }
    drop(client_in);
    let mut seen = Vec::new();
    let out = client.stdout.as_mut().unwrap();
    while let Some(response) = read_message::<pb::ClientCompatResponse>(out).unwrap() {
        match response.result {
            Some(CompatResult::Response(result)) => {
                assert!(
                    result.error.is_unset(),
                    "{}: {:?}",
                    response.test_name,
                    result.error.code
                );
                assert_eq!(result.payloads.len(), 1);
                let info = result.payloads[0]
                    .request_info
                    .as_option()
                    .expect("request info");
                let echoed: pb::UnaryRequest =
                    conformance::convert::unpack(&info.requests[0], pb::UnaryRequest::TYPE_URL)
                        .expect("the echoed request is a UnaryRequest");
                assert_eq!(echoed.request_data, b"hi", "{}", response.test_name);
            }
            other => panic!("{}: {:?}", response.test_name, other.is_some()),
        }
        seen.push(response.test_name);
    }
    assert!(client.wait().unwrap().success());
    seen.sort();
    let mut want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    assert_eq!(seen, want);

    assert!(
        server.try_wait().unwrap().is_none(),
        "the server stopped serving"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[cfg(not(conformance_protos))]
#[test]
fn server_and_client_binaries_talk_the_runner_protocol() {
    conformance::print_skipped("binary protocol test");
}
