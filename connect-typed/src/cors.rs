//! CORS for browser clients (Connect and gRPC-Web from `fetch`): preflight answers and the headers a
//! browser must be allowed to send and to read (PROTOCOL-TRAPS 23).
//!
//! Kept in the core so that every adapter answers browsers the same way.

use std::time::Duration;

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// Request headers the protocols need a browser to be allowed to send.
pub const ALLOWED_REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-content-encoding",
    "connect-accept-encoding",
    "content-encoding",
    "accept-encoding",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "x-grpc-web",
    "x-user-agent",
];

/// Response headers the protocols need a browser script to be able to read.
pub const EXPOSED_RESPONSE_HEADERS: &[&str] = &[
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
    "connect-content-encoding",
    "connect-accept-encoding",
    "content-encoding",
];

/// Which origins may call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowOrigin {
    /// Any origin (the request's `Origin` is echoed, so credentials keep working).
    Any,
    /// Only these exact origins.
    List(Vec<HeaderValue>),
}

/// CORS policy for an RPC server.
#[derive(Clone, Debug)]
pub struct Cors {
    /// Allowed origins.
    pub allow_origin: AllowOrigin,
    /// Application request headers to allow on top of the protocols' own.
    pub allow_headers: Vec<HeaderName>,
    /// Application response headers and trailers to expose on top of the protocols' own.
    pub expose_headers: Vec<HeaderName>,
    /// How long a browser may cache a preflight answer.
    pub max_age: Option<Duration>,
}

impl Default for Cors {
    /// Any origin, the protocols' headers, a 2-hour preflight cache.
    fn default() -> Self {
        Cors {
            allow_origin: AllowOrigin::Any,
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age: Some(Duration::from_secs(7200)),
        }
    }
}

impl Cors {
    /// Whether a request is a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), to be answered by [`preflight`](Self::preflight) instead of
    /// being routed as an RPC.
    pub fn is_preflight(request: &http::request::Parts) -> bool {
        request.method == Method::OPTIONS
            && request.headers.contains_key(header::ORIGIN)
            && request
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    fn origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        match &self.allow_origin {
            AllowOrigin::Any => Some(origin.clone()),
            AllowOrigin::List(list) => list.iter().any(|o| o == origin).then(|| origin.clone()),
        }
    }

    /// The answer to a preflight: 204 allowing GET and POST and the protocols' request headers, or 403
    /// for an origin outside the policy.
    pub fn preflight(&self, request: &http::request::Parts) -> http::Response<()> {
        let mut response = http::Response::new(());
        let Some(origin) = self.origin(&request.headers) else {
            *response.status_mut() = StatusCode::FORBIDDEN;
            return response;
        };
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        let mut allowed: Vec<&str> = ALLOWED_REQUEST_HEADERS.to_vec();
        allowed.extend(self.allow_headers.iter().map(HeaderName::as_str));
        if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(max_age) = self.max_age {
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(max_age.as_secs()),
            );
        }
        response
    }

    /// Adds the CORS response headers for an actual (non-preflight) request from a browser; does
    /// nothing for requests without `Origin` or from origins outside the policy.
    pub fn apply(&self, request_headers: &HeaderMap, response_headers: &mut HeaderMap) {
        let Some(origin) = self.origin(request_headers) else {
            return;
        };
        response_headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response_headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let mut exposed: Vec<&str> = EXPOSED_RESPONSE_HEADERS.to_vec();
        exposed.extend(self.expose_headers.iter().map(HeaderName::as_str));
        if let Ok(v) = HeaderValue::from_str(&exposed.join(", ")) {
            response_headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri("/pkg.Svc/M");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn trap23_preflight_allows_get_post_and_connect_headers() {
        let req = parts(
            "OPTIONS",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ],
        );
        assert!(Cors::is_preflight(&req));
        let resp = Cors::default().preflight(&req);
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let h = resp.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        let methods = h[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap();
        assert!(methods.contains("GET") && methods.contains("POST"));
        let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
        for name in [
            "connect-protocol-version",
            "connect-timeout-ms",
            "x-grpc-web",
            "grpc-timeout",
        ] {
            assert!(allowed.contains(name), "{name}");
        }
        assert!(!Cors::is_preflight(&parts("OPTIONS", &[("origin", "x")])));
    }

    #[test]
    fn trap23_responses_expose_grpc_status_headers() {
        let mut cors = Cors::default();
        cors.expose_headers
            .push(HeaderName::from_static("x-custom"));
        let req = parts("POST", &[("origin", "https://app.example")]);
        let mut out = HeaderMap::new();
        cors.apply(&req.headers, &mut out);
        let exposed = out[header::ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap();
        for name in [
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "x-custom",
        ] {
            assert!(exposed.contains(name), "{name}");
        }
        let mut none = HeaderMap::new();
        cors.apply(&parts("POST", &[]).headers, &mut none);
        assert!(none.is_empty(), "no Origin, no CORS headers");
    }

    #[test]
    fn origin_list_is_enforced() {
        let cors = Cors {
            allow_origin: AllowOrigin::List(vec![HeaderValue::from_static("https://ok")]),
            ..Cors::default()
        };
        let bad = parts(
            "OPTIONS",
            &[
                ("origin", "https://evil"),
                ("access-control-request-method", "POST"),
            ],
        );
        assert_eq!(cors.preflight(&bad).status(), StatusCode::FORBIDDEN);
        let good = parts(
            "OPTIONS",
            &[
                ("origin", "https://ok"),
                ("access-control-request-method", "POST"),
            ],
        );
        assert_eq!(cors.preflight(&good).status(), StatusCode::NO_CONTENT);
    }
}
