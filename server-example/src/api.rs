//! The HTTP API (v1): the control plane. Bytes never pass through it, except
//! for the local-disk store's own signed URLs under `/storage/o/`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::App;
use crate::auth::{AuthUser, find_or_create_user};
use crate::db::{new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, JobRequest};
use crate::storage::{GetOptions, PartEtag, StoreError, safe_name};

type AppState = State<Arc<App>>;

pub fn router(app: Arc<App>) -> Router {
    let mut r = Router::new()
        .route("/health", get(health))
        .route("/v1/auth/dev/login", post(dev_login))
        .route("/v1/auth/oauth/login", post(oauth_login))
        .route("/v1/me", get(me))
        .route("/v1/me/credits", get(credits))
        .route("/v1/me/library", get(library))
        .route("/v1/me/library/{asset_id}", delete(delete_asset))
        .route("/v1/models", get(models))
        .route("/v1/uploads/initialize", post(upload_initialize))
        .route("/v1/uploads/{id}/complete", post(upload_complete))
        .route("/v1/uploads/{id}/abort", post(upload_abort))
        .route("/v1/jobs", post(create_job))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/retry", post(retry_job))
        .route("/v1/jobs/{id}/preview", get(preview))
        .route("/v1/jobs/{id}/downloads", get(downloads))
        .layer(DefaultBodyLimit::max(64 * 1024));
    if let crate::storage::Store::Local(_) = app.store {
        let limit = app.cfg.limits.part_size as usize + 64 * 1024;
        r = r.merge(crate::local_objects::router().layer(DefaultBodyLimit::max(limit)));
    }
    r.fallback(|| async { ApiError::not_found("route") }).with_state(app)
}

/// A JSON body whose rejection is a typed error, not axum's plain text.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::new(e.status(), "invalid_json", e.body_text())),
        }
    }
}

