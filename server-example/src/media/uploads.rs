//! Uploads and the assets they become. An upload starts as a multipart
//! upload in the store with one presigned URL per part; completing it
//! assembles the object, checks its size, probes the media and records the
//! asset, all under the upload's completion lease. Whoever holds the lease
//! (a completing or aborting request, or retention rolling back an upload
//! nobody finished) owns the upload's objects until it releases it or the
//! lease runs out.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::keys::{display_name, original_key, safe_name};
use super::store::{PartEtag, Store, StoreError};
use crate::db::{Db, new_id, new_sorted_id, now_ms};
use crate::error::{ErrorKind, ServiceError, ServiceResult};

/// What the API's `limits` allow an upload.
#[derive(Debug, Clone)]
pub struct UploadPolicy {
    pub max_upload_bytes: u64,
    pub max_duration_secs: f64,
    /// Size of each presigned part.
    pub part_size: u64,
    /// Lifetime of presigned part URLs.
    pub upload_url_ttl: Duration,
    /// Lifetime of presigned preview and download URLs.
    pub download_url_ttl: Duration,
    /// How long one completion holds the upload.
    pub complete_lease: Duration,
}

/// A multipart upload begun: its id and where each part goes.
#[derive(Debug)]
pub struct Started {
    pub id: String,
    pub part_size: u64,
    /// (part number, presigned PUT URL, bytes).
    pub parts: Vec<(u64, String, u64)>,
    /// Unix milliseconds after which the part URLs stop working.
    pub expires_at: i64,
}

fn acceptable_type(ct: &str) -> bool {
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("audio/") || ct.starts_with("video/") || ct == "application/octet-stream" || ct == "application/ogg"
}

/// Starts a multipart upload of `size` bytes for `user`: one presigned URL per part.
pub async fn initialize(
    store: &Store,
    policy: &UploadPolicy,
    db: &Db,
    user: &str,
    filename: &str,
    size: u64,
    content_type: &str,
) -> ServiceResult<Started> {
    if size == 0 {
        return Err(ServiceError::unprocessable("empty_file", "the file is empty"));
    }
    if size > i64::MAX as u64 {
        return Err(ServiceError::unprocessable("invalid_size", "a size in bytes up to 2^63 - 1"));
    }
    if size > policy.max_upload_bytes {
        return Err(ServiceError::new(
            ErrorKind::PayloadTooLarge,
            "file_too_large",
            format!("files up to {} bytes; this one has {size}", policy.max_upload_bytes),
        ));
    }
    if filename.trim().is_empty() {
        return Err(ServiceError::unprocessable("invalid_filename", "a file name, not an empty one"));
    }
    // Made safe once, here: every later use (the library, download names) shows this.
    let filename = display_name(filename);
    if !acceptable_type(content_type) {
        return Err(ServiceError::new(
            ErrorKind::UnsupportedMediaType,
            "unsupported_media_type",
            format!("audio/* or video/*, not {content_type:?}"),
        ));
    }
    let id = new_sorted_id();
    let key = original_key(user, &id, &filename);
    let storage_upload = store.create_multipart(&key, content_type).await.map_err(ServiceError::storage)?;
    let part_size = policy.part_size;
    let count = size.div_ceil(part_size);
    let ttl = policy.upload_url_ttl;
    let mut parts = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let url = store.presign_part(&key, &storage_upload, n as i32, ttl).await.map_err(ServiceError::storage)?;
        parts.push((n, url, if n == count { size - part_size * (count - 1) } else { part_size }));
    }
    let now = now_ms();
    let expires_at = now + ttl.as_millis() as i64;
    sqlx::query(
        "INSERT INTO uploads (id, user_id, object_key, storage_upload, filename, content_type, size, part_size, status, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10)",
    )
    .bind(&id)
    .bind(user)
    .bind(&key)
    .bind(&storage_upload)
    .bind(&filename)
    .bind(content_type)
    .bind(size as i64)
    .bind(part_size as i64)
    .bind(now)
    .bind(expires_at)
    .execute(&db.pool)
    .await?;
    Ok(Started { id, part_size, parts, expires_at })
}

/// An upload's row.
#[derive(Debug)]
pub struct UploadRow {
    pub id: String,
    /// Its owner.
    pub user: String,
    pub key: String,
    pub storage_upload: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// `pending`, `completing`, `completed`, `rejected` or `aborted`.
    pub status: String,
    pub asset_id: Option<String>,
    /// While `completing`: when the completing request's hold runs out.
    pub lease_until: Option<i64>,
}

