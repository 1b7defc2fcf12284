//! Server reflection served by connect-tokio and queried with our generated clients (v1 and
//! v1alpha) over Connect, gRPC and gRPC-Web: the examples' services are listed, and the files
//! the answers carry link in prost-reflect's descriptor pool (written by others, so a mistake made
//! the same way in our encoder and our decoder cannot hide) into a schema that describes every
//! method of those services. Also: not-found answers, extensions, a request with no question.

use std::path::Path;

use connect_reflection::v1::__buffa::oneof::server_reflection_request::MessageRequest;
use connect_reflection::v1::__buffa::oneof::server_reflection_response::MessageResponse;
use connect_reflection::v1::{
    ExtensionRequest, ServerReflectionClient, ServerReflectionRequest, ServerReflectionResponse,
};
use connect_reflection::{v1alpha, Reflection, ReflectionServer};
use connect_tokio::{HyperTransport, Server, ServerHandle, TokioRuntime};
use connect_typed::{Client, ClientConfig, Code, Codec, Protocol, Status};
use examples::proto::demo::v1::greet_service_methods;
use futures_util::StreamExt;
use prost_reflect::DescriptorPool;

fn reflection() -> ReflectionServer {
    Reflection::new()
        .service(greet_service_methods::DESCRIPTORS)
        .file_descriptors(extension_files())
        .server()
}

/// The encoded descriptors of `tests/proto/acme/ext/v1/ext.proto` (a proto2 file with extensions),
/// compiled by connect-build's parser.
fn extension_files() -> Vec<Vec<u8>> {
    use buffa::Message as _;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proto");
    let (files, _) = connect_build::Config::new()
        .files(&[root.join("acme/ext/v1/ext.proto")])
        .includes(&[&root])
        .parse()
        .expect("the test proto compiles");
    files.iter().map(|f| f.encode_to_vec()).collect()
}

async fn serve(reflection: ReflectionServer) -> (ServerHandle, http::Uri) {
    let router = connect_tokio::router().service(reflection);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(router).spawn(listener).unwrap();
    let base = format!("http://{}", server.local_addr()).parse().unwrap();
    (server, base)
}

fn client(
    base: &http::Uri,
    protocol: Protocol,
    codec: Codec,
) -> ServerReflectionClient<HyperTransport> {
    ServerReflectionClient::new(Client::new(
        HyperTransport::http2(),
        base.clone(),
        ClientConfig::new(protocol, codec),
        TokioRuntime,
    ))
}

fn ask(question: MessageRequest) -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: "example.test".to_owned(),
        message_request: Some(question),
        ..Default::default()
    }
}

/// Sends `questions` on one stream and collects the answers.
async fn exchange(
    client: &ServerReflectionClient<HyperTransport>,
    questions: Vec<ServerReflectionRequest>,
) -> Result<Vec<ServerReflectionResponse>, Status> {
    let mut stream = client
        .server_reflection_info(futures_util::stream::iter(questions))
        .await?;
    let mut answers = Vec::new();
    while let Some(answer) = stream.next().await {
        answers.push(answer?);
    }
    Ok(answers)
}

fn files_of(answer: &ServerReflectionResponse) -> &[Vec<u8>] {
    match &answer.message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => &files.file_descriptor_proto,
        other => panic!("expected files, got {other:?}"),
    }
}

/// The names of encoded `FileDescriptorProto`s.
fn file_names(files: &[Vec<u8>]) -> Vec<String> {
    use prost_reflect::prost::Message as _;
    files
        .iter()
        .map(|bytes| {
            prost_reflect::prost_types::FileDescriptorProto::decode(&bytes[..])
                .expect("a FileDescriptorProto")
                .name()
                .to_owned()
        })
        .collect()
}

