//! A client over three servers with `connect_hyper::Balanced`: calls spread over all of them; one
//! server killed mid-run, calls keep succeeding on the others; restarted on its address, it gets
//! calls again.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use connect_hyper::{BalanceSettings, Balanced};
use connect_testkit::proto::testkit::v1::{EchoRequest, EchoServiceClient};
use connect_testkit::Suite;
use connect_tokio::{HyperTransport, Server, ServerHandle, TokioRuntime};
use connect_typed::{ClientConfig, Codec, Protocol, ServerConfig};

/// One server of the fleet, on a runtime of its own (so that killing it ends its connections too,
/// as a crashed process would), with the suite whose tracker sees the calls it served.
struct Member {
    suite: Suite<common::Tokio>,
    addr: SocketAddr,
    running: Option<(tokio::runtime::Runtime, ServerHandle)>,
}

impl Member {
    async fn start(addr: SocketAddr) -> Member {
        let suite = Suite::new(common::Tokio::default());
        let mut member = Member {
            suite,
            addr,
            running: None,
        };
        member.restart().await;
        member
    }

    /// Serves on its address again (the first time, on a free port).
    async fn restart(&mut self) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (router, addr) = (self.suite.router(ServerConfig::default()), self.addr);
        let (started, handle) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let listener = loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(listener) => break listener,
                    // The killed server's port may take a moment to be free.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            let _ = started.send(Server::new(router).spawn(listener).unwrap());
        });
        let handle = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the server starts")
            .unwrap();
        self.addr = handle.local_addr();
        self.running = Some((runtime, handle));
    }

    /// Stops at once with its connections, as a crashed process would.
    fn kill(&mut self) {
        if let Some((runtime, handle)) = self.running.take() {
            runtime.shutdown_background();
            drop(handle);
        }
    }

    fn served(&self, tag: &str) -> bool {
        self.suite.tracker().get(tag).started
    }
}

/// Calls tagged `{round}-{i}`; which member served each, and whether an endpoint was seen left out
/// after any of them (an ejection lasts at most 300 ms here, which a slow round can outlast).
async fn round(
    client: &EchoServiceClient<Balanced<HyperTransport>>,
    balanced: &Balanced<HyperTransport>,
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
        let response = tokio::time::timeout(Duration::from_secs(10), client.unary(&request))
            .await
            .expect("a call within 10 s");
        let response = response.unwrap_or_else(|e| panic!("{round}: call {i} failed: {e}"));
        assert_eq!(response.message().text, "balanced");
        let member = fleet.iter().position(|m| m.served(&tag));
        served[member.expect("a member served the call")] += 1;
        ejected |= balanced.endpoints().iter().any(|(_, ready)| !ready);
    }
    (served, ejected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_survive_a_killed_server_and_return_to_a_restarted_one() {
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
    let balanced = Balanced::new(HyperTransport::http2(), endpoints, settings).unwrap();
    let client = EchoServiceClient::new(connect_tokio::Client::new(
        balanced.clone(),
        "http://echo.service".parse().unwrap(),
        ClientConfig::new(Protocol::Grpc, Codec::Proto),
        TokioRuntime,
    ));

    let (before, _) = round(&client, &balanced, &fleet, "before", 90).await;
    assert!(before.iter().all(|&n| n >= 10), "calls spread: {before:?}");

    fleet[1].kill();
    // Let the client's connection notice the close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (killed, ejected) = round(&client, &balanced, &fleet, "killed", 60).await;
    assert_eq!(killed[1], 0, "a killed server served calls: {killed:?}");
    assert!(ejected, "the dead endpoint was never ejected");

    fleet[1].restart().await;
    // Past the longest ejection, the restarted server is tried again and gets its share.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (restarted, _) = round(&client, &balanced, &fleet, "restarted", 90).await;
    assert!(
        restarted[1] >= 10,
        "the restarted server got no share: {restarted:?}"
    );

    for member in &mut fleet {
        member.kill();
    }
}

/// A DNS name (`localhost`) resolves to the server's address; calls reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_name_is_resolved_to_its_servers() {
    let member = Member::start("127.0.0.1:0".parse().unwrap()).await;
    let name = format!("http://localhost:{}", member.addr.port())
        .parse()
        .unwrap();
    let balanced =
        connect_tokio::balanced_dns(HyperTransport::http2(), &name, BalanceSettings::default())
            .unwrap();
    let client = EchoServiceClient::new(connect_tokio::Client::new(
        balanced.clone(),
        "http://echo.service".parse().unwrap(),
        ClientConfig::new(Protocol::Grpc, Codec::Proto),
        TokioRuntime,
    ));
    let fleet = [member];
    let (served, _) = round(&client, &balanced, &fleet, "dns", 3).await;
    assert_eq!(served[0], 3);
    assert!(
        balanced
            .endpoints()
            .iter()
            .any(|(authority, _)| authority.starts_with("127.0.0.1:")),
        "{:?}",
        balanced.endpoints()
    );
    let [mut member] = fleet;
    member.kill();
}
