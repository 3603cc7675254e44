//! How long stored objects live, and the cleanup task that enforces it.
//! Every step deletes objects first and marks rows after, so a crash between
//! the two leaves a row pointing at nothing (deleted again, harmlessly, next
//! run). What a process killed between writing an object and recording it
//! leaves (an object no row knows) is found by listing the store and deleted
//! once it is older than `orphan_grace_secs`. The time is passed in, so tests
//! run the task "days later" without waiting.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::keys::{is_service_key, job_prefix};
use super::store::{Store, StoreError};
use super::uploads::{discard_objects, release_lease, take_lease};
use crate::db::{ACTIVE_JOB_STATUSES, Db};
use crate::metrics::Metrics;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Uploaded originals (and everything made from them) are deleted this
    /// long after upload; 0 keeps them until the user deletes them.
    pub originals_secs: u64,
    /// Stems are deleted this long after their job succeeded; 0 keeps them.
    pub outputs_secs: u64,
    /// What failed or cancelled jobs left in storage is deleted this long after they ended.
    pub failed_artifacts_secs: u64,
    /// Pending uploads are aborted this long after their part URLs expired,
    /// and completions whose request died are rolled back this long after
    /// their lease ran out.
    pub abandoned_upload_grace_secs: u64,
    /// Objects of this service's layout (`user_<id>/originals/…`,
    /// `user_<id>/jobs/…`) that no row knows (what a process killed between
    /// writing an object and recording it left behind) are deleted once they
    /// were last written this long ago (at least an hour).
    pub orphan_grace_secs: u64,
    /// How often `serve` and `all` run the task (0: never; run `splitsound-server cleanup` instead).
    pub interval_secs: u64,
    /// Rows handled per step and run.
    pub batch: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            originals_secs: 30 * 86400,
            outputs_secs: 7 * 86400,
            failed_artifacts_secs: 86400,
            abandoned_upload_grace_secs: 3600,
            orphan_grace_secs: 86400,
            interval_secs: 3600,
            batch: 500,
        }
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct CleanupReport {
    pub uploads_aborted: usize,
    /// Completions that died mid-way and were not resumed.
    pub uploads_rolled_back: usize,
    /// Objects no row knew of.
    pub orphans_deleted: usize,
    pub originals_deleted: usize,
    pub outputs_deleted: usize,
    pub failed_job_objects_deleted: usize,
    /// Temporary files of writes that never finished (the local store only).
    pub stale_temp_files_deleted: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

fn ago(now: i64, secs: u64) -> i64 {
    now.saturating_sub((secs as i64).saturating_mul(1000))
}

/// One pass of every step, as if the time were `now` (Unix milliseconds).
pub async fn run_once(
    db: &Db,
    store: &Store,
    cfg: &RetentionConfig,
    lease: Duration,
    metrics: &Metrics,
    now: i64,
) -> Result<CleanupReport, CleanupError> {
    let mut report = CleanupReport::default();

    // Abandoned multipart uploads (the store drops their parts), and
    // completions whose request died and that nobody resumed (rolled back).
    // Each is taken under the upload's lease, so a completion arriving now
    // either waits for this or wins, never both.
    let grace = ago(now, cfg.abandoned_upload_grace_secs);
    let rows = sqlx::query(
        "SELECT id, object_key, storage_upload, status FROM uploads \
         WHERE (status = 'pending' AND expires_at < $1) OR (status = 'completing' AND lease_until < $1) LIMIT $2",
    )
    .bind(grace)
    .bind(cfg.batch)
    .fetch_all(&db.pool)
    .await?;
    for r in &rows {
        let (id, key, upload, status): (String, String, String, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        // Still as selected: a completion resumed and put back to pending meanwhile is not abandoned.
        let stale = if status == "pending" { Some(grace) } else { None };
        let Some(lease) = take_lease(db, lease, &id, now, stale).await? else { continue };
        if let Err(e) = discard_objects(store, &key, &upload).await {
            // Pending again, for the next run; one upload the store refuses
            // to let go of does not hold up the rest of the cleanup.
            release_lease(db, &id, &lease, "pending", None).await?;
            tracing::warn!(upload = %id, error = %e, "could not discard an abandoned upload; next run will retry");
            continue;
        }
        let code = if status == "pending" { "abandoned" } else { "interrupted" };
        if release_lease(db, &id, &lease, "aborted", Some(code)).await? {
            match code {
                "abandoned" => report.uploads_aborted += 1,
                _ => report.uploads_rolled_back += 1,
            }
        }
    }

    // Stems past their lifetime.
    if cfg.outputs_secs > 0 {
        let rows = sqlx::query(
            "SELECT id, object_key FROM output_tracks WHERE deleted_at IS NULL AND created_at < $1 LIMIT $2",
        )
        .bind(ago(now, cfg.outputs_secs))
        .bind(cfg.batch)
        .fetch_all(&db.pool)
        .await?;
        for r in &rows {
            let (id, key): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            store.delete(&key).await?;
            sqlx::query("UPDATE output_tracks SET deleted_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&id)
                .execute(&db.pool)
                .await?;
            report.outputs_deleted += 1;
        }
    }

    // Originals past their lifetime, unless a job on them is still active.
    if cfg.originals_secs > 0 {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, object_key FROM media_assets a WHERE deleted_at IS NULL AND created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.asset_id = a.id AND j.status IN {}) LIMIT $2",
            ACTIVE_JOB_STATUSES
        )))
        .bind(ago(now, cfg.originals_secs))
        .bind(cfg.batch)
        .fetch_all(&db.pool)
        .await?;
        for r in &rows {
            let (id, key): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            purge_asset(db, store, &id, &key, now).await?;
            report.originals_deleted += 1;
        }
    }

    // Whatever failed or cancelled jobs left under their prefix.
    let rows = sqlx::query(
        "SELECT id, user_id FROM jobs WHERE status IN ('failed', 'cancelled') AND cleaned_at IS NULL \
         AND finished_at < $1 LIMIT $2",
    )
    .bind(ago(now, cfg.failed_artifacts_secs))
    .bind(cfg.batch)
    .fetch_all(&db.pool)
    .await?;
    for r in &rows {
        let (id, user): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        for key in store.list(&job_prefix(&user, &id)).await? {
            store.delete(&key).await?;
            report.failed_job_objects_deleted += 1;
        }
        sqlx::query("UPDATE jobs SET cleaned_at = $1 WHERE id = $2").bind(now).bind(&id).execute(&db.pool).await?;
    }

    // Objects that no row knows.
    report.orphans_deleted = delete_orphans(db, store, cfg.orphan_grace_secs, now).await?;

    // Temporary files that killed processes left mid-write.
    let cutoff = std::time::UNIX_EPOCH + Duration::from_millis(ago(now, cfg.failed_artifacts_secs).max(0) as u64);
    report.stale_temp_files_deleted = store.sweep_partials(cutoff).await?;

    for (kind, n) in [
        ("upload", report.uploads_aborted),
        ("interrupted_upload", report.uploads_rolled_back),
        ("orphan", report.orphans_deleted),
        ("original", report.originals_deleted),
        ("output", report.outputs_deleted),
        ("failed_job_object", report.failed_job_objects_deleted),
        ("temp_file", report.stale_temp_files_deleted),
    ] {
        if n > 0 {
            metrics.retention_deleted(kind, n as u64);
        }
    }
    Ok(report)
}

