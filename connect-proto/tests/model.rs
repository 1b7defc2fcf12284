//! State-machine models of both call machines (proptest-state-machine), run on stable by
//! `cargo test`.
//!
//! Each model is a small reference machine that knows only what a protocol promises: which inputs
//! are well formed, when a call must be over, what it must deliver and with which code it ends.
//! proptest generates operation sequences from the model's state (mostly well-formed requests and
//! responses, some garbage), applies each to the real machine through
//! [`connect_proto::testing::ServerRun`] / [`ClientRun`] (which also check every output against the
//! rules drivers rely on, as the fuzz targets do through the same code), and compares: a call the
//! model says is over must be finished with the predicted code; while every input was well formed,
//! a call the model says is live must be, and must have delivered exactly the messages sent.

use connect_proto::testing::{
    call_pair, ClientOp, ClientRun, ClientScript, PairScript, ServerOp, ServerRun, ServerScript,
    METHODS,
};
use connect_proto::{Code, Codec, ContentType, MethodInfo, Protocol, Reset, StreamType};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];
const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];

/// The largest message either side accepts in the models.
const MAX_RECV: u16 = 512;

/// The receive limit with the slack a compressor may need, as the machines read a wire form.
fn wire_limit(max: usize) -> usize {
    max + max / 128 + 64
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..64),
        1 => vec(any::<u8>(), 400..700),
    ]
}

fn metadata() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    vec(
        (
            prop_oneof![Just(b"x-meta".to_vec()), Just(b"x-other".to_vec())],
            "[a-z]{0,8}".prop_map(String::into_bytes),
        ),
        0..3,
    )
}

