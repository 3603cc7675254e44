//! The API's routes, one module per resource. Each handler carries its
//! OpenAPI description (`#[utoipa::path]`) and each module lists its
//! handlers in `routes()`, so the document and the router cannot drift.

use std::sync::Arc;

use axum::extract::State;

use crate::App;

pub mod admin;
pub mod billing;
pub mod jobs;
pub mod library;
pub mod ops;
pub mod session;
pub mod uploads;

type AppState = State<Arc<App>>;
