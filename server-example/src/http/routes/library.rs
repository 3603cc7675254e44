//! The caller's library: their uploads (assets), a page at a time, their
//! latest jobs, and deleting an upload with everything made from it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::App;
use crate::control::jobs::{self, JobView};
use crate::control::{AuthUser, credits};
use crate::db::now_ms;
use crate::error::{ServiceError, ServiceResult};
use crate::http::extract::QueryArgs;
use crate::media::retention::{CleanupError, purge_asset};
use crate::media::uploads::{AssetRow, assets, live_asset_key};

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(library)).routes(routes!(delete_asset))
}

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

impl From<AssetRow> for Asset {
    fn from(a: AssetRow) -> Asset {
        Asset {
            credits: credits::job_cost(a.duration_secs),
            id: a.id,
            filename: a.filename,
            content_type: a.content_type,
            size: a.size,
            duration_secs: a.duration_secs,
            sample_rate: a.sample_rate,
            channels: a.channels,
            container: a.container,
            codec: a.codec,
            created_at: a.created_at,
        }
    }
}

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
    responses((status = 200, body = Library), (status = 400, body = crate::http::openapi::ErrorBody, description = "A bad cursor")))]
async fn library(
    State(app): AppState,
    user: AuthUser,
    QueryArgs(page): QueryArgs<Page>,
) -> ServiceResult<Json<Library>> {
    let limit = page.limit.unwrap_or(20).clamp(1, 100);
    // The cursor is "<created_at>_<id>" of the last asset of the previous page.
    let before = match &page.cursor {
        None => None,
        Some(c) => {
            Some(c.split_once('_').and_then(|(t, i)| Some((t.parse::<i64>().ok()?, i))).ok_or_else(|| {
                ServiceError::bad_request("invalid_cursor", "use the next_cursor of the previous page")
            })?)
        }
    };
    let mut rows = assets(&app.db, &user.id, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let assets: Vec<Asset> = rows.into_iter().map(Asset::from).collect();
    let next_cursor = if more { assets.last().map(|a| format!("{}_{}", a.created_at, a.id)) } else { None };
    let mut recent_jobs = Vec::new();
    for job in jobs::recent(&app.db, &user.id, 20).await? {
        recent_jobs.push(jobs::view(&app.db, &job).await?);
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
    responses((status = 200, body = AssetDeleted), (status = 409, body = crate::http::openapi::ErrorBody, description = "A job on it is queued or running"),
        (status = 502, body = crate::http::openapi::ErrorBody, description = "Object storage did not answer")))]
async fn delete_asset(
    State(app): AppState,
    user: AuthUser,
    Path(asset_id): Path<String>,
) -> ServiceResult<Json<AssetDeleted>> {
    let key = live_asset_key(&app.db, &user.id, &asset_id).await?.ok_or_else(|| ServiceError::not_found("asset"))?;
    if jobs::active_on_asset(&app.db, &asset_id).await? > 0 {
        return Err(ServiceError::conflict("asset_in_use", "cancel its queued or running jobs first"));
    }
    let objects_deleted =
        purge_asset(&app.db, &app.media.store, &asset_id, &key, now_ms()).await.map_err(|e| match e {
            CleanupError::Db(e) => e.into(),
            CleanupError::Store(e) => ServiceError::storage(e),
        })?;
    Ok(Json(AssetDeleted { asset_id, deleted: true, objects_deleted }))
}
