//! Operators' endpoints. A caller is an admin when the session carries the
//! admin claim and its e-mail address is still on `auth.admin_emails`;
//! anyone else signed in gets 403.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::App;
use crate::api::{JsonBody, QueryArgs};
use crate::auth::AuthUser;
use crate::credits::{LedgerError, insert_entry};
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, JobView};
use crate::queue::QueueStats;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(queue))
        .routes(routes!(refund))
        .routes(routes!(metrics))
}

/// A signed-in admin.
pub struct Admin(pub AuthUser);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, app).await?;
        if !app.auth.is_admin(&user) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "operators only"));
        }
        Ok(Admin(user))
    }
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
    responses((status = 200, body = AdminJobs), (status = 403, body = crate::openapi::ErrorBody, description = "Not an admin"),
        (status = 422, body = crate::openapi::ErrorBody, description = "A bad filter")))]
async fn list_jobs(
    State(app): State<Arc<App>>,
    _: Admin,
    QueryArgs(f): QueryArgs<JobFilter>,
) -> ApiResult<Json<AdminJobs>> {
    if let Some(s) = &f.status
        && !["queued", "running", "succeeded", "failed", "cancelled"].contains(&s.as_str())
    {
        return Err(ApiError::unprocessable("invalid_filter", format!("no job status {s:?}")));
    }
    let limit = f.limit.unwrap_or(50).clamp(1, 200);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR user_id = $2) \
         AND created_at >= $3 AND created_at < $4 ORDER BY created_at DESC, id DESC LIMIT $5",
        jobs::JOB_COLUMNS
    )))
    .bind(&f.status)
    .bind(&f.user)
    .bind(f.since.unwrap_or(0))
    .bind(f.until.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&app.db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let row = jobs::JobRow::from_row(r)?;
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
    responses((status = 200, body = QueueView), (status = 403, body = crate::openapi::ErrorBody, description = "Not an admin"),
        (status = 503, body = crate::openapi::ErrorBody, description = "The queue did not answer")))]
async fn queue(State(app): State<Arc<App>>, _: Admin) -> ApiResult<Json<QueueView>> {
    let stats = app.queue.stats().await.map_err(|e| {
        tracing::error!(error = %e, "queue stats");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable", "the queue did not answer")
    })?;
    let count = |status: &'static str| {
        let pool = app.db.pool.clone();
        async move {
            sqlx::query("SELECT COUNT(*) FROM jobs WHERE status = $1")
                .bind(status)
                .fetch_one(&pool)
                .await
                .and_then(|r| r.try_get::<i64, _>(0))
        }
    };
    let backend = match app.queue {
        crate::queue::Queue::Database(_) => "database",
        crate::queue::Queue::Sqs(_) => "sqs",
    };
    Ok(Json(QueueView {
        backend: backend.into(),
        stats,
        jobs_queued: count("queued").await?,
        jobs_running: count("running").await?,
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

#[derive(Serialize, ToSchema)]
pub struct RefundDone {
    user_id: String,
    credits: i64,
    /// The ledger entry's reference.
    reference: String,
    /// False when this refund had been made before (nothing changed).
    created: bool,
    balance: i64,
}

/// Gives credits back, exactly once per job or per `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/admin/refunds", tag = "admin", security(("session" = [])), request_body = RefundRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Required for a grant to a user")),
    responses((status = 201, body = RefundDone), (status = 200, body = RefundDone, description = "Made before"),
        (status = 403, body = crate::openapi::ErrorBody, description = "Not an admin"),
        (status = 404, body = crate::openapi::ErrorBody, description = "No such job or user"),
        (status = 409, body = crate::openapi::ErrorBody, description = "The job was never debited, or the key was used otherwise")))]
async fn refund(
    State(app): State<Arc<App>>,
    Admin(admin): Admin,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RefundRequest>,
) -> ApiResult<(StatusCode, Json<RefundDone>)> {
    let (user, credits, reference, reason, job_id) = match (&req.job_id, &req.user_id, req.credits) {
        (Some(job), None, None) => {
            let j = jobs::get(&app.db, job).await?.ok_or_else(|| ApiError::not_found("job"))?;
            // The same reference as the automatic refund: a job is refunded once.
            (j.user_id, j.credits, format!("job:{job}:refund"), "job_refund", Some(job.clone()))
        }
        (None, Some(user), Some(credits)) if (1..=1_000_000).contains(&credits) => {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .filter(|k| (1..=255).contains(&k.len()))
                .ok_or_else(|| {
                    ApiError::bad_request("idempotency_key_required", "a grant needs an Idempotency-Key header")
                })?;
            (user.clone(), credits, format!("admin:{key}"), "admin_grant", None)
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "give a job_id, or a user_id with credits from 1 to 1000000",
            ));
        }
    };
    let mut tx = app.db.pool.begin().await?;
    if job_id.is_some() {
        let debited = sqlx::query("SELECT 1 FROM credit_ledger WHERE ref = $1")
            .bind(format!("job:{}:debit", job_id.as_deref().unwrap_or_default()))
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !debited || credits <= 0 {
            return Err(ApiError::conflict("not_debited", "this job was never charged"));
        }
    } else if sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(&user).fetch_optional(&mut *tx).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let created = match insert_entry(&mut tx, &user, credits, reason, &reference, job_id.as_deref()).await {
        Ok(c) => c,
        Err(e @ LedgerError::Insufficient) => return Err(ApiError::internal("a positive ledger entry", e)),
        Err(LedgerError::Db(e)) => return Err(e.into()),
    };
    if !created {
        let r = sqlx::query("SELECT user_id, delta FROM credit_ledger WHERE ref = $1")
            .bind(&reference)
            .fetch_one(&mut *tx)
            .await?;
        let (u, d): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
        if u != user || d != credits {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different refund",
            ));
        }
    }
    tx.commit().await?;
    tracing::info!(admin = %admin.email, user = %user, credits, reference = %reference, created, note = ?req.note, "admin refund");
    let balance = crate::credits::balance(&app.db.pool, &user).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(RefundDone { user_id: user, credits, reference, created, balance })))
}

