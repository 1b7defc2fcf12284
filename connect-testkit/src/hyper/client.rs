//! The client transports' resilience: a connect that never completes ends at the connect timeout,
//! and idle pooled connections are let go (HTTP/1.1 ones before a Node server would close them).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use connect_hyper::TransportSettings;
use connect_typed::Protocol;

use crate::hyper::{client, HyperAdapter};
use crate::suite::echo;
use crate::{bounded, Http, Suite};

/// A loopback listener whose accept queue is full: it is never accepted from, and connections were
/// opened until one no longer completed. The kernel drops further SYNs, so a connect to it neither
/// completes nor fails: what a server that does not answer looks like, without leaving the machine.
struct Unanswering {
    addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl Unanswering {
    fn new() -> std::io::Result<Unanswering> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut queued = Vec::new();
        // std listens with a backlog of 128; Linux queues one more.
        for _ in 0..4096 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => queued.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Ok(Unanswering {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("the accept queue never filled"))
    }
}

/// The `x-peer` header the test service answers with: which connection served the call.
fn peer<T>(response: &connect_typed::Response<T>) -> String {
    response
        .headers()
        .get("x-peer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl<A: HyperAdapter> Suite<A> {
    /// A server that never answers the client's SYN fails the call at the transport's connect
    /// timeout, over HTTP/1.1 and h2c, instead of waiting for the kernel to give up (minutes).
    pub async fn client_connect_timeout_ends_unanswered_connects(&self) {
        let (made, unanswering) = futures_channel::oneshot::channel();
        std::thread::spawn(move || {
            let _ = made.send(Unanswering::new());
        });
        let unanswering = self.call("filling an accept queue", unanswering).await;
        let unanswering = unanswering
            .expect("the filling thread answers")
            .expect("a listener with a full accept queue");
        let base: http::Uri = format!("http://{}", unanswering.addr)
            .parse()
            .expect("a URI");
        for http in [Http::Http1, Http::H2c] {
            let mut settings = TransportSettings::default();
            settings.http2_only = http == Http::H2c;
            settings.connect_timeout = Some(Duration::from_millis(300));
            let transport = self.adapter.transport_with_settings(settings);
            let client = client(self, transport, &base, Protocol::Connect);
            let started = Instant::now();
            let what = format!("{http:?}: a call to a server that does not answer");
            let limit = Duration::from_secs(5);
            let result = bounded(&*self.runtime, limit, &what, client.unary(&echo("hello"))).await;
            let elapsed = started.elapsed();
            assert!(result.is_err(), "{what} succeeded");
            assert!(
                elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
                "{what} failed after {elapsed:?}, not at the 300 ms connect timeout: {result:?}"
            );
        }
        drop(unanswering);
    }

    /// A pooled connection with no call for the pool's idle timeout is closed (the next call
    /// connects anew); within it, calls share the connection. HTTP/1.1 and HTTP/2, each with its
    /// own setting.
    pub async fn idle_pooled_connections_expire(&self) {
        let router = self.router(connect_typed::ServerConfig::default());
        let server = self.call("starting a server", self.adapter.serve(router, Http::H2c));
        let server = server.await;
        for http in [Http::Http1, Http::H2c] {
            let mut settings = TransportSettings::default();
            settings.http2_only = http == Http::H2c;
            // The other version's timeout stays long: each version's own setting is what counts.
            if http == Http::H2c {
                settings.pool_idle_timeout = Some(Duration::from_millis(300));
                settings.http1_pool_idle_timeout = Some(Duration::from_secs(60));
            } else {
                settings.pool_idle_timeout = Some(Duration::from_secs(60));
                settings.http1_pool_idle_timeout = Some(Duration::from_millis(300));
            }
            let transport = self.adapter.transport_with_settings(settings);
            let client = client(self, transport, server.base(), Protocol::Connect);
            let mut peers = Vec::new();
            for pause in [Duration::from_millis(50), Duration::from_millis(900)] {
                let response = self.call("a call", client.unary(&echo("one"))).await;
                peers.push(peer(&response.expect("a call")));
                self.sleep(pause).await;
            }
            let last = self.call("a call", client.unary(&echo("two"))).await;
            peers.push(peer(&last.expect("a call")));
            assert_eq!(peers[0], peers[1], "{http:?}: not pooled: {peers:?}");
            assert_ne!(
                peers[1], peers[2],
                "{http:?}: a connection idle past the timeout was used: {peers:?}"
            );
        }
        server
            .stop_within(&*self.runtime, crate::suite::CALL_LIMIT)
            .await;
    }

    /// With default settings, an HTTP/1.1 connection idle for 4.5 s is not used again: Node's
    /// servers (connect-node's) close idle keep-alive connections at 5 s, and a request sent while
    /// that close is on its way fails after it was written.
    pub async fn default_http1_pool_lets_go_before_node_servers_do(&self) {
        let router = self.router(connect_typed::ServerConfig::default());
        let server = self.call("starting a server", self.adapter.serve(router, Http::Http1));
        let server = server.await;
        let transport = self
            .adapter
            .transport_with_settings(TransportSettings::default());
        let client = client(self, transport, server.base(), Protocol::Connect);
        let first = self.call("a call", client.unary(&echo("one"))).await;
        let first = peer(&first.expect("a call"));
        self.sleep(Duration::from_millis(4500)).await;
        let second = self.call("a later call", client.unary(&echo("two"))).await;
        let second = peer(&second.expect("a call"));
        assert_ne!(
            first, second,
            "an HTTP/1.1 connection idle for 4.5 s was used again"
        );
        server
            .stop_within(&*self.runtime, crate::suite::CALL_LIMIT)
            .await;
    }
}
