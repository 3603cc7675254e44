//! Separation jobs as records: creation (credits debited and the row inserted
//! in one transaction; the caller sends the message after commit), their state
//! machine, and the JSON clients see. Every move to a terminal state is one conditional UPDATE,
//! so a job ends exactly once however many workers or requests race for it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use splitsound_core::{QueryMode, StemSelection};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::catalog::Catalog;
use super::credits::{LedgerError, insert_entry, job_cost, refund_job};
use crate::db::{ACTIVE_JOB_STATUSES as ACTIVE, Db, new_sorted_id, now_ms};
use crate::error::{ErrorKind, ServiceError, ServiceResult};

/// The body of `POST /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub asset_id: String,
    /// The sound to isolate or remove, in words ("the vocals", "remove the drums").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Or stems by name; neither: every stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stems: Option<Vec<String>>,
    /// `builtin:hpss`, `builtin:center`, `builtin:repet` or a configured model's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub options: JobOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JobOptions {
    /// `wav` (default) or `flac`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// 16 (default), 24, or 32 (float WAV).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    /// Neural models: overlap of segments and shifts (the model's defaults when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlap: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shifts: Option<u32>,
}

/// What the worker runs, frozen when the job is created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobConfig {
    pub request: JobRequest,
    pub separator: String,
    pub selection: StemSelection,
    pub format: String,
    pub bits: u32,
    /// For a description: the stems it resolved to and whether to isolate or remove them.
    pub targets: Option<Vec<String>>,
    pub mode: Option<QueryMode>,
    /// For a text-prompted separator: the sound it separates (the description
    /// without "remove", "just", …); its stems are `target` and `residual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Checks `req` against the separators this deployment offers.
pub fn resolve(catalog: &Catalog, req: &JobRequest) -> ServiceResult<JobConfig> {
    let separator = req.model.clone().unwrap_or_else(|| catalog.default_separator.clone());
    let stems = catalog.models.get(&separator).ok_or_else(|| {
        let names: Vec<&str> = catalog.models.keys().map(String::as_str).collect();
        ServiceError::unprocessable("unknown_model", format!("no model {separator:?}; available: {}", names.join(", ")))
    })?;
    let mut separator = separator;
    let mut text = None;
    // Core refuses what no text-prompted model would take (too long, say).
    let text_query = |d: &str| {
        splitsound_core::text_query(d)
            .map_err(|e| ServiceError::unprocessable("description_not_understood", e.to_string()))
    };
    let (selection, targets, mode) = match (&req.description, &req.stems) {
        (Some(_), Some(_)) => {
            return Err(ServiceError::unprocessable("invalid_request", "give a description or stems, not both"));
        }
        // A text-prompted model: the description is its input.
        (Some(d), None) if catalog.text_models.contains(&separator) => {
            let t = text_query(d)?;
            text = Some(t.description);
            (StemSelection::All, None, Some(t.mode))
        }
        (Some(d), None) => match splitsound_core::plan_query(d, stems, catalog.text_model.is_some()) {
            Ok(splitsound_core::QueryPlan::Stems(res)) => {
                (StemSelection::Query(d.clone()), Some(res.targets), Some(res.mode))
            }
            // No stem of the model is described: the deployment's text-prompted model separates it.
            Ok(splitsound_core::QueryPlan::Text(_)) => {
                let t = text_query(d)?;
                separator = catalog.text_model.clone().expect("planned with a text model");
                text = Some(t.description);
                (StemSelection::All, None, Some(t.mode))
            }
            Err(e) => return Err(ServiceError::unprocessable("description_not_understood", e.to_string())),
        },
        (None, _) if catalog.text_models.contains(&separator) => {
            return Err(ServiceError::unprocessable(
                "description_required",
                format!("{separator} is text-prompted: describe the sound to separate"),
            ));
        }
        (None, Some(names)) => {
            splitsound_core::check_names(names, stems)
                .map_err(|e| ServiceError::unprocessable("unknown_stem", e.to_string()))?;
            (StemSelection::Stems(names.clone()), None, None)
        }
        (None, None) => (StemSelection::All, None, None),
    };
    let format = req.options.format.clone().unwrap_or_else(|| "wav".into());
    let bits = req.options.bits.unwrap_or(16);
    let write = write_options(&format, bits).map_err(|m| ServiceError::unprocessable("invalid_options", m))?;
    write.validate().map_err(|e| ServiceError::unprocessable("invalid_options", e.to_string()))?;
    if let Some(o) = req.options.overlap
        && !(0.0..1.0).contains(&o)
    {
        return Err(ServiceError::unprocessable("invalid_options", "overlap must be in [0, 1)"));
    }
    if req.options.shifts.is_some_and(|s| s > 10) {
        return Err(ServiceError::unprocessable("invalid_options", "shifts must be at most 10"));
    }
    Ok(JobConfig { request: req.clone(), separator, selection, format, bits, targets, mode, text })
}

