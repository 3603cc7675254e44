//! The HTTP API (v1): the control plane. Bytes never pass through it, except
//! for the local-disk store's own signed URLs under `/storage/o/`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::App;
use crate::auth::{AuthUser, find_or_create_user};
use crate::db::{new_sorted_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, JobRequest, JobView};
use crate::storage::{GetOptions, PartEtag, StoreError, display_name, safe_name};
use crate::uploads::{discard_upload_objects, release_upload_lease, take_upload_lease};

type AppState = State<Arc<App>>;

/// The API's routes with their OpenAPI description, before state and layers.
pub fn api_routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(auth_methods))
        .routes(routes!(dev_login))
        .routes(routes!(oauth_login))
        .routes(routes!(me))
        .routes(routes!(credits))
        .routes(routes!(library))
        .routes(routes!(delete_asset))
        .routes(routes!(models))
        .routes(routes!(upload_initialize))
        .routes(routes!(upload_complete))
        .routes(routes!(upload_abort))
        .routes(routes!(create_job))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(retry_job))
        .routes(routes!(preview))
        .routes(routes!(downloads))
        .merge(crate::billing::routes())
        .merge(crate::admin::routes())
}

/// The OpenAPI document of [`api_routes`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::openapi::finish(api_routes().into_openapi())
}

/// Health and metrics alone, for the ops listener.
pub fn ops_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/metrics",
            get(|State(app): AppState, headers: HeaderMap| async move { metrics(&app, &headers, false).await }),
        )
        .layer(axum::middleware::from_fn(crate::middleware::finish))
        .with_state(app)
}

pub fn router(app: Arc<App>) -> Router {
    let (api, doc) = api_routes().split_for_parts();
    let doc = Arc::new(crate::openapi::finish(doc));
    let mut r = api
        .route("/v1/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .route(
            "/metrics",
            get(|State(app): AppState, headers: HeaderMap| async move { metrics(&app, &headers, true).await }),
        )
        .merge(crate::web::router(&app))
        .layer(DefaultBodyLimit::max(app.cfg.limits.max_body_bytes));
    if let crate::storage::Store::Local(_) = app.store {
        let limit = app.cfg.limits.part_size as usize + 64 * 1024;
        r = r.merge(crate::local_objects::router().layer(DefaultBodyLimit::max(limit)));
    }
    r.fallback(|| async { ApiError::not_found("route") })
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::middleware::around))
        .layer(axum::middleware::from_fn(crate::middleware::finish))
        .with_state(app)
}

