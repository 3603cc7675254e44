//! The web UI: three static files compiled into the binary and served at
//! `/`, with a Content-Security-Policy that allows scripts from here only and
//! network and media access to here and to the object store.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::App;
use crate::media::StorageConfig;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");

/// The three pages, with one Content-Security-Policy worked out here from
/// the configuration.
pub fn router(app: &App) -> Router<Arc<App>> {
    let headers = Arc::new(security_headers(app));
    let serve = move |body: &'static str, content_type: &'static str| {
        let headers = Arc::clone(&headers);
        get(move || async move {
            let mut resp =
                ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response();
            resp.headers_mut().extend(headers.as_ref().clone());
            resp
        })
    };
    Router::new()
        .route("/", serve(INDEX, "text/html; charset=utf-8"))
        .route("/app.js", serve(APP_JS, "text/javascript; charset=utf-8"))
        .route("/style.css", serve(STYLE, "text/css; charset=utf-8"))
}

/// Where the browser PUTs parts and GETs stems, besides this origin.
fn store_origin(storage: &StorageConfig) -> Option<String> {
    match storage {
        StorageConfig::Local => None,
        StorageConfig::S3(s3) => match &s3.endpoint {
            Some(e) => {
                let url = reqwest::Url::parse(e).ok()?;
                let host = url.host_str()?;
                let host = url.port().map_or_else(|| host.to_string(), |p| format!("{host}:{p}"));
                // Path style: the endpoint itself; virtual-hosted: buckets are subdomains.
                Some(if s3.path_style {
                    format!("{}://{host}", url.scheme())
                } else {
                    format!("{}://*.{host}", url.scheme())
                })
            }
            None => Some("https://*.amazonaws.com".into()),
        },
    }
}

fn security_headers(app: &App) -> HeaderMap {
    let store = store_origin(&app.cfg.storage).map(|o| format!(" {o}")).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{store}; media-src 'self'{store}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::S3Config;

    #[test]
    fn the_store_origin_the_pages_may_reach() {
        let s3 = |endpoint: Option<&str>, path_style| {
            StorageConfig::S3(S3Config { endpoint: endpoint.map(Into::into), path_style, ..S3Config::default() })
        };
        assert_eq!(store_origin(&StorageConfig::Local), None);
        assert_eq!(store_origin(&s3(None, false)).as_deref(), Some("https://*.amazonaws.com"));
        assert_eq!(store_origin(&s3(Some("http://127.0.0.1:9000/"), true)).as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            store_origin(&s3(Some("https://s3.example.com/base"), false)).as_deref(),
            Some("https://*.s3.example.com")
        );
        assert_eq!(store_origin(&s3(Some("not a url"), true)), None);
    }
}
