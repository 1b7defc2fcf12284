//! Interceptors the way applications write them: bearer-token authentication (the server rejects
//! from the request head, the client adds the token), request logging, and a client retry of
//! `unavailable` for idempotent methods that backs off and keeps to the call's deadline. The
//! `interceptors` example runs them all (`cargo run -p examples --bin interceptors`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_typed::{
    client_head_interceptor, head_interceptor, ClientInterceptor, Code, Context, Instant,
    MessageRef, ServerInterceptor, Status, UnaryCall, UnaryRequest,
};
use http::{HeaderMap, HeaderValue};

/// The server's check: a call needs `authorization: Bearer <token>`, or it is refused with
/// `unauthenticated` before any of its body is read (a client that streams forever gets its
/// answer at once, and nothing is decompressed or decoded for it).
pub fn require_bearer(token: &str) -> impl ServerInterceptor {
    let expected = format!("Bearer {token}");
    head_interceptor(move |head| {
        match head.headers.get(http::header::AUTHORIZATION) {
            Some(value) if value.as_bytes() == expected.as_bytes() => {
                // The handler has no use for the secret.
                head.headers.remove(http::header::AUTHORIZATION);
                Ok(())
            }
            Some(_) => Err(Status::new(
                Code::UNAUTHENTICATED,
                "the bearer token is not valid",
            )),
            None => Err(Status::new(
                Code::UNAUTHENTICATED,
                "a bearer token is required",
            )),
        }
    })
}

/// The client's side: every call carries `authorization: Bearer <token>`.
pub fn bearer_token(token: &str) -> impl ClientInterceptor {
    let value = HeaderValue::try_from(format!("Bearer {token}")).ok();
    client_head_interceptor(move |head| {
        let value = value
            .clone()
            .ok_or_else(|| Status::internal("the bearer token is not a valid header value"))?;
        head.options
            .headers
            .insert(http::header::AUTHORIZATION, value);
        Ok(())
    })
}

/// One line per finished call: method, protocol, outcome, messages each way and the time taken,
/// handed to a sink (stderr by default).
#[derive(Clone)]
pub struct RequestLog {
    sink: Arc<dyn Fn(String) + Send + Sync>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestLog")
    }
}

impl Default for RequestLog {
    fn default() -> Self {
        RequestLog::new(|line| eprintln!("{line}"))
    }
}

/// What the log keeps of a call between its phases.
#[derive(Clone, Copy)]
struct Logged {
    started: Instant,
    received: usize,
    sent: usize,
}

impl RequestLog {
    /// A log that hands each line to `sink`.
    pub fn new(sink: impl Fn(String) + Send + Sync + 'static) -> Self {
        RequestLog {
            sink: Arc::new(sink),
        }
    }

    fn count(ctx: &Context, received: bool) {
        let mut values = ctx.state().lock();
        if let Some(logged) = values.get_mut::<Logged>() {
            if received {
                logged.received += 1;
            } else {
                logged.sent += 1;
            }
        }
    }
}

impl ServerInterceptor for RequestLog {
    fn on_request_head(&self, head: &mut connect_typed::ServerCallHead<'_>) -> Result<(), Status> {
        head.state.insert(Logged {
            started: Instant::now(),
            received: 0,
            sent: 0,
        });
        Ok(())
    }

    fn on_request_message(&self, ctx: &Context, _: MessageRef<'_>) -> Result<(), Status> {
        Self::count(ctx, true);
        Ok(())
    }

    fn on_response_message(&self, ctx: &Context, _: MessageRef<'_>) -> Result<(), Status> {
        Self::count(ctx, false);
        Ok(())
    }

    fn on_finish(&self, ctx: &Context, outcome: &mut Result<(), Status>, _: &mut HeaderMap) {
        let Some(logged) = ctx.state().get::<Logged>() else {
            return;
        };
        let result = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(status) => format!("{} ({})", status.code(), status.message()),
        };
        (self.sink)(format!(
            "{} over {:?}: {result}, {} in / {} out, {:?}",
            ctx.method().path,
            ctx.protocol(),
            logged.received,
            logged.sent,
            logged.started.elapsed(),
        ));
    }
}

/// Retries unary calls of idempotent methods (`idempotency_level = NO_SIDE_EFFECTS`) that failed
/// with `unavailable`, with exponential backoff and jitter, never past the call's deadline: each
/// attempt gets what is left of the call's timeout, and no attempt starts that could not finish.
#[derive(Clone, Debug)]
pub struct RetryUnavailable {
    attempts: u32,
    first_backoff: Duration,
    max_backoff: Duration,
    retries: Arc<Mutex<u64>>,
}

impl RetryUnavailable {
    /// Up to `attempts` attempts in all, the first retry after about `first_backoff`, each next
    /// one after twice as long (at most ten times `first_backoff`).
    pub fn new(attempts: u32, first_backoff: Duration) -> Self {
        RetryUnavailable {
            attempts: attempts.max(1),
            first_backoff,
            max_backoff: first_backoff * 10,
            retries: Arc::default(),
        }
    }

    /// How many retries this interceptor made so far, over all calls.
    pub fn retries(&self) -> u64 {
        *self.retries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pseudo-random factor in [0.5, 1.5) from the clock, enough to spread retries apart.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    0.5 + f64::from(nanos % 1000) / 1000.0
}

impl ClientInterceptor for RetryUnavailable {
    fn wrap_unary(&self, next: UnaryCall) -> UnaryCall {
        let this = self.clone();
        Arc::new(move |request: UnaryRequest| {
            let (this, next) = (this.clone(), next.clone());
            Box::pin(async move {
                if !request.info.method().no_side_effects {
                    return next(request).await;
                }
                let mut backoff = this.first_backoff;
                let mut attempt = 1;
                let mut current = request.clone();
                loop {
                    let outcome = next(current.clone()).await;
                    let unavailable =
                        matches!(&outcome.result, Err(s) if s.code() == Code::UNAVAILABLE);
                    if !unavailable || attempt >= this.attempts {
                        return outcome;
                    }
                    let runtime = request.info.runtime();
                    let resume = runtime.now() + backoff.mul_f64(jitter());
                    let deadline = request.info.deadline();
                    // No attempt that would start after the deadline.
                    if deadline.is_some_and(|deadline| resume >= deadline) {
                        return outcome;
                    }
                    runtime.sleep_until(resume).await;
                    if let Some(deadline) = deadline {
                        // The next attempt gets what is left of the call's timeout.
                        let left = deadline.saturating_duration_since(runtime.now());
                        if left.is_zero() {
                            return outcome;
                        }
                        current.options.timeout = Some(left);
                    }
                    *this.retries.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    attempt += 1;
                    backoff = (backoff * 2).min(this.max_backoff);
                }
            })
        })
    }
}
