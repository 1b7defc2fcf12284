//! Interceptor checks of the matrix: a head-phase rejection before any body byte, the order of
//! several interceptors on both sides, every message seen in order, and a panicking handler that
//! fails only its own call.

use std::sync::{Arc, Mutex};

use connect_typed::{
    client_head_interceptor, head_interceptor, Client, ClientCallHead, ClientCallInfo,
    ClientConfig, ClientInterceptor, Code, Context, MessageRef, ServerCallHead, ServerConfig,
    ServerInterceptor, Status,
};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue};

use crate::proto::testkit::v1::{EchoRequest, EchoResponse, EchoServiceClient};
use crate::suite::{echo, Adapter, Case, Suite, TestServer};

/// Everything interceptors saw, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn entries(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// Records each phase as `"<name> <phase> <detail>"`.
struct Recorder {
    name: &'static str,
    log: Log,
}

impl Recorder {
    fn push(&self, entry: String) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} {entry}", self.name));
    }
}

/// The text of a message either side sees: a request handle on the server, owned messages
/// elsewhere.
fn text_of(message: &MessageRef<'_>) -> String {
    use crate::proto::testkit::v1::__buffa::view::EchoRequestOwnedView;
    if let Some(request) = message.downcast_ref::<EchoRequestOwnedView>() {
        return request.text().to_owned();
    }
    if let Some(request) = message.downcast_ref::<EchoRequest>() {
        return request.text.clone();
    }
    if let Some(response) = message.downcast_ref::<EchoResponse>() {
        return response.text.clone();
    }
    format!("<{}>", message.type_name())
}

impl ServerInterceptor for Recorder {
    fn on_request_head(&self, head: &mut ServerCallHead<'_>) -> Result<(), Status> {
        self.push("head".into());
        // Interceptors further in see what this one added.
        let seen = head.headers.get_all("x-seen").iter().count();
        self.push(format!("saw {seen}"));
        head.headers
            .append("x-seen", HeaderValue::from_static(self.name));
        Ok(())
    }

    fn on_request_message(&self, _: &Context, message: MessageRef<'_>) -> Result<(), Status> {
        self.push(format!("request {}", text_of(&message)));
        Ok(())
    }

    fn on_response_headers(&self, _: &Context, headers: &mut HeaderMap) {
        self.push("headers".into());
        headers.append("x-server-interceptor", HeaderValue::from_static(self.name));
    }

    fn on_response_message(&self, _: &Context, message: MessageRef<'_>) -> Result<(), Status> {
        self.push(format!("response {}", text_of(&message)));
        Ok(())
    }

    fn on_finish(&self, _: &Context, outcome: &mut Result<(), Status>, _: &mut HeaderMap) {
        self.push(format!(
            "finish {}",
            outcome
                .as_ref()
                .map_or_else(|s| s.code().to_string(), |()| "ok".into())
        ));
    }
}

impl ClientInterceptor for Recorder {
    fn on_request_head(&self, head: &mut ClientCallHead<'_>) -> Result<(), Status> {
        self.push("head".into());
        head.options
            .headers
            .append("x-client-interceptor", HeaderValue::from_static(self.name));
        Ok(())
    }

    fn on_request_message(
        &self,
        _: &ClientCallInfo,
        message: MessageRef<'_>,
    ) -> Result<(), Status> {
        self.push(format!("request {}", text_of(&message)));
        Ok(())
    }

    fn on_response_headers(&self, _: &ClientCallInfo, _: &mut HeaderMap) {
        self.push("headers".into());
    }

    fn on_response_message(
        &self,
        _: &ClientCallInfo,
        message: MessageRef<'_>,
    ) -> Result<(), Status> {
        self.push(format!("response {}", text_of(&message)));
        Ok(())
    }

    fn on_finish(&self, _: &ClientCallInfo, outcome: &mut Result<(), Status>, _: &mut HeaderMap) {
        self.push(format!(
            "finish {}",
            outcome
                .as_ref()
                .map_or_else(|s| s.code().to_string(), |()| "ok".into())
        ));
    }
}

