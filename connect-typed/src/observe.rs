//! Observability as interceptors: a [`tracing`](https://docs.rs/tracing) span per call (feature
//! `tracing`), the W3C trace context carried from client to server (feature `opentelemetry`), and
//! call metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`), all
//! named after OpenTelemetry's RPC conventions.
//!
//! ```
//! # #[cfg(all(feature = "tracing", feature = "metrics"))] {
//! use connect_typed::observe::{ClientMetrics, ClientTracing, ServerMetrics, ServerTracing};
//! use connect_typed::{Client, Router, Transport};
//!
//! fn observed(router: Router) -> Router {
//!     router.intercept(ServerTracing::new()).intercept(ServerMetrics::new())
//! }
//!
//! fn observed_client<T: Transport>(client: Client<T>) -> Client<T> {
//!     client.intercept(ClientTracing::new()).intercept(ClientMetrics::new())
//! }
//! # }
//! ```
//!
//! # Spans
//!
//! One span per call, at `INFO` level, whose exported name (`otel.name`) is `{service}/{method}`
//! and whose fields are `otel.kind` (`server`, `client`), `rpc.system` (`connect_typed` for
//! Connect, `grpc` for gRPC and gRPC-Web), `rpc.service`, `rpc.method`, on the end
//! `rpc.grpc.status_code` (gRPC, gRPC-Web) or `rpc.connect_typed.error_code` (Connect errors),
//! `otel.status_code` (`ERROR` on failure), `rpc.message.received` and `rpc.message.sent` (message
//! counts) and `rpc.message.received_bytes` / `rpc.message.sent_bytes` (their serialized sizes). A
//! server handler runs inside its call's span, so its own events and spans nest in it.
//!
//! With `opentelemetry`, the client puts its span's context in the `traceparent` (and
//! `tracestate`) request headers through OpenTelemetry's global propagator, and the server makes
//! its span a child of the context it finds there: both sides of a call join one trace. Install
//! `opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new())` and a
//! `tracing_opentelemetry` layer, as `examples/src/bin/otel.rs` does.
//!
//! # Metrics
//!
//! | name | kind | unit | what |
//! |---|---|---|---|
//! | `rpc.server.duration` / `rpc.client.duration` | histogram | seconds | from the request head to the outcome |
//! | `rpc.server.calls` / `rpc.client.calls` | counter | calls | finished calls, by outcome |
//! | `rpc.server.active_calls` / `rpc.client.active_calls` | gauge | calls | calls in flight |
//! | `rpc.server.request.size`, `rpc.server.response.size` (and `rpc.client.…`) | histogram | bytes | each message's serialized size |
//! | `rpc.server.requests_per_rpc`, `rpc.server.responses_per_rpc` (and `rpc.client.…`) | histogram | messages | messages per call |
//!
//! Every metric carries `rpc.system`, `rpc.service` and `rpc.method`; the call counts and
//! durations also `rpc.status` (the code's name, `ok` on success).

#[cfg(feature = "metrics")]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "metrics")]
use std::sync::Arc;

#[cfg(any(feature = "tracing", feature = "metrics"))]
use http::HeaderMap;

#[cfg(any(feature = "tracing", feature = "metrics"))]
use crate::context::Context;
#[cfg(any(feature = "tracing", feature = "metrics"))]
use crate::interceptor::{
    CallState, ClientCallHead, ClientCallInfo, ClientInterceptor, MessageRef, ServerCallHead,
    ServerInterceptor,
};
#[cfg(any(feature = "tracing", feature = "metrics"))]
use connect_proto::{MethodInfo, Protocol, Status};

/// `rpc.system` of a protocol.
#[cfg(any(feature = "tracing", feature = "metrics"))]
fn system(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Connect => "connect_rpc",
        Protocol::Grpc | Protocol::GrpcWeb => "grpc",
    }
}

/// `rpc.service` and `rpc.method` from a path `/pkg.Service/Method`.
#[cfg(any(feature = "tracing", feature = "metrics"))]
fn service_and_method(method: &MethodInfo) -> (&'static str, &'static str) {
    let path = method.path.trim_start_matches('/');
    path.rsplit_once('/').unwrap_or((path, ""))
}

/// The outcome as `rpc.status`: the code's name, `ok` on success.
#[cfg(feature = "metrics")]
fn status_name(outcome: &Result<(), Status>) -> String {
    match outcome {
        Ok(()) => "ok".to_owned(),
        Err(status) => status.code().to_string(),
    }
}