/// The upload if `user` owns it; another user's is "not found".
pub async fn owned(db: &Db, user: &str, id: &str) -> ServiceResult<UploadRow> {
    let r = sqlx::query(
        "SELECT object_key, storage_upload, filename, content_type, size, status, asset_id, lease_until FROM uploads WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| ServiceError::not_found("upload"))?;
    Ok(UploadRow {
        id: id.to_string(),
        user: user.to_string(),
        key: r.try_get(0)?,
        storage_upload: r.try_get(1)?,
        filename: r.try_get(2)?,
        content_type: r.try_get(3)?,
        size: r.try_get(4)?,
        status: r.try_get(5)?,
        asset_id: r.try_get(6)?,
        lease_until: r.try_get(7)?,
    })
}

/// The answer while another request holds the upload.
pub fn busy(up: &UploadRow, now: i64) -> ServiceError {
    if up.status == "completing" {
        let wait = up.lease_until.map_or(1, |t| ((t - now).max(0) as u64).div_ceil(1000).max(1));
        return ServiceError::conflict(
            "upload_completing",
            format!("this upload is being completed; if that request died, try again in {wait} s"),
        )
        .with_retry_after(wait);
    }
    ServiceError::conflict("upload_not_pending", format!("this upload is {}", up.status))
}

/// Takes the upload for completing (or rolling back): from `pending` (with
/// `pending_expired_before`, only one whose part URLs expired before then), or
/// from a `completing` whose holder's lease ran out (it died mid-way).
/// Returns the new lease's token, or `None` when someone else holds it or
/// the upload is no longer pending.
pub async fn take_lease(
    db: &Db,
    lease: Duration,
    id: &str,
    now: i64,
    pending_expired_before: Option<i64>,
) -> sqlx::Result<Option<String>> {
    let token = new_id();
    let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let r = sqlx::query(
        "UPDATE uploads SET status = 'completing', lease_token = $1, lease_until = $2 \
         WHERE id = $3 AND ((status = 'pending' AND expires_at < $5) OR (status = 'completing' AND lease_until < $4))",
    )
    .bind(&token)
    .bind(until)
    .bind(id)
    .bind(now)
    .bind(pending_expired_before.unwrap_or(i64::MAX))
    .execute(&db.pool)
    .await?;
    Ok((r.rows_affected() == 1).then_some(token))
}

/// Ends the lease `token` holds, moving the upload to `to`; false when the
/// lease was taken over meanwhile (then the upload is the new holder's).
pub async fn release_lease(db: &Db, id: &str, token: &str, to: &str, code: Option<&str>) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE uploads SET status = $1, failure_code = $2, lease_token = NULL, lease_until = NULL \
         WHERE id = $3 AND status = 'completing' AND lease_token = $4",
    )
    .bind(to)
    .bind(code)
    .bind(id)
    .bind(token)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Rolls back what a completion may have left in the store: the multipart
/// upload and the assembled object. Both may already be gone.
pub async fn discard_objects(store: &Store, key: &str, storage_upload: &str) -> Result<(), StoreError> {
    match store.abort_multipart(key, storage_upload).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    store.delete(key).await
}