impl<A: Adapter> Suite<A> {
    /// A client of `server` for `case`, with `configure` applied to the untyped client.
    fn intercepted_client(
        &self,
        server: &TestServer,
        case: Case,
        configure: impl FnOnce(Client<A::Transport>) -> Client<A::Transport>,
    ) -> EchoServiceClient<A::Transport> {
        let client = Client::new(
            self.adapter.transport(case.http),
            server.base().clone(),
            ClientConfig::new(case.protocol, case.codec),
            self.runtime.clone(),
        );
        EchoServiceClient::new(configure(client))
    }

    /// An authentication interceptor answers `unauthenticated` from the request head: a client
    /// stream that never sends a message nor ends gets the answer at once, in every protocol.
    /// With the token (added by a client interceptor) the same calls succeed.
    pub async fn interceptor_rejects_from_head(&self) {
        for http in self.versions() {
            let router = self
                .router(ServerConfig::default())
                .intercept(head_interceptor(|head: &mut ServerCallHead<'_>| match head
                    .headers
                    .get("authorization")
                {
                    Some(token) if token == "Bearer open-sesame" => Ok(()),
                    _ => Err(Status::new(Code::UNAUTHENTICATED, "bearer token required")),
                }));
            let serve = self.adapter.serve(router, http);
            let server = self.call("starting a server", serve).await;
            for protocol in crate::suite::PROTOCOLS {
                let case = Case {
                    http,
                    protocol,
                    codec: connect_typed::Codec::Proto,
                };
                if !case.supported() {
                    continue;
                }
                let anonymous = self.intercepted_client(&server, case, |c| c);
                // A request body that never ends: only an answer from the head can end the call.
                let never = futures_util::stream::pending::<EchoRequest>();
                let status = self
                    .call(case, anonymous.client_stream(never))
                    .await
                    .expect_err("rejected");
                assert_eq!(status.code(), Code::UNAUTHENTICATED, "{case}: {status}");
                let status = self
                    .call(case, anonymous.unary(&echo("anonymous")))
                    .await
                    .expect_err("rejected");
                assert_eq!(status.code(), Code::UNAUTHENTICATED, "{case}: {status}");

                let with_token = self.intercepted_client(&server, case, |client| {
                    client.intercept(client_head_interceptor(|head: &mut ClientCallHead<'_>| {
                        let token = HeaderValue::from_static("Bearer open-sesame");
                        head.options.headers.insert("authorization", token);
                        Ok(())
                    }))
                });
                let response = self
                    .call(case, with_token.unary(&echo("member")))
                    .await
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(response.message().text, "member", "{case}");
            }
            server
                .stop_within(&*self.runtime, crate::suite::CALL_LIMIT)
                .await;
        }
    }

    /// Several interceptors compose as an onion on both sides: the first added sees the request
    /// first and the response last, and what one adds to the head, the next sees.
    pub async fn interceptors_run_in_order(&self) {
        let server_log = Log::default();
        let client_log = Log::default();
        let mut router = self.router(ServerConfig::default());
        for name in ["s1", "s2"] {
            router = router.intercept(Recorder {
                name,
                log: server_log.clone(),
            });
        }
        // Over HTTP/2 where the adapter has it (h2c, else its first version): gRPC needs HTTP/2+.
        let http = self
            .versions()
            .find(|http| *http == crate::Http::H2c)
            .or_else(|| self.versions().find(|http| *http != crate::Http::Http1))
            .expect("an adapter with an HTTP version gRPC runs over");
        let serve = self.adapter.serve(router, http);
        let server = self.call("starting a server", serve).await;
        let case = Case {
            http,
            protocol: connect_typed::Protocol::Grpc,
            codec: connect_typed::Codec::Proto,
        };
        let client = self.intercepted_client(&server, case, |mut client| {
            for name in ["c1", "c2"] {
                client = client.intercept(Recorder {
                    name,
                    log: client_log.clone(),
                });
            }
            client
        });
        let response = self
            .call(case, client.unary(&echo("hi")))
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(response.message().text, "hi");
        // What the server's interceptors added to the response headers, and what the client's
        // added to the request headers (the test service echoes `x-echo` only, so look at what
        // the server's head phase saw instead).
        let added: Vec<_> = response
            .headers()
            .get_all("x-server-interceptor")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(added, ["s2", "s1"], "response headers: innermost first");
        assert_eq!(
            entries(&server_log),
            [
                "s1 head",
                "s1 saw 0",
                "s2 head",
                "s2 saw 1",
                "s1 request hi",
                "s2 request hi",
                "s2 response hi",
                "s1 response hi",
                "s2 headers",
                "s1 headers",
                "s2 finish ok",
                "s1 finish ok",
            ]
        );
        assert_eq!(
            entries(&client_log),
            [
                "c1 head",
                "c2 head",
                "c1 request hi",
                "c2 request hi",
                "c2 headers",
                "c1 headers",
                "c2 response hi",
                "c1 response hi",
                "c2 finish ok",
                "c1 finish ok",
            ]
        );
        server
            .stop_within(&*self.runtime, crate::suite::CALL_LIMIT)
            .await;
    }

    /// Interceptors see every message of streams in order, on both sides, and the outcome.
    pub async fn interceptors_see_messages_in_order(&self) {
        let server_log = Log::default();
        let client_log = Log::default();
        let router = self.router(ServerConfig::default()).intercept(Recorder {
            name: "s",
            log: server_log.clone(),
        });
        for http in self.versions() {
            let serve = self.adapter.serve(router.clone(), http);
            let server = self.call("starting a server", serve).await;
            for protocol in crate::suite::PROTOCOLS {
                let case = Case {
                    http,
                    protocol,
                    codec: connect_typed::Codec::Json,
                };
                if !case.supported() {
                    continue;
                }
                let client = self.intercepted_client(&server, case, |c| {
                    c.intercept(Recorder {
                        name: "c",
                        log: client_log.clone(),
                    })
                });
                let request = EchoRequest {
                    count: 3,
                    ..echo("s")
                };
                let stream = self
                    .call(case, client.server_stream(&request))
                    .await
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                let received: Vec<_> = self.call(case, stream.collect::<Vec<_>>()).await;
                assert_eq!(received.len(), 3, "{case}");
                let requests = futures_util::stream::iter(["a", "b", "c"].map(echo));
                self.call(case, client.client_stream(requests))
                    .await
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                let server_seen: Vec<_> = entries(&server_log)
                    .into_iter()
                    .filter(|e| {
                        e.contains("request") || e.contains("response") || e.contains("finish")
                    })
                    .collect();
                assert_eq!(
                    server_seen,
                    [
                        "s request s",
                        "s response s",
                        "s response s",
                        "s response s",
                        "s finish ok",
                        "s request a",
                        "s request b",
                        "s request c",
                        "s response a,b,c",
                        "s finish ok",
                    ],
                    "{case}"
                );
                let client_seen: Vec<_> = entries(&client_log)
                    .into_iter()
                    .filter(|e| {
                        e.contains("request") || e.contains("response") || e.contains("finish")
                    })
                    .collect();
                assert_eq!(
                    client_seen,
                    [
                        "c request s",
                        "c response s",
                        "c response s",
                        "c response s",
                        "c finish ok",
                        "c request a",
                        "c request b",
                        "c request c",
                        "c response a,b,c",
                        "c finish ok",
                    ],
                    "{case}"
                );
            }
            server
                .stop_within(&*self.runtime, crate::suite::CALL_LIMIT)
                .await;
        }
    }

    /// A handler that panics fails its own call with `internal`; the next call on the same client
    /// (the same connection where the protocol pools one) succeeds.
    pub async fn handler_panic_fails_only_its_call(&self) {
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            let client = s.client(&server.0, case);
            let request = EchoRequest {
                panic: true,
                ..echo("boom")
            };
            let status = s
                .call(case, client.unary(&request))
                .await
                .expect_err("a panicking handler fails its call");
            assert_eq!(status.code(), Code::INTERNAL, "{case}: {status}");
            assert!(status.message().contains("panicked"), "{case}: {status}");
            let response = s
                .call(case, client.unary(&echo("after")))
                .await
                .unwrap_or_else(|e| panic!("{case}: the next call failed: {e}"));
            assert_eq!(response.message().text, "after", "{case}");
        })
        .await;
    }
}