/// Messages and bytes each way of a call, counted by one kind of observer `K` (so that a span
/// and the metrics of the same call each count once).
#[cfg(any(feature = "tracing", feature = "metrics"))]
struct Counts<K> {
    received: (u64, u64),
    sent: (u64, u64),
    _observer: std::marker::PhantomData<fn() -> K>,
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
impl<K> Clone for Counts<K> {
    fn clone(&self) -> Self {
        Counts {
            received: self.received,
            sent: self.sent,
            _observer: std::marker::PhantomData,
        }
    }
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts {
            received: (0, 0),
            sent: (0, 0),
            _observer: std::marker::PhantomData,
        }
    }
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
impl<K: 'static> Counts<K> {
    fn add(state: &CallState, received: bool, bytes: usize) {
        let mut values = state.lock();
        let counts = values.get_or_insert_default::<Counts<K>>();
        let way = if received {
            &mut counts.received
        } else {
            &mut counts.sent
        };
        way.0 += 1;
        way.1 += bytes as u64;
    }

    fn take(state: &CallState) -> Counts<K> {
        state.lock().remove::<Counts<K>>().unwrap_or_default()
    }
}

#[cfg(feature = "tracing")]
mod spans {
    use tracing::field::Empty;

    use super::*;

    /// The span of a call, kept in its state.
    #[derive(Clone)]
    pub(crate) struct CallSpan(pub(crate) tracing::Span);

    /// What spans count messages as.
    struct Spans;
    type SpanCounts = Counts<Spans>;

    fn new_span(kind: &'static str, protocol: Protocol, method: &MethodInfo) -> tracing::Span {
        let (service, name) = service_and_method(method);
        tracing::info_span!(
            "rpc",
            otel.name = %method.path.trim_start_matches('/'),
            otel.kind = kind,
            otel.status_code = Empty,
            rpc.system = system(protocol),
            rpc.service = service,
            rpc.method = name,
            rpc.grpc.status_code = Empty,
            rpc.connect_typed.error_code = Empty,
            rpc.message.received = Empty,
            rpc.message.sent = Empty,
            rpc.message.received_bytes = Empty,
            rpc.message.sent_bytes = Empty,
        )
    }

    fn record_end(
        span: &tracing::Span,
        protocol: Protocol,
        outcome: &Result<(), Status>,
        counts: SpanCounts,
    ) {
        match (outcome, protocol) {
            (Ok(()), Protocol::Connect) => {}
            (Ok(()), _) => {
                span.record("rpc.grpc.status_code", 0);
            }
            (Err(status), Protocol::Connect) => {
                span.record("rpc.connect_typed.error_code", status.code().to_string());
            }
            (Err(status), _) => {
                span.record("rpc.grpc.status_code", status.code().as_u32());
            }
        }
        if outcome.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        span.record("rpc.message.received", counts.received.0);
        span.record("rpc.message.received_bytes", counts.received.1);
        span.record("rpc.message.sent", counts.sent.0);
        span.record("rpc.message.sent_bytes", counts.sent.1);
    }

    /// A `tracing` span per server call (see the [module](super) docs). The handler runs inside it.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct ServerTracing;

    impl ServerTracing {
        /// The interceptor.
        pub fn new() -> Self {
            ServerTracing
        }
    }

    impl ServerInterceptor for ServerTracing {
        fn on_request_head(&self, head: &mut ServerCallHead<'_>) -> Result<(), Status> {
            let span = new_span("server", head.protocol, &head.method);
            #[cfg(feature = "opentelemetry")]
            super::propagation::adopt_remote_parent(&span, head.headers);
            head.state.insert(CallSpan(span));
            Ok(())
        }

        fn on_request_message(&self, ctx: &Context, message: MessageRef<'_>) -> Result<(), Status> {
            SpanCounts::add(ctx.state(), true, message.len());
            Ok(())
        }

        fn on_response_message(
            &self,
            ctx: &Context,
            message: MessageRef<'_>,
        ) -> Result<(), Status> {
            SpanCounts::add(ctx.state(), false, message.len());
            Ok(())
        }

