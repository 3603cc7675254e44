//! Buying credits with Stripe Checkout. `POST /v1/billing/checkout-session`
//! records our checkout first, then asks Stripe for a Checkout Session that
//! carries our id as `client_reference_id`, so a webhook can never arrive for
//! a checkout we do not know. `POST /v1/billing/webhooks/stripe` checks the
//! `Stripe-Signature` header, records each event id once, and grants a paid
//! checkout's credits through the ledger under the checkout's own reference,
//! so however many events (and in whatever order) say it was paid, it is
//! granted once.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use sqlx::Row;
use utoipa::ToSchema;

use crate::db::{Db, new_sorted_id, now_ms};
use crate::error::{ErrorKind, ServiceError, ServiceResult, StartupError};

/// Stripe's API version our requests and the webhook payloads we read follow.
pub const STRIPE_VERSION: &str = "2024-06-20";

/// A credit pack users can buy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreditPack {
    pub id: String,
    pub credits: i64,
    /// Price in the currency's minor unit (cents).
    pub amount: i64,
    /// ISO 4217, lower case (`eur`, `usd`).
    pub currency: String,
    /// What the checkout page shows.
    pub name: String,
}

/// `billing` in the configuration; billing is off without it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// `sk_live_…` or `sk_test_…`.
    pub stripe_secret_key: String,
    /// The endpoint's signing secret, `whsec_…`.
    pub webhook_secret: String,
    /// Stripe's API; another base for a Stripe-compatible test server.
    pub api_base: String,
    /// How old a signed webhook may be.
    pub webhook_tolerance_secs: u64,
    /// Where Checkout sends the buyer back; `{public_url}/?checkout=success|cancel` when absent.
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub packs: Vec<CreditPack>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        let pack = |id: &str, credits: i64, amount: i64| CreditPack {
            id: id.into(),
            credits,
            amount,
            currency: "eur".into(),
            name: format!("{credits} SplitSound credits"),
        };
        BillingConfig {
            stripe_secret_key: String::new(),
            webhook_secret: String::new(),
            api_base: "https://api.stripe.com".into(),
            webhook_tolerance_secs: 300,
            success_url: None,
            cancel_url: None,
            packs: vec![pack("starter", 20, 500), pack("studio", 100, 2000), pack("label", 500, 8000)],
        }
    }
}

/// Billing as the control plane runs it: the configuration, a client for
/// Stripe's API, and the public address Checkout sends buyers back to.
#[derive(Debug)]
pub struct Billing {
    pub cfg: BillingConfig,
    http: reqwest::Client,
    public_url: String,
}

/// A Checkout started: ours, Stripe's, and where to send the buyer.
#[derive(Debug)]
pub struct Checkout {
    pub checkout_id: String,
    pub session_id: String,
    pub url: String,
}

