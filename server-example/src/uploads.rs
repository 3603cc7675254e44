//! An upload's completion lease, shared by the API (completing and aborting)
//! and retention (rolling back uploads nobody finished): whoever holds the
//! lease owns the upload's objects until it releases it or the lease runs out.

use crate::App;
use crate::db::new_id;
use crate::storage::StoreError;

/// Takes the upload for completing (or rolling back): from `pending` (with
/// `pending_expired_before`, only one whose part URLs expired before then), or
/// from a `completing` whose holder's lease ran out (it died mid-way).
/// Returns the new lease's token, or `None` when someone else holds it or
/// the upload is no longer pending.
pub(crate) async fn take_upload_lease(
    app: &App,
    id: &str,
    now: i64,
    pending_expired_before: Option<i64>,
) -> sqlx::Result<Option<String>> {
    let token = new_id();
    let until = now.saturating_add((app.cfg.limits.upload_complete_lease_secs as i64).saturating_mul(1000));
    let r = sqlx::query(
        "UPDATE uploads SET status = 'completing', lease_token = $1, lease_until = $2 \
         WHERE id = $3 AND ((status = 'pending' AND expires_at < $5) OR (status = 'completing' AND lease_until < $4))",
    )
    .bind(&token)
    .bind(until)
    .bind(id)
    .bind(now)
    .bind(pending_expired_before.unwrap_or(i64::MAX))
    .execute(&app.db.pool)
    .await?;
    Ok((r.rows_affected() == 1).then_some(token))
}

/// Ends the lease `token` holds, moving the upload to `to`; false when the
/// lease was taken over meanwhile (then the upload is the new holder's).
pub(crate) async fn release_upload_lease(
    app: &App,
    id: &str,
    token: &str,
    to: &str,
    code: Option<&str>,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE uploads SET status = $1, failure_code = $2, lease_token = NULL, lease_until = NULL \
         WHERE id = $3 AND status = 'completing' AND lease_token = $4",
    )
    .bind(to)
    .bind(code)
    .bind(id)
    .bind(token)
    .execute(&app.db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Rolls back what a completion may have left in the store: the multipart
/// upload and the assembled object. Both may already be gone.
pub(crate) async fn discard_upload_objects(app: &App, key: &str, storage_upload: &str) -> Result<(), StoreError> {
    match app.store.abort_multipart(key, storage_upload).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    app.store.delete(key).await
}