async fn health(State(app): AppState) -> Response {
    let db = sqlx::query("SELECT 1").execute(&app.db.pool).await.map_err(|e| e.to_string());
    let store = app.store.check().await.map_err(|e| e.to_string());
    let queue = app.queue.stats().await.map_err(|e| e.to_string());
    let ok = db.is_ok() && store.is_ok() && queue.is_ok();
    let part = |r: Result<Value, String>| match r {
        Ok(v) => json!({"ok": true, "detail": v}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    let body = json!({
        "ok": ok,
        "database": part(db.map(|_| json!(format!("{:?}", app.db.backend).to_lowercase()))),
        "storage": part(store.map(|_| Value::Null)),
        "queue": part(queue.map(|s| json!(s))),
    });
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

// ---------------------------------------------------------------------------
// Sign-in

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevLogin {
    email: String,
    #[serde(default)]
    name: Option<String>,
}

async fn dev_login(State(app): AppState, JsonBody(body): JsonBody<DevLogin>) -> ApiResult<Json<Value>> {
    if !app.auth.dev_login {
        return Err(ApiError::not_found("route"));
    }
    let email = body.email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(ApiError::unprocessable("invalid_email", "an e-mail address like name@example.com"));
    }
    let user =
        find_or_create_user(&app.db, "dev", &email, &email, body.name.as_deref(), app.cfg.signup_credits).await?;
    session(&app, &user, &email)
}

fn valid_email(e: &str) -> bool {
    e.len() <= 254 && e.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !b.starts_with('.'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OauthLogin {
    id_token: String,
}

async fn oauth_login(State(app): AppState, JsonBody(body): JsonBody<OauthLogin>) -> ApiResult<Json<Value>> {
    let (issuer, claims) = app.auth.verify_id_token(&body.id_token).await?;
    let email = claims
        .email
        .map(|e| e.to_lowercase())
        .filter(|e| valid_email(e))
        .ok_or_else(|| ApiError::unprocessable("email_required", "the ID token carries no e-mail address"))?;
    let user =
        find_or_create_user(&app.db, &issuer, &claims.sub, &email, claims.name.as_deref(), app.cfg.signup_credits)
            .await?;
    session(&app, &user, &email)
}

fn session(app: &App, user: &str, email: &str) -> ApiResult<Json<Value>> {
    let (token, exp) = app.auth.issue(user, email)?;
    Ok(Json(json!({"token": token, "token_type": "Bearer", "expires_at": exp, "user_id": user})))
}

async fn me(State(app): AppState, user: AuthUser) -> ApiResult<Json<Value>> {
    let row = sqlx::query("SELECT email, name, created_at FROM users WHERE id = $1")
        .bind(&user.id)
        .fetch_optional(&app.db.pool)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session's user no longer exists"))?;
    let balance = crate::credits::balance(&app.db.pool, &user.id).await?;
    Ok(Json(json!({
        "id": user.id,
        "email": row.try_get::<String, _>(0)?,
        "name": row.try_get::<Option<String>, _>(1)?,
        "admin": user.admin,
        "credits": balance,
        "created_at": row.try_get::<i64, _>(2)?,
    })))
}

async fn credits(State(app): AppState, user: AuthUser) -> ApiResult<Json<Value>> {
    let balance = crate::credits::balance(&app.db.pool, &user.id).await?;
    let entries = crate::credits::recent_entries(&app.db.pool, &user.id, 50).await?;
    Ok(Json(json!({"balance": balance, "entries": entries})))
}

async fn models(State(app): AppState) -> Json<Value> {
    let list: Vec<Value> = app
        .catalog
        .iter()
        .map(
            |(name, stems)| json!({"name": name, "stems": stems, "default": *name == app.cfg.worker.default_separator}),
        )
        .collect();
    Json(json!({"models": list}))
}

// ---------------------------------------------------------------------------
// Uploads

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitUpload {
    filename: String,
    size: u64,
    content_type: String,
}

fn acceptable_type(ct: &str) -> bool {
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("audio/") || ct.starts_with("video/") || ct == "application/octet-stream" || ct == "application/ogg"
}

async fn upload_initialize(
    State(app): AppState,
    user: AuthUser,
    JsonBody(body): JsonBody<InitUpload>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let limits = &app.cfg.limits;
    if body.size == 0 {
        return Err(ApiError::unprocessable("empty_file", "the file is empty"));
    }
    if body.size > limits.max_upload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("files up to {} bytes; this one has {}", limits.max_upload_bytes, body.size),
        ));
    }
    if body.filename.trim().is_empty() || body.filename.len() > 255 {
        return Err(ApiError::unprocessable("invalid_filename", "a file name of 1 to 255 bytes"));
    }
    if !acceptable_type(&body.content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("audio/* or video/*, not {:?}", body.content_type),
        ));
    }
    let id = new_id();
    let key = format!("user_{}/originals/{id}/{}", user.id, safe_name(&body.filename));
    let storage_upload = app.store.create_multipart(&key, &body.content_type).await.map_err(ApiError::storage)?;
    let part_size = limits.part_size;
    let count = body.size.div_ceil(part_size);
    let ttl = Duration::from_secs(limits.upload_url_ttl_secs);
    let mut parts = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let url = app.store.presign_part(&key, &storage_upload, n as i32, ttl).await.map_err(ApiError::storage)?;
        let size = if n == count { body.size - part_size * (count - 1) } else { part_size };
        parts.push(json!({"part_number": n, "url": url, "size": size}));
    }
    let now = now_ms();
    let expires_at = now + ttl.as_millis() as i64;
    sqlx::query(
        "INSERT INTO uploads (id, user_id, object_key, storage_upload, filename, content_type, size, part_size, status, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(&key)
    .bind(&storage_upload)
    .bind(&body.filename)
    .bind(&body.content_type)
    .bind(body.size as i64)
    .bind(part_size as i64)
    .bind(now)
    .bind(expires_at)
    .execute(&app.db.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "upload_id": id,
            "part_size": part_size,
            "parts": parts,
            "expires_at": expires_at,
            "method": "PUT",
            "note": "PUT each part's bytes to its URL, keep each answer's ETag header, then POST them to /v1/uploads/{id}/complete",
        })),
    ))
}

struct UploadRow {
    key: String,
    storage_upload: String,
    filename: String,
    content_type: String,
    size: i64,
    status: String,
    asset_id: Option<String>,
}