        fn on_finish(&self, ctx: &Context, outcome: &mut Result<(), Status>, _: &mut HeaderMap) {
            if let Some(CallSpan(span)) = ctx.state().get::<CallSpan>() {
                record_end(
                    &span,
                    ctx.protocol(),
                    outcome,
                    SpanCounts::take(ctx.state()),
                );
            }
        }
    }

    /// A `tracing` span per client call (see the [module](super) docs), a child of the span that
    /// is current when the call starts.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct ClientTracing;

    impl ClientTracing {
        /// The interceptor.
        pub fn new() -> Self {
            ClientTracing
        }
    }

    impl ClientInterceptor for ClientTracing {
        fn on_request_head(&self, head: &mut ClientCallHead<'_>) -> Result<(), Status> {
            let span = new_span("client", head.protocol, &head.method);
            #[cfg(feature = "opentelemetry")]
            super::propagation::inject(&span, &mut head.options.headers);
            head.state.insert(CallSpan(span));
            Ok(())
        }

        fn on_request_message(
            &self,
            call: &ClientCallInfo,
            message: MessageRef<'_>,
        ) -> Result<(), Status> {
            SpanCounts::add(call.state(), false, message.len());
            Ok(())
        }

        fn on_response_message(
            &self,
            call: &ClientCallInfo,
            message: MessageRef<'_>,
        ) -> Result<(), Status> {
            SpanCounts::add(call.state(), true, message.len());
            Ok(())
        }

        fn on_finish(
            &self,
            call: &ClientCallInfo,
            outcome: &mut Result<(), Status>,
            _: &mut HeaderMap,
        ) {
            let span = call.state().lock().remove::<CallSpan>();
            if let Some(CallSpan(span)) = span {
                record_end(
                    &span,
                    call.protocol(),
                    outcome,
                    SpanCounts::take(call.state()),
                );
            }
        }
    }
}

#[cfg(feature = "tracing")]
pub(crate) use spans::CallSpan;
#[cfg(feature = "tracing")]
pub use spans::{ClientTracing, ServerTracing};

#[cfg(feature = "opentelemetry")]
mod propagation {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use opentelemetry::propagation::{Extractor, Injector};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    struct Headers<'a>(&'a mut HeaderMap);

    impl Injector for Headers<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(key.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                self.0.insert(name, value);
            }
        }
    }

    struct ReadHeaders<'a>(&'a HeaderMap);

    impl Extractor for ReadHeaders<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(HeaderName::as_str).collect()
        }
    }

    /// Puts `span`'s trace context in the request headers (`traceparent`, `tracestate`).
    pub(super) fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
        let context = span.context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut Headers(headers));
        });
    }

    /// Makes `span` a child of the trace context in the request headers, if there is one.
    pub(super) fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
        if !headers.contains_key("traceparent") {
            return;
        }
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&ReadHeaders(headers))
        });
        // Fails only when the span is disabled or already has a parent set.
        let _ = span.set_parent(parent);
    }
}

#[cfg(feature = "metrics")]
mod meters {
    use super::*;

    /// What the metrics count messages as.
    struct Meters;
    type MeterCounts = Counts<Meters>;

    /// When a call started, and the gauge to lower when it ends.
    #[derive(Clone)]
    struct Started {
        at: connect_proto::Instant,
        labels: Arc<[(&'static str, &'static str); 3]>,
        done: Arc<AtomicU64>,
    }

    fn labels(protocol: Protocol, method: &MethodInfo) -> [(&'static str, &'static str); 3] {
        let (service, name) = service_and_method(method);
        [
            ("rpc.system", system(protocol)),
            ("rpc.service", service),
            ("rpc.method", name),
        ]
    }

    fn start(side: &'static str, protocol: Protocol, method: &MethodInfo, state: &CallState) {
        let labels = labels(protocol, method);
        metrics::gauge!(active(side), &labels).increment(1.0);
        state.insert(Started {
            at: connect_proto::Instant::now(),
            labels: Arc::new(labels),
            done: Arc::new(AtomicU64::new(0)),
        });
    }

    fn message(side: &'static str, request: bool, state: &CallState, len: usize) {
        if let Some(started) = state.get::<Started>() {
            let name = match (side, request) {
                ("server", true) => "rpc.server.request.size",
                ("server", false) => "rpc.server.response.size",
                (_, true) => "rpc.client.request.size",
                (_, false) => "rpc.client.response.size",
            };
            metrics::histogram!(name, &*started.labels).record(len as f64);
        }
    }

