//! Credits: an append-only ledger whose every entry moves the balance (a
//! database trigger does the arithmetic; a CHECK keeps it at or above zero).
//! Each entry has a unique `ref`, so granting, debiting or refunding the same
//! thing twice records it once.

use sqlx::{Any, Row, Transaction};

use crate::db::{is_check_violation, new_sorted_id, now_ms};

/// Credits a job costs for audio of `secs`: up to 30 s, 1; up to 2 min, 2; up to 5 min, 4.
pub fn job_cost(secs: f64) -> i64 {
    if secs <= 30.0 {
        1
    } else if secs <= 120.0 {
        2
    } else {
        4
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("not enough credits")]
    Insufficient,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Records `delta` for `user`. `Ok(false)` when an entry with `reference`
/// already exists (nothing changes); [`LedgerError::Insufficient`] when the
/// balance would go below zero (on PostgreSQL that aborts the transaction).
pub async fn insert_entry(
    tx: &mut Transaction<'_, Any>,
    user: &str,
    delta: i64,
    reason: &str,
    reference: &str,
    job_id: Option<&str>,
) -> Result<bool, LedgerError> {
    let r = sqlx::query(
        "INSERT INTO credit_ledger (id, user_id, delta, reason, ref, job_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ref) DO NOTHING",
    )
    .bind(new_sorted_id())
    .bind(user)
    .bind(delta)
    .bind(reason)
    .bind(reference)
    .bind(job_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await;
    match r {
        Ok(r) => Ok(r.rows_affected() == 1),
        Err(e) if is_check_violation(&e) => Err(LedgerError::Insufficient),
        Err(e) => Err(e.into()),
    }
}

/// Gives back a job's debit, once, whatever calls it how often. Returns
/// whether this call refunded. Uses `ON CONFLICT` so a repeated refund does
/// not abort a PostgreSQL transaction.
pub async fn refund_job(tx: &mut Transaction<'_, Any>, user: &str, job_id: &str, credits: i64) -> sqlx::Result<bool> {
    if credits <= 0 {
        return Ok(false);
    }
    let debited = sqlx::query("SELECT 1 FROM credit_ledger WHERE ref = $1")
        .bind(format!("job:{job_id}:debit"))
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !debited {
        return Ok(false);
    }
    let r = sqlx::query(
        "INSERT INTO credit_ledger (id, user_id, delta, reason, ref, job_id, created_at) \
         VALUES ($1, $2, $3, 'job_refund', $4, $5, $6) ON CONFLICT (ref) DO NOTHING",
    )
    .bind(new_sorted_id())
    .bind(user)
    .bind(credits)
    .bind(format!("job:{job_id}:refund"))
    .bind(job_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn balance<'e, E: sqlx::Executor<'e, Database = Any>>(ex: E, user: &str) -> sqlx::Result<i64> {
    let row =
        sqlx::query("SELECT balance FROM credit_accounts WHERE user_id = $1").bind(user).fetch_optional(ex).await?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// One ledger entry as its owner sees it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub delta: i64,
    /// `signup`, `job_debit`, `job_refund`, `purchase`, `admin_refund`, …
    pub reason: String,
    pub job_id: Option<String>,
    pub created_at: i64,
}

/// The ledger's recent entries, newest first.
pub async fn recent_entries(pool: &sqlx::AnyPool, user: &str, limit: i64) -> sqlx::Result<Vec<LedgerEntry>> {
    let rows = sqlx::query(
        "SELECT delta, reason, job_id, created_at FROM credit_ledger WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(user)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LedgerEntry {
                delta: r.try_get(0)?,
                reason: r.try_get(1)?,
                job_id: r.try_get(2)?,
                created_at: r.try_get(3)?,
            })
        })
        .collect()
}

impl From<LedgerError> for crate::error::ServiceError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Insufficient => crate::error::ServiceError::new(
                crate::error::ErrorKind::PaymentRequired,
                "insufficient_credits",
                "not enough credits",
            ),
            LedgerError::Db(e) => e.into(),
        }
    }
}