async fn owned_upload(app: &App, user: &str, id: &str) -> ApiResult<UploadRow> {
    let r = sqlx::query(
        "SELECT object_key, storage_upload, filename, content_type, size, status, asset_id FROM uploads WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(&app.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("upload"))?;
    Ok(UploadRow {
        key: r.try_get(0)?,
        storage_upload: r.try_get(1)?,
        filename: r.try_get(2)?,
        content_type: r.try_get(3)?,
        size: r.try_get(4)?,
        status: r.try_get(5)?,
        asset_id: r.try_get(6)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteUpload {
    parts: Vec<PartEtag>,
}

async fn set_upload_status(app: &App, id: &str, from: &str, to: &str, code: Option<&str>) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE uploads SET status = $1, failure_code = $2 WHERE id = $3 AND status = $4")
        .bind(to)
        .bind(code)
        .bind(id)
        .bind(from)
        .execute(&app.db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

async fn upload_complete(
    State(app): AppState,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CompleteUpload>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let up = owned_upload(&app, &user.id, &id).await?;
    if up.status == "completed" {
        // Completing twice is answered with the same asset.
        let asset = asset_json(&app, up.asset_id.as_deref().unwrap_or_default()).await?;
        return Ok((StatusCode::OK, Json(json!({"asset": asset}))));
    }
    if !set_upload_status(&app, &id, "pending", "completing", None).await? {
        return Err(ApiError::conflict("upload_not_pending", format!("this upload is {}", up.status)));
    }
    match complete_inner(&app, &user, &id, &up, &body.parts).await {
        Ok(asset) => Ok((StatusCode::CREATED, Json(json!({"asset": asset})))),
        Err((e, terminal)) => {
            let (to, code) = if terminal { ("rejected", Some(e.code)) } else { ("pending", None) };
            set_upload_status(&app, &id, "completing", to, code).await?;
            if terminal && let Err(se) = app.store.delete(&up.key).await {
                tracing::warn!(upload = %id, error = %se, "could not delete a rejected upload's object");
            }
            Err(e)
        }
    }
}

/// Completes the multipart upload, checks the object and probes the media;
/// errors say whether the upload is finished (rejected) or may be completed again.
async fn complete_inner(
    app: &App,
    user: &AuthUser,
    id: &str,
    up: &UploadRow,
    parts: &[PartEtag],
) -> Result<Value, (ApiError, bool)> {
    let retry = |e: ApiError| (e, false);
    let reject = |e: ApiError| (e, true);
    match app.store.complete_multipart(&up.key, &up.storage_upload, parts).await {
        Ok(()) => {}
        Err(StoreError::Rejected(m)) => return Err(retry(ApiError::bad_request("invalid_parts", m))),
        Err(StoreError::NotFound) => {
            return Err(retry(ApiError::bad_request("invalid_parts", "the storage knows no such upload or part")));
        }
        Err(e) => return Err(retry(ApiError::storage(e))),
    }
    let size = app.store.size(&up.key).await.map_err(|e| retry(ApiError::storage(e)))?;
    if size != Some(up.size as u64) {
        return Err(reject(ApiError::unprocessable(
            "size_mismatch",
            format!("the upload was declared as {} bytes but {} arrived", up.size, size.unwrap_or(0)),
        )));
    }
    let dir = tempfile::tempdir().map_err(|e| retry(ApiError::internal("scratch space", e)))?;
    let path = dir.path().join(safe_name(&up.filename));
    app.store.download(&up.key, &path).await.map_err(|e| retry(ApiError::storage(e)))?;
    let max = app.cfg.limits.max_duration_secs;
    let probe = tokio::task::spawn_blocking(move || crate::probe::probe_media(&path, max))
        .await
        .map_err(|e| retry(ApiError::internal("probe", e)))?;
    let info = probe.map_err(reject)?;
    let asset_id = new_id();
    let now = now_ms();
    let insert = async {
        let mut tx = app.db.pool.begin().await?;
        sqlx::query(
            "INSERT INTO media_assets (id, user_id, upload_id, object_key, filename, content_type, size, duration_secs, \
             sample_rate, channels, container, codec, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&asset_id)
        .bind(&user.id)
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
        sqlx::query("UPDATE uploads SET status = 'completed', asset_id = $1 WHERE id = $2 AND status = 'completing'")
            .bind(&asset_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    };
    insert.await.map_err(|e| retry(e.into()))?;
    asset_json(app, &asset_id).await.map_err(retry)
}

async fn upload_abort(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let up = owned_upload(&app, &user.id, &id).await?;
    if up.status == "aborted" {
        return Ok(Json(json!({"upload_id": id, "status": "aborted"})));
    }
    if up.status != "pending" {
        return Err(ApiError::conflict("upload_not_pending", format!("this upload is {}", up.status)));
    }
    app.store.abort_multipart(&up.key, &up.storage_upload).await.map_err(ApiError::storage)?;
    set_upload_status(&app, &id, "pending", "aborted", None).await?;
    Ok(Json(json!({"upload_id": id, "status": "aborted"})))
}

const ASSET_COLUMNS: &str =
    "id, filename, content_type, size, duration_secs, sample_rate, channels, container, codec, created_at";

fn asset_from_row(r: &AnyRow) -> sqlx::Result<Value> {
    Ok(json!({
        "id": r.try_get::<String, _>(0)?,
        "filename": r.try_get::<String, _>(1)?,
        "content_type": r.try_get::<String, _>(2)?,
        "size": r.try_get::<i64, _>(3)?,
        "duration_secs": r.try_get::<f64, _>(4)?,
        "sample_rate": r.try_get::<i64, _>(5)?,
        "channels": r.try_get::<i64, _>(6)?,
        "container": r.try_get::<String, _>(7)?,
        "codec": r.try_get::<String, _>(8)?,
        "created_at": r.try_get::<i64, _>(9)?,
        "credits": crate::credits::job_cost(r.try_get::<f64, _>(4)?),
    }))
}

async fn asset_json(app: &App, id: &str) -> ApiResult<Value> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ASSET_COLUMNS} FROM media_assets WHERE id = $1")))
        .bind(id)
        .fetch_one(&app.db.pool)
        .await?;
    Ok(asset_from_row(&r)?)
}

// ---------------------------------------------------------------------------
// Jobs

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be visible ASCII")),
    }
}

async fn create_job(
    State(app): AppState,
    user: AuthUser,
    headers: HeaderMap,
    JsonBody(req): JsonBody<JobRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = idempotency_key(&headers)?;
    let (job, _created) = jobs::create(&app, &user.id, &req, key.as_deref(), None).await?;
    Ok((StatusCode::ACCEPTED, Json(jobs::view(&app.db, &job).await?)))
}

async fn get_job(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let job = jobs::get_owned(&app.db, &user.id, &id).await?;
    Ok(Json(jobs::view(&app.db, &job).await?))
}

/// Cancelling: a queued job ends at once; a running one is asked to stop and
/// does at its next segment boundary, writing nothing. Either way the job's
/// credits are refunded in full, since nothing was delivered. A job that
/// finished before the worker saw the request keeps its result and its charge.
async fn cancel_job(
    State(app): AppState,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let job = jobs::get_owned(&app.db, &user.id, &id).await?;
    if job.is_terminal() {
        return Err(ApiError::conflict("job_finished", format!("the job already {}", job.status)));
    }
    if job.status == "queued" && jobs::finish(&app.db, &id, "cancelled", None).await? {
        let job = jobs::get_owned(&app.db, &user.id, &id).await?;
        return Ok((StatusCode::OK, Json(jobs::view(&app.db, &job).await?)));
    }
    let r = sqlx::query(
        "UPDATE jobs SET cancel_requested = 1, updated_at = $1 WHERE id = $2 AND status IN ('queued', 'running')",
    )
    .bind(now_ms())
    .bind(&id)
    .execute(&app.db.pool)
    .await?;
    let job = jobs::get_owned(&app.db, &user.id, &id).await?;
    if r.rows_affected() == 0 {
        return Err(ApiError::conflict("job_finished", format!("the job already {}", job.status)));
    }
    Ok((StatusCode::ACCEPTED, Json(jobs::view(&app.db, &job).await?)))
}

/// A new job with the same request, linked to its parent; the parent stays as it was.
async fn retry_job(
    State(app): AppState,
    user: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let parent = jobs::get_owned(&app.db, &user.id, &id).await?;
    if !matches!(parent.status.as_str(), "failed" | "cancelled") {
        return Err(ApiError::conflict(
            "not_retryable",
            format!("only failed or cancelled jobs are retried; this one is {}", parent.status),
        ));
    }
    let cfg = parent.config().map_err(|e| ApiError::internal("job config", e))?;
    let key = idempotency_key(&headers)?;
    let (job, _) = jobs::create(&app, &user.id, &cfg.request, key.as_deref(), Some(&parent)).await?;
    Ok((StatusCode::ACCEPTED, Json(jobs::view(&app.db, &job).await?)))
}

async fn preview(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    signed_outputs(&app, &user, &id, false).await
}

async fn downloads(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    signed_outputs(&app, &user, &id, true).await
}

async fn signed_outputs(app: &App, user: &AuthUser, id: &str, attachment: bool) -> ApiResult<Json<Value>> {
    let job = jobs::get_owned(&app.db, &user.id, id).await?;
    if job.status != "succeeded" {
        return Err(ApiError::conflict("job_not_succeeded", format!("the job is {}", job.status)));
    }
    let filename: String = sqlx::query("SELECT filename FROM media_assets WHERE id = $1")
        .bind(&job.asset_id)
        .fetch_one(&app.db.pool)
        .await?
        .try_get(0)?;
    let base = filename.rsplit_once('.').map_or(filename.as_str(), |(b, _)| b).to_string();
    let ttl = Duration::from_secs(app.cfg.limits.download_url_ttl_secs);
    let expires_at = now_ms() + ttl.as_millis() as i64;
    let mut list = Vec::new();
    for o in jobs::outputs(&app.db, &job.id).await? {
        let ext = o.object_key.rsplit('.').next().unwrap_or("wav");
        let opts = GetOptions {
            content_type: o.content_type.clone(),
            attachment,
            filename: format!("{base} - {}.{ext}", o.stem),
        };
        let url = app.store.presign_get(&o.object_key, ttl, &opts).await.map_err(ApiError::storage)?;
        list.push(json!({"stem": o.stem, "url": url, "content_type": o.content_type, "size": o.size, "filename": opts.filename}));
    }
    Ok(Json(json!({"job_id": job.id, "expires_at": expires_at, "stems": list})))
}

// ---------------------------------------------------------------------------
// Library

#[derive(Deserialize)]
struct Page {
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn library(State(app): AppState, user: AuthUser, Query(page): Query<Page>) -> ApiResult<Json<Value>> {
    let limit = page.limit.unwrap_or(20).clamp(1, 100);
    // The cursor is "<created_at>_<id>" of the last asset of the previous page.
    let (before_t, before_id) = match &page.cursor {
        None => (i64::MAX, String::new()),
        Some(c) => {
            let (t, i) = c
                .split_once('_')
                .and_then(|(t, i)| Some((t.parse::<i64>().ok()?, i.to_string())))
                .ok_or_else(|| ApiError::bad_request("invalid_cursor", "use the next_cursor of the previous page"))?;
            (t, i)
        }
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSET_COLUMNS} FROM media_assets WHERE user_id = $1 AND deleted_at IS NULL \
         AND (created_at < $2 OR (created_at = $2 AND id < $3)) ORDER BY created_at DESC, id DESC LIMIT $4"
    )))
    .bind(&user.id)
    .bind(before_t)
    .bind(if page.cursor.is_none() { "\u{10ffff}".to_string() } else { before_id })
    .bind(limit + 1)
    .fetch_all(&app.db.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let assets = rows.iter().take(limit as usize).map(asset_from_row).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if more {
        assets.last().map(|a| format!("{}_{}", a["created_at"], a["id"].as_str().unwrap_or_default()))
    } else {
        None
    };
    let job_rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM jobs j WHERE user_id = $1 AND EXISTS (SELECT 1 FROM media_assets a WHERE a.id = j.asset_id AND a.deleted_at IS NULL) \
         ORDER BY created_at DESC, id DESC LIMIT 20",
        jobs::JOB_COLUMNS
    )))
    .bind(&user.id)
    .fetch_all(&app.db.pool)
    .await?;
    let mut recent = Vec::new();
    for r in &job_rows {
        recent.push(jobs::view(&app.db, &jobs::JobRow::from_row(r)?).await?);
    }
    Ok(Json(json!({"assets": assets, "next_cursor": next_cursor, "recent_jobs": recent})))
}