/// Query parameters whose rejection is a typed error, not axum's plain text.
pub struct QueryArgs<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(QueryArgs(v)),
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// A JSON body whose rejection is a typed error, not axum's plain text.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(e.status(), "body_too_large", "the request body is larger than this server accepts"))
            }
            Err(e) => Err(ApiError::new(e.status(), "invalid_json", e.body_text())),
        }
    }
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
async fn health(State(app): AppState) -> Response {
    // The store's probe writes a file (or asks S3): done at most every few seconds.
    let store = app.store_health.get(STORE_PROBE_MAX_AGE, || app.store.check());
    let (db, store, queue) = tokio::join!(sqlx::query("SELECT 1").execute(&app.db.pool), store, app.queue.stats());
    let body = Health {
        ok: db.is_ok() && store.is_ok() && queue.is_ok(),
        database: check(db.map(|_| format!("{:?}", app.db.backend).to_lowercase())),
        storage: check(store),
        queue: check(queue),
    };
    let status = if body.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// How long `/health` reuses the store's last probe.
pub const STORE_PROBE_MAX_AGE: Duration = Duration::from_secs(5);

/// Prometheus's text format: this process's counters and histograms, and,
/// read now, the queue's depth and the jobs by status. On the API port
/// (`token_required`) only with `ops.metrics_token`; on the ops listener,
/// with the token when one is configured.
async fn metrics(app: &App, headers: &HeaderMap, token_required: bool) -> Response {
    match &app.cfg.ops.metrics_token {
        None if token_required => return ApiError::not_found("route").into_response(),
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
                return ApiError::unauthorized("metrics need Authorization: Bearer <ops.metrics_token>")
                    .into_response();
            }
        }
    }
    let mut gauges = Vec::new();
    match app.queue.stats().await {
        Ok(q) => {
            gauges.push(("splitsound_queue_messages", vec![("state", "visible".to_string())], q.visible as f64));
            gauges.push(("splitsound_queue_messages", vec![("state", "in_flight".to_string())], q.in_flight as f64));
            gauges.push(("splitsound_queue_oldest_age_seconds", vec![], q.oldest_age_secs.unwrap_or(0.0)));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: queue stats unavailable"),
    }
    match sqlx::query("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all(&app.db.pool).await {
        Ok(rows) => {
            for r in rows {
                let (status, n): (String, i64) = (r.get(0), r.get(1));
                gauges.push(("splitsound_jobs", vec![("status", status)], n as f64));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: job counts unavailable"),
    }
    let text = app.metrics.render(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

// ---------------------------------------------------------------------------
// Sign-in

#[derive(Serialize, ToSchema)]
pub struct AuthMethods {
    /// `POST /v1/auth/dev/login` is on.
    dev_login: bool,
    /// Issuers whose ID tokens `POST /v1/auth/oauth/login` takes.
    oidc_issuers: Vec<String>,
}

/// How one may sign in here.
#[utoipa::path(get, path = "/v1/auth/methods", tag = "auth", responses((status = 200, body = AuthMethods)))]
async fn auth_methods(State(app): AppState) -> Json<AuthMethods> {
    Json(AuthMethods {
        dev_login: app.auth.dev_login,
        oidc_issuers: app.cfg.auth.oidc.iter().map(|p| p.issuer.clone()).collect(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DevLogin {
    email: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    token_type: String,
    /// Unix seconds.
    expires_at: u64,
    user_id: String,
}

/// Signs in by e-mail alone: only where `auth.dev_login` is on (404 elsewhere).
#[utoipa::path(post, path = "/v1/auth/dev/login", tag = "auth", request_body = DevLogin,
    responses((status = 200, body = Session), (status = 404, body = crate::openapi::ErrorBody, description = "Dev sign-in is off")))]
async fn dev_login(State(app): AppState, JsonBody(body): JsonBody<DevLogin>) -> ApiResult<Json<Session>> {
    if !app.auth.dev_login {
        return Err(ApiError::not_found("route"));
    }
    let email = body.email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(ApiError::unprocessable("invalid_email", "an e-mail address like name@example.com"));
    }
    let user =
        find_or_create_user(&app.db, "dev", &email, &email, body.name.as_deref(), app.cfg.signup_credits).await?;
    // Anyone can claim any address here, so this session is never an admin's.
    session(&app, &user, &email, false)
}

fn valid_email(e: &str) -> bool {
    e.len() <= 254 && e.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !b.starts_with('.'))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OauthLogin {
    /// An OpenID Connect ID token from a configured provider.
    id_token: String,
}

/// Exchanges an ID token of a configured OpenID Connect provider for a session.
#[utoipa::path(post, path = "/v1/auth/oauth/login", tag = "auth", request_body = OauthLogin,
    responses((status = 200, body = Session), (status = 401, body = crate::openapi::ErrorBody, description = "The ID token did not check out")))]
async fn oauth_login(State(app): AppState, JsonBody(body): JsonBody<OauthLogin>) -> ApiResult<Json<Session>> {
    let (issuer, claims) = app.auth.verify_id_token(&body.id_token).await?;
    // Admin rights only for an address the provider says it verified.
    let verified = claims.email_verified == Some(true);
    let email = claims
        .email
        .map(|e| e.to_lowercase())
        .filter(|e| valid_email(e))
        .ok_or_else(|| ApiError::unprocessable("email_required", "the ID token carries no e-mail address"))?;
    let user =
        find_or_create_user(&app.db, &issuer, &claims.sub, &email, claims.name.as_deref(), app.cfg.signup_credits)
            .await?;
    session(&app, &user, &email, verified)
}

fn session(app: &App, user: &str, email: &str, verified: bool) -> ApiResult<Json<Session>> {
    let (token, expires_at) = app.auth.issue(user, email, verified)?;
    Ok(Json(Session { token, token_type: "Bearer".into(), expires_at, user_id: user.to_string() }))
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    id: String,
    email: String,
    name: Option<String>,
    admin: bool,
    credits: i64,
    created_at: i64,
}

/// The caller.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("session" = [])), responses((status = 200, body = Me)))]
async fn me(State(app): AppState, user: AuthUser) -> ApiResult<Json<Me>> {
    let row = sqlx::query("SELECT email, name, created_at FROM users WHERE id = $1")
        .bind(&user.id)
        .fetch_optional(&app.db.pool)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session's user no longer exists"))?;
    let credits = crate::credits::balance(&app.db.pool, &user.id).await?;
    Ok(Json(Me {
        admin: app.auth.is_admin(&user),
        id: user.id,
        email: row.try_get(0)?,
        name: row.try_get(1)?,
        credits,
        created_at: row.try_get(2)?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Credits {
    balance: i64,
    /// The latest 50 ledger entries, newest first.
    entries: Vec<crate::credits::LedgerEntry>,
}

/// The caller's credit balance and its latest ledger entries.
#[utoipa::path(get, path = "/v1/me/credits", tag = "auth", security(("session" = [])), responses((status = 200, body = Credits)))]
async fn credits(State(app): AppState, user: AuthUser) -> ApiResult<Json<Credits>> {
    let balance = crate::credits::balance(&app.db.pool, &user.id).await?;
    let entries = crate::credits::recent_entries(&app.db.pool, &user.id, 50).await?;
    Ok(Json(Credits { balance, entries }))
}

#[derive(Serialize, ToSchema)]
pub struct ModelInfo {
    /// What `model` in a job request names.
    name: String,
    stems: Vec<String>,
    /// Used when a job names none.
    default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Models {
    models: Vec<ModelInfo>,
}

/// The separators jobs may name.
#[utoipa::path(get, path = "/v1/models", tag = "jobs", responses((status = 200, body = Models)))]
async fn models(State(app): AppState) -> Json<Models> {
    let models = app
        .catalog
        .iter()
        .map(|(name, stems)| ModelInfo {
            name: name.clone(),
            stems: stems.clone(),
            default: *name == app.cfg.worker.default_separator,
        })
        .collect();
    Json(Models { models })
}

// ---------------------------------------------------------------------------
// Uploads

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InitUpload {
    /// The file's name as the user has it; the server keeps a safe display
    /// form of it (last path component, no control or bidirectional
    /// characters, at most 120 characters).
    filename: String,
    /// Bytes; the parts are cut from it.
    size: u64,
    /// `audio/*`, `video/*`, `application/ogg` or `application/octet-stream`.
    content_type: String,
}

#[derive(Serialize, ToSchema)]
pub struct PartUrl {
    part_number: u64,
    /// PUT this part's bytes here; keep the answer's ETag.
    url: String,
    size: u64,
}

#[derive(Serialize, ToSchema)]
pub struct UploadStarted {
    upload_id: String,
    part_size: u64,
    parts: Vec<PartUrl>,
    /// Unix milliseconds after which the part URLs stop working.
    expires_at: i64,
    method: String,
    note: String,
}

fn acceptable_type(ct: &str) -> bool {
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("audio/") || ct.starts_with("video/") || ct == "application/octet-stream" || ct == "application/ogg"
}

/// Starts a multipart upload: one presigned URL per part.
#[utoipa::path(post, path = "/v1/uploads/initialize", tag = "uploads", security(("session" = [])), request_body = InitUpload,
    responses((status = 201, body = UploadStarted), (status = 502, body = crate::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn upload_initialize(
    State(app): AppState,
    user: AuthUser,
    JsonBody(body): JsonBody<InitUpload>,
) -> ApiResult<(StatusCode, Json<UploadStarted>)> {
    let limits = &app.cfg.limits;
    if body.size == 0 {
        return Err(ApiError::unprocessable("empty_file", "the file is empty"));
    }
    if body.size > i64::MAX as u64 {
        return Err(ApiError::unprocessable("invalid_size", "a size in bytes up to 2^63 - 1"));
    }
    if body.size > limits.max_upload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("files up to {} bytes; this one has {}", limits.max_upload_bytes, body.size),
        ));
    }
    if body.filename.trim().is_empty() {
        return Err(ApiError::unprocessable("invalid_filename", "a file name, not an empty one"));
    }
    // Made safe once, here: every later use (the library, download names) shows this.
    let filename = display_name(&body.filename);
    if !acceptable_type(&body.content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("audio/* or video/*, not {:?}", body.content_type),
        ));
    }
    let id = new_sorted_id();
    let key = format!("user_{}/originals/{id}/{}", user.id, safe_name(&filename));
    let storage_upload = app.store.create_multipart(&key, &body.content_type).await.map_err(ApiError::storage)?;
    let part_size = limits.part_size;
    let count = body.size.div_ceil(part_size);
    let ttl = Duration::from_secs(limits.upload_url_ttl_secs);
    let mut parts = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let url = app.store.presign_part(&key, &storage_upload, n as i32, ttl).await.map_err(ApiError::storage)?;
        let size = if n == count { body.size - part_size * (count - 1) } else { part_size };
        parts.push(PartUrl { part_number: n, url, size });
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
    .bind(&filename)
    .bind(&body.content_type)
    .bind(body.size as i64)
    .bind(part_size as i64)
    .bind(now)
    .bind(expires_at)
    .execute(&app.db.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadStarted {
            upload_id: id,
            part_size,
            parts,
            expires_at,
            method: "PUT".into(),
            note: "PUT each part's bytes to its URL, keep each answer's ETag header, then POST them to /v1/uploads/{id}/complete".into(),
        }),
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
    /// While `completing`: when the completing request's hold runs out.
    lease_until: Option<i64>,
}

async fn owned_upload(app: &App, user: &str, id: &str) -> ApiResult<UploadRow> {
    let r = sqlx::query(
        "SELECT object_key, storage_upload, filename, content_type, size, status, asset_id, lease_until FROM uploads WHERE id = $1 AND user_id = $2",
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
        lease_until: r.try_get(7)?,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CompleteUpload {
    parts: Vec<PartEtag>,
}

#[derive(Serialize, ToSchema)]
pub struct AssetEnvelope {
    asset: Asset,
}

/// The answer while another request holds the upload.
fn upload_busy(up: &UploadRow, now: i64) -> ApiError {
    if up.status == "completing" {
        let wait = up.lease_until.map_or(1, |t| ((t - now).max(0) as u64).div_ceil(1000).max(1));
        return ApiError::conflict(
            "upload_completing",
            format!("this upload is being completed; if that request died, try again in {wait} s"),
        )
        .with_retry_after(wait);
    }
    ApiError::conflict("upload_not_pending", format!("this upload is {}", up.status))
}

/// Completes the upload with the parts' ETags, then checks and probes the
/// media: the answer is the new asset (or, completed again, the same one).
#[utoipa::path(post, path = "/v1/uploads/{id}/complete", tag = "uploads", security(("session" = [])),
    params(("id" = String, Path)), request_body = CompleteUpload,
    responses((status = 201, body = AssetEnvelope), (status = 200, body = AssetEnvelope, description = "Already completed"),
        (status = 409, body = crate::openapi::ErrorBody, description = "Not pending"),
        (status = 502, body = crate::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn upload_complete(
    State(app): AppState,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CompleteUpload>,
) -> ApiResult<(StatusCode, Json<AssetEnvelope>)> {
    let up = owned_upload(&app, &user.id, &id).await?;
    if up.status == "completed" {
        // Completing twice is answered with the same asset.
        let asset = asset_by_id(&app, up.asset_id.as_deref().unwrap_or_default()).await?;
        return Ok((StatusCode::OK, Json(AssetEnvelope { asset })));
    }
    let now = now_ms();
    let Some(lease) = take_upload_lease(&app, &id, now, None).await? else {
        return Err(upload_busy(&owned_upload(&app, &user.id, &id).await?, now));
    };
    if up.status == "completing" {
        tracing::info!(upload = %id, "resuming a completion whose request died");
    }
    match complete_inner(&app, &user, &id, &up, &body.parts, &lease).await {
        Ok(asset) => Ok((StatusCode::CREATED, Json(AssetEnvelope { asset }))),
        Err((e, terminal)) => {
            let (to, code) = if terminal { ("rejected", Some(e.code)) } else { ("pending", None) };
            if release_upload_lease(&app, &id, &lease, to, code).await?
                && terminal
                && let Err(se) = app.store.delete(&up.key).await
            {
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
    lease: &str,
) -> Result<Asset, (ApiError, bool)> {
    let retry = |e: ApiError| (e, false);
    let reject = |e: ApiError| (e, true);
    match app.store.complete_multipart(&up.key, &up.storage_upload, parts).await {
        Ok(()) => {}
        // A completion that died after the store assembled the object: the
        // multipart upload is gone (S3 says NoSuchUpload, some servers deny
        // access to it) and the object is there (its key is this upload's
        // alone). Go on from it; the size is checked next.
        Err(StoreError::NotFound | StoreError::Rejected(_))
            if app.store.size(&up.key).await.map_err(|e| retry(ApiError::storage(e)))?.is_some() => {}
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
    let asset_id = new_sorted_id();
    let now = now_ms();
    let insert = async {
        let mut tx = app.db.pool.begin().await?;
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
        tx.commit().await.map(|()| true)
    };
    if !insert.await.map_err(|e| retry(e.into()))? {
        return Err(retry(ApiError::conflict(
            "upload_completing",
            "this completion took too long and another request took the upload over; ask for the upload again",
        )));
    }
    asset_by_id(app, &asset_id).await.map_err(retry)
}

#[derive(Serialize, ToSchema)]
pub struct UploadAborted {
    upload_id: String,
    status: String,
}

/// Abandons a pending upload (or one whose completion died): the parts sent
/// so far, and anything a completion assembled, are discarded.
#[utoipa::path(post, path = "/v1/uploads/{id}/abort", tag = "uploads", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UploadAborted), (status = 409, body = crate::openapi::ErrorBody, description = "Not pending"),
        (status = 502, body = crate::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn upload_abort(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<UploadAborted>> {
    let up = owned_upload(&app, &user.id, &id).await?;
    let aborted = || Json(UploadAborted { upload_id: id.clone(), status: "aborted".into() });
    if up.status == "aborted" {
        return Ok(aborted());
    }
    // The same lease as completing: an abort never races a live completion,
    // and it rolls back one that died.
    let now = now_ms();
    let Some(lease) = take_upload_lease(&app, &id, now, None).await? else {
        return Err(upload_busy(&owned_upload(&app, &user.id, &id).await?, now));
    };
    if let Err(e) = discard_upload_objects(&app, &up.key, &up.storage_upload).await {
        // Pending again: the abort (or a completion, or retention) may be tried again.
        release_upload_lease(&app, &id, &lease, "pending", None).await?;
        return Err(ApiError::storage(e));
    }
    release_upload_lease(&app, &id, &lease, "aborted", None).await?;
    Ok(aborted())
}

const ASSET_COLUMNS: &str =
    "id, filename, content_type, size, duration_secs, sample_rate, channels, container, codec, created_at";

/// An uploaded file, probed.
#[derive(Serialize, ToSchema)]
pub struct Asset {
    id: String,
    filename: String,
    content_type: String,
    size: i64,
    duration_secs: f64,
    sample_rate: i64,
    channels: i64,
    container: String,
    codec: String,
    created_at: i64,
    /// What a job on it costs.
    credits: i64,
}

fn asset_from_row(r: &AnyRow) -> sqlx::Result<Asset> {
    let duration_secs = r.try_get(4)?;
    Ok(Asset {
        id: r.try_get(0)?,
        filename: r.try_get(1)?,
        content_type: r.try_get(2)?,
        size: r.try_get(3)?,
        duration_secs,
        sample_rate: r.try_get(5)?,
        channels: r.try_get(6)?,
        container: r.try_get(7)?,
        codec: r.try_get(8)?,
        created_at: r.try_get(9)?,
        credits: crate::credits::job_cost(duration_secs),
    })
}

async fn asset_by_id(app: &App, id: &str) -> ApiResult<Asset> {
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

/// Creates a job on one of the caller's assets; its credits are debited now
/// and refunded if it fails or is cancelled. With an `Idempotency-Key`, the
/// same request again answers the same job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", security(("session" = [])), request_body = JobRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retrying the request safe (1 to 255 characters)")),
    responses((status = 202, body = JobView),
        (status = 402, body = crate::openapi::ErrorBody, description = "Not enough credits"),
        (status = 404, body = crate::openapi::ErrorBody, description = "No such asset"),
        (status = 409, body = crate::openapi::ErrorBody, description = "The key was used for another request"),
        (status = 503, body = crate::openapi::ErrorBody, description = "The queue did not take the job; refunded")))]
async fn create_job(
    State(app): AppState,
    user: AuthUser,
    headers: HeaderMap,
    JsonBody(req): JsonBody<JobRequest>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let key = idempotency_key(&headers)?;
    let (job, _created) = jobs::create(&app, &user.id, &req, key.as_deref(), None).await?;
    Ok((StatusCode::ACCEPTED, Json(jobs::view(&app.db, &job).await?)))
}

/// A job, with its stage and progress while it runs.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = JobView)))]
async fn get_job(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<JobView>> {
    let job = jobs::get_owned(&app.db, &user.id, &id).await?;
    Ok(Json(jobs::view(&app.db, &job).await?))
}

/// Cancelling: a queued job ends at once; a running one is asked to stop and
/// does at its next segment boundary, writing nothing. Either way the job's
/// credits are refunded in full, since nothing was delivered. A job that
/// finished before the worker saw the request keeps its result and its charge.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = JobView, description = "Cancelled"), (status = 202, body = JobView, description = "Asked to stop"),
        (status = 409, body = crate::openapi::ErrorBody, description = "Already finished")))]
async fn cancel_job(
    State(app): AppState,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
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
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", security(("session" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retrying the request safe")),
    responses((status = 202, body = JobView),
        (status = 402, body = crate::openapi::ErrorBody, description = "Not enough credits"),
        (status = 409, body = crate::openapi::ErrorBody, description = "Neither failed nor cancelled"),
        (status = 503, body = crate::openapi::ErrorBody, description = "The queue did not take the job; refunded")))]
async fn retry_job(
    State(app): AppState,
    user: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
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

#[derive(Serialize, ToSchema)]
pub struct SignedStem {
    stem: String,
    /// A signed GET URL, valid until `expires_at`.
    url: String,
    content_type: String,
    size: i64,
    filename: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedOutputs {
    job_id: String,
    /// Unix milliseconds.
    expires_at: i64,
    stems: Vec<SignedStem>,
}

/// Short-lived URLs to play each stem in the page.
#[utoipa::path(get, path = "/v1/jobs/{id}/preview", tag = "jobs", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = SignedOutputs), (status = 409, body = crate::openapi::ErrorBody, description = "Not succeeded"),
        (status = 410, body = crate::openapi::ErrorBody, description = "The stems were deleted"),
        (status = 502, body = crate::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn preview(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<SignedOutputs>> {
    signed_outputs(&app, &user, &id, false).await
}

/// Short-lived URLs that download each stem as a named file.
#[utoipa::path(get, path = "/v1/jobs/{id}/downloads", tag = "jobs", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = SignedOutputs), (status = 409, body = crate::openapi::ErrorBody, description = "Not succeeded"),
        (status = 410, body = crate::openapi::ErrorBody, description = "The stems were deleted"),
        (status = 502, body = crate::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn downloads(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<SignedOutputs>> {
    signed_outputs(&app, &user, &id, true).await
}

async fn signed_outputs(app: &App, user: &AuthUser, id: &str, attachment: bool) -> ApiResult<Json<SignedOutputs>> {
    let job = jobs::get_owned(&app.db, &user.id, id).await?;
    if job.status != "succeeded" {
        return Err(ApiError::conflict("job_not_succeeded", format!("the job is {}", job.status)));
    }
    if jobs::outputs_deleted(&app.db, &job.id).await? {
        return Err(ApiError::new(
            StatusCode::GONE,
            "outputs_deleted",
            "this job's stems were deleted (with their upload, or at the end of their retention period)",
        ));
    }
    let filename: String = sqlx::query("SELECT filename FROM media_assets WHERE id = $1")
        .bind(&job.asset_id)
        .fetch_one(&app.db.pool)
        .await?
        .try_get(0)?;
    // Names stored before they were made safe at upload are made safe here.
    let filename = display_name(&filename);
    let base = filename.rsplit_once('.').map_or(filename.as_str(), |(b, _)| b).to_string();
    let ttl = Duration::from_secs(app.cfg.limits.download_url_ttl_secs);
    let expires_at = now_ms() + ttl.as_millis() as i64;
    let mut stems = Vec::new();
    for o in jobs::outputs(&app.db, &job.id).await? {
        let ext = o.object_key.rsplit('.').next().unwrap_or("wav");
        let opts = GetOptions {
            content_type: o.content_type.clone(),
            attachment,
            filename: format!("{base} - {}.{ext}", o.stem),
        };
        let url = app.store.presign_get(&o.object_key, ttl, &opts).await.map_err(ApiError::storage)?;
        stems.push(SignedStem {
            stem: o.stem,
            url,
            content_type: o.content_type,
            size: o.size,
            filename: opts.filename,
        });
    }
    Ok(Json(SignedOutputs { job_id: job.id, expires_at, stems }))
}

// ---------------------------------------------------------------------------
// Library

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Library {
    /// Newest first.
    assets: Vec<Asset>,
    next_cursor: Option<String>,
    /// The latest 20 jobs on assets not deleted.
    recent_jobs: Vec<JobView>,
}

/// The caller's uploads, a page at a time, and their latest jobs.
#[utoipa::path(get, path = "/v1/me/library", tag = "library", security(("session" = [])), params(Page),
    responses((status = 200, body = Library), (status = 400, body = crate::openapi::ErrorBody, description = "A bad cursor")))]
async fn library(State(app): AppState, user: AuthUser, QueryArgs(page): QueryArgs<Page>) -> ApiResult<Json<Library>> {
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
    let next_cursor = if more { assets.last().map(|a| format!("{}_{}", a.created_at, a.id)) } else { None };
    let job_rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM jobs j WHERE user_id = $1 AND EXISTS (SELECT 1 FROM media_assets a WHERE a.id = j.asset_id AND a.deleted_at IS NULL) \
         ORDER BY created_at DESC, id DESC LIMIT 20",
        jobs::JOB_COLUMNS
    )))
    .bind(&user.id)
    .fetch_all(&app.db.pool)
    .await?;
    let mut recent_jobs = Vec::new();
    for r in &job_rows {
        recent_jobs.push(jobs::view(&app.db, &jobs::JobRow::from_row(r)?).await?);
    }
    Ok(Json(Library { assets, next_cursor, recent_jobs }))
}

#[derive(Serialize, ToSchema)]
pub struct AssetDeleted {
    asset_id: String,
    deleted: bool,
    objects_deleted: usize,
}

/// Deletes an upload: its objects (original and every output) first, then
/// marks the rows deleted. Refused while one of its jobs is queued or running.
#[utoipa::path(delete, path = "/v1/me/library/{asset_id}", tag = "library", security(("session" = [])), params(("asset_id" = String, Path)),
    responses((status = 200, body = AssetDeleted), (status = 409, body = crate::openapi::ErrorBody, description = "A job on it is queued or running"),
        (status = 502, body = crate::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn delete_asset(
    State(app): AppState,
    user: AuthUser,
    Path(asset_id): Path<String>,
) -> ApiResult<Json<AssetDeleted>> {
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
    let objects_deleted =
        crate::retention::purge_asset(&app, &asset_id, &key, now_ms()).await.map_err(|e| match e {
            crate::retention::CleanupError::Db(e) => e.into(),
            crate::retention::CleanupError::Store(e) => ApiError::storage(e),
        })?;
    Ok(Json(AssetDeleted { asset_id, deleted: true, objects_deleted }))
}
