//! Buying credits: the packs on sale, starting a Stripe Checkout, and
//! Stripe's signed webhook (see `control::billing` for what they do).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::App;
use crate::control::AuthUser;
use crate::control::billing::{Billing, CreditPack, Event, SignatureError, handle_event, verify_signature};
use crate::db::now_ms;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::http::extract::JsonBody;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(packs)).routes(routes!(checkout_session)).routes(routes!(stripe_webhook))
}

fn billing(app: &App) -> ServiceResult<&Billing> {
    app.control.billing.as_ref().ok_or_else(|| {
        ServiceError::new(ErrorKind::NotFound, "billing_disabled", "this deployment does not sell credits")
    })
}

#[derive(Serialize, ToSchema)]
pub struct Packs {
    packs: Vec<CreditPack>,
}

/// The credit packs on sale.
#[utoipa::path(get, path = "/v1/billing/packs", tag = "billing",
    responses((status = 200, body = Packs), (status = 404, body = crate::http::openapi::ErrorBody, description = "Billing is off")))]
async fn packs(State(app): AppState) -> ServiceResult<Json<Packs>> {
    Ok(Json(Packs { packs: billing(&app)?.cfg.packs.clone() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckoutRequest {
    pack_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct CheckoutStarted {
    /// Ours; Stripe's session carries it as `client_reference_id`.
    checkout_id: String,
    /// Stripe's `cs_…`.
    session_id: String,
    /// Send the buyer here.
    url: String,
}

/// Starts a Stripe Checkout for one credit pack.
#[utoipa::path(post, path = "/v1/billing/checkout-session", tag = "billing", security(("session" = [])),
    request_body = CheckoutRequest,
    responses((status = 201, body = CheckoutStarted),
        (status = 404, body = crate::http::openapi::ErrorBody, description = "Billing is off"),
        (status = 502, body = crate::http::openapi::ErrorBody, description = "Stripe refused or did not answer")))]
async fn checkout_session(
    State(app): AppState,
    user: AuthUser,
    JsonBody(req): JsonBody<CheckoutRequest>,
) -> ServiceResult<(StatusCode, Json<CheckoutStarted>)> {
    let c = billing(&app)?.start_checkout(&app.db, &user.id, &user.email, &req.pack_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CheckoutStarted { checkout_id: c.checkout_id, session_id: c.session_id, url: c.url }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAck {
    received: bool,
    /// This event id was handled before; nothing changed.
    duplicate: bool,
}

/// Stripe's webhook: signed events about checkouts.
#[utoipa::path(post, path = "/v1/billing/webhooks/stripe", tag = "billing",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256>")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "A Stripe event"),
    responses((status = 200, body = WebhookAck),
        (status = 400, body = crate::http::openapi::ErrorBody, description = "A missing, forged or stale signature, or a malformed event"),
        (status = 404, body = crate::http::openapi::ErrorBody, description = "Billing is off")))]
async fn stripe_webhook(State(app): AppState, headers: HeaderMap, body: Bytes) -> ServiceResult<Json<WebhookAck>> {
    let cfg = &billing(&app)?.cfg;
    let refuse = |result: &'static str, code: &'static str, msg: &str| {
        app.metrics.webhook_event(result);
        ServiceError::bad_request(code, msg.to_string())
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refuse("unsigned", "missing_signature", "no Stripe-Signature header"))?;
    let now = now_ms() / 1000;
    verify_signature(header, &body, &cfg.webhook_secret, now, cfg.webhook_tolerance_secs).map_err(|e| match e {
        SignatureError::Stale => {
            refuse("stale", "stale_signature", "the signature's timestamp is outside the tolerance")
        }
        _ => refuse("forged", "invalid_signature", "the signature does not match"),
    })?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| refuse("malformed", "invalid_event", &format!("not a Stripe event: {e}")))?;
    let duplicate = handle_event(&app.db, &event).await?;
    app.metrics.webhook_event(if duplicate { "duplicate" } else { "handled" });
    Ok(Json(WebhookAck { received: true, duplicate }))
}