fn header(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// Time passing: mostly a little, sometimes past any deadline.
fn advance() -> impl Strategy<Value = u16> {
    prop_oneof![4 => 0..200u16, 1 => 0..6_000u16]
}

/// What the model expects of a call that is over: `None` for success, else the code.
type Outcome = Option<Code>;

/// A call the model says is over must be finished (with the predicted code while every input was
/// well formed); while every input was well formed, a call the model says is live must be.
fn check_outcome(
    over: Option<Outcome>,
    exact: bool,
    got: Option<&Result<(), connect_proto::Status>>,
) {
    match over {
        Some(expected) => {
            let outcome = got.expect("the model's call is over");
            if exact {
                let code = outcome.as_ref().err().map(|s| s.code());
                assert_eq!(code, expected, "{outcome:?}");
            }
        }
        None if exact => assert!(got.is_none(), "ended early: {got:?}"),
        None => {}
    }
}

// ------------------------------------------------------------------------------------------------
// ServerCall
// ------------------------------------------------------------------------------------------------

/// What the server model knows of a call.
#[derive(Clone, Debug)]
struct ServerModel {
    /// The request head and settings (no operations).
    script: ServerScript,
    protocol: Protocol,
    method: Option<MethodInfo>,
    /// Milliseconds from the start.
    now: u64,
    deadline: Option<u64>,
    /// The outcome once the call must be over.
    over: Option<Outcome>,
    /// Every input so far was well formed, so the model predicts the call exactly.
    exact: bool,
    /// Request messages the call must have delivered.
    delivered: Vec<Vec<u8>>,
    /// Request messages sent but not yet due (a single request is due at the end of the body).
    pending: Vec<Vec<u8>>,
    /// A Connect unary body so far.
    body: Vec<u8>,
    request_ended: bool,
    responses_sent: usize,
}

impl ServerModel {
    fn stream_type(&self) -> StreamType {
        self.method.map_or(StreamType::Unary, |m| m.stream_type)
    }

    fn bare(&self) -> bool {
        self.protocol == Protocol::Connect && self.stream_type() == StreamType::Unary
    }

    fn live(&self) -> bool {
        self.over.is_none()
    }

    fn end(&mut self, outcome: Outcome) {
        if self.over.is_none() {
            self.over = Some(outcome);
        }
    }

    /// A well-formed request message arrives (enveloped).
    fn recv_message(&mut self, message: Vec<u8>) {
        if message.len() > usize::from(MAX_RECV) {
            return self.end(Some(Code::RESOURCE_EXHAUSTED));
        }
        if self.stream_type().client_streams() {
            self.delivered.push(message);
        } else if self.pending.is_empty() {
            self.pending.push(message);
        } else {
            self.end(Some(Code::UNIMPLEMENTED));
        }
    }

    fn recv_end(&mut self) {
        self.request_ended = true;
        if self.bare() {
            if self.body.len() > usize::from(MAX_RECV) {
                return self.end(Some(Code::RESOURCE_EXHAUSTED));
            }
            self.delivered.push(std::mem::take(&mut self.body));
        } else if !self.stream_type().client_streams() {
            match self.pending.pop() {
                Some(message) => self.delivered.push(message),
                None => self.end(Some(Code::UNIMPLEMENTED)),
            }
        }
    }
}

fn server_head() -> impl Strategy<Value = ServerModel> {
    (
        0..3usize,
        0..2usize,
        0..4usize,
        prop::option::of(1..5_000u64),
        prop_oneof![6 => Just(0u8), 1 => Just(1), 1 => Just(2)],
    )
        .prop_map(|(p, c, m, timeout, kind)| {
            let protocol = PROTOCOLS[p];
            let method = METHODS[m];
            let streaming =
                protocol != Protocol::Connect || method.stream_type != StreamType::Unary;
            let mut headers = vec![header(
                "content-type",
                ContentType::format(protocol, streaming, CODECS[c]),
            )];
            if protocol == Protocol::Connect {
                headers.push(header("connect-protocol-version", "1"));
            }
            if let Some(ms) = timeout {
                headers.push(match protocol {
                    Protocol::Connect => header("connect-timeout-ms", &ms.to_string()),
                    _ => header("grpc-timeout", &format!("{ms}m")),
                });
            }
            // Kinds 1 and 2: a path nobody serves, a content type nobody speaks.
            if kind == 2 {
                headers[0] = header("content-type", "text/plain");
            }
            let script = ServerScript {
                method: if kind == 1 { 4 } else { m as u8 },
                http_method: 0,
                query: Vec::new(),
                headers,
                max_recv: MAX_RECV,
                max_send: u16::MAX,
                options: 0,
                ops: Vec::new(),
            };
            ServerModel {
                script,
                protocol,
                method: (kind != 1).then_some(method),
                now: 0,
                deadline: timeout,
                over: match kind {
                    1 => Some(Some(Code::UNIMPLEMENTED)),
                    // 415 Unsupported Media Type, as a code.
                    2 => Some(Some(Code::from_http_status(415))),
                    _ => None,
                },
                exact: true,
                delivered: Vec::new(),
                pending: Vec::new(),
                body: Vec::new(),
                request_ended: false,
                responses_sent: 0,
            }
        })
}

/// Plain envelopes and ends: compression index 2 is none.
const PLAIN: u8 = 2;

impl ReferenceStateMachine for ServerModel {
    type State = ServerModel;
    type Transition = ServerOp;

    fn init_state() -> BoxedStrategy<ServerModel> {
        server_head().boxed()
    }

    fn transitions(state: &ServerModel) -> BoxedStrategy<ServerOp> {
        let message = if state.bare() {
            payload().prop_map(ServerOp::Data).boxed()
        } else {
            payload()
                .prop_map(|p| ServerOp::Envelope(0, PLAIN, p))
                .boxed()
        };
        // While the request is open, mostly its messages and its end; then mostly the answer.
        let (request, answer) = if state.request_ended { (1, 4) } else { (6, 1) };
        prop_oneof![
            request * 2 => message,
            request => Just(ServerOp::End),
            1 => vec(any::<u8>(), 1..16).prop_map(ServerOp::Data),
            // Small, so that even compressed they stay under the limit.
            1 => (prop_oneof![Just(1u8), Just(2), Just(0x80)], vec(any::<u8>(), 0..64))
                .prop_map(|(flag, p)| ServerOp::Envelope(flag, 0, p)),
            1 => Just(ServerOp::Reset),
            1 => Just(ServerOp::Cancel),
            2 => advance().prop_map(ServerOp::Advance),
            answer => metadata().prop_map(ServerOp::SendHeaders),
            answer * 2 => payload().prop_map(ServerOp::SendMessage),
            answer => (prop_oneof![Just(0u32), 1..17u32], "[a-z ]{0,12}", metadata()).prop_map(
                |(code, message, trailers)| ServerOp::Finish(
                    code,
                    message.into_bytes(),
                    Vec::new(),
                    trailers
                )
            ),
        ]
        .boxed()
    }

    fn apply(mut state: ServerModel, op: &ServerOp) -> ServerModel {
        if !state.live() {
            if let ServerOp::Advance(ms) = op {
                state.now += u64::from(*ms);
            }
            return state;
        }
        match op {
            ServerOp::Data(d) if state.bare() && state.exact && !state.request_ended => {
                state.body.extend_from_slice(d);
                if state.body.len() > wire_limit(usize::from(MAX_RECV)) {
                    state.end(Some(Code::RESOURCE_EXHAUSTED));
                }
            }
            ServerOp::Envelope(flag, _, p)
                if !state.bare() && state.exact && !state.request_ended =>
            {
                match flag {
                    0 => state.recv_message(p.clone()),
                    // Compressed, but the request declared no compression; or a flag requests
                    // never carry.
                    _ => state.end(Some(Code::INTERNAL)),
                }
            }
            ServerOp::Data(_) | ServerOp::Envelope(..) => {
                if !state.request_ended {
                    state.exact = false;
                }
            }
            ServerOp::End if !state.request_ended => {
                if state.exact {
                    state.recv_end();
                } else {
                    state.request_ended = true;
                }
            }
            ServerOp::End => {}
            ServerOp::Reset | ServerOp::Cancel => state.end(Some(Code::CANCELED)),
            ServerOp::Advance(ms) => {
                state.now += u64::from(*ms);
                if state.deadline.is_some_and(|d| d <= state.now) {
                    state.end(Some(Code::DEADLINE_EXCEEDED));
                }
            }
            ServerOp::SendHeaders(_) => {}
            // The run drops an odd-length message that starts with 0xff unsent (a writer dropped).
            ServerOp::SendMessage(d) if d.len() % 2 == 1 && d[0] == 0xff => {}
            ServerOp::SendMessage(_) => {
                if state.stream_type().server_streams() || state.responses_sent == 0 {
                    state.responses_sent += 1;
                }
            }
            ServerOp::Finish(code, ..) => {
                let unary = !state.stream_type().server_streams();
                let outcome = match *code {
                    0 if unary && state.responses_sent == 0 => Some(Code::INTERNAL),
                    0 => None,
                    code => Some(Code::from_u32(code)),
                };
                state.end(outcome);
            }
        }
        state
    }
}

impl StateMachineTest for ServerModel {
    type SystemUnderTest = ServerRun;
    type Reference = ServerModel;

    fn init_test(model: &ServerModel) -> ServerRun {
        ServerRun::new(&model.script)
    }

    fn apply(mut run: ServerRun, _model: &ServerModel, op: ServerOp) -> ServerRun {
        run.apply(&op);
        run
    }

    fn check_invariants(run: &ServerRun, model: &ServerModel) {
        check_outcome(model.over, model.exact, run.outcome());
        if model.exact && model.live() {
            assert!(!run.response_ended(), "the response ended early");
        }
        if model.exact {
            let delivered: Vec<_> = run.messages().iter().map(|m| m.to_vec()).collect();
            assert_eq!(delivered, model.delivered, "request messages");
            if model.live() {
                assert_eq!(run.input_closed(), model.request_ended, "InputClosed");
            }
        }
    }

    fn teardown(run: ServerRun, _model: ServerModel) {
        run.end();
    }
}

// ------------------------------------------------------------------------------------------------
// ClientCall
// ------------------------------------------------------------------------------------------------

/// What the client model knows of a call.
#[derive(Clone, Debug)]
struct ClientModel {
    /// The call's settings (no operations).
    script: ClientScript,
    protocol: Protocol,
    codec: Codec,
    method: MethodInfo,
    now: u64,
    deadline: Option<u64>,
    over: Option<Outcome>,
    exact: bool,
    requests_sent: usize,
    send_closed: bool,
    head: bool,
    /// A Connect unary body so far.
    body: Vec<u8>,
    responses: Vec<Vec<u8>>,
    /// The end of the stream arrived in the body (Connect EndStream, gRPC-Web trailers frame), with
    /// this outcome.
    stream_end: Option<Outcome>,
}

impl ClientModel {
    fn bare(&self) -> bool {
        self.protocol == Protocol::Connect && self.method.stream_type == StreamType::Unary
    }

    fn live(&self) -> bool {
        self.over.is_none()
    }

    fn end(&mut self, outcome: Outcome) {
        if self.over.is_none() {
            self.over = Some(outcome);
        }
    }

    /// The outcome of a body that ended with `end`: a unary success needs its one message.
    fn finish(&mut self, end: Outcome) {
        let unary = !self.method.stream_type.server_streams();
        match end {
            None if unary && self.responses.is_empty() => self.end(Some(Code::UNIMPLEMENTED)),
            end => self.end(end),
        }
    }

    fn recv_message(&mut self, message: Vec<u8>) {
        if !self.head {
            return self.end(Some(Code::INTERNAL));
        }
        if self.stream_end.is_some() {
            return self.end(Some(Code::INTERNAL));
        }
        if message.len() > usize::from(MAX_RECV) {
            return self.end(Some(Code::RESOURCE_EXHAUSTED));
        }
        if !self.method.stream_type.server_streams() && !self.responses.is_empty() {
            return self.end(Some(Code::UNIMPLEMENTED));
        }
        self.responses.push(message);
    }
}

/// The status trailers of the gRPC protocols: `grpc-status` and a message.
fn grpc_status(code: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        header("grpc-status", &code.to_string()),
        header("grpc-message", "as%20asked"),
    ]
}

