//! Presigned multipart uploads: start one, complete it with the parts'
//! ETags (the answer is the probed asset), or abort it. The bytes go to the
//! store, never through the API.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::library::Asset;
use crate::App;
use crate::control::AuthUser;
use crate::db::now_ms;
use crate::error::{ServiceError, ServiceResult};
use crate::http::extract::JsonBody;
use crate::media::store::PartEtag;
use crate::media::uploads;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(upload_initialize))
        .routes(routes!(upload_complete))
        .routes(routes!(upload_abort))
}

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

/// Starts a multipart upload: one presigned URL per part.
#[utoipa::path(post, path = "/v1/uploads/initialize", tag = "uploads", security(("session" = [])), request_body = InitUpload,
    responses((status = 201, body = UploadStarted), (status = 502, body = crate::http::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn upload_initialize(
    State(app): AppState,
    user: AuthUser,
    JsonBody(body): JsonBody<InitUpload>,
) -> ServiceResult<(StatusCode, Json<UploadStarted>)> {
    let started = uploads::initialize(
        &app.media.store,
        &app.media.uploads,
        &app.db,
        &user.id,
        &body.filename,
        body.size,
        &body.content_type,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadStarted {
            upload_id: started.id,
            part_size: started.part_size,
            parts: started
                .parts
                .into_iter()
                .map(|(part_number, url, size)| PartUrl { part_number, url, size })
                .collect(),
            expires_at: started.expires_at,
            method: "PUT".into(),
            note: "PUT each part's bytes to its URL, keep each answer's ETag header, then POST them to /v1/uploads/{id}/complete".into(),
        }),
    ))
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

/// Completes the upload with the parts' ETags, then checks and probes the
/// media: the answer is the new asset (or, completed again, the same one).
#[utoipa::path(post, path = "/v1/uploads/{id}/complete", tag = "uploads", security(("session" = [])),
    params(("id" = String, Path)), request_body = CompleteUpload,
    responses((status = 201, body = AssetEnvelope), (status = 200, body = AssetEnvelope, description = "Already completed"),
        (status = 409, body = crate::http::openapi::ErrorBody, description = "Not pending"),
        (status = 502, body = crate::http::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn upload_complete(
    State(app): AppState,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CompleteUpload>,
) -> ServiceResult<(StatusCode, Json<AssetEnvelope>)> {
    let db = &app.db;
    let up = uploads::owned(db, &user.id, &id).await?;
    if up.status == "completed" {
        // Completing twice is answered with the same asset.
        let asset = uploads::asset(db, up.asset_id.as_deref().unwrap_or_default()).await?;
        return Ok((StatusCode::OK, Json(AssetEnvelope { asset: asset.into() })));
    }
    let now = now_ms();
    let Some(lease) = uploads::take_lease(db, app.media.uploads.complete_lease, &id, now, None).await? else {
        return Err(uploads::busy(&uploads::owned(db, &user.id, &id).await?, now));
    };
    if up.status == "completing" {
        tracing::info!(upload = %id, "resuming a completion whose request died");
    }
    match uploads::complete(&app.media.store, app.media.uploads.max_duration_secs, db, &up, &body.parts, &lease).await {
        Ok(asset_id) => {
            let asset = uploads::asset(db, &asset_id).await?;
            Ok((StatusCode::CREATED, Json(AssetEnvelope { asset: asset.into() })))
        }
        Err((e, terminal)) => {
            let (to, code) = if terminal { ("rejected", Some(e.code)) } else { ("pending", None) };
            if uploads::release_lease(db, &id, &lease, to, code).await?
                && terminal
                && let Err(se) = app.media.store.delete(&up.key).await
            {
                tracing::warn!(upload = %id, error = %se, "could not delete a rejected upload's object");
            }
            Err(e)
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UploadAborted {
    upload_id: String,
    status: String,
}

/// Abandons a pending upload (or one whose completion died): the parts sent
/// so far, and anything a completion assembled, are discarded.
#[utoipa::path(post, path = "/v1/uploads/{id}/abort", tag = "uploads", security(("session" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UploadAborted), (status = 409, body = crate::http::openapi::ErrorBody, description = "Not pending"),
        (status = 502, body = crate::http::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn upload_abort(
    State(app): AppState,
    user: AuthUser,
    Path(id): Path<String>,
) -> ServiceResult<Json<UploadAborted>> {
    let db = &app.db;
    let up = uploads::owned(db, &user.id, &id).await?;
    let aborted = || Json(UploadAborted { upload_id: id.clone(), status: "aborted".into() });
    if up.status == "aborted" {
        return Ok(aborted());
    }
    // The same lease as completing: an abort never races a live completion,
    // and it rolls back one that died.
    let now = now_ms();
    let Some(lease) = uploads::take_lease(db, app.media.uploads.complete_lease, &id, now, None).await? else {
        return Err(uploads::busy(&uploads::owned(db, &user.id, &id).await?, now));
    };
    if let Err(e) = uploads::discard_objects(&app.media.store, &up.key, &up.storage_upload).await {
        // Pending again: the abort (or a completion, or retention) may be tried again.
        uploads::release_lease(db, &id, &lease, "pending", None).await?;
        return Err(ServiceError::storage(e));
    }
    uploads::release_lease(db, &id, &lease, "aborted", None).await?;
    Ok(aborted())
}