pub fn write_options(format: &str, bits: u32) -> Result<splitsound_core::WriteOptions, String> {
    let format: splitsound_core::OutputFormat = format.parse().map_err(|e: splitsound_core::Error| e.to_string())?;
    let encoding = splitsound_core::SampleEncoding::from_bits(bits).map_err(|e| e.to_string())?;
    Ok(splitsound_core::WriteOptions { format, encoding, ..Default::default() })
}

fn request_hash(req: &JobRequest) -> String {
    // serde_json's maps are ordered, so equal requests serialise equally.
    hex::encode(Sha256::digest(serde_json::to_vec(req).unwrap_or_default()))
}

/// A job row as read from the database.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub user_id: String,
    pub asset_id: String,
    pub status: String,
    pub stage: String,
    pub progress: f64,
    pub config: String,
    pub request_hash: String,
    pub attempt: i64,
    pub parent_job_id: Option<String>,
    pub credits: i64,
    pub cancel_requested: bool,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub runs_on: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

pub const JOB_COLUMNS: &str = "id, user_id, asset_id, status, stage, progress, config, request_hash, attempt, \
     parent_job_id, credits, cancel_requested, failure_code, failure_message, runs_on, created_at, started_at, finished_at";

impl JobRow {
    pub fn from_row(r: &AnyRow) -> sqlx::Result<JobRow> {
        Ok(JobRow {
            id: r.try_get(0)?,
            user_id: r.try_get(1)?,
            asset_id: r.try_get(2)?,
            status: r.try_get(3)?,
            stage: r.try_get(4)?,
            progress: r.try_get(5)?,
            config: r.try_get(6)?,
            request_hash: r.try_get(7)?,
            attempt: r.try_get(8)?,
            parent_job_id: r.try_get(9)?,
            credits: r.try_get(10)?,
            cancel_requested: r.try_get::<i64, _>(11)? != 0,
            failure_code: r.try_get(12)?,
            failure_message: r.try_get(13)?,
            runs_on: r.try_get(14)?,
            created_at: r.try_get(15)?,
            started_at: r.try_get(16)?,
            finished_at: r.try_get(17)?,
        })
    }

    pub fn config(&self) -> Result<JobConfig, serde_json::Error> {
        serde_json::from_str(&self.config)
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

pub async fn get(db: &Db, id: &str) -> sqlx::Result<Option<JobRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(JobRow::from_row).transpose()
}

/// The job if `user` owns it; another user's job is "not found", never "forbidden".
pub async fn get_owned(db: &Db, user: &str, id: &str) -> ServiceResult<JobRow> {
    match get(db, id).await? {
        Some(j) if j.user_id == user => Ok(j),
        _ => Err(ServiceError::not_found("job")),
    }
}

/// A stem file of a finished job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Output {
    pub stem: String,
    #[serde(skip)]
    pub object_key: String,
    pub content_type: String,
    pub size: i64,
}

pub async fn outputs(db: &Db, job: &str) -> sqlx::Result<Vec<Output>> {
    let rows = sqlx::query(
        "SELECT stem, object_key, content_type, size FROM output_tracks WHERE job_id = $1 AND deleted_at IS NULL ORDER BY created_at, stem",
    )
    .bind(job)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Output {
                stem: r.try_get(0)?,
                object_key: r.try_get(1)?,
                content_type: r.try_get(2)?,
                size: r.try_get(3)?,
            })
        })
        .collect()
}

