//! The web UI: three static files compiled into the binary and served at
//! `/`, with a Content-Security-Policy that allows scripts from here only and
//! network and media access to here and to the object store.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::App;
use crate::config::StorageConfig;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/style.css");

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|s: State<Arc<App>>| async move { page(&s, INDEX, "text/html; charset=utf-8") }))
        .route("/app.js", get(|s: State<Arc<App>>| async move { page(&s, APP_JS, "text/javascript; charset=utf-8") }))
        .route("/style.css", get(|s: State<Arc<App>>| async move { page(&s, STYLE, "text/css; charset=utf-8") }))
}

/// Where the browser PUTs parts and GETs stems, besides this origin.
fn store_origin(app: &App) -> Option<String> {
    match &app.cfg.storage {
        StorageConfig::Local => None,
        StorageConfig::S3(s3) => Some(match &s3.endpoint {
            Some(e) => {
                let scheme_end = e.find("://").map_or(0, |i| i + 3);
                let host_end = e[scheme_end..].find('/').map_or(e.len(), |i| scheme_end + i);
                if s3.path_style {
                    e[..host_end].to_string()
                } else {
                    format!("{}*.{}", &e[..scheme_end], &e[scheme_end..host_end])
                }
            }
            None => "https://*.amazonaws.com".into(),
        }),
    }
}

fn page(app: &App, body: &'static str, content_type: &'static str) -> Response {
    let store = store_origin(app).map(|o| format!(" {o}")).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{store}; media-src 'self'{store}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    let mut resp = ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}
