//! A client transport over many endpoints: calls spread by power-of-two-choices, failing endpoints
//! ejected with backoff, a DNS name re-resolved now and then. Runtime-free: the adapters bring the
//! transport underneath, the resolver and the task that re-resolves.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use connect_typed::{BoxFuture, RequestBody, Runtime, Transport, TransportError};
use http::uri::{Authority, Scheme};
use http_body::{Body, Frame, SizeHint};

/// How a [`Balanced`] transport treats its endpoints.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BalanceSettings {
    /// How long an endpoint is left out after its first connection failure; each failure in a row
    /// doubles it. Default 200 ms: a restarting server is tried again soon.
    pub ejection: Duration,
    /// The longest an endpoint is left out. Default 10 s: a server that comes back gets traffic
    /// again within that.
    pub max_ejection: Duration,
    /// How often a DNS name is resolved again. Default 30 s.
    pub resolve_interval: Duration,
    /// How many endpoints a call tries when connecting fails (nothing was sent, so another
    /// endpoint is safe). Default 3.
    pub attempts: usize,
}

impl Default for BalanceSettings {
    fn default() -> Self {
        BalanceSettings {
            ejection: Duration::from_millis(200),
            max_ejection: Duration::from_secs(10),
            resolve_interval: Duration::from_secs(30),
            attempts: 3,
        }
    }
}

/// Resolves a host and port to addresses (the adapter's: `tokio::net::lookup_host`,
/// `smol::net::resolve`).
pub type Resolver =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// One server a [`Balanced`] transport calls, with what it knows of its health.
#[derive(Debug)]
struct Endpoint {
    scheme: Scheme,
    authority: Authority,
    in_flight: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    ejected_until: Option<Instant>,
}

