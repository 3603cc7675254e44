//! Operators' endpoints (an [`Admin`] caller only; anyone else signed in
//! gets 403): every user's jobs, the queue, refunds and grants, and the
//! business numbers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::App;
use crate::compute::{Queue, QueueStats};
use crate::control::admin::{self, FailureCount, Refund, RefundDone, Window};
use crate::control::jobs::{self, JobView};
use crate::db::now_ms;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::http::extract::{Admin, JsonBody, QueryArgs};

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(queue))
        .routes(routes!(refund))
        .routes(routes!(metrics))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct JobFilter {
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    status: Option<String>,
    /// A user id.
    user: Option<String>,
    /// Created at or after (Unix milliseconds).
    since: Option<i64>,
    /// Created before (Unix milliseconds).
    until: Option<i64>,
    /// 1 to 200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AdminJob {
    user_id: String,
    #[serde(flatten)]
    job: JobView,
}

#[derive(Serialize, ToSchema)]
pub struct AdminJobs {
    /// Newest first.
    jobs: Vec<AdminJob>,
}

/// Jobs of every user, filtered.
#[utoipa::path(get, path = "/v1/admin/jobs", tag = "admin", security(("session" = [])), params(JobFilter),
    responses((status = 200, body = AdminJobs), (status = 403, body = crate::http::openapi::ErrorBody, description = "Not an admin"),
        (status = 422, body = crate::http::openapi::ErrorBody, description = "A bad filter")))]
async fn list_jobs(
    State(app): AppState,
    _: Admin,
    QueryArgs(f): QueryArgs<JobFilter>,
) -> ServiceResult<Json<AdminJobs>> {
    let filter = admin::JobFilter { status: f.status, user: f.user, since: f.since, until: f.until, limit: f.limit };
    let mut out = Vec::new();
    for row in admin::list_jobs(&app.db, &filter).await? {
        out.push(AdminJob { user_id: row.user_id.clone(), job: jobs::view(&app.db, &row).await? });
    }
    Ok(Json(AdminJobs { jobs: out }))
}

#[derive(Serialize, ToSchema)]
pub struct QueueView {
    /// `database` or `sqs`.
    backend: String,
    #[serde(flatten)]
    stats: QueueStats,
    /// Jobs waiting or running, from the database (which the queue's
    /// messages should match).
    jobs_queued: i64,
    jobs_running: i64,
}

/// The queue's depth, its messages in flight and the oldest one's age.
#[utoipa::path(get, path = "/v1/admin/queue", tag = "admin", security(("session" = [])),
    responses((status = 200, body = QueueView), (status = 403, body = crate::http::openapi::ErrorBody, description = "Not an admin"),
        (status = 503, body = crate::http::openapi::ErrorBody, description = "The queue did not answer")))]
async fn queue(State(app): AppState, _: Admin) -> ServiceResult<Json<QueueView>> {
    let q = &app.compute.queue;
    let stats = q.stats().await.map_err(|e| {
        tracing::error!(error = %e, "queue stats");
        ServiceError::new(ErrorKind::Unavailable, "queue_unavailable", "the queue did not answer")
    })?;
    let backend = match q {
        Queue::Database(_) => "database",
        Queue::Sqs(_) => "sqs",
    };
    Ok(Json(QueueView {
        backend: backend.into(),
        stats,
        jobs_queued: admin::count_jobs(&app.db, "queued").await?,
        jobs_running: admin::count_jobs(&app.db, "running").await?,
    }))
}

/// Either a job's refund (its debit given back, once, whoever asks) or a
/// goodwill grant to a user under the request's `Idempotency-Key`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    /// Refund this job's debit.
    job_id: Option<String>,
    /// Or grant `credits` to this user.
    user_id: Option<String>,
    credits: Option<i64>,
    /// Why, for the ledger's readers.
    note: Option<String>,
}

/// Gives credits back, exactly once per job or per `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/admin/refunds", tag = "admin", security(("session" = [])), request_body = RefundRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Required for a grant to a user")),
    responses((status = 201, body = RefundDone), (status = 200, body = RefundDone, description = "Made before"),
        (status = 403, body = crate::http::openapi::ErrorBody, description = "Not an admin"),
        (status = 404, body = crate::http::openapi::ErrorBody, description = "No such job or user"),
        (status = 409, body = crate::http::openapi::ErrorBody, description = "The job was never debited, or the key was used otherwise")))]
async fn refund(
    State(app): AppState,
    Admin(admin): Admin,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RefundRequest>,
) -> ServiceResult<(StatusCode, Json<RefundDone>)> {
    let what = match (req.job_id, req.user_id, req.credits) {
        (Some(job), None, None) => Refund::Job(job),
        (None, Some(user), Some(credits)) if (1..=1_000_000).contains(&credits) => {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .filter(|k| (1..=255).contains(&k.len()))
                .ok_or_else(|| {
                    ServiceError::bad_request("idempotency_key_required", "a grant needs an Idempotency-Key header")
                })?;
            Refund::Grant { user, credits, key: key.to_string() }
        }
        _ => {
            return Err(ServiceError::unprocessable(
                "invalid_request",
                "give a job_id, or a user_id with credits from 1 to 1000000",
            ));
        }
    };
    let done = admin::refund(&app.db, what, &admin.email, req.note.as_deref()).await?;
    let status = if done.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(done)))
}

#[derive(Serialize, ToSchema)]
pub struct AdminMetrics {
    users: i64,
    last_24h: Window,
    all_time: Window,
    queue: Option<QueueStats>,
    /// Failure codes of the last 24 hours, most frequent first.
    failures_24h: Vec<FailureCount>,
}

/// Business numbers: jobs, usage and credits over the last day and all time.
#[utoipa::path(get, path = "/v1/admin/metrics", tag = "admin", security(("session" = [])),
    responses((status = 200, body = AdminMetrics), (status = 403, body = crate::http::openapi::ErrorBody, description = "Not an admin")))]
async fn metrics(State(app): AppState, _: Admin) -> ServiceResult<Json<AdminMetrics>> {
    let day_ago = now_ms() - 24 * 3600 * 1000;
    Ok(Json(AdminMetrics {
        users: admin::user_count(&app.db).await?,
        last_24h: admin::window(&app.db, day_ago).await?,
        all_time: admin::window(&app.db, 0).await?,
        queue: app.compute.queue.stats().await.ok(),
        failures_24h: admin::failures(&app.db, day_ago).await?,
    }))
}
