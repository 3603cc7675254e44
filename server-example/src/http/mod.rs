//! The HTTP API (v1) over the three planes. Bytes never pass through it,
//! except for the local-disk store's own signed URLs under `/storage/o/`.
//!
//! - `routes/`: the handlers, one module per resource;
//! - [`extract`]: typed bodies, queries, the caller and the operator;
//! - `middleware`: request ids, the session check, rate limits, metrics,
//!   one error format and the security headers;
//! - [`ratelimit`], [`openapi`], [`error`] (errors as answers), the web UI,
//!   and the local store's object URLs.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::App;
use crate::error::ServiceError;
use crate::media::Store;

pub mod error;
pub mod extract;
mod middleware;
mod objects;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
mod web;

use ratelimit::RateLimits;

/// The API's routes with their OpenAPI description, before state and layers.
pub fn api_routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::ops::routes())
        .merge(routes::session::routes())
        .merge(routes::library::routes())
        .merge(routes::uploads::routes())
        .merge(routes::jobs::routes())
        .merge(routes::billing::routes())
        .merge(routes::admin::routes())
}

/// The OpenAPI document of [`api_routes`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(api_routes().into_openapi())
}

/// Health and metrics alone, for the ops listener.
pub fn ops_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(routes::ops::health))
        .route(
            "/metrics",
            get(|State(app): State<Arc<App>>, headers: HeaderMap| async move {
                routes::ops::metrics(&app, &headers, false).await
            }),
        )
        .layer(axum::middleware::from_fn(middleware::finish))
        .with_state(app)
}

/// The whole API: the routes, the OpenAPI document, `/metrics` (with a
/// token), the web UI and, for the local store, its object URLs; with this
/// router's own rate limiters.
pub fn router(app: Arc<App>) -> Router {
    let (api, doc) = api_routes().split_for_parts();
    let doc = Arc::new(openapi::finish(doc));
    let mut r = api
        .route("/v1/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .route(
            "/metrics",
            get(|State(app): State<Arc<App>>, headers: HeaderMap| async move {
                routes::ops::metrics(&app, &headers, true).await
            }),
        )
        .merge(web::router(&app))
        .layer(DefaultBodyLimit::max(app.cfg.limits.max_body_bytes));
    if let Store::Local(_) = app.media.store {
        let limit = app.cfg.limits.part_size as usize + 64 * 1024;
        r = r.merge(objects::router().layer(DefaultBodyLimit::max(limit)));
    }
    let rate = Arc::new(RateLimits::new(app.cfg.limits.rate_per_ip, app.cfg.limits.rate_per_user));
    r.fallback(|| async { ServiceError::not_found("route") })
        .layer(axum::middleware::from_fn_with_state((app.clone(), rate), middleware::around))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(middleware::drop_unusable_request_id))
        .layer(axum::middleware::from_fn(middleware::finish))
        .with_state(app)
}

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(app).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

/// Serves only `/health` and `/metrics` (a worker-only process's).
pub async fn serve_ops(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, ops_router(app))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}