impl Billing {
    pub fn new(cfg: BillingConfig, public_url: &str) -> Result<Billing, StartupError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| StartupError::Config(format!("HTTP client: {e}")))?;
        Ok(Billing { cfg, http, public_url: public_url.to_string() })
    }

    /// Starts a Stripe Checkout of pack `pack_id` for `user`: our checkout is
    /// recorded first, then Stripe's session is asked for with our id as its
    /// `client_reference_id`.
    pub async fn start_checkout(&self, db: &Db, user: &str, email: &str, pack_id: &str) -> ServiceResult<Checkout> {
        let cfg = &self.cfg;
        let pack = cfg
            .packs
            .iter()
            .find(|p| p.id == pack_id)
            .ok_or_else(|| ServiceError::unprocessable("unknown_pack", format!("no credit pack {pack_id:?}")))?;
        let id = new_sorted_id();
        sqlx::query(
            "INSERT INTO checkouts (id, user_id, pack_id, credits, amount, currency, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'creating', $7, $7)",
        )
        .bind(&id)
        .bind(user)
        .bind(&pack.id)
        .bind(pack.credits)
        .bind(pack.amount)
        .bind(&pack.currency)
        .bind(now_ms())
        .execute(&db.pool)
        .await?;
        let public = &self.public_url;
        let success = cfg.success_url.clone().unwrap_or_else(|| format!("{public}/?checkout=success"));
        let cancel = cfg.cancel_url.clone().unwrap_or_else(|| format!("{public}/?checkout=cancel"));
        let credits = pack.credits.to_string();
        let amount = pack.amount.to_string();
        let form: Vec<(&str, &str)> = vec![
            ("mode", "payment"),
            ("success_url", &success),
            ("cancel_url", &cancel),
            ("client_reference_id", &id),
            ("customer_email", email),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", &pack.currency),
            ("line_items[0][price_data][unit_amount]", &amount),
            ("line_items[0][price_data][product_data][name]", &pack.name),
            ("metadata[checkout_id]", &id),
            ("metadata[user_id]", user),
            ("metadata[pack_id]", &pack.id),
            ("metadata[credits]", &credits),
        ];
        let failed = |status: &str, e: &dyn std::fmt::Display| {
            tracing::error!(checkout = %id, error = %e, "Stripe checkout session: {status}");
            ServiceError::new(
                ErrorKind::BadGateway,
                "payment_provider_error",
                "the payment provider did not start a checkout; try again",
            )
        };
        let resp = self
            .http
            .post(format!("{}/v1/checkout/sessions", cfg.api_base.trim_end_matches('/')))
            .bearer_auth(&cfg.stripe_secret_key)
            .header("Stripe-Version", STRIPE_VERSION)
            // Our retries of this call can never make two sessions.
            .header("Idempotency-Key", format!("checkout-{id}"))
            .form(&form)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let (session_id, url) = match resp {
            Err(e) => return Err(failed("unreachable", &e)),
            Ok(r) if !r.status().is_success() => {
                let s = r.status();
                let body = r.text().await.unwrap_or_default();
                return Err(failed(s.as_str(), &body));
            }
            Ok(r) => {
                let v: Value = r.json().await.map_err(|e| failed("unreadable answer", &e))?;
                match (v["id"].as_str(), v["url"].as_str()) {
                    (Some(s), Some(u)) => (s.to_string(), u.to_string()),
                    _ => return Err(failed("answer without id or url", &v)),
                }
            }
        };
        sqlx::query(
            "UPDATE checkouts SET session_id = $1, status = 'open', updated_at = $2 WHERE id = $3 AND status = 'creating'",
        )
        .bind(&session_id)
        .bind(now_ms())
        .bind(&id)
        .execute(&db.pool)
        .await?;
        Ok(Checkout { checkout_id: id, session_id, url })
    }
}

#[derive(Debug, PartialEq)]
pub enum SignatureError {
    Malformed,
    Stale,
    Mismatch,
}