/// A gRPC-Web trailers frame's payload.
fn grpc_web_trailers(code: u32) -> Vec<u8> {
    format!("grpc-status: {code}\r\ngrpc-message: as asked\r\n").into_bytes()
}

/// Connect's EndStream message.
fn connect_end_stream(code: u32) -> Vec<u8> {
    match Code::from_u32(code) {
        Code::OK => b"{}".to_vec(),
        code => format!(r#"{{"error":{{"code":"{code}","message":"as asked"}}}}"#).into_bytes(),
    }
}

fn client_settings() -> impl Strategy<Value = ClientModel> {
    (0..3u8, 0..2u8, 0..4u8, prop::option::of(1..5_000u16)).prop_map(|(p, c, m, timeout)| {
        let script = ClientScript {
            protocol: p,
            codec: c,
            method: m,
            send_compression: 0,
            options: if timeout.is_some() { 4 } else { 0 },
            timeout_ms: timeout.unwrap_or(0),
            max_recv: MAX_RECV,
            ops: Vec::new(),
        };
        ClientModel {
            script,
            protocol: PROTOCOLS[usize::from(p)],
            codec: CODECS[usize::from(c)],
            method: METHODS[usize::from(m)],
            now: 0,
            deadline: timeout.map(u64::from),
            over: None,
            exact: true,
            requests_sent: 0,
            send_closed: false,
            head: false,
            body: Vec::new(),
            responses: Vec::new(),
            stream_end: None,
        }
    })
}

/// A status code to end with: ok half the time.
fn end_code() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 1..17u32]
}

