//! Separation jobs: the models there are, creating a job (debited now, sent
//! to the queue once recorded), reading, cancelling and retrying it, and
//! signed URLs to its stems.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::App;
use crate::control::AuthUser;
use crate::control::jobs::{self, JobRequest, JobView};
use crate::db::now_ms;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::http::extract::JsonBody;
use crate::media::keys::display_name;
use crate::media::store::GetOptions;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(models))
        .routes(routes!(create_job))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(retry_job))
        .routes(routes!(preview))
        .routes(routes!(downloads))
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
    let catalog = &app.control.catalog;
    let models = catalog
        .models
        .iter()
        .map(|(name, stems)| ModelInfo {
            name: name.clone(),
            stems: stems.clone(),
            default: *name == catalog.default_separator,
        })
        .collect();
    Json(Models { models })
}

fn idempotency_key(headers: &HeaderMap) -> ServiceResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| ServiceError::bad_request("invalid_idempotency_key", "Idempotency-Key must be visible ASCII")),
    }
}

/// Records the job (debited) and, when this request created it, sends it to the queue.
async fn create_and_submit(
    app: &App,
    user: &str,
    req: &JobRequest,
    key: Option<&str>,
    parent: Option<&jobs::JobRow>,
) -> ServiceResult<JobView> {
    let (job, created) =
        jobs::create(&app.db, &app.control.catalog, app.control.max_active_jobs, user, req, key, parent).await?;
    if created {
        app.compute.submit(&app.db, &job.id).await?;
    }
    jobs::view(&app.db, &job).await
}

/// Creates a job on one of the caller's assets; its credits are debited now
/// and refunded if it fails or is cancelled. With an `Idempotency-Key`, the
/// same request again answers the same job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", security(("session" = [])), request_body = JobRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retrying the request safe (1 to 255 characters)")),
    responses((status = 202, body = JobView),
        (status = 402, body = crate::http::openapi::ErrorBody, description = "Not enough credits"),
        (status = 404, body = crate::http::openapi::ErrorBody, description = "No such asset"),
        (status = 409, body = crate::http::openapi::ErrorBody, description = "The key was used for another request"),
        (status = 503, body = crate::http::openapi::ErrorBody, description = "The queue did not take the job; refunded")))]
async fn create_job(
    State(app): AppState,
    user: AuthUser,
    headers: HeaderMap,
    JsonBody(req): JsonBody<JobRequest>,
) -> ServiceResult<(StatusCode, Json<JobView>)> {
    let key = idempotency_key(&headers)?;
    let view = create_and_submit(&app, &user.id, &req, key.as_deref(), None).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A job, with its stage and progress while it runs.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = JobView)))]
async fn get_job(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ServiceResult<Json<JobView>> {
    let job = jobs::get_owned(&app.db, &user.id, &id).await?;
    Ok(Json(jobs::view(&app.db, &job).await?))
}

/// Cancelling: a queued job ends at once; a running one is asked to stop and
/// does at its next segment boundary, writing nothing. Either way the job's
/// credits are refunded in full, since nothing was delivered. A job that
/// finished before the worker saw the request keeps its result and its charge.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = JobView, description = "Cancelled"), (status = 202, body = JobView, description = "Asked to stop"),
        (status = 409, body = crate::http::openapi::ErrorBody, description = "Already finished")))]
async fn cancel_job(
    State(app): AppState,
    user: AuthUser,
    Path(id): Path<String>,
) -> ServiceResult<(StatusCode, Json<JobView>)> {
    let db = &app.db;
    let job = jobs::get_owned(db, &user.id, &id).await?;
    if job.is_terminal() {
        return Err(ServiceError::conflict("job_finished", format!("the job already {}", job.status)));
    }
    if job.status == "queued" && jobs::finish(db, &id, "cancelled", None).await? {
        let job = jobs::get_owned(db, &user.id, &id).await?;
        return Ok((StatusCode::OK, Json(jobs::view(db, &job).await?)));
    }
    let asked = jobs::request_cancel(db, &id).await?;
    let job = jobs::get_owned(db, &user.id, &id).await?;
    if !asked {
        return Err(ServiceError::conflict("job_finished", format!("the job already {}", job.status)));
    }
    Ok((StatusCode::ACCEPTED, Json(jobs::view(db, &job).await?)))
}