/// prost-reflect's pool of `files` (encoded `FileDescriptorProto`s), linked.
fn pool_of(files: &[Vec<u8>]) -> DescriptorPool {
    // A FileDescriptorSet is its files as field 1.
    let mut set = Vec::new();
    for file in files {
        set.push(0x0a);
        let mut len = file.len();
        while len >= 0x80 {
            set.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        set.push(len as u8);
        set.extend_from_slice(file);
    }
    DescriptorPool::decode(&set[..]).expect("the answered files link in prost-reflect's pool")
}

#[tokio::test]
async fn answers_link_into_a_pool_that_describes_every_method_over_every_protocol() {
    let (server, base) = serve(reflection()).await;
    for (protocol, codec) in [
        (Protocol::Grpc, Codec::Proto),
        (Protocol::Connect, Codec::Proto),
        (Protocol::Connect, Codec::Json),
        (Protocol::GrpcWeb, Codec::Proto),
    ] {
        let label = format!("{protocol:?} {codec:?}");
        let client = client(&base, protocol, codec);
        let answers = exchange(
            &client,
            vec![ask(MessageRequest::ListServices(String::new()))],
        )
        .await
        .expect(&label);
        let Some(MessageResponse::ListServicesResponse(list)) = &answers[0].message_response else {
            panic!("{label}: {:?}", answers[0]);
        };
        let services: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            services,
            [
                "demo.v1.GreetService",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ],
            "{label}"
        );
        assert_eq!(answers[0].valid_host, "example.test", "{label}");
        assert_eq!(
            answers[0].original_request.message_request,
            Some(MessageRequest::ListServices(String::new())),
            "{label}"
        );

        // Each listed service, by symbol: its files make a pool that describes all its methods.
        let questions = services
            .iter()
            .map(|s| ask(MessageRequest::FileContainingSymbol(s.to_string())))
            .collect();
        let answers = exchange(&client, questions).await.expect(&label);
        assert_eq!(answers.len(), services.len(), "{label}");
        for (service, answer) in services.iter().zip(&answers) {
            let pool = pool_of(files_of(answer));
            let descriptor = pool
                .get_service_by_name(service)
                .unwrap_or_else(|| panic!("{label}: {service} is described"));
            assert!(descriptor.methods().len() > 0, "{label}: {service}");
            for method in descriptor.methods() {
                assert!(
                    method.input().fields().len() > 0 || method.input().name().contains("List")
                );
                let _ = method.output().full_name();
            }
            if *service == "demo.v1.GreetService" {
                let paths: Vec<String> = descriptor
                    .methods()
                    .map(|m| format!("/{service}/{}", m.name()))
                    .collect();
                let generated: Vec<&str> =
                    greet_service_methods::ALL.iter().map(|m| m.path).collect();
                assert_eq!(
                    paths, generated,
                    "{label}: every generated method is described"
                );
                let greet = descriptor.methods().find(|m| m.name() == "Greet").unwrap();
                assert_eq!(greet.input().full_name(), "demo.v1.GreetRequest");
                assert_eq!(greet.output().fields().next().unwrap().name(), "greeting");
                let chat = descriptor.methods().find(|m| m.name() == "Chat").unwrap();
                assert!(chat.is_client_streaming() && chat.is_server_streaming());
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn symbols_files_and_extensions() {
    let (server, base) = serve(reflection()).await;
    let client = client(&base, Protocol::Grpc, Codec::Proto);
    let questions = vec![
        // 0: a method and a message resolve to the service's file.
        ask(MessageRequest::FileContainingSymbol(
            "demo.v1.GreetService.Chat".to_owned(),
        )),
        ask(MessageRequest::FileContainingSymbol(
            "demo.v1.GreetRequest".to_owned(),
        )),
        // 2: by file name.
        ask(MessageRequest::FileByFilename(
            "demo/v1/greet.proto".to_owned(),
        )),
        // 3: unknown names: NOT_FOUND, and the stream goes on.
        ask(MessageRequest::FileByFilename("nope.proto".to_owned())),
        ask(MessageRequest::FileContainingSymbol(
            "demo.v1.Nope".to_owned(),
        )),
        // 5: extensions.
        ask(MessageRequest::AllExtensionNumbersOfType(
            "acme.ext.v1.Base".to_owned(),
        )),
        ask(ExtensionRequest {
            containing_type: "acme.ext.v1.Base".to_owned(),
            extension_number: 120,
            ..Default::default()
        }
        .into()),
        ask(ExtensionRequest {
            containing_type: "acme.ext.v1.Base".to_owned(),
            extension_number: 121,
            ..Default::default()
        }
        .into()),
        ask(MessageRequest::AllExtensionNumbersOfType(
            "acme.ext.v1.Nope".to_owned(),
        )),
        ask(MessageRequest::FileContainingSymbol(
            "acme.ext.v1.Holder.tag".to_owned(),
        )),
    ];
    let answers = exchange(&client, questions).await.unwrap();
    assert_eq!(answers.len(), 10);
    for answer in &answers[0..3] {
        assert_eq!(file_names(files_of(answer)), ["demo/v1/greet.proto"]);
    }
    for answer in &answers[3..5] {
        let Some(MessageResponse::ErrorResponse(error)) = &answer.message_response else {
            panic!("expected an error, got {answer:?}");
        };
        assert_eq!(error.error_code, Code::NOT_FOUND.as_u32() as i32);
    }
    let Some(MessageResponse::AllExtensionNumbersResponse(numbers)) = &answers[5].message_response
    else {
        panic!("{:?}", answers[5]);
    };
    assert_eq!(numbers.base_type_name, "acme.ext.v1.Base");
    assert_eq!(numbers.extension_number, [100, 120, 150]);
    assert_eq!(file_names(files_of(&answers[6])), ["acme/ext/v1/ext.proto"]);
    for answer in &answers[7..9] {
        assert!(
            matches!(
                answer.message_response,
                Some(MessageResponse::ErrorResponse(_))
            ),
            "{answer:?}"
        );
    }
    assert_eq!(file_names(files_of(&answers[9])), ["acme/ext/v1/ext.proto"]);

    // A request with no question ends the call with invalid_argument.
    let error = exchange(&client, vec![ServerReflectionRequest::default()])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::INVALID_ARGUMENT, "{error:?}");
    server.shutdown().await;
}

/// A service whose file imports another of ours and well-known types: the answer carries the
/// service's file first, then every import once, and links.
#[tokio::test]
async fn imports_and_well_known_types_come_along() {
    use connect_build_tests::proto::acme::store::v1::store_service_methods;
    let (server, base) = serve(
        Reflection::new()
            .service(store_service_methods::DESCRIPTORS)
            .server(),
    )
    .await;
    let client = client(&base, Protocol::Connect, Codec::Proto);
    let questions = vec![
        ask(MessageRequest::FileContainingSymbol(
            "acme.store.v1.StoreService".to_owned(),
        )),
        ask(MessageRequest::FileByFilename(
            "google/protobuf/timestamp.proto".to_owned(),
        )),
        ask(MessageRequest::FileContainingSymbol(
            "google.protobuf.Empty".to_owned(),
        )),
        ask(MessageRequest::FileByFilename(
            "acme/greet/v1/greet.proto".to_owned(),
        )),
    ];
    let answers = exchange(&client, questions).await.unwrap();
    let files = files_of(&answers[0]);
    let names = file_names(files);
    assert_eq!(names[0], "acme/store/v1/store.proto");
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "each file once: {names:?}");
    for import in [
        "acme/greet/v1/greet.proto",
        "google/protobuf/any.proto",
        "google/protobuf/empty.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
    ] {
        assert!(names.iter().any(|n| n == import), "{import} in {names:?}");
    }
    let pool = pool_of(files);
    let store = pool
        .get_service_by_name("acme.store.v1.StoreService")
        .unwrap();
    assert_eq!(store.methods().len(), store_service_methods::ALL.len());
    let put = store.methods().find(|m| m.name() == "PutItems").unwrap();
    assert_eq!(put.output().full_name(), "google.protobuf.Empty");
    assert_eq!(
        file_names(files_of(&answers[1])),
        ["google/protobuf/timestamp.proto"]
    );
    assert_eq!(
        file_names(files_of(&answers[2])),
        ["google/protobuf/empty.proto"]
    );
    let greet = file_names(files_of(&answers[3]));
    assert_eq!(greet[0], "acme/greet/v1/greet.proto");
    assert!(
        greet.len() > 1,
        "greet.proto imports well-known types: {greet:?}"
    );
    pool_of(files_of(&answers[3]));
    server.shutdown().await;
}

/// The v1alpha path answers the same, with the v1alpha messages.
#[tokio::test]
async fn v1alpha_answers_too() {
    let (server, base) = serve(reflection()).await;
    let client = v1alpha::ServerReflectionClient::new(Client::new(
        HyperTransport::http2(),
        base.clone(),
        ClientConfig::new(Protocol::Grpc, Codec::Proto),
        TokioRuntime,
    ));
    let question = v1alpha::ServerReflectionRequest {
        message_request: Some(
            v1alpha::__buffa::oneof::server_reflection_request::MessageRequest::FileContainingSymbol(
                "demo.v1.GreetService".to_owned(),
            ),
        ),
        ..Default::default()
    };
    let mut stream = client
        .server_reflection_info(futures_util::stream::iter([question]))
        .await
        .unwrap();
    let answer = stream.next().await.unwrap().unwrap();
    let Some(
        v1alpha::__buffa::oneof::server_reflection_response::MessageResponse::FileDescriptorResponse(
            files,
        ),
    ) = answer.message_response
    else {
        panic!("{answer:?}");
    };
    let pool = pool_of(&files.file_descriptor_proto);
    assert_eq!(
        pool.get_service_by_name("demo.v1.GreetService")
            .unwrap()
            .methods()
            .len(),
        greet_service_methods::ALL.len()
    );
    assert!(stream.next().await.is_none());
    server.shutdown().await;
}

#[test]
fn inconsistent_descriptors_are_refused() {
    let alone = Reflection::new().file_descriptors([b"\n\x07a.proto".to_vec()]);
    assert!(alone.try_server().is_ok());
    let missing_import =
        Reflection::new().file_descriptors([b"\n\x07a.proto\x1a\x0dmissing.proto".to_vec()]);
    let error = missing_import.try_server().unwrap_err();
    assert!(error.to_string().contains("link"), "{error}");
    let garbage = Reflection::new().file_descriptors([vec![0xff, 0xff]]);
    assert!(garbage.try_server().is_err());
    let twice = Reflection::new().file_descriptors([
        b"\n\x07a.proto".to_vec(),
        b"\n\x07a.proto\x12\x01p".to_vec(),
    ]);
    let error = twice.try_server().unwrap_err();
    assert!(error.to_string().contains("two different"), "{error}");
}