impl ReferenceStateMachine for ClientModel {
    type State = ClientModel;
    type Transition = ClientOp;

    fn init_state() -> BoxedStrategy<ClientModel> {
        client_settings().boxed()
    }

    fn transitions(state: &ClientModel) -> BoxedStrategy<ClientOp> {
        let streaming =
            state.protocol != Protocol::Connect || state.method.stream_type != StreamType::Unary;
        let content_type = ContentType::format(state.protocol, streaming, state.codec);
        let head = ClientOp::RecvHead(200, vec![header("content-type", content_type)]);
        let message = if state.bare() {
            payload().prop_map(ClientOp::Data).boxed()
        } else {
            payload()
                .prop_map(|p| ClientOp::Envelope(0, PLAIN, p))
                .boxed()
        };
        let protocol = state.protocol;
        let end_of_stream = end_code()
            .prop_map(move |code| match protocol {
                Protocol::Connect => ClientOp::Envelope(2, PLAIN, connect_end_stream(code)),
                Protocol::Grpc => ClientOp::Trailers(grpc_status(code)),
                Protocol::GrpcWeb => ClientOp::Envelope(0x80, PLAIN, grpc_web_trailers(code)),
            })
            .boxed();
        // Before the response head, mostly the request and the head; then mostly response
        // messages and the end of the stream; after it, mostly the end of the body.
        let (request, head_w, body, end, last) = match (state.head, state.stream_end) {
            (false, _) => (4, 6, 1, 1, 1),
            (true, None) => (1, 1, 8, 3, 1),
            (true, Some(_)) => (1, 1, 1, 1, 8),
        };
        prop_oneof![
            request => payload().prop_map(ClientOp::SendMessage),
            request => Just(ClientOp::CloseSend),
            head_w => Just(head),
            body => message,
            end => end_of_stream,
            last => Just(ClientOp::End),
            1 => vec(any::<u8>(), 1..16).prop_map(ClientOp::Data),
            1 => Just(ClientOp::Cancel),
            1 => prop_oneof![Just(0x7u32), Just(0x8), Just(0xb), Just(0x2), Just(u32::MAX)]
                .prop_map(ClientOp::Reset),
            2 => advance().prop_map(ClientOp::Advance),
        ]
        .boxed()
    }