/// Deletes every object older than `orphan_grace_secs` that no row knows:
/// not a live original or stem, not the object of an upload still pending or
/// completing, and not under the prefix of a job that is still active or
/// whose leftovers the failed-job step has yet to remove.
async fn delete_orphans(db: &Db, store: &Store, grace_secs: u64, now: i64) -> Result<usize, CleanupError> {
    let cutoff = std::time::UNIX_EPOCH + Duration::from_millis(ago(now, grace_secs).max(0) as u64);
    // Only keys of this service's own layout: whatever else shares the bucket is not ours to judge.
    let candidates: Vec<_> =
        store.list_objects("").await?.into_iter().filter(|o| o.modified < cutoff && is_service_key(&o.key)).collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    // Rows are read in the order objects move between them, so an object that
    // moves while they are read is seen on one side or the other: an upload
    // becomes an asset (uploads first), an active job's files become its
    // outputs (jobs first).
    let mut known = std::collections::HashSet::new();
    let mut prefixes = Vec::new();
    let rows = |sql: &'static str| sqlx::query(sql).fetch_all(&db.pool);
    for r in rows("SELECT object_key FROM uploads WHERE status IN ('pending', 'completing')").await? {
        known.insert(r.try_get::<String, _>(0)?);
    }
    for r in rows("SELECT object_key FROM media_assets WHERE deleted_at IS NULL").await? {
        known.insert(r.try_get::<String, _>(0)?);
    }
    let jobs = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT user_id, id FROM jobs WHERE status IN {} OR (status IN ('failed', 'cancelled') AND cleaned_at IS NULL)",
        ACTIVE_JOB_STATUSES
    )))
    .fetch_all(&db.pool)
    .await?;
    for r in &jobs {
        prefixes.push(job_prefix(&r.try_get::<String, _>(0)?, &r.try_get::<String, _>(1)?));
    }
    for r in rows("SELECT object_key FROM output_tracks WHERE deleted_at IS NULL").await? {
        known.insert(r.try_get::<String, _>(0)?);
    }
    let mut deleted = 0;
    for o in candidates {
        if known.contains(&o.key) || prefixes.iter().any(|p| o.key.starts_with(p.as_str())) {
            continue;
        }
        tracing::info!(key = %o.key, "deleting an object no row knows");
        store.delete(&o.key).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Deletes an asset's original and every output made from it, then marks
/// them deleted. The objects go first: should this stop half-way, the rows
/// still list what may remain, and running it again finishes the job.
/// Returns the number of objects deleted.
pub async fn purge_asset(
    db: &Db,
    store: &Store,
    asset_id: &str,
    original_key: &str,
    now: i64,
) -> Result<usize, CleanupError> {
    let outputs = sqlx::query(
        "SELECT o.object_key FROM output_tracks o JOIN jobs j ON j.id = o.job_id WHERE j.asset_id = $1 AND o.deleted_at IS NULL",
    )
    .bind(asset_id)
    .fetch_all(&db.pool)
    .await?;
    for r in &outputs {
        store.delete(&r.try_get::<String, _>(0)?).await?;
    }
    store.delete(original_key).await?;
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE media_assets SET deleted_at = $1 WHERE id = $2")
        .bind(now)
        .bind(asset_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE output_tracks SET deleted_at = $1 WHERE deleted_at IS NULL AND job_id IN (SELECT id FROM jobs WHERE asset_id = $2)")
        .bind(now)
        .bind(asset_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(outputs.len() + 1)
}
