//! The hosted SplitSound pipeline, assembled from `splitsound-core`:
//! sign in → upload straight to object storage (presigned multipart) →
//! describe the sound → a job debits credits and waits in a queue → a worker
//! separates it → preview and download through signed URLs.
//!
//! The code is grouped by plane, each building only on those before it:
//!
//! | module | what it owns |
//! |---|---|
//! | [`error`], [`db`], [`metrics`], [`secrets`] | shared by every plane |
//! | [`media`] | the bytes: the store (local or S3), object keys, uploads and assets, probing, retention |
//! | [`control`] | who calls and what it costs: sessions, the credit ledger, billing, the catalog, jobs as records, operators' business |
//! | [`compute`] | the queue and the workers that separate |
//! | [`config`] | one configuration, aggregating each plane's own section |
//! | [`app`] | the wiring: [`App`], a process's planes |
//! | [`http`] | the API: routes by resource, extractors, middleware, rate limits, OpenAPI, the web UI |
//!
//! `scripts/check-layers.py` keeps that order: no module imports one after it.
//! Out of the box everything is embedded (SQLite, local files, a queue
//! table); in production, PostgreSQL, S3 and SQS. See the crate's README.

pub mod app;
pub mod compute;
pub mod config;
pub mod control;
pub mod db;
pub mod error;
pub mod http;
pub mod media;
pub mod metrics;
pub mod secrets;

pub use app::App;
pub use config::Config;
pub use error::{ServiceError, StartupError};
pub use http::{openapi, serve, serve_ops};
