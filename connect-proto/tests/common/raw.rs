//! Raw exchanges: one side's state machine fed hand-written wire input.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use connect_proto::{
    CallOptions, ClientCall, ClientEvent, Codec, Instant, Protocol, ServerCall, ServerEvent,
    ServerTransmit, Status,
};
use http::HeaderMap;

use super::{client_config, lookup, server_config};

pub struct ServerRun {
    pub head: http::response::Parts,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
    pub events: Vec<ServerEvent>,
    /// Whether the application finished the call (rather than the call itself).
    pub app_finished: bool,
}

pub fn request(method: &str, uri: &str, headers: &[(&'static str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .version(http::Version::HTTP_2);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

pub fn envelope(flags: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(flags);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

/// Runs a server call over a raw request; `reply` answers each message like an echo handler.
pub fn serve(
    parts: http::request::Parts,
    body: &[Bytes],
    reply: Option<Result<(), Status>>,
) -> ServerRun {
    let config = server_config();
    let mut call = ServerCall::new(&config, lookup(parts.uri.path()), &parts, Instant::now());
    let mut events = Vec::new();
    let mut app_finished = false;
    let mut drain = |call: &mut ServerCall, events: &mut Vec<ServerEvent>| {
        while let Some(e) = call.poll_event() {
            if let (ServerEvent::InputClosed, Some(reply)) = (&e, &reply) {
                if reply.is_ok() {
                    call.send_message(Bytes::from_static(b"ok")).unwrap();
                }
                call.finish(reply.clone(), HeaderMap::new()).unwrap();
                app_finished = true;
            }
            events.push(e);
        }
    };
    drain(&mut call, &mut events);
    for chunk in body {
        call.recv_data(chunk.clone());
        drain(&mut call, &mut events);
    }
    call.recv_end(None);
    drain(&mut call, &mut events);
    let mut head = None;
    let mut out = BytesMut::new();
    let mut trailers = None;
    while let Some(t) = call.poll_transmit() {
        match t {
            ServerTransmit::Head(h) => head = Some(h.into_parts().0),
            ServerTransmit::Data(d) => out.extend_from_slice(&d),
            ServerTransmit::Trailers(t) => trailers = Some(t),
            ServerTransmit::End | ServerTransmit::Reset => {}
        }
    }
    ServerRun {
        head: head.expect("a response head"),
        body: out.freeze(),
        trailers,
        events,
        app_finished,
    }
}

/// The status the call ended with on its own (not through the application).
pub fn aborted(run: &ServerRun) -> Option<&Status> {
    if run.app_finished {
        return None;
    }
    run.events.iter().find_map(|e| match e {
        ServerEvent::Finished(Err(s)) => Some(s),
        _ => None,
    })
}

pub fn grpc_status(run: &ServerRun) -> Option<String> {
    let block = run.trailers.as_ref().unwrap_or(&run.head.headers);
    block
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
}

pub fn client_with(protocol: Protocol, method: connect_proto::MethodInfo) -> ClientCall {
    let config = client_config(protocol, Codec::Proto, None);
    let base: http::Uri = "http://127.0.0.1:1".parse().unwrap();
    let mut call = ClientCall::new(
        &config,
        method,
        &base,
        CallOptions::default(),
        Instant::now(),
    );
    call.send_message(Bytes::from_static(b"req")).unwrap();
    while call.poll_transmit().is_some() {}
    call
}

pub fn response(status: u16, headers: &[(&'static str, &str)]) -> http::Response<()> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

pub fn outcome(call: &mut ClientCall) -> (Vec<Bytes>, Result<(), Status>, HeaderMap) {
    let mut messages = Vec::new();
    while let Some(e) = call.poll_event() {
        match e {
            ClientEvent::Message(m) => messages.push(m),
            ClientEvent::Finished { result, trailers } => return (messages, result, trailers),
            ClientEvent::Headers(_) => {}
        }
    }
    panic!("the call did not finish");
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