    fn apply(mut state: ClientModel, op: &ClientOp) -> ClientModel {
        if !state.live() {
            return state;
        }
        let client_streams = state.method.stream_type.client_streams();
        match op {
            // The run drops an odd-length message that starts with 0xff unsent (a writer dropped).
            ClientOp::SendMessage(d) if d.len() % 2 == 1 && d[0] == 0xff => {}
            ClientOp::SendMessage(_) => {
                if !state.send_closed && (client_streams || state.requests_sent == 0) {
                    state.requests_sent += 1;
                    state.send_closed = !client_streams;
                }
            }
            ClientOp::CloseSend => {
                if client_streams || state.requests_sent > 0 {
                    state.send_closed = true;
                }
            }
            ClientOp::Cancel => state.end(Some(Code::CANCELED)),
            ClientOp::RecvHead(..) => state.head = true,
            // The machine ignores empty chunks.
            ClientOp::Data(d) if d.is_empty() => {}
            ClientOp::Data(d) if state.bare() && state.exact => {
                if !state.head {
                    state.end(Some(Code::INTERNAL));
                } else {
                    state.body.extend_from_slice(d);
                    if state.body.len() > wire_limit(usize::from(MAX_RECV)) {
                        state.end(Some(Code::RESOURCE_EXHAUSTED));
                    }
                }
            }
            ClientOp::Envelope(flag, _, p) if !state.bare() && state.exact => {
                let end_flag = match state.protocol {
                    Protocol::Connect => 2,
                    Protocol::GrpcWeb => 0x80,
                    Protocol::Grpc => 0,
                };
                if *flag == 0 {
                    state.recv_message(p.clone());
                } else if *flag == end_flag && end_flag != 0 {
                    if !state.head || state.stream_end.is_some() {
                        state.end(Some(Code::INTERNAL));
                    } else {
                        let code = if state.protocol == Protocol::Connect {
                            end_stream_code(p)
                        } else {
                            trailers_frame_code(p)
                        };
                        state.stream_end = Some(code);
                    }
                } else {
                    state.end(Some(Code::INTERNAL));
                }
            }
            ClientOp::Data(_) | ClientOp::Envelope(..) => state.exact = false,
            // HTTP trailers carry the status only in gRPC (and gRPC-Web without a trailers
            // frame); otherwise they end the body like its end.
            ClientOp::Trailers(t)
                if state.head
                    && state.protocol != Protocol::Connect
                    && state.stream_end.is_none() =>
            {
                state.finish(grpc_trailers_code(t));
            }
            ClientOp::Trailers(_) => state.end_of_body(),
            ClientOp::End => state.end_of_body(),
            ClientOp::Reset(code) => {
                let reset = match *code {
                    u32::MAX => Reset::ConnectionLost,
                    code => Reset::H2(code),
                };
                state.end(Some(reset.status().code()));
            }
            ClientOp::Advance(ms) => {
                state.now += u64::from(*ms);
                if state.deadline.is_some_and(|d| d <= state.now) {
                    state.end(Some(Code::DEADLINE_EXCEEDED));
                }
            }
        }
        state
    }
}