impl Endpoint {
    fn new(scheme: Scheme, authority: Authority) -> Arc<Self> {
        Arc::new(Endpoint {
            scheme,
            authority,
            in_flight: AtomicUsize::new(0),
            health: Mutex::default(),
        })
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When it may be called again; `None`: now.
    fn ejected_until(&self, now: Instant) -> Option<Instant> {
        self.health().ejected_until.filter(|until| *until > now)
    }

    fn succeeded(&self) {
        *self.health() = Health::default();
    }

    fn failed(&self, settings: &BalanceSettings, now: Instant) {
        let mut health = self.health();
        health.failures = health.failures.saturating_add(1);
        let doublings = health.failures.saturating_sub(1).min(16);
        let backoff = settings
            .ejection
            .saturating_mul(1 << doublings)
            .min(settings.max_ejection);
        health.ejected_until = Some(now + backoff);
    }
}

/// Where the endpoints come from.
enum Source {
    Fixed,
    Dns {
        scheme: Scheme,
        host: String,
        port: u16,
        resolver: Resolver,
        runtime: Arc<dyn Runtime>,
        resolved_at: Mutex<Option<Instant>>,
        resolving: AtomicBool,
    },
}

struct Inner<T> {
    transport: T,
    settings: BalanceSettings,
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    source: Source,
    seed: AtomicU64,
}

/// A [`Transport`] over many servers of one service: each call goes to the less loaded (fewer calls
/// in flight) of two endpoints picked at random, so a slow or busy server gets fewer calls. An
/// endpoint that cannot be connected to is left out with exponential backoff (then tried again
/// with a call), and the call goes to another endpoint, which is safe because nothing was sent.
///
/// Calls carry any base URI (`http://service`): its scheme and authority are replaced by the chosen
/// endpoint's. Wrap it in a generated client like any transport. The endpoints are a fixed list
/// ([`Balanced::new`]) or a DNS name resolved again every
/// [`resolve_interval`](BalanceSettings::resolve_interval) ([`Balanced::dns`]; plain HTTP, or TLS
/// certificates that name the addresses, since each address is called by its IP).
pub struct Balanced<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Balanced<T> {
    fn clone(&self) -> Self {
        Balanced {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Balanced<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints = self
            .inner
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let origins: Vec<_> = endpoints.iter().map(|e| e.authority.as_str()).collect();
        f.debug_struct("Balanced")
            .field("endpoints", &origins)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// An endpoint URI's scheme and authority.
fn origin(uri: &http::Uri) -> io::Result<(Scheme, Authority)> {
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok((scheme.clone(), authority.clone())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("an endpoint needs a scheme and an authority: {uri}"),
        )),
    }
}

impl<T: Transport> Balanced<T> {
    /// Calls over `transport` to the servers at `endpoints` (`http://10.0.0.1:8080`, ...).
    pub fn new(
        transport: T,
        endpoints: impl IntoIterator<Item = http::Uri>,
        settings: BalanceSettings,
    ) -> io::Result<Self> {
        let endpoints = endpoints
            .into_iter()
            .map(|uri| origin(&uri).map(|(s, a)| Endpoint::new(s, a)))
            .collect::<io::Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a balanced transport needs at least one endpoint",
            ));
        }
        Ok(Self::with_source(
            transport,
            endpoints,
            settings,
            Source::Fixed,
        ))
    }

    /// Calls over `transport` to every address `name` (`http://service.internal:8080`) resolves
    /// to, with `resolver`; the name is resolved at the first call and again in the background
    /// (a task of `runtime`) once [`resolve_interval`](BalanceSettings::resolve_interval) passed.
    pub fn dns(
        transport: T,
        name: &http::Uri,
        resolver: Resolver,
        runtime: Arc<dyn Runtime>,
        settings: BalanceSettings,
    ) -> io::Result<Self> {
        let (scheme, authority) = origin(name)?;
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let source = Source::Dns {
            port: authority.port_u16().unwrap_or(default_port),
            host: authority.host().to_owned(),
            scheme,
            resolver,
            runtime,
            resolved_at: Mutex::new(None),
            resolving: AtomicBool::new(false),
        };
        Ok(Self::with_source(transport, Vec::new(), settings, source))
    }

    fn with_source(
        transport: T,
        endpoints: Vec<Arc<Endpoint>>,
        settings: BalanceSettings,
        source: Source,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
        Balanced {
            inner: Arc::new(Inner {
                transport,
                settings,
                endpoints: RwLock::new(endpoints),
                source,
                seed: AtomicU64::new(seed | 1),
            }),
        }
    }

    /// The endpoints' authorities, and whether each may be called now.
    pub fn endpoints(&self) -> Vec<(String, bool)> {
        let now = Instant::now();
        let endpoints = self
            .inner
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner());
        endpoints
            .iter()
            .map(|e| (e.authority.to_string(), e.ejected_until(now).is_none()))
            .collect()
    }
}

impl<T> Inner<T> {
    /// A pseudo-random number (xorshift; balance needs no better).
    fn random(&self) -> u64 {
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        x
    }

    /// Power of two choices among the endpoints not ejected and not `tried`; when every endpoint
    /// is ejected, the one whose ejection ends first (so that a call finds out whether it is back).
    fn pick(&self, tried: &[Arc<Endpoint>], now: Instant) -> Option<Arc<Endpoint>> {
        let endpoints = self.endpoints.read().unwrap_or_else(|e| e.into_inner());
        let untried = |e: &&Arc<Endpoint>| !tried.iter().any(|t| Arc::ptr_eq(t, e));
        let ready: Vec<&Arc<Endpoint>> = endpoints
            .iter()
            .filter(untried)
            .filter(|e| e.ejected_until(now).is_none())
            .collect();
        let chosen = match ready.len() {
            0 => endpoints
                .iter()
                .filter(untried)
                .min_by_key(|e| e.ejected_until(now)),
            1 => Some(ready[0]),
            n => {
                let a = (self.random() % n as u64) as usize;
                let b = (a + 1 + (self.random() % (n as u64 - 1)) as usize) % n;
                let load = |i: usize| ready[i].in_flight.load(Ordering::Relaxed);
                Some(if load(b) < load(a) {
                    ready[b]
                } else {
                    ready[a]
                })
            }
        };
        chosen.cloned()
    }
}

