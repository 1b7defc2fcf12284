//! Mounting a router in axum (feature `axum`).

use connect_typed::Router;

use crate::ConnectService;

/// An axum router serving every path of `router`; merge or nest it into an application:
/// `app.merge(connect_tokio::axum_router(&router))`.
pub fn axum_router<S: Clone + Send + Sync + 'static>(router: &Router) -> axum::Router<S> {
    let service = ConnectService::new(router.clone());
    router
        .paths()
        .into_iter()
        .fold(axum::Router::new(), |app, path| {
            app.route_service(path, service.clone())
        })
}
