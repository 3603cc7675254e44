//! What handlers take from a request: JSON bodies and query strings whose
//! rejections are typed errors (not axum's plain text), the signed-in caller,
//! and the signed-in operator.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Json, extract::FromRequest};

use crate::App;
use crate::control::AuthUser;
use crate::control::auth::{Auth, SessionClaims, session_user};
use crate::error::{ErrorKind, ServiceError, ServiceResult};

/// Query parameters whose rejection is a typed error, not axum's plain text.
pub struct QueryArgs<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ServiceError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ServiceError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(QueryArgs(v)),
            Err(e) => Err(ServiceError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// A JSON body whose rejection is a typed error, not axum's plain text.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ServiceError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ServiceError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => {
                let kind = match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        return Err(ServiceError::new(
                            ErrorKind::PayloadTooLarge,
                            "body_too_large",
                            "the request body is larger than this server accepts",
                        ));
                    }
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::UnsupportedMediaType,
                    StatusCode::UNPROCESSABLE_ENTITY => ErrorKind::Unprocessable,
                    _ => ErrorKind::BadRequest,
                };
                Err(ServiceError::new(kind, "invalid_json", e.body_text()))
            }
        }
    }
}

/// The session token of a request, verified once by the middleware and kept
/// in the request's extensions for the handlers (`None`: no Authorization header).
#[derive(Clone)]
pub struct Session(pub Option<ServiceResult<SessionClaims>>);

impl Session {
    /// Reads and verifies the `Authorization: Bearer …` header.
    pub fn verify(auth: &Auth, headers: &HeaderMap) -> Session {
        let Some(header) = headers.get(header::AUTHORIZATION) else { return Session(None) };
        let claims = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ServiceError::unauthorized("the Authorization header must be `Bearer <token>`"))
            .and_then(|token| auth.verify_session(token.trim()));
        Session(Some(claims))
    }
}

impl FromRequestParts<Arc<App>> for AuthUser {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let session = match parts.extensions.get::<Session>() {
            Some(s) => s.clone(),
            // A router without the middleware: verified here.
            None => Session::verify(&app.control.auth, &parts.headers),
        };
        let claims = session
            .0
            .ok_or_else(|| ServiceError::unauthorized("sign in first: Authorization: Bearer <session token>"))??;
        session_user(&app.db, claims).await
    }
}

/// A signed-in operator: the session carries the admin claim and its e-mail
/// address is still on `auth.admin_emails`; anyone else signed in gets 403.
pub struct Admin(pub AuthUser);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ServiceError;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ServiceError> {
        let user = AuthUser::from_request_parts(parts, app).await?;
        if !app.control.auth.is_admin(&user) {
            return Err(ServiceError::forbidden("forbidden", "operators only"));
        }
        Ok(Admin(user))
    }
}