impl<T: Transport> Inner<T> {
    /// Resolves the DNS name when it never was (waiting), or again in the background once it is
    /// due.
    async fn refresh(self: &Arc<Self>) -> Result<(), TransportError> {
        let Source::Dns {
            resolved_at,
            resolving,
            runtime,
            ..
        } = &self.source
        else {
            return Ok(());
        };
        let last = *resolved_at.lock().unwrap_or_else(|e| e.into_inner());
        match last {
            None => self.resolve().await,
            Some(at) if at.elapsed() >= self.settings.resolve_interval => {
                if !resolving.swap(true, Ordering::AcqRel) {
                    let inner = self.clone();
                    runtime.spawn(Box::pin(async move {
                        let _ = inner.resolve().await;
                    }));
                }
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    async fn resolve(&self) -> Result<(), TransportError> {
        let Source::Dns {
            scheme,
            host,
            port,
            resolver,
            resolved_at,
            resolving,
            ..
        } = &self.source
        else {
            return Ok(());
        };
        let resolved = resolver(host.clone(), *port).await;
        resolving.store(false, Ordering::Release);
        let addresses = resolved.map_err(TransportError::connection)?;
        let mut endpoints = self.endpoints.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Vec::with_capacity(addresses.len());
        for address in addresses {
            let Ok(authority) = Authority::try_from(address.to_string()) else {
                continue;
            };
            // An endpoint still resolved keeps its health and load.
            let known = endpoints.iter().find(|e| e.authority == authority).cloned();
            next.push(known.unwrap_or_else(|| Endpoint::new(scheme.clone(), authority)));
        }
        if !next.is_empty() {
            *endpoints = next;
        }
        *resolved_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        Ok(())
    }
}

/// Whether `error` says the connection could not be made (so the request was not sent).
fn not_connected(error: &TransportError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::AddrNotAvailable
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
            ) || (io.kind() == io::ErrorKind::TimedOut
                && io.to_string().contains("connect"));
        }
        source = e.source();
    }
    false
}

/// Counts a call in flight on its endpoint until its response body is done.
struct InFlight(Arc<Endpoint>);

impl InFlight {
    fn new(endpoint: Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(endpoint)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The response body of a [`Balanced`] call: the endpoint's, counted in flight until done.
pub struct BalancedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> fmt::Debug for BalancedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedBody")
            .field("endpoint", &self._in_flight.0.authority)
            .finish_non_exhaustive()
    }
}

impl<B: Body + Unpin> Body for BalancedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The parts of a request needed to send it again to another endpoint.
struct Resend {
    method: http::Method,
    path: Option<http::uri::PathAndQuery>,
    version: http::Version,
    headers: http::HeaderMap,
    body: RequestBody,
}

impl Resend {
    fn to(&self, endpoint: &Endpoint) -> Result<http::Request<RequestBody>, TransportError> {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(endpoint.scheme.clone());
        uri.authority = Some(endpoint.authority.clone());
        uri.path_and_query = self.path.clone().or_else(|| "/".parse().ok());
        let uri = http::Uri::from_parts(uri).map_err(TransportError::connection)?;
        let mut request = http::Request::new(self.body.resend_handle());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }
}

type Outcome<B> = Result<http::Response<BalancedBody<B>>, TransportError>;