/// Whether any of the job's stems was deleted.
pub async fn outputs_deleted(db: &Db, job: &str) -> sqlx::Result<bool> {
    let row = sqlx::query("SELECT COUNT(*) FROM output_tracks WHERE job_id = $1 AND deleted_at IS NOT NULL")
        .bind(job)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobFailure {
    /// `decode_failed`, `too_long`, `model_unavailable`, `storage_download`, …
    pub code: String,
    pub message: Option<String>,
}

/// A job as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub asset_id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// `queued`, `downloading`, `separating`, `encoding`, `uploading`, `retrying`, `done`, …
    pub stage: String,
    pub progress_percent: f64,
    pub model: String,
    pub request: JobRequest,
    /// The stems a description resolved to.
    pub targets: Option<Vec<String>>,
    /// `isolate` or `remove`, for a description.
    pub mode: Option<String>,
    /// The sound a text-prompted model separates (the description without
    /// "remove", "just", …); its outputs are `target` and `residual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub credits: i64,
    pub attempt: i64,
    pub parent_job_id: Option<String>,
    pub cancel_requested: bool,
    pub failure: Option<JobFailure>,
    pub runs_on: Option<String>,
    /// The stems, once succeeded.
    pub outputs: Vec<Output>,
    /// The job succeeded but its stems were deleted since (with its upload,
    /// or by retention); previews and downloads answer 410.
    pub outputs_deleted: bool,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A job as clients see it.
pub async fn view(db: &Db, job: &JobRow) -> ServiceResult<JobView> {
    let cfg = job.config().map_err(|e| ServiceError::internal("job config", e))?;
    let (outputs, outputs_deleted) = if job.status == "succeeded" {
        (outputs(db, &job.id).await?, outputs_deleted(db, &job.id).await?)
    } else {
        (Vec::new(), false)
    };
    Ok(JobView {
        id: job.id.clone(),
        asset_id: job.asset_id.clone(),
        status: job.status.clone(),
        stage: job.stage.clone(),
        progress_percent: (job.progress * 1000.0).round() / 10.0,
        model: cfg.separator,
        request: cfg.request,
        targets: cfg.targets,
        mode: cfg.mode.map(|m| m.name().to_string()),
        text: cfg.text,
        credits: job.credits,
        attempt: job.attempt,
        parent_job_id: job.parent_job_id.clone(),
        cancel_requested: job.cancel_requested,
        failure: job
            .failure_code
            .as_ref()
            .map(|c| JobFailure { code: c.clone(), message: job.failure_message.clone() }),
        runs_on: job.runs_on.clone(),
        outputs,
        outputs_deleted,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
    })
}

/// The asset a job reads: its owner's, not deleted.
pub struct AssetRef {
    pub duration_secs: f64,
}

pub async fn owned_asset(db: &Db, user: &str, asset: &str) -> ServiceResult<AssetRef> {
    let row =
        sqlx::query("SELECT duration_secs FROM media_assets WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL")
            .bind(asset)
            .bind(user)
            .fetch_optional(&db.pool)
            .await?;
    match row {
        Some(r) => Ok(AssetRef { duration_secs: r.try_get(0)? }),
        None => Err(ServiceError::not_found("asset")),
    }
}

/// Creates a job, its credits debited in the same transaction (or finds the
/// one this idempotency key already made). Returns the job and whether this
/// call created it; a job this call created still has to be sent to the
/// queue (`Compute::submit`), which the caller does once this has committed.
pub async fn create(
    db: &Db,
    catalog: &Catalog,
    max_active_jobs: i64,
    user: &str,
    req: &JobRequest,
    idempotency_key: Option<&str>,
    parent: Option<&JobRow>,
) -> ServiceResult<(JobRow, bool)> {
    if let Some(k) = idempotency_key
        && (k.is_empty() || k.len() > 255)
    {
        return Err(ServiceError::bad_request("invalid_idempotency_key", "an Idempotency-Key has 1 to 255 characters"));
    }
    let hash = request_hash(req);
    let same_key = |existing: JobRow| {
        if existing.request_hash == hash {
            Ok((existing, false))
        } else {
            Err(ServiceError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ))
        }
    };
    if let Some(k) = idempotency_key
        && let Some(existing) = by_key(&db.pool, user, k).await?
    {
        return same_key(existing);
    }
    let cfg = resolve(catalog, req)?;
    let asset = owned_asset(db, user, &req.asset_id).await?;
    let cost = job_cost(asset.duration_secs);
    let id = new_sorted_id();
    let now = now_ms();
    let config = serde_json::to_string(&cfg).map_err(|e| ServiceError::internal("job config", e))?;

    let mut tx = db.pool.begin().await?;
    // Writing first takes the user's row lock (PostgreSQL) or the write lock
    // (SQLite), so one user's creations run one at a time from here on.
    sqlx::query("UPDATE credit_accounts SET updated_at = $1 WHERE user_id = $2")
        .bind(now)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    if let Some(k) = idempotency_key
        && let Some(existing) = by_key(&mut *tx, user, k).await?
    {
        drop(tx);
        return same_key(existing);
    }
    let active: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM jobs WHERE user_id = $1 AND status IN {ACTIVE}"
    )))
    .bind(user)
    .fetch_one(&mut *tx)
    .await?
    .get(0);
    if active >= max_active_jobs {
        return Err(ServiceError::new(
            ErrorKind::TooManyRequests,
            "too_many_active_jobs",
            format!("at most {max_active_jobs} jobs may be queued or running at once"),
        )
        .with_retry_after(10));
    }
    sqlx::query(
        "INSERT INTO jobs (id, user_id, asset_id, status, stage, progress, config, request_hash, idempotency_key, \
         attempt, parent_job_id, credits, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', 'queued', 0, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(&id)
    .bind(user)
    .bind(&req.asset_id)
    .bind(&config)
    .bind(&hash)
    .bind(idempotency_key)
    .bind(parent.map_or(1, |p| p.attempt + 1))
    .bind(parent.map(|p| p.id.clone()))
    .bind(cost)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    match insert_entry(&mut tx, user, -cost, "job_debit", &format!("job:{id}:debit"), Some(&id)).await {
        Ok(_) => {}
        Err(LedgerError::Insufficient) => {
            drop(tx);
            let balance = super::credits::balance(&db.pool, user).await?;
            return Err(ServiceError::new(
                ErrorKind::PaymentRequired,
                "insufficient_credits",
                format!("this job costs {cost} credits; the balance is {balance}"),
            ));
        }
        Err(LedgerError::Db(e)) => return Err(e.into()),
    }
    tx.commit().await?;
    let job = get(db, &id).await?.ok_or_else(|| ServiceError::internal("job", "vanished after insert"))?;
    Ok((job, true))
}

