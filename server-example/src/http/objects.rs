//! The local-disk store's presigned URLs, served by the API itself:
//! `PUT /storage/o/<key>?X-Upload=…&X-Part=…` stores a part and answers its
//! ETag; `GET /storage/o/<key>?…` serves an object through tower-http's
//! `ServeFile` (byte ranges, so players can seek; conditional requests;
//! HEAD). Both check the signature and the expiry first.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use tower_http::services::ServeFile;

use crate::App;
use crate::error::ServiceError;
use crate::media::{LocalStore, Store, StoreError, local::SignatureError};

pub fn router() -> Router<Arc<App>> {
    Router::new().route("/storage/o/{*key}", put(put_part).get(get_object))
}

fn local(app: &App) -> Result<&LocalStore, ServiceError> {
    match &app.media.store {
        Store::Local(s) => Ok(s),
        Store::S3(_) => Err(ServiceError::not_found("route")),
    }
}

fn verify(store: &LocalStore, method: &Method, uri: &Uri) -> Result<(), ServiceError> {
    let query = uri.query().unwrap_or("");
    store.verify(method.as_str(), uri.path(), query).map_err(|e| {
        let (code, msg) = match e {
            SignatureError::Missing => ("signature_missing", "this URL is not signed"),
            SignatureError::Invalid => ("signature_invalid", "the URL's signature does not match"),
            SignatureError::Expired => ("url_expired", "this URL has expired; ask the API for a new one"),
        };
        ServiceError::forbidden(code, msg)
    })
}

fn param<'a>(uri: &'a Uri, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
}

fn key_of(uri: &Uri) -> Result<String, ServiceError> {
    let raw = uri.path().strip_prefix("/storage/o/").ok_or_else(|| ServiceError::not_found("object"))?;
    Ok(percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned())
}

fn store_err(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::not_found("object or upload"),
        StoreError::Rejected(m) => ServiceError::bad_request("invalid_part", m),
        StoreError::Unavailable(m) => ServiceError::storage(m),
    }
}

async fn put_part(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ServiceError> {
    let store = local(&app)?;
    verify(store, &method, &uri)?;
    let upload = param(&uri, "X-Upload").ok_or_else(|| ServiceError::bad_request("invalid_url", "no X-Upload"))?;
    let part = param(&uri, "X-Part")
        .and_then(|p| p.parse::<i32>().ok())
        .ok_or_else(|| ServiceError::bad_request("invalid_url", "no X-Part"))?;
    let etag = store.put_part(&upload, part, body).await.map_err(store_err)?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header"));
    // Browsers may read the ETag of a cross-origin PUT only if it is exposed.
    resp.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag"));
    Ok(resp)
}

async fn get_object(State(app): State<Arc<App>>, mut req: Request) -> Result<Response, ServiceError> {
    let store = local(&app)?;
    verify(store, req.method(), req.uri())?;
    let path = store.open_path(&key_of(req.uri())?).map_err(store_err)?;
    let uri = req.uri().clone();
    let content_type = param(&uri, "X-Content-Type").unwrap_or("application/octet-stream".into()).into_owned();
    let disposition = param(&uri, "X-Disposition").map(|d| d.into_owned());
    // Ranges HTTP lets a server ignore and ServeFile would refuse (several
    // ranges, another unit) get the whole object, as players expect.
    let one_range = |r: &str| r.trim_start().starts_with("bytes=") && !r.contains(',');
    if req.headers().get(header::RANGE).is_some_and(|v| !v.to_str().is_ok_and(one_range)) {
        req.headers_mut().remove(header::RANGE);
    }
    // A missing file is ServeFile's plain 404, which `finish` words as the API's error.
    let resp = ServeFile::new(&path).try_call(req).await.map_err(ServiceError::storage)?;
    let mut resp = resp.map(Body::new);
    if resp.status().is_success() {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        if let Some(v) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}
