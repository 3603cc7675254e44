//! The control plane: who is calling (sessions, sign-in), what they may do
//! and what it costs (the credit ledger, billing), and jobs as records: a
//! request checked against the catalog, debited and inserted in one
//! transaction, then moved through its states exactly once, whoever races
//! for it. Operators' business (refunds, the numbers) lives here too.
//!
//! It builds on the media plane and the base modules. It never sends to
//! the queue: the caller hands a created job to the compute plane
//! (`Compute::submit`), so the control plane does not depend on compute.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod credits;
pub mod jobs;

pub use auth::{Auth, AuthConfig, AuthUser, OidcProvider};
pub use billing::{Billing, BillingConfig};
pub use catalog::Catalog;

/// The control plane of an API process.
#[derive(Debug)]
pub struct Control {
    pub auth: Auth,
    pub catalog: Catalog,
    /// Selling credits; off when the configuration has no `billing`.
    pub billing: Option<Billing>,
    /// Credits granted once to every new user.
    pub signup_credits: i64,
    /// Queued or running jobs per user.
    pub max_active_jobs: i64,
}
