//! Operators' business: every user's jobs, refunds and goodwill grants
//! (each made exactly once), and the numbers of the service. Who is an
//! operator is [`super::auth::Auth::is_admin`]'s call.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::credits::{LedgerError, balance, insert_entry};
use super::jobs::{self, JOB_COLUMNS, JobRow};
use crate::db::Db;
use crate::error::{ServiceError, ServiceResult};

/// Which jobs to list.
#[derive(Debug, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    pub user: Option<String>,
    /// Created at or after (Unix milliseconds).
    pub since: Option<i64>,
    /// Created before (Unix milliseconds).
    pub until: Option<i64>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// Jobs of every user, newest first.
pub async fn list_jobs(db: &Db, f: &JobFilter) -> ServiceResult<Vec<JobRow>> {
    if let Some(s) = &f.status
        && !["queued", "running", "succeeded", "failed", "cancelled"].contains(&s.as_str())
    {
        return Err(ServiceError::unprocessable("invalid_filter", format!("no job status {s:?}")));
    }
    let limit = f.limit.unwrap_or(50).clamp(1, 200);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR user_id = $2) \
         AND created_at >= $3 AND created_at < $4 ORDER BY created_at DESC, id DESC LIMIT $5"
    )))
    .bind(&f.status)
    .bind(&f.user)
    .bind(f.since.unwrap_or(0))
    .bind(f.until.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(JobRow::from_row).collect::<sqlx::Result<_>>()?)
}

/// Jobs in the database with `status`.
pub async fn count_jobs(db: &Db, status: &str) -> sqlx::Result<i64> {
    sqlx::query("SELECT COUNT(*) FROM jobs WHERE status = $1").bind(status).fetch_one(&db.pool).await?.try_get(0)
}

/// What to give back: a job's debit, or a grant to a user under an idempotency key.
#[derive(Debug)]
pub enum Refund {
    Job(String),
    Grant { user: String, credits: i64, key: String },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundDone {
    pub user_id: String,
    pub credits: i64,
    /// The ledger entry's reference.
    pub reference: String,
    /// False when this refund had been made before (nothing changed).
    pub created: bool,
    pub balance: i64,
}

/// Gives credits back, exactly once per job or per idempotency key; `admin`
/// and `note` go to the log.
pub async fn refund(db: &Db, what: Refund, admin: &str, note: Option<&str>) -> ServiceResult<RefundDone> {
    let (user, credits, reference, reason, job_id) = match what {
        Refund::Job(job) => {
            let j = jobs::get(db, &job).await?.ok_or_else(|| ServiceError::not_found("job"))?;
            // The same reference as the automatic refund: a job is refunded once.
            (j.user_id, j.credits, format!("job:{job}:refund"), "job_refund", Some(job))
        }
        Refund::Grant { user, credits, key } => (user, credits, format!("admin:{key}"), "admin_grant", None),
    };
    let mut tx = db.pool.begin().await?;
    if let Some(job) = &job_id {
        let debited = sqlx::query("SELECT 1 FROM credit_ledger WHERE ref = $1")
            .bind(format!("job:{job}:debit"))
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !debited || credits <= 0 {
            return Err(ServiceError::conflict("not_debited", "this job was never charged"));
        }
    } else if sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(&user).fetch_optional(&mut *tx).await?.is_none() {
        return Err(ServiceError::not_found("user"));
    }
    let created = match insert_entry(&mut tx, &user, credits, reason, &reference, job_id.as_deref()).await {
        Ok(c) => c,
        Err(e @ LedgerError::Insufficient) => return Err(ServiceError::internal("a positive ledger entry", e)),
        Err(LedgerError::Db(e)) => return Err(e.into()),
    };
    if !created {
        let r = sqlx::query("SELECT user_id, delta FROM credit_ledger WHERE ref = $1")
            .bind(&reference)
            .fetch_one(&mut *tx)
            .await?;
        let (u, d): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
        if u != user || d != credits {
            return Err(ServiceError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different refund",
            ));
        }
    }
    tx.commit().await?;
    tracing::info!(admin = %admin, user = %user, credits, reference = %reference, created, note = ?note, "admin refund");
    let balance = balance(&db.pool, &user).await?;
    Ok(RefundDone { user_id: user, credits, reference, created, balance })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Window {
    pub jobs_created: i64,
    pub jobs_succeeded: i64,
    pub jobs_failed: i64,
    pub jobs_cancelled: i64,
    /// Seconds of audio in successful runs.
    pub audio_secs: f64,
    /// Worker seconds of all runs.
    pub wall_secs: f64,
    pub cpu_secs: f64,
    pub credits_purchased: i64,
    pub credits_debited: i64,
    pub credits_refunded: i64,
    pub new_users: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureCount {
    pub code: String,
    pub jobs: i64,
}

/// Jobs, usage and credits since `since` (Unix milliseconds).
pub async fn window(db: &Db, since: i64) -> sqlx::Result<Window> {
    let one = |sql: &'static str| {
        let pool = db.pool.clone();
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

/// All users.
pub async fn user_count(db: &Db) -> sqlx::Result<i64> {
    sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&db.pool).await?.try_get(0)
}

/// Failure codes of the jobs created since `since`, most frequent first.
pub async fn failures(db: &Db, since: i64) -> sqlx::Result<Vec<FailureCount>> {
    sqlx::query(
        "SELECT failure_code, COUNT(*) AS n FROM jobs WHERE status = 'failed' AND created_at >= $1 \
         AND failure_code IS NOT NULL GROUP BY failure_code ORDER BY n DESC, failure_code LIMIT 20",
    )
    .bind(since)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| Ok(FailureCount { code: r.try_get(0)?, jobs: r.try_get(1)? }))
    .collect()
}

/// Jobs in the database by status (for the scrape-time gauges).
pub async fn jobs_by_status(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all(&db.pool).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}