#[derive(Serialize, ToSchema)]
pub struct Window {
    jobs_created: i64,
    jobs_succeeded: i64,
    jobs_failed: i64,
    jobs_cancelled: i64,
    /// Seconds of audio in successful runs.
    audio_secs: f64,
    /// Worker seconds of all runs.
    wall_secs: f64,
    cpu_secs: f64,
    credits_purchased: i64,
    credits_debited: i64,
    credits_refunded: i64,
    new_users: i64,
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

#[derive(Serialize, ToSchema)]
pub struct FailureCount {
    code: String,
    jobs: i64,
}

async fn window(app: &App, since: i64) -> sqlx::Result<Window> {
    let one = |sql: &'static str| {
        let pool = app.db.pool.clone();
        async move { sqlx::query(sql).bind(since).fetch_one(&pool).await }
    };
    let jobs = one("SELECT COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM jobs WHERE created_at >= $1")
    .await?;
    let usage = one(
        "SELECT CAST(COALESCE(SUM(CASE WHEN outcome = 'succeeded' THEN audio_secs ELSE 0 END), 0) AS DOUBLE PRECISION), \
         CAST(COALESCE(SUM(wall_secs), 0) AS DOUBLE PRECISION), CAST(COALESCE(SUM(cpu_secs), 0) AS DOUBLE PRECISION) \
         FROM usage_logs WHERE created_at >= $1",
    )
    .await?;
    let ledger = one("SELECT CAST(COALESCE(SUM(CASE WHEN reason = 'purchase' THEN delta ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN reason = 'job_debit' THEN -delta ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN reason = 'job_refund' THEN delta ELSE 0 END), 0) AS BIGINT) \
         FROM credit_ledger WHERE created_at >= $1")
    .await?;
    let users = one("SELECT COUNT(*) FROM users WHERE created_at >= $1").await?;
    Ok(Window {
        jobs_created: jobs.try_get(0)?,
        jobs_succeeded: jobs.try_get(1)?,
        jobs_failed: jobs.try_get(2)?,
        jobs_cancelled: jobs.try_get(3)?,
        audio_secs: usage.try_get(0)?,
        wall_secs: usage.try_get(1)?,
        cpu_secs: usage.try_get(2)?,
        credits_purchased: ledger.try_get(0)?,
        credits_debited: ledger.try_get(1)?,
        credits_refunded: ledger.try_get(2)?,
        new_users: users.try_get(0)?,
    })
}

/// Business numbers: jobs, usage and credits over the last day and all time.
#[utoipa::path(get, path = "/v1/admin/metrics", tag = "admin", security(("session" = [])),
    responses((status = 200, body = AdminMetrics), (status = 403, body = crate::openapi::ErrorBody, description = "Not an admin")))]
async fn metrics(State(app): State<Arc<App>>, _: Admin) -> ApiResult<Json<AdminMetrics>> {
    let day_ago = now_ms() - 24 * 3600 * 1000;
    let users: i64 = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&app.db.pool).await?.try_get(0)?;
    let failures = sqlx::query(
        "SELECT failure_code, COUNT(*) AS n FROM jobs WHERE status = 'failed' AND created_at >= $1 \
         AND failure_code IS NOT NULL GROUP BY failure_code ORDER BY n DESC, failure_code LIMIT 20",
    )
    .bind(day_ago)
    .fetch_all(&app.db.pool)
    .await?
    .iter()
    .map(|r| Ok(FailureCount { code: r.try_get(0)?, jobs: r.try_get(1)? }))
    .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Json(AdminMetrics {
        users,
        last_24h: window(&app, day_ago).await?,
        all_time: window(&app, 0).await?,
        queue: app.queue.stats().await.ok(),
        failures_24h: failures,
    }))
}
