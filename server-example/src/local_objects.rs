//! The local-disk store's presigned URLs, served by the API itself:
//! `PUT /storage/o/<key>?X-Upload=…&X-Part=…` stores a part and answers its
//! ETag; `GET /storage/o/<key>?…` serves an object (with single byte ranges,
//! so players can seek). Both check the signature and the expiry first.

use std::io::SeekFrom;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::App;
use crate::error::ApiError;
use crate::storage::{LocalStore, SignatureError, Store, StoreError};

pub fn router() -> Router<Arc<App>> {
    Router::new().route("/storage/o/{*key}", put(put_part).get(get_object))
}

fn local(app: &App) -> Result<&LocalStore, ApiError> {
    match &app.store {
        Store::Local(s) => Ok(s),
        Store::S3(_) => Err(ApiError::not_found("route")),
    }
}

fn verify(store: &LocalStore, method: &Method, uri: &Uri) -> Result<(), ApiError> {
    let query = uri.query().unwrap_or("");
    store.verify(method.as_str(), uri.path(), query).map_err(|e| {
        let (code, msg) = match e {
            SignatureError::Missing => ("signature_missing", "this URL is not signed"),
            SignatureError::Invalid => ("signature_invalid", "the URL's signature does not match"),
            SignatureError::Expired => ("url_expired", "this URL has expired; ask the API for a new one"),
        };
        ApiError::new(StatusCode::FORBIDDEN, code, msg)
    })
}

fn param<'a>(uri: &'a Uri, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
}

fn key_of(uri: &Uri) -> Result<String, ApiError> {
    let raw = uri.path().strip_prefix("/storage/o/").ok_or_else(|| ApiError::not_found("object"))?;
    Ok(percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned())
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("object or upload"),
        StoreError::Rejected(m) => ApiError::bad_request("invalid_part", m),
        StoreError::Unavailable(m) => ApiError::storage(m),
    }
}

async fn put_part(State(app): State<Arc<App>>, method: Method, uri: Uri, body: Bytes) -> Result<Response, ApiError> {
    let store = local(&app)?;
    verify(store, &method, &uri)?;
    let upload = param(&uri, "X-Upload").ok_or_else(|| ApiError::bad_request("invalid_url", "no X-Upload"))?;
    let part = param(&uri, "X-Part")
        .and_then(|p| p.parse::<i32>().ok())
        .ok_or_else(|| ApiError::bad_request("invalid_url", "no X-Part"))?;
    let etag = store.put_part(&upload, part, body).await.map_err(store_err)?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header"));
    // Browsers may read the ETag of a cross-origin PUT only if it is exposed.
    resp.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag"));
    Ok(resp)
}

async fn get_object(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = local(&app)?;
    verify(store, &method, &uri)?;
    let path = store.open_path(&key_of(&uri)?).map_err(store_err)?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::not_found("object")),
        Err(e) => return Err(ApiError::storage(e)),
    };
    let len = file.metadata().await.map_err(ApiError::storage)?.len();
    let content_type = param(&uri, "X-Content-Type").unwrap_or("application/octet-stream".into()).into_owned();
    let disposition = param(&uri, "X-Disposition").map(|d| d.into_owned());
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(|r| parse_range(r, len));
    let (status, start, count) = match range {
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Some(Err(())) => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            resp.headers_mut()
                .insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"));
            return Ok(resp);
        }
        None => (StatusCode::OK, 0, len),
    };
    file.seek(SeekFrom::Start(start)).await.map_err(ApiError::storage)?;
    let stream = tokio_util::io::ReaderStream::new(file.take(count));
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{len}", start + count - 1);
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&v).expect("ascii"));
    }
    Ok(resp)
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; `None` for anything else
/// (served whole), `Err` when it lies outside the file.
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 { Err(()) } else { Ok((len.saturating_sub(n), len - 1)) }
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { len.saturating_sub(1) } else { b.parse::<u64>().ok()?.min(len.saturating_sub(1)) };
        if start >= len || end < start { Err(()) } else { Ok((start, end)) }
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
