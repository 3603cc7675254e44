//! What wraps every request: a request id (the client's `X-Request-Id` when
//! it is sane, else a new one, echoed in the answer) carried by a tracing span
//! so every log line of the request names it; the per-IP and per-user rate
//! limits; the latency and status metrics; and, last, [`finish`]: one error
//! format and the security headers on every answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::App;
use crate::error::ApiError;

pub const REQUEST_ID: &str = "x-request-id";

fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            (1..=128).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map_or_else(crate::db::new_id, str::to_string)
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

fn check_limits(app: &App, req: &Request) -> Result<(), ApiError> {
    if !limited(req.uri().path()) {
        return Ok(());
    }
    let refuse = |which: &'static str, wait: std::time::Duration| {
        app.metrics.inc("splitsound_rate_limited_total", &[("limit", which)]);
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this {which}; try again in {secs} s"),
        )
        .with_retry_after(secs)
    };
    app.rate.ip.check(&client_ip(app, req)).map_err(|w| refuse("ip", w))?;
    let user = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| app.auth.verify_session(t.trim()).ok());
    if let Some(claims) = user {
        app.rate.user.check(&claims.sub).map_err(|w| refuse("user", w))?;
    }
    Ok(())
}

pub async fn around(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let id = request_id(&req);
    let method = req.method().as_str().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut resp = match check_limits(&app, &req) {
        Ok(()) => next.run(req).instrument(span.clone()).await,
        Err(e) => e.into_response(),
    };
    let secs = t0.elapsed().as_secs_f64();
    let status = resp.status().as_u16().to_string();
    app.metrics.inc("splitsound_http_requests_total", &[("method", &method), ("route", &route), ("status", &status)]);
    app.metrics.observe("splitsound_http_request_duration_seconds", &[("method", &method), ("route", &route)], secs);
    tracing::info!(parent: &span, status = %status, latency_ms = secs * 1000.0, "answered");
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
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
    let mut out = ApiError::new(status, framework_code(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}
