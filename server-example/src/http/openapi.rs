//! The OpenAPI document at `GET /v1/openapi.json`, generated from the
//! handlers' `#[utoipa::path]` annotations and the types they take and give
//! (the router registers each handler and its description together, so the
//! two cannot drift). The errors every operation can answer are added here
//! once instead of on each handler.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`insufficient_credits`, `rate_limited`, …).
    code: String,
    /// What went wrong, for people.
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SplitSound hosted API",
        description = "Upload audio straight to object storage, describe the sound, and download the separated stems.",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "auth", description = "Sign-in and the caller's account"),
        (name = "uploads", description = "Presigned multipart uploads"),
        (name = "jobs", description = "Separation jobs"),
        (name = "library", description = "The caller's uploads and results"),
        (name = "billing", description = "Buying credits"),
        (name = "admin", description = "Operators only"),
        (name = "ops", description = "Health and metrics")
    )
)]
pub struct ApiDoc;

/// Adds, once the routes are in, the session scheme and the error answers
/// each kind of operation can give.
pub fn finish(mut doc: Doc) -> Doc {
    Conventions.modify(&mut doc);
    doc
}

struct Conventions;

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build()
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses.responses.entry(status.to_string()).or_insert_with(|| error_response(description).into());
}

impl Modify for Conventions {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A session token from /v1/auth/dev/login or /v1/auth/oauth/login"))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops =
                [item.get.as_mut(), item.post.as_mut(), item.put.as_mut(), item.delete.as_mut(), item.patch.as_mut()];
            for op in ops.into_iter().flatten() {
                let v1 = path.starts_with("/v1/") && path != "/v1/openapi.json";
                if v1 && !path.starts_with("/v1/billing/webhooks/") {
                    add(op, "429", "Rate limited; see Retry-After");
                }
                add(op, "500", "Internal error");
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(op, "401", "No valid session token");
                }
                if op.request_body.is_some() {
                    add(op, "400", "Malformed body");
                    add(op, "413", "Body too large");
                    add(op, "415", "Not application/json");
                    add(op, "422", "A body that does not fit the schema");
                }
                let has_query = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter().any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
                });
                if has_query {
                    add(op, "400", "Malformed query parameters");
                }
                if path.contains('{') {
                    add(op, "404", "No such resource (or not the caller's)");
                }
            }
        }
    }
}
