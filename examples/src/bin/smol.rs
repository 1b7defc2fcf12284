//! The demo on smol, with no tokio runtime: the same service and clients as `demo`, served and called
//! through connect-smol. Run it with `cargo run -p examples --bin smol`.

use connect_smol::{Server, SmolRuntime, SmolTransport};
use examples::proto::demo::v1::GreetServiceServer;
use examples::Greeter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        // One port serves all three protocols, over HTTP/1.1 and HTTP/2 (h2c).
        let router = connect_smol::router().service(GreetServiceServer::new(Greeter));
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await?;
        let server = Server::new(router).spawn(listener)?;
        let base: http::Uri = format!("http://{}", server.local_addr()).parse()?;
        println!("server listening on {base} (smol)");

        examples::tour(&base, SmolRuntime, |http2| {
            if http2 {
                SmolTransport::http2()
            } else {
                SmolTransport::new()
            }
        })
        .await?;

        server.shutdown().await;
        println!("\nserver shut down; bye");
        Ok(())
    })
}