    fn finish(
        side: &'static str,
        state: &CallState,
        outcome: &Result<(), Status>,
        requests_received: bool,
    ) {
        let Some(started) = state.get::<Started>() else {
            return;
        };
        if started.done.fetch_add(1, Ordering::Relaxed) > 0 {
            return;
        }
        let labels = &*started.labels;
        metrics::gauge!(active(side), labels).decrement(1.0);
        let counts = MeterCounts::take(state);
        let (requests, responses) = if requests_received {
            (counts.received.0, counts.sent.0)
        } else {
            (counts.sent.0, counts.received.0)
        };
        let (per_request, per_response) = match side {
            "server" => (
                "rpc.server.requests_per_rpc",
                "rpc.server.responses_per_rpc",
            ),
            _ => (
                "rpc.client.requests_per_rpc",
                "rpc.client.responses_per_rpc",
            ),
        };
        metrics::histogram!(per_request, labels).record(requests as f64);
        metrics::histogram!(per_response, labels).record(responses as f64);
        let mut with_status: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        with_status.push(("rpc.status", status_name(outcome)));
        let (calls, duration) = match side {
            "server" => ("rpc.server.calls", "rpc.server.duration"),
            _ => ("rpc.client.calls", "rpc.client.duration"),
        };
        metrics::counter!(calls, &with_status).increment(1);
        let elapsed = connect_proto::Instant::now().saturating_duration_since(started.at);
        metrics::histogram!(duration, &with_status).record(elapsed.as_secs_f64());
    }

    fn active(side: &'static str) -> &'static str {
        match side {
            "server" => "rpc.server.active_calls",
            _ => "rpc.client.active_calls",
        }
    }

    /// Server call metrics through the `metrics` facade (see the [module](super) docs).
    #[derive(Debug, Default, Clone, Copy)]
    pub struct ServerMetrics;

    impl ServerMetrics {
        /// The interceptor.
        pub fn new() -> Self {
            ServerMetrics
        }
    }

    impl ServerInterceptor for ServerMetrics {
        fn on_request_head(&self, head: &mut ServerCallHead<'_>) -> Result<(), Status> {
            start("server", head.protocol, &head.method, head.state);
            Ok(())
        }

        fn on_request_message(&self, ctx: &Context, m: MessageRef<'_>) -> Result<(), Status> {
            MeterCounts::add(ctx.state(), true, m.len());
            message("server", true, ctx.state(), m.len());
            Ok(())
        }

        fn on_response_message(&self, ctx: &Context, m: MessageRef<'_>) -> Result<(), Status> {
            MeterCounts::add(ctx.state(), false, m.len());
            message("server", false, ctx.state(), m.len());
            Ok(())
        }

        fn on_finish(&self, ctx: &Context, outcome: &mut Result<(), Status>, _: &mut HeaderMap) {
            finish("server", ctx.state(), outcome, true);
        }
    }

    /// Client call metrics through the `metrics` facade (see the [module](super) docs).
    #[derive(Debug, Default, Clone, Copy)]
    pub struct ClientMetrics;

    impl ClientMetrics {
        /// The interceptor.
        pub fn new() -> Self {
            ClientMetrics
        }
    }

    impl ClientInterceptor for ClientMetrics {
        fn on_request_head(&self, head: &mut ClientCallHead<'_>) -> Result<(), Status> {
            start("client", head.protocol, &head.method, head.state);
            Ok(())
        }

        fn on_request_message(
            &self,
            call: &ClientCallInfo,
            m: MessageRef<'_>,
        ) -> Result<(), Status> {
            MeterCounts::add(call.state(), false, m.len());
            message("client", true, call.state(), m.len());
            Ok(())
        }

        fn on_response_message(
            &self,
            call: &ClientCallInfo,
            m: MessageRef<'_>,
        ) -> Result<(), Status> {
            MeterCounts::add(call.state(), true, m.len());
            message("client", false, call.state(), m.len());
            Ok(())
        }

        fn on_finish(
            &self,
            call: &ClientCallInfo,
            outcome: &mut Result<(), Status>,
            _: &mut HeaderMap,
        ) {
            finish("client", call.state(), outcome, false);
        }
    }
}

#[cfg(feature = "metrics")]
pub use meters::{ClientMetrics, ServerMetrics};