impl ClientModel {
    /// The response body ended without HTTP trailers.
    fn end_of_body(&mut self) {
        if !self.head {
            return self.end(Some(Code::INTERNAL));
        }
        if self.bare() {
            if self.body.len() > usize::from(MAX_RECV) {
                return self.end(Some(Code::RESOURCE_EXHAUSTED));
            }
            self.responses.push(std::mem::take(&mut self.body));
            return self.end(None);
        }
        match self.stream_end {
            Some(end) => self.finish(end),
            // Connect without EndStream, gRPC without trailers: the stream was cut.
            None => self.end(Some(Code::INTERNAL)),
        }
    }
}

fn end_stream_code(payload: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(payload);
    let name = text.split('"').nth(5)?;
    Code::from_name(name)
}

fn trailers_frame_code(payload: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(payload);
    let code: u32 = text.split(['\r', ' ']).nth(1)?.parse().ok()?;
    Some(Code::from_u32(code)).filter(|c| !c.is_ok())
}

fn grpc_trailers_code(trailers: &[(Vec<u8>, Vec<u8>)]) -> Outcome {
    let (_, value) = trailers.iter().find(|(name, _)| name == b"grpc-status")?;
    let code: u32 = String::from_utf8_lossy(value).parse().ok()?;
    Some(Code::from_u32(code)).filter(|c| !c.is_ok())
}

impl StateMachineTest for ClientModel {
    type SystemUnderTest = ClientRun;
    type Reference = ClientModel;

    fn init_test(model: &ClientModel) -> ClientRun {
        ClientRun::new(&model.script)
    }

    fn apply(mut run: ClientRun, _model: &ClientModel, op: ClientOp) -> ClientRun {
        run.apply(&op);
        run
    }

    fn check_invariants(run: &ClientRun, model: &ClientModel) {
        check_outcome(model.over, model.exact, run.outcome());
        if model.exact {
            let got: Vec<_> = run.messages().iter().map(|m| m.to_vec()).collect();
            assert_eq!(got, model.responses, "response messages");
        }
        if model.live() && model.exact {
            // The request goes out as sent: the head once a message exists (Connect unary) or at
            // once, the end once the request is complete.
            assert_eq!(
                run.head_sent(),
                !model.bare() || model.requests_sent > 0,
                "request head"
            );
            assert_eq!(run.request_ended(), model.send_closed, "request end");
        }
    }

    fn teardown(run: ClientRun, _model: ClientModel) {
        run.end();
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        .. ProptestConfig::default()
    })]

    #[test]
    fn server_call_follows_its_model(sequential 1..40 => ServerModel);

    #[test]
    fn client_call_follows_its_model(sequential 1..40 => ClientModel);
}

// ------------------------------------------------------------------------------------------------
// ClientCall ↔ ServerCall
// ------------------------------------------------------------------------------------------------

fn pair_script() -> impl Strategy<Value = PairScript> {
    let metadata = || vec((0..3u8, vec(any::<u8>(), 0..8)), 0..3);
    (
        (0..3u8, 0..2u8, 0..4u8, 0..7u8, 0..8u8, 0..64u16),
        vec(payload(), 0..4),
        metadata(),
        vec(payload(), 0..4),
        (prop_oneof![Just(0u32), 1..17u32], vec(any::<u8>(), 0..16)),
        vec((vec(any::<u8>(), 1..8), vec(any::<u8>(), 0..8)), 0..2),
        metadata(),
        (vec(any::<u8>(), 0..4), vec(any::<u8>(), 0..4)),
    )
        .prop_map(
            |(
                settings,
                requests,
                headers,
                responses,
                (code, message),
                details,
                trailers,
                chunks,
            )| {
                let (protocol, codec, method, send_compression, options, compress_min) = settings;
                PairScript {
                    protocol,
                    codec,
                    method,
                    send_compression,
                    options,
                    compress_min,
                    requests,
                    headers,
                    responses,
                    code,
                    message,
                    details,
                    trailers,
                    request_chunks: chunks.0,
                    response_chunks: chunks.1,
                }
            },
        )
}

proptest! {
    /// The client↔server exchange delivers what each application sent, whatever the protocol,
    /// codec, compression and chunking (the `call_pair` fuzz target's check).
    #[test]
    fn pair_delivers_what_each_side_sent(script in pair_script()) {
        call_pair(script);
    }
}
