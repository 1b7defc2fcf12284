//! JSON `google.protobuf.Any` in the proto3 form, with no setup but constructing a generated
//! server: `{"@type": …, …the embedded message's own fields}` for messages, `"value"` for
//! well-known types with a JSON form of their own. This test binary constructs nothing else, so
//! the types it sees are exactly the ones the store service registers: its own package and the
//! greet package its file imports.

use buffa::Message;
use buffa_types::google::protobuf::{Any, Duration, Empty};
use connect_build_tests::proto::acme::greet::v1::{GreetRequest, GreetResponse};
use connect_build_tests::proto::acme::store::v1::{
    GetItemRequest, Item, ListItemsRequest, StoreService, StoreServiceServer,
};
use connect_typed::Status;
use connect_typed::{Context, HandlerStream, RequestView, Response, Streaming};

struct Store;

impl StoreService for Store {
    async fn get_item(
        &self,
        _ctx: Context,
        _request: RequestView<GetItemRequest>,
    ) -> Result<Response<Item>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_items(
        &self,
        _ctx: Context,
        _request: RequestView<ListItemsRequest>,
    ) -> Result<Response<HandlerStream<Item>>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn put_items(
        &self,
        _ctx: Context,
        _requests: Streaming<Item>,
    ) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn greet(
        &self,
        _ctx: Context,
        _request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

fn any_of<M: Message>(type_name: &str, message: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value: message.encode_to_vec().into(),
        ..Default::default()
    }
}

#[test]
fn any_is_written_and_read_in_the_proto3_json_form() {
    let _server = StoreServiceServer::new(Store);
    let greeting = GreetResponse {
        greeting: "hi".to_owned(),
        ..Default::default()
    };
    let wait = Duration {
        seconds: 1,
        nanos: 500_000_000,
        ..Default::default()
    };
    let item = Item {
        id: "a".to_owned(),
        extras: vec![
            any_of("acme.greet.v1.GreetResponse", &greeting),
            any_of("google.protobuf.Duration", &wait),
        ],
        ..Default::default()
    };
    let json = serde_json::to_value(&item).unwrap();
    assert_eq!(
        json["extras"],
        serde_json::json!([
            {"@type": "type.googleapis.com/acme.greet.v1.GreetResponse", "greeting": "hi"},
            {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.500s"},
        ])
    );

    // What another implementation writes reads back into the same message.
    let peer = r#"{"id": "a", "extras": [
        {"greeting": "hi", "@type": "type.googleapis.com/acme.greet.v1.GreetResponse"},
        {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.500s"}
    ]}"#;
    let read: Item = serde_json::from_str(peer).unwrap();
    assert_eq!(read.extras.len(), 2);
    let embedded = GreetResponse::decode_from_slice(&read.extras[0].value).unwrap();
    assert_eq!(embedded.greeting, "hi");
    assert_eq!(
        Duration::decode_from_slice(&read.extras[1].value).unwrap(),
        wait
    );
}