/// A new job with the same request, linked to its parent; the parent stays as it was.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", security(("session" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retrying the request safe")),
    responses((status = 202, body = JobView),
        (status = 402, body = crate::http::openapi::ErrorBody, description = "Not enough credits"),
        (status = 409, body = crate::http::openapi::ErrorBody, description = "Neither failed nor cancelled"),
        (status = 503, body = crate::http::openapi::ErrorBody, description = "The queue did not take the job; refunded")))]
async fn retry_job(
    State(app): AppState,
    user: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ServiceResult<(StatusCode, Json<JobView>)> {
    let parent = jobs::get_owned(&app.db, &user.id, &id).await?;
    if !matches!(parent.status.as_str(), "failed" | "cancelled") {
        return Err(ServiceError::conflict(
            "not_retryable",
            format!("only failed or cancelled jobs are retried; this one is {}", parent.status),
        ));
    }
    let cfg = parent.config().map_err(|e| ServiceError::internal("job config", e))?;
    let key = idempotency_key(&headers)?;
    let view = create_and_submit(&app, &user.id, &cfg.request, key.as_deref(), Some(&parent)).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
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
    responses((status = 200, body = SignedOutputs), (status = 409, body = crate::http::openapi::ErrorBody, description = "Not succeeded"),
        (status = 410, body = crate::http::openapi::ErrorBody, description = "The stems were deleted"),
        (status = 502, body = crate::http::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn preview(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ServiceResult<Json<SignedOutputs>> {
    signed_outputs(&app, &user, &id, false).await
}

/// Short-lived URLs that download each stem as a named file.
#[utoipa::path(get, path = "/v1/jobs/{id}/downloads", tag = "jobs", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = SignedOutputs), (status = 409, body = crate::http::openapi::ErrorBody, description = "Not succeeded"),
        (status = 410, body = crate::http::openapi::ErrorBody, description = "The stems were deleted"),
        (status = 502, body = crate::http::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn downloads(State(app): AppState, user: AuthUser, Path(id): Path<String>) -> ServiceResult<Json<SignedOutputs>> {
    signed_outputs(&app, &user, &id, true).await
}

async fn signed_outputs(app: &App, user: &AuthUser, id: &str, attachment: bool) -> ServiceResult<Json<SignedOutputs>> {
    let job = jobs::get_owned(&app.db, &user.id, id).await?;
    if job.status != "succeeded" {
        return Err(ServiceError::conflict("job_not_succeeded", format!("the job is {}", job.status)));
    }
    if jobs::outputs_deleted(&app.db, &job.id).await? {
        return Err(ServiceError::new(
            ErrorKind::Gone,
            "outputs_deleted",
            "this job's stems were deleted (with their upload, or at the end of their retention period)",
        ));
    }
    let asset = crate::media::uploads::asset(&app.db, &job.asset_id).await?;
    // Names stored before they were made safe at upload are made safe here.
    let filename = display_name(&asset.filename);
    let base = filename.rsplit_once('.').map_or(filename.as_str(), |(b, _)| b).to_string();
    let ttl = app.media.uploads.download_url_ttl;
    let expires_at = now_ms() + ttl.as_millis() as i64;
    let mut stems = Vec::new();
    for o in jobs::outputs(&app.db, &job.id).await? {
        let ext = o.object_key.rsplit('.').next().unwrap_or("wav");
        let opts = GetOptions {
            content_type: o.content_type.clone(),
            attachment,
            filename: format!("{base} - {}.{ext}", o.stem),
        };
        let url = app.media.store.presign_get(&o.object_key, ttl, &opts).await.map_err(ServiceError::storage)?;
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