async fn by_key<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    ex: E,
    user: &str,
    key: &str,
) -> sqlx::Result<Option<JobRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE user_id = $1 AND idempotency_key = $2"
    )))
    .bind(user)
    .bind(key)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(JobRow::from_row).transpose()
}

/// Moves a queued or running job to `status` (`failed` or `cancelled`, both
/// refunded; `succeeded` is [`crate::compute::worker`]'s). Returns false when the job
/// was already terminal: someone else ended it.
pub async fn finish(db: &Db, id: &str, status: &str, failure: Option<(&str, &str)>) -> sqlx::Result<bool> {
    let now = now_ms();
    let mut tx = db.pool.begin().await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = $1, stage = $1, failure_code = $2, failure_message = $3, finished_at = $4, updated_at = $4 \
         WHERE id = $5 AND status IN {ACTIVE}"
    )))
    .bind(status)
    .bind(failure.map(|f| f.0))
    .bind(failure.map(|f| f.1))
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    let row = sqlx::query("SELECT user_id, credits FROM jobs WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
    let (user, credits): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
    refund_job(&mut tx, &user, id, credits).await?;
    tx.commit().await?;
    Ok(true)
}

/// Asks a queued or running job to stop (the worker sees it at its next
/// segment boundary); false when the job had already ended.
pub async fn request_cancel(db: &Db, id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET cancel_requested = 1, updated_at = $1 WHERE id = $2 AND status IN ('queued', 'running')",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Jobs queued or running on `asset`.
pub async fn active_on_asset(db: &Db, asset: &str) -> sqlx::Result<i64> {
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM jobs WHERE asset_id = $1 AND status IN {ACTIVE}")))
        .bind(asset)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)
}

/// `user`'s latest `limit` jobs on assets not deleted, newest first.
pub async fn recent(db: &Db, user: &str, limit: i64) -> sqlx::Result<Vec<JobRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs j WHERE user_id = $1 AND EXISTS \
         (SELECT 1 FROM media_assets a WHERE a.id = j.asset_id AND a.deleted_at IS NULL) \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    )))
    .bind(user)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(JobRow::from_row).collect()
}