/// Completes the multipart upload under `lease`, checks the object's size and
/// probes the media, then records the asset; returns its id. An error says
/// whether the upload is finished with (`true`: rejected) or may be completed
/// again (`false`).
pub async fn complete(
    store: &Store,
    max_duration_secs: f64,
    db: &Db,
    up: &UploadRow,
    parts: &[PartEtag],
    lease: &str,
) -> Result<String, (ServiceError, bool)> {
    let (user, id) = (up.user.as_str(), up.id.as_str());
    let retry = |e: ServiceError| (e, false);
    let reject = |e: ServiceError| (e, true);
    match store.complete_multipart(&up.key, &up.storage_upload, parts).await {
        Ok(()) => {}
        // A completion that died after the store assembled the object: the
        // multipart upload is gone (S3 says NoSuchUpload, some servers deny
        // access to it) and the object is there (its key is this upload's
        // alone). Go on from it; the size is checked next.
        Err(StoreError::NotFound | StoreError::Rejected(_))
            if store.size(&up.key).await.map_err(|e| retry(ServiceError::storage(e)))?.is_some() => {}
        Err(StoreError::Rejected(m)) => return Err(retry(ServiceError::bad_request("invalid_parts", m))),
        Err(StoreError::NotFound) => {
            return Err(retry(ServiceError::bad_request("invalid_parts", "the storage knows no such upload or part")));
        }
        Err(e) => return Err(retry(ServiceError::storage(e))),
    }
    let size = store.size(&up.key).await.map_err(|e| retry(ServiceError::storage(e)))?;
    if size != Some(up.size as u64) {
        return Err(reject(ServiceError::unprocessable(
            "size_mismatch",
            format!("the upload was declared as {} bytes but {} arrived", up.size, size.unwrap_or(0)),
        )));
    }
    let dir = tempfile::tempdir().map_err(|e| retry(ServiceError::internal("scratch space", e)))?;
    let path = dir.path().join(safe_name(&up.filename));
    store.download(&up.key, &path).await.map_err(|e| retry(ServiceError::storage(e)))?;
    let probe = tokio::task::spawn_blocking(move || super::probe::probe_media(&path, max_duration_secs))
        .await
        .map_err(|e| retry(ServiceError::internal("probe", e)))?;
    let info = probe.map_err(reject)?;
    let asset_id = new_sorted_id();
    let now = now_ms();
    let insert = async {
        let mut tx = db.pool.begin().await?;
        // Only the lease's holder finishes: a request that outlived its lease
        // and was taken over creates nothing.
        let held = sqlx::query(
            "UPDATE uploads SET status = 'completed', asset_id = $1, lease_token = NULL, lease_until = NULL \
             WHERE id = $2 AND status = 'completing' AND lease_token = $3",
        )
        .bind(&asset_id)
        .bind(id)
        .bind(lease)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO media_assets (id, user_id, upload_id, object_key, filename, content_type, size, duration_secs, \
             sample_rate, channels, container, codec, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&asset_id)
        .bind(user)
        .bind(id)
        .bind(&up.key)
        .bind(&up.filename)
        .bind(&up.content_type)
        .bind(up.size)
        .bind(info.duration_secs)
        .bind(info.sample_rate as i64)
        .bind(info.channels as i64)
        .bind(&info.container)
        .bind(&info.codec)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map(|()| true)
    };
    if !insert.await.map_err(|e: sqlx::Error| retry(e.into()))? {
        return Err(retry(ServiceError::conflict(
            "upload_completing",
            "this completion took too long and another request took the upload over; ask for the upload again",
        )));
    }
    Ok(asset_id)
}

// ---------------------------------------------------------------------------
// Assets

const ASSET_COLUMNS: &str =
    "id, filename, content_type, size, duration_secs, sample_rate, channels, container, codec, created_at";

/// An uploaded file, probed.
#[derive(Debug, Clone)]
pub struct AssetRow {
    pub id: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub duration_secs: f64,
    pub sample_rate: i64,
    pub channels: i64,
    pub container: String,
    pub codec: String,
    pub created_at: i64,
}

fn asset_from_row(r: &AnyRow) -> sqlx::Result<AssetRow> {
    Ok(AssetRow {
        id: r.try_get(0)?,
        filename: r.try_get(1)?,
        content_type: r.try_get(2)?,
        size: r.try_get(3)?,
        duration_secs: r.try_get(4)?,
        sample_rate: r.try_get(5)?,
        channels: r.try_get(6)?,
        container: r.try_get(7)?,
        codec: r.try_get(8)?,
        created_at: r.try_get(9)?,
    })
}

pub async fn asset(db: &Db, id: &str) -> sqlx::Result<AssetRow> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ASSET_COLUMNS} FROM media_assets WHERE id = $1")))
        .bind(id)
        .fetch_one(&db.pool)
        .await?;
    asset_from_row(&r)
}

/// `user`'s assets not deleted, newest first, from just before
/// (`created_at`, `id`) = `before` (or from the newest), at most `limit`.
pub async fn assets(db: &Db, user: &str, before: Option<(i64, &str)>, limit: i64) -> sqlx::Result<Vec<AssetRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSET_COLUMNS} FROM media_assets WHERE user_id = $1 AND deleted_at IS NULL \
         AND (created_at < $2 OR (created_at = $2 AND id < $3)) ORDER BY created_at DESC, id DESC LIMIT $4"
    )))
    .bind(user)
    .bind(before.map_or(i64::MAX, |b| b.0))
    .bind(before.map_or("\u{10ffff}", |b| b.1))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(asset_from_row).collect()
}

/// The object key of `user`'s asset `id`, unless it was deleted.
pub async fn live_asset_key(db: &Db, user: &str, id: &str) -> sqlx::Result<Option<String>> {
    let row = sqlx::query("SELECT object_key FROM media_assets WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL")
        .bind(id)
        .bind(user)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| r.try_get(0)).transpose()
}
