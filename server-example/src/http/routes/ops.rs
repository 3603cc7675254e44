//! Operators' endpoints: `/health` (the database, the store and the queue)
//! and `/metrics`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::App;
use crate::error::ServiceError;
use crate::metrics::{CONTENT_TYPE, Readings};

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(health))
}

#[derive(Serialize, ToSchema)]
pub struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// All three answered.
    ok: bool,
    database: Check,
    storage: Check,
    queue: Check,
}

fn check<T: Serialize, E: std::fmt::Display>(r: Result<T, E>) -> Check {
    match r {
        Ok(v) => Check { ok: true, detail: serde_json::to_value(v).ok().filter(|v| !v.is_null()), error: None },
        Err(e) => Check { ok: false, detail: None, error: Some(e.to_string()) },
    }
}

/// Whether the database, the object store and the queue answer.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, body = Health, description = "All answer"), (status = 503, body = Health, description = "One does not")))]
pub async fn health(State(app): AppState) -> Response {
    // The store's probe writes a file (or asks S3): done at most every few seconds.
    let (db, store, queue) = tokio::join!(app.db.ping(), app.media.check(), app.compute.queue.stats());
    let body = Health {
        ok: db.is_ok() && store.is_ok() && queue.is_ok(),
        database: check(db.map(|_| format!("{:?}", app.db.backend).to_lowercase())),
        storage: check(store),
        queue: check(queue),
    };
    let status = if body.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// The OpenMetrics exposition: this process's counters and histograms, and,
/// read now, the queue's depth and the jobs by status. On the API port
/// (`token_required`) only with `ops.metrics_token`; on the ops listener,
/// with the token when one is configured.
pub async fn metrics(app: &App, headers: &HeaderMap, token_required: bool) -> Response {
    match &app.cfg.ops.metrics_token {
        None if token_required => return ServiceError::not_found("route").into_response(),
        None => {}
        Some(expected) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim);
            // Digests compared, so the time taken says nothing about the token.
            use sha2::Digest;
            let digest = |t: &str| sha2::Sha256::digest(t.as_bytes());
            if given.is_none_or(|g| digest(g) != digest(expected)) {
                return ServiceError::unauthorized("metrics need Authorization: Bearer <ops.metrics_token>")
                    .into_response();
            }
        }
    }
    let queue = match app.compute.queue.stats().await {
        Ok(q) => Some((q.visible, q.in_flight, q.oldest_age_secs.unwrap_or(0.0))),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: queue stats unavailable");
            None
        }
    };
    let jobs = match crate::control::admin::jobs_by_status(&app.db).await {
        Ok(j) => Some(j),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: job counts unavailable");
            None
        }
    };
    let text = app.metrics.render(&Readings { queue, jobs });
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
