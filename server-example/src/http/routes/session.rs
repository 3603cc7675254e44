//! Sign-in and the caller's account: sessions, the profile, the credit balance.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::App;
use crate::control::auth::{find_or_create_user, profile};
use crate::control::{AuthUser, credits};
use crate::error::{ServiceError, ServiceResult};
use crate::http::extract::JsonBody;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(auth_methods))
        .routes(routes!(dev_login))
        .routes(routes!(oauth_login))
        .routes(routes!(me))
        .routes(routes!(my_credits))
}

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
        dev_login: app.control.auth.dev_login,
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
    responses((status = 200, body = Session), (status = 404, body = crate::http::openapi::ErrorBody, description = "Dev sign-in is off")))]
async fn dev_login(State(app): AppState, JsonBody(body): JsonBody<DevLogin>) -> ServiceResult<Json<Session>> {
    if !app.control.auth.dev_login {
        return Err(ServiceError::not_found("route"));
    }
    let email = body.email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(ServiceError::unprocessable("invalid_email", "an e-mail address like name@example.com"));
    }
    let user =
        find_or_create_user(&app.db, "dev", &email, &email, body.name.as_deref(), app.control.signup_credits).await?;
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
    responses((status = 200, body = Session), (status = 401, body = crate::http::openapi::ErrorBody, description = "The ID token did not check out")))]
async fn oauth_login(State(app): AppState, JsonBody(body): JsonBody<OauthLogin>) -> ServiceResult<Json<Session>> {
    let (issuer, claims) = app.control.auth.verify_id_token(&body.id_token).await?;
    // Admin rights only for an address the provider says it verified.
    let verified = claims.email_verified == Some(true);
    let email = claims
        .email
        .map(|e| e.to_lowercase())
        .filter(|e| valid_email(e))
        .ok_or_else(|| ServiceError::unprocessable("email_required", "the ID token carries no e-mail address"))?;
    let user =
        find_or_create_user(&app.db, &issuer, &claims.sub, &email, claims.name.as_deref(), app.control.signup_credits)
            .await?;
    session(&app, &user, &email, verified)
}

fn session(app: &App, user: &str, email: &str, verified: bool) -> ServiceResult<Json<Session>> {
    let (token, expires_at) = app.control.auth.issue(user, email, verified)?;
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
async fn me(State(app): AppState, user: AuthUser) -> ServiceResult<Json<Me>> {
    let (email, name, created_at) = profile(&app.db, &user.id)
        .await?
        .ok_or_else(|| ServiceError::unauthorized("the session's user no longer exists"))?;
    let credits = credits::balance(&app.db.pool, &user.id).await?;
    Ok(Json(Me { admin: app.control.auth.is_admin(&user), id: user.id, email, name, credits, created_at }))
}

#[derive(Serialize, ToSchema)]
pub struct Credits {
    balance: i64,
    /// The latest 50 ledger entries, newest first.
    entries: Vec<credits::LedgerEntry>,
}

/// The caller's credit balance and its latest ledger entries.
#[utoipa::path(get, path = "/v1/me/credits", tag = "auth", operation_id = "credits", security(("session" = [])), responses((status = 200, body = Credits)))]
async fn my_credits(State(app): AppState, user: AuthUser) -> ServiceResult<Json<Credits>> {
    let balance = credits::balance(&app.db.pool, &user.id).await?;
    let entries = credits::recent_entries(&app.db.pool, &user.id, 50).await?;
    Ok(Json(Credits { balance, entries }))
}