/// Checks `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`: one v1 must be
/// HMAC-SHA256 keyed by the whole `whsec_…` secret over `"<t>." + body`,
/// compared in constant time, and `t` within `tolerance` of `now`.
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secret: &str,
    now_secs: i64,
    tolerance: u64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => sigs.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {} // v0 and schemes to come are ignored, as Stripe's libraries do
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let matches = sigs.iter().any(|sig| {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(sig).is_ok()
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if now_secs.abs_diff(t) > tolerance {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// Checkout statuses, by how far along they are; a later event never moves a
/// checkout back (a late `completed` with payment pending after the async
/// payment already succeeded stays paid).
fn rank(status: &str) -> i32 {
    match status {
        "creating" => 0,
        "open" => 1,
        "awaiting_payment" => 2,
        "expired" | "payment_failed" => 3,
        "paid" => 4,
        _ => 5, // "mismatch": needs a person
    }
}

/// A Stripe event, as its webhook delivers it.
#[derive(Debug, Deserialize)]
pub struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

/// Records the event and applies it, in one transaction; `Ok(true)` when it
/// was recorded before.
pub async fn handle_event(db: &Db, event: &Event) -> ServiceResult<bool> {
    let mut tx = db.pool.begin().await?;
    let fresh = sqlx::query(
        "INSERT INTO stripe_events (id, type, created, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(event.created)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(true);
    }
    let to = match event.kind.as_str() {
        "checkout.session.completed" => match event.data.object["payment_status"].as_str() {
            Some("paid" | "no_payment_required") => Some("paid"),
            _ => Some("awaiting_payment"),
        },
        "checkout.session.async_payment_succeeded" => Some("paid"),
        "checkout.session.async_payment_failed" => Some("payment_failed"),
        "checkout.session.expired" => Some("expired"),
        _ => None, // recorded, nothing to do
    };
    if let Some(to) = to {
        apply(&mut tx, event, to).await?;
    }
    tx.commit().await?;
    Ok(false)
}

async fn apply(tx: &mut sqlx::Transaction<'_, sqlx::Any>, event: &Event, to: &str) -> ServiceResult<()> {
    let obj = &event.data.object;
    let Some(checkout_id) = obj["client_reference_id"].as_str() else {
        tracing::warn!(event = %event.id, "a checkout event without client_reference_id: not one of ours");
        return Ok(());
    };
    // Lock the checkout's row, so concurrent deliveries for it apply in turn.
    let row = sqlx::query(
        "UPDATE checkouts SET updated_at = updated_at WHERE id = $1 \
         RETURNING user_id, credits, amount, currency, status, session_id",
    )
    .bind(checkout_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        tracing::warn!(event = %event.id, checkout = checkout_id, "an event for an unknown checkout");
        return Ok(());
    };
    let (user, credits, amount, currency, status, session): (String, i64, i64, String, String, Option<String>) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
    let session_id = obj["id"].as_str().unwrap_or_default();
    let mut to = to;
    if session.as_deref().is_some_and(|s| s != session_id) {
        tracing::error!(event = %event.id, checkout = checkout_id, "the event's session is not this checkout's");
        to = "mismatch";
    }
    if to == "paid"
        && (obj["amount_total"].as_i64() != Some(amount)
            || obj["currency"].as_str().map(str::to_lowercase).as_deref() != Some(currency.as_str()))
    {
        tracing::error!(event = %event.id, checkout = checkout_id, "paid amount or currency differs from the pack's");
        to = "mismatch";
    }
    if rank(to) <= rank(&status) {
        return Ok(());
    }
    sqlx::query(
        "UPDATE checkouts SET status = $1, session_id = COALESCE(session_id, $2), updated_at = $3 WHERE id = $4",
    )
    .bind(to)
    .bind(session_id)
    .bind(now_ms())
    .bind(checkout_id)
    .execute(&mut **tx)
    .await?;
    if to == "paid" {
        let reference = format!("checkout:{checkout_id}");
        super::credits::insert_entry(tx, &user, credits, "purchase", &reference, None).await?;
        tracing::info!(checkout = checkout_id, user = %user, credits, "credits purchased");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed with Python's hmac module:
    // hmac.new(b"whsec_test", b"1700000000." + body, "sha256").hexdigest()
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
    const SIG: &str = "749721cbedbfa4cc1aa6c9c2bec1edd93766a07906c9d9b3dbc7626e4e660caf";

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn known_answer() {
        assert_eq!(sign("whsec_test", 1_700_000_000, BODY), SIG);
    }

    #[test]
    fn signatures() {
        let t = 1_700_000_000;
        let good = sign("whsec_test", t, BODY);
        let ok = |h: &str, now| verify_signature(h, BODY, "whsec_test", now, 300);
        assert_eq!(ok(&format!("t={t},v1={good}"), t + 10), Ok(()));
        // Any of several v1 values, other schemes ignored.
        assert_eq!(ok(&format!("t={t},v1={},v0=zz,v1={good}", "ab".repeat(32)), t), Ok(()));
        assert_eq!(ok(&format!("t={t},v1={good}"), t + 301), Err(SignatureError::Stale));
        assert_eq!(ok(&format!("t={t},v1={good}"), t - 301), Err(SignatureError::Stale));
        assert_eq!(ok(&format!("t={},v1={good}", t + 1), t), Err(SignatureError::Mismatch));
        assert_eq!(ok(&format!("t={t},v1={}", "ab".repeat(32)), t), Err(SignatureError::Mismatch));
        assert_eq!(
            verify_signature(&format!("t={t},v1={good}"), BODY, "whsec_other", t, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(ok(&format!("v1={good}"), t), Err(SignatureError::Malformed));
        assert_eq!(ok(&format!("t={t}"), t), Err(SignatureError::Malformed));
        assert_eq!(ok(&format!("t=soon,v1={good}"), t), Err(SignatureError::Malformed));
        assert_eq!(ok(&format!("t={t},v1=xyz"), t), Err(SignatureError::Malformed));
    }
}
