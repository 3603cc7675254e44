//! What wraps every request, outermost first:
//! - [`finish`]: one error format and the security headers on every answer;
//! - tower-http's request id: the client's `X-Request-Id` when it is sane
//!   ([`drop_unusable_request_id`] removes one that is not), else a new
//!   UUID, echoed in the answer;
//! - [`around`]: a tracing span that carries the request id, so every log
//!   line of the request names it; the session token, verified once for the
//!   per-user limit and the handlers ([`Session`]); the per-IP and per-user
//!   rate limits; and the latency and status metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::request_id::RequestId;
use tracing::Instrument;

use super::error::error_response;
use super::extract::Session;
use super::ratelimit::RateLimits;
use crate::App;
use crate::error::{ErrorKind, ServiceError};

pub const REQUEST_ID: &str = "x-request-id";

/// Removes a client's `X-Request-Id` that is not 1 to 128 of `[A-Za-z0-9._:-]`,
/// so that a new one is made instead of logging and echoing what it sent.
pub async fn drop_unusable_request_id(mut req: Request) -> Request {
    let usable = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).is_some_and(|s| {
        (1..=128).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    if !usable {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// The client's address: the configured proxy header's last entry, else the peer.
fn client_ip(app: &App, req: &Request) -> String {
    if let Some(h) = &app.cfg.limits.client_ip_header
        && let Some(v) = req.headers().get(h.as_str()).and_then(|v| v.to_str().ok())
        && let Some(last) = v.rsplit(',').next().map(str::trim).filter(|s| !s.is_empty())
    {
        return last.to_string();
    }
    req.extensions().get::<ConnectInfo<SocketAddr>>().map_or_else(|| "unknown".into(), |c| c.0.ip().to_string())
}

/// Limits apply to the API and to `/metrics` on the API port, not to health
/// checks, the docs, or the local store's signed object URLs (each already authorised).
fn limited(path: &str) -> bool {
    (path.starts_with("/v1/") && path != "/v1/openapi.json" && !path.starts_with("/v1/billing/webhooks/"))
        || path == "/metrics"
}

fn check_limits(app: &App, rate: &RateLimits, req: &Request, session: &Session) -> Result<(), ServiceError> {
    if !limited(req.uri().path()) {
        return Ok(());
    }
    let refuse = |which: &'static str, wait: std::time::Duration| {
        app.metrics.rate_limited(which);
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ServiceError::new(
            ErrorKind::TooManyRequests,
            "rate_limited",
            format!("too many requests from this {which}; try again in {secs} s"),
        )
        .with_retry_after(secs)
    };
    rate.ip.check(&client_ip(app, req)).map_err(|w| refuse("ip", w))?;
    if let Some(Ok(claims)) = &session.0 {
        rate.user.check(&claims.sub).map_err(|w| refuse("user", w))?;
    }
    Ok(())
}

pub async fn around(State((app, rate)): State<(Arc<App>, Arc<RateLimits>)>, mut req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_string();
    let method = req.method().as_str().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let session = Session::verify(&app.control.auth, req.headers());
    let resp = match check_limits(&app, &rate, &req, &session) {
        Ok(()) => {
            req.extensions_mut().insert(session);
            next.run(req).instrument(span.clone()).await
        }
        Err(e) => e.into_response(),
    };
    let secs = t0.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    app.metrics.http_request(&method, &route, status, secs);
    tracing::info!(parent: &span, status = %status, latency_ms = secs * 1000.0, "answered");
    resp
}

/// The last word on every answer, whoever wrote it:
/// - an error the framework wrote as plain text or with no body (a body over
///   the limit, a method not allowed, a range not satisfiable) is rewritten
///   into the API's `{"error": {"code", "message"}}`, keeping its status and
///   headers, so clients parse one format;
/// - `X-Content-Type-Options: nosniff` on everything;
/// - `Cache-Control: no-store` on everything that does not set its own
///   (session tokens, balances, signed URLs, errors), except objects served
///   from the local store's signed URLs.
pub async fn finish(req: Request, next: Next) -> Response {
    let object = req.uri().path().starts_with("/storage/o/");
    let mut resp = next.run(req).await;
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
        resp = as_json_error(resp).await;
    }
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !(h.contains_key(header::CACHE_CONTROL) || object && status.is_success()) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// The stable code of an error status that the framework answered.
fn framework_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal",
        _ => "request_refused",
    }
}

async fn as_json_error(resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than this server accepts".to_string(),
        // The detail of a failure of ours stays in the log.
        s if s.is_server_error() => "internal error".to_string(),
        _ => {
            let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&text).trim().to_string();
            if text.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text }
        }
    };
    let mut out = error_response(status, framework_code(status), &message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}
