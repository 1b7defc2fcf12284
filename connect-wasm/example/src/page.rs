use std::time::Duration;

use connect_build_tests::proto::acme::greet::v1::{GreetRequest, GreetServiceClient};
use connect_typed::{ClientConfig, Codec, Protocol};
use connect_wasm::FetchTransport;
use futures_util::StreamExt;
use wasm_bindgen::prelude::*;

fn client(base: &str, protocol: &str) -> Result<GreetServiceClient<FetchTransport>, JsValue> {
    let protocol = match protocol {
        "connect" => Protocol::Connect,
        "grpc-web" => Protocol::GrpcWeb,
        other => return Err(JsValue::from_str(&format!("unknown protocol {other}"))),
    };
    let base = base
        .parse()
        .map_err(|e| JsValue::from_str(&format!("server address: {e}")))?;
    Ok(GreetServiceClient::new(connect_wasm::client(
        base,
        ClientConfig::new(protocol, Codec::Proto),
    )))
}

fn failure(status: connect_typed::Status) -> JsValue {
    JsValue::from_str(&status.to_string())
}

/// Calls `Greet`; resolves to the greeting.
#[wasm_bindgen]
pub async fn greet(base: String, protocol: String, name: String) -> Result<String, JsValue> {
    let request = GreetRequest {
        name,
        ..Default::default()
    };
    let response = client(&base, &protocol)?
        .greet(&request)
        .await
        .map_err(failure)?;
    Ok(response.into_message().greeting)
}

/// Calls `GreetMany` and hands each greeting to `on_message` as it arrives.
#[wasm_bindgen(js_name = greetMany)]
pub async fn greet_many(
    base: String,
    protocol: String,
    name: String,
    count: i32,
    interval_ms: u32,
    on_message: js_sys::Function,
) -> Result<(), JsValue> {
    let interval = Duration::from_millis(interval_ms.into());
    let request = GreetRequest {
        name,
        count,
        interval: buffa_types::google::protobuf::Duration {
            seconds: interval.as_secs() as i64,
            nanos: interval.subsec_nanos() as i32,
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let mut stream = client(&base, &protocol)?
        .greet_many(&request)
        .await
        .map_err(failure)?;
    while let Some(message) = stream.next().await {
        let greeting = message.map_err(failure)?.greeting;
        on_message.call1(&JsValue::NULL, &JsValue::from_str(&greeting))?;
    }
    Ok(())
}