impl<T> Transport for Balanced<T>
where
    T: Transport,
    T::ResponseBody: Unpin,
{
    type ResponseBody = BalancedBody<T::ResponseBody>;
    type Future = BoxFuture<'static, Outcome<T::ResponseBody>>;

    fn send(&self, request: http::Request<RequestBody>) -> Self::Future {
        let inner = self.inner.clone();
        let (parts, body) = request.into_parts();
        let resend = Resend {
            method: parts.method,
            path: parts.uri.path_and_query().cloned(),
            version: parts.version,
            headers: parts.headers,
            body,
        };
        Box::pin(async move {
            inner.refresh().await?;
            let mut tried = Vec::new();
            loop {
                let now = Instant::now();
                let Some(endpoint) = inner.pick(&tried, now) else {
                    return Err(TransportError::connection(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "no endpoint left to call",
                    )));
                };
                let in_flight = InFlight::new(endpoint.clone());
                let result = inner.transport.send(resend.to(&endpoint)?).await;
                match result {
                    Ok(response) => {
                        endpoint.succeeded();
                        return Ok(response.map(|inner| BalancedBody {
                            inner,
                            _in_flight: in_flight,
                        }));
                    }
                    Err(error) if error.reason() == connect_typed::Reset::ConnectionLost => {
                        endpoint.failed(&inner.settings, Instant::now());
                        tried.push(endpoint);
                        if !not_connected(&error) || tried.len() >= inner.settings.attempts {
                            return Err(error);
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
        (0..n)
            .map(|i| {
                Endpoint::new(
                    Scheme::HTTP,
                    Authority::try_from(format!("127.0.0.1:{}", 1000 + i)).unwrap(),
                )
            })
            .collect()
    }

    fn inner(list: Vec<Arc<Endpoint>>) -> Inner<()> {
        Inner {
            transport: (),
            settings: BalanceSettings::default(),
            endpoints: RwLock::new(list),
            source: Source::Fixed,
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        }
    }

    #[test]
    fn the_less_loaded_of_two_is_chosen_and_ejected_endpoints_are_left_out() {
        let list = endpoints(2);
        let balancer = inner(list.clone());
        let now = Instant::now();
        list[0].in_flight.store(5, Ordering::Relaxed);
        for _ in 0..20 {
            let chosen = balancer.pick(&[], now).unwrap();
            assert!(Arc::ptr_eq(&chosen, &list[1]), "the idle endpoint wins");
        }
        list[1].failed(&balancer.settings, now);
        let chosen = balancer.pick(&[], now).unwrap();
        assert!(
            Arc::ptr_eq(&chosen, &list[0]),
            "an ejected endpoint is left out"
        );
        // All ejected: the one back first is tried.
        list[0].failed(&balancer.settings, now);
        list[0].failed(&balancer.settings, now);
        let chosen = balancer.pick(&[], now).unwrap();
        assert!(Arc::ptr_eq(&chosen, &list[1]));
        // Once its backoff passed, it is back.
        let later = now + Duration::from_secs(1);
        assert!(list[1].ejected_until(later).is_none());
        list[1].succeeded();
        assert!(list[1].ejected_until(now).is_none());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let settings = BalanceSettings::default();
        let endpoint = &endpoints(1)[0];
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            endpoint.failed(&settings, now);
            let backoff = endpoint.ejected_until(now).unwrap() - now;
            assert!(backoff >= last);
            assert!(backoff <= settings.max_ejection);
            last = backoff;
        }
        assert_eq!(last, settings.max_ejection);
    }

    #[test]
    fn calls_spread_over_equal_endpoints() {
        let list = endpoints(3);
        let balancer = inner(list.clone());
        let now = Instant::now();
        let mut counts = [0; 3];
        for _ in 0..300 {
            let chosen = balancer.pick(&[], now).unwrap();
            let i = list.iter().position(|e| Arc::ptr_eq(e, &chosen)).unwrap();
            counts[i] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
        let tried = vec![list[0].clone(), list[1].clone()];
        let chosen = balancer.pick(&tried, now).unwrap();
        assert!(
            Arc::ptr_eq(&chosen, &list[2]),
            "a retry goes to an untried endpoint"
        );
    }
}