/// Deletes an upload: its objects (original and every output) first, then
/// marks the rows deleted. Refused while one of its jobs is queued or running.
async fn delete_asset(State(app): AppState, user: AuthUser, Path(asset_id): Path<String>) -> ApiResult<Json<Value>> {
    let row = sqlx::query("SELECT object_key FROM media_assets WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL")
        .bind(&asset_id)
        .bind(&user.id)
        .fetch_optional(&app.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("asset"))?;
    let key: String = row.try_get(0)?;
    let active: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM jobs WHERE asset_id = $1 AND status IN {}",
        jobs::ACTIVE
    )))
    .bind(&asset_id)
    .fetch_one(&app.db.pool)
    .await?
    .get(0);
    if active > 0 {
        return Err(ApiError::conflict("asset_in_use", "cancel its queued or running jobs first"));
    }
    let outputs = sqlx::query(
        "SELECT o.id, o.object_key FROM output_tracks o JOIN jobs j ON j.id = o.job_id WHERE j.asset_id = $1 AND o.deleted_at IS NULL",
    )
    .bind(&asset_id)
    .fetch_all(&app.db.pool)
    .await?;
    for r in &outputs {
        app.store.delete(&r.try_get::<String, _>(1)?).await.map_err(ApiError::storage)?;
    }
    app.store.delete(&key).await.map_err(ApiError::storage)?;
    let now = now_ms();
    let mut tx = app.db.pool.begin().await?;
    sqlx::query("UPDATE media_assets SET deleted_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&asset_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE output_tracks SET deleted_at = $1 WHERE job_id IN (SELECT id FROM jobs WHERE asset_id = $2)")
        .bind(now)
        .bind(&asset_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(json!({"asset_id": asset_id, "deleted": true, "objects_deleted": outputs.len() + 1})))
}
