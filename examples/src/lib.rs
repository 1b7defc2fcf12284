//! The service the examples serve: `demo.v1.GreetService`.

use connect_proto::rpc::{Context, HandlerStream, RequestView, Streaming};
use connect_proto::Status;
use futures_util::StreamExt;

/// Code generated from `proto/demo/v1/greet.proto` by connect-build.
#[allow(missing_docs, unreachable_pub)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/proto.rs"));
}

use proto::demo::v1::{GreetRequest, GreetResponse, GreetService};

/// Greets everybody.
#[derive(Clone, Copy, Debug, Default)]
pub struct Greeter;

fn greeting(text: String) -> GreetResponse {
    GreetResponse {
        greeting: text,
        ..Default::default()
    }
}

impl GreetService for Greeter {
    async fn greet(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<GreetResponse, Status> {
        let name = request.reborrow().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("name must not be empty"));
        }
        // connect-tokio's server puts a `PeerAddr` in each request; axum's `ConnectInfo` does the same
        // job when the router is mounted in axum.
        let extensions = ctx.extensions();
        let peer = extensions
            .get::<connect_tokio::PeerAddr>()
            .map(|p| p.0)
            .or_else(|| {
                extensions
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0)
            })
            .map_or_else(|| "somewhere".to_owned(), |addr| addr.to_string());
        Ok(greeting(format!(
            "Hello, {name}! ({:?} from {peer})",
            ctx.protocol()
        )))
    }

    async fn greet_many(
        &self,
        _ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<HandlerStream<GreetResponse>, Status> {
        let name = request.reborrow().name.to_owned();
        Ok(Box::pin(futures_util::stream::iter((1..=3).map(
            move |i| Ok(greeting(format!("Hello #{i}, {name}!"))),
        ))))
    }

    async fn greet_all(
        &self,
        _ctx: Context,
        mut requests: Streaming<GreetRequest>,
    ) -> Result<GreetResponse, Status> {
        let mut names = Vec::new();
        while let Some(request) = requests.next().await {
            names.push(request?.reborrow().name.to_owned());
        }
        Ok(greeting(format!("Hello, {}!", names.join(" and "))))
    }

    async fn chat(
        &self,
        _ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<HandlerStream<GreetResponse>, Status> {
        Ok(Box::pin(requests.map(|request| {
            request.map(|r| greeting(format!("Nice to meet you, {}.", r.reborrow().name)))
        })))
    }
}
