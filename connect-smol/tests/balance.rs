//! A client over three smol servers with `connect_hyper::Balanced`: calls spread over all of them;
//! one server stopped mid-run, calls keep succeeding on the others; restarted on the same port, it
//! gets calls again. And the property the restart needs: a listener rebinds a port whose last
//! connections the server closed (they wait in TIME_WAIT).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use connect_hyper::{BalanceSettings, Balanced, ServerRuntime};
use connect_smol::{Server, ServerHandle, SmolRuntime, SmolTransport};
use connect_testkit::proto::testkit::v1::{EchoRequest, EchoServiceClient};
use connect_testkit::{bounded, Suite};
use connect_typed::{ClientConfig, Codec, Protocol, ServerConfig};
use smol::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(10);

/// One server of the fleet, with the suite whose tracker sees the calls it served.
struct Member {
    suite: Suite<common::Smol>,
    addr: SocketAddr,
    running: Option<ServerHandle>,
}

impl Member {
    async fn start(addr: SocketAddr) -> Member {
        let mut member = Member {
            suite: Suite::new(common::Smol::default()),
            addr,
            running: None,
        };
        member.restart().await;
        member
    }

    /// Serves on its address again (the first time, on a free port), through the server's own
    /// `bind`.
    async fn restart(&mut self) {
        let listener = SmolRuntime::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("rebinding {}: {e}", self.addr));
        let router = self.suite.router(ServerConfig::default());
        let handle = Server::new(router).spawn(listener).unwrap();
        self.addr = handle.local_addr();
        self.running = Some(handle);
    }

    /// Stops: the listener closes and the connections (idle between calls) close at once.
    /// (connect-smol's connections run on smol's global executor, so a server cannot be killed
    /// with its runtime as connect-tokio's test does.)
    async fn stop(&mut self) {
        if let Some(handle) = self.running.take() {
            bounded(&SmolRuntime, LIMIT, "stopping a server", handle.shutdown()).await;
        }
    }

    fn served(&self, tag: &str) -> bool {
        self.suite.tracker().get(tag).started
    }
}

/// Calls tagged `{round}-{i}`; which member served each, and whether an endpoint was seen left out
/// after any of them (an ejection lasts at most 300 ms here, which a slow round can outlast).
async fn round(
    client: &EchoServiceClient<Balanced<SmolTransport>>,
    balanced: &Balanced<SmolTransport>,
    fleet: &[Member],
    round: &str,
    calls: usize,
) -> ([usize; 3], bool) {
    let mut served = [0; 3];
    let mut ejected = false;
    for i in 0..calls {
        let tag = format!("{round}-{i}");
        let request = EchoRequest {
            text: "balanced".into(),
            tag: tag.clone(),
            ..Default::default()
        };
        let response = bounded(&SmolRuntime, LIMIT, "a call", client.unary(&request)).await;
        let response = response.unwrap_or_else(|e| panic!("{round}: call {i} failed: {e}"));
        assert_eq!(response.message().text, "balanced");
        let member = fleet.iter().position(|m| m.served(&tag));
        served[member.expect("a member served the call")] += 1;
        ejected |= balanced.endpoints().iter().any(|(_, ready)| !ready);
    }
    (served, ejected)
}

#[test]
fn calls_survive_a_stopped_server_and_return_to_a_restarted_one() {
    smol::block_on(async {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut fleet = vec![
            Member::start(any).await,
            Member::start(any).await,
            Member::start(any).await,
        ];
        let endpoints = fleet
            .iter()
            .map(|m| format!("http://{}", m.addr).parse().unwrap());
        let mut settings = BalanceSettings::default();
        settings.ejection = Duration::from_millis(100);
        settings.max_ejection = Duration::from_millis(300);
        let balanced = Balanced::new(SmolTransport::http2(), endpoints, settings).unwrap();
        let client = EchoServiceClient::new(connect_smol::Client::new(
            balanced.clone(),
            "http://echo.service".parse().unwrap(),
            ClientConfig::new(Protocol::Grpc, Codec::Proto),
            SmolRuntime,
        ));

        let (before, _) = round(&client, &balanced, &fleet, "before", 90).await;
        assert!(before.iter().all(|&n| n >= 10), "calls spread: {before:?}");

        fleet[1].stop().await;
        // Let the client's connection notice the close.
        smol::Timer::after(Duration::from_millis(100)).await;
        let (stopped, ejected) = round(&client, &balanced, &fleet, "stopped", 60).await;
        assert_eq!(stopped[1], 0, "a stopped server served calls: {stopped:?}");
        assert!(ejected, "the dead endpoint was never ejected");

        fleet[1].restart().await;
        // Past the longest ejection, the restarted server is tried again and gets its share.
        smol::Timer::after(Duration::from_millis(400)).await;
        let (restarted, _) = round(&client, &balanced, &fleet, "restarted", 90).await;
        assert!(
            restarted[1] >= 10,
            "the restarted server got no share: {restarted:?}"
        );

        for member in &mut fleet {
            member.stop().await;
        }
    });
}

/// The server closes a connection first, so the connection waits in TIME_WAIT on the server's
/// side; a new listener still binds the port at once (`SO_REUSEADDR`, which std sets on Unix and
/// `SmolRuntime::bind` keeps).
#[test]
fn a_port_whose_connections_the_server_closed_can_be_bound_again() {
    smol::block_on(async {
        let listener = SmolRuntime::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = SmolRuntime::local_addr(&listener).unwrap();
        let mut client = smol::net::TcpStream::connect(addr).await.unwrap();
        let (mut accepted, _) = SmolRuntime::accept(&listener).await.unwrap();
        accepted.write_all(b"bye").await.unwrap();
        // The server's side closes first...
        drop(accepted);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        drop(client);
        drop(listener);
        // ...and its port is bound again while that connection waits in TIME_WAIT.
        let again = SmolRuntime::bind(addr).await;
        assert!(again.is_ok(), "rebinding {addr}: {:?}", again.err());
    });
}
