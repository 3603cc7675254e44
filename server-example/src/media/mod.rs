//! The media plane: the bytes. Originals and stems live in object storage,
//! never in the database, and clients move them through presigned URLs;
//! this plane owns the store, the names and keys of what it holds, uploads
//! and the assets they become (probed before they are accepted), and
//! retention, which deletes what has outlived its time.
//!
//! It depends on the base modules only (the database, errors, metrics);
//! the control and compute planes and the HTTP layer build on it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod keys;
pub mod local;
pub mod probe;
pub mod retention;
pub mod s3;
pub mod store;
pub mod uploads;

use crate::db::{Db, now_ms};
use crate::error::StartupError;
use crate::metrics::Metrics;
pub use retention::{CleanupError, CleanupReport, RetentionConfig};
pub use s3::S3Config;
pub use store::{CachedCheck, LocalStore, S3Store, Store, StoreError};
pub use uploads::UploadPolicy;

/// Where objects (originals and outputs) live: `storage` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageConfig {
    /// Files under `<data_dir>/objects`, with URLs the API signs and serves itself.
    #[default]
    Local,
    /// Any S3-compatible store.
    S3(S3Config),
}

/// How long `/health` reuses the store's last probe.
pub const STORE_PROBE_MAX_AGE: Duration = Duration::from_secs(5);

/// The media plane of one process.
#[derive(Debug)]
pub struct Media {
    pub store: Store,
    /// The store's last health probe.
    pub health: CachedCheck,
    pub uploads: UploadPolicy,
    pub retention: RetentionConfig,
}

impl Media {
    /// Opens the store `storage` names. The local store keeps its files and
    /// its URL-signing secret under `data_dir` and signs URLs under `public_url`.
    pub async fn open(
        storage: &StorageConfig,
        data_dir: &Path,
        public_url: &str,
        uploads: UploadPolicy,
        retention: RetentionConfig,
    ) -> Result<Media, StartupError> {
        if retention.orphan_grace_secs < 3600 {
            return Err(StartupError::Config(
                "retention.orphan_grace_secs must be at least 3600: an object is written before its row".into(),
            ));
        }
        if uploads.complete_lease.is_zero() {
            return Err(StartupError::Config("limits.upload_complete_lease_secs must be positive".into()));
        }
        let store = match storage {
            StorageConfig::Local => {
                let secret = crate::secrets::secret_file(&data_dir.join("storage-secret"))?;
                Store::Local(LocalStore::new(data_dir.to_path_buf(), public_url, secret)?)
            }
            StorageConfig::S3(s3) => Store::S3(S3Store::new(s3).await?),
        };
        Ok(Media { store, health: CachedCheck::default(), uploads, retention })
    }

    /// Whether the store answers, probed at most every [`STORE_PROBE_MAX_AGE`].
    pub async fn check(&self) -> Result<(), String> {
        self.health.get(STORE_PROBE_MAX_AGE, || self.store.check()).await
    }

    /// One pass of retention, as if the time were `now` (Unix milliseconds).
    pub async fn cleanup(&self, db: &Db, metrics: &Metrics, now: i64) -> Result<CleanupReport, CleanupError> {
        retention::run_once(db, &self.store, &self.retention, self.uploads.complete_lease, metrics, now).await
    }
}

/// Runs retention every `retention.interval_secs` until `shutdown`.
pub async fn run_retention(
    db: Db,
    media: Arc<Media>,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let every = media.retention.interval_secs;
    if every == 0 {
        return;
    }
    loop {
        match media.cleanup(&db, &metrics, now_ms()).await {
            Ok(r) if r != CleanupReport::default() => tracing::info!(report = ?r, "cleanup"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cleanup failed; next run will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
