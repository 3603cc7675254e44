//! The hosted SplitSound pipeline, assembled from `splitsound-core`:
//! sign in → upload straight to object storage (presigned multipart) →
//! describe the sound → a job debits credits and waits in a queue → a worker
//! separates it → preview and download through signed URLs.
//!
//! The API ([`api`]) is the control plane only; bytes go between the client
//! and the store, and separation runs in workers ([`worker`]) that can be
//! scaled on queue depth. Out of the box everything is embedded (SQLite,
//! local files, a queue table); in production, PostgreSQL, S3 and SQS. See
//! the crate's README.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

pub mod admin;
pub mod api;
pub mod auth;
pub mod billing;
pub mod config;
pub mod credits;
pub mod db;
pub mod error;
pub mod jobs;
mod local_objects;
pub mod metrics;
mod middleware;
mod openapi;
pub mod probe;
pub mod queue;
pub mod ratelimit;
pub mod retention;
pub mod storage;
mod uploads;
mod web;
pub mod worker;

pub use api::openapi;
pub use config::Config;
pub use error::{ApiError, StartupError};

use crate::auth::Auth;
use crate::config::{QueueConfig, StorageConfig};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::queue::{Queue, SqsQueue};
use crate::ratelimit::Limiter;
use crate::storage::{CachedCheck, LocalStore, S3Store, Store};

/// Everything a request handler or a worker needs.
#[derive(Debug)]
pub struct App {
    pub cfg: Config,
    pub db: Db,
    pub store: Store,
    pub queue: Queue,
    pub auth: Auth,
    /// The separators jobs may name, with their stems.
    pub catalog: BTreeMap<String, Vec<String>>,
    /// The text-prompted ones among them (SAM-Audio): a description is their input.
    pub text_models: std::collections::BTreeSet<String>,
    pub metrics: Metrics,
    pub rate: RateLimits,
    /// For calls to other services (Stripe).
    pub http: reqwest::Client,
    /// The store's last health probe.
    pub store_health: CachedCheck,
}

/// The request-rate limits of this API process.
#[derive(Debug)]
pub struct RateLimits {
    pub ip: Limiter,
    pub user: Limiter,
}

impl App {
    /// Connects to the database, the store and the queue that `cfg` names,
    /// and applies migrations when `cfg.auto_migrate`.
    pub async fn new(mut cfg: Config) -> Result<Arc<App>, StartupError> {
        std::fs::create_dir_all(&cfg.data_dir)?;
        let db = Db::connect(&cfg.database_url(), 16).await?;
        if cfg.auto_migrate {
            db.migrate().await?;
        }
        let store = match &cfg.storage {
            StorageConfig::Local => {
                let secret = secret_file(&cfg.data_dir.join("storage-secret"))?;
                Store::Local(LocalStore::new(cfg.data_dir.clone(), &cfg.public_url(), secret)?)
            }
            StorageConfig::S3(s3) => Store::S3(S3Store::new(s3).await?),
        };
        let queue = match &cfg.queue {
            QueueConfig::Database => Queue::Database(db.clone()),
            QueueConfig::Sqs(sqs) => Queue::Sqs(SqsQueue::new(sqs).await?),
        };
        let session_secret = match &cfg.auth.session_secret {
            Some(s) if s.len() >= 32 => s.as_bytes().to_vec(),
            Some(_) => return Err(StartupError::Config("auth.session_secret needs at least 32 characters".into())),
            None => secret_file(&cfg.data_dir.join("session-secret"))?,
        };
        if cfg.ops.metrics_token.as_deref().is_some_and(|t| t.trim().len() < 16) {
            return Err(StartupError::Config("ops.metrics_token needs at least 16 characters".into()));
        }
        if cfg.limits.upload_complete_lease_secs == 0 {
            return Err(StartupError::Config("limits.upload_complete_lease_secs must be positive".into()));
        }
        if cfg.retention.orphan_grace_secs < 3600 {
            return Err(StartupError::Config(
                "retention.orphan_grace_secs must be at least 3600: an object is written before its row".into(),
            ));
        }
        let auth = Auth::new(&cfg.auth, &session_secret);
        if cfg.auth.dev_login && !cfg.auth.admin_emails.is_empty() {
            tracing::warn!(
                "auth.dev_login is on: anyone can sign in as any address there, so dev sessions never carry \
                 admin rights; the addresses in auth.admin_emails are admins only when signed in through OpenID Connect"
            );
        }
        let named = named_models(&mut cfg)?;
        let catalog = catalog(&cfg, named)?;
        if !catalog.contains_key(&cfg.worker.default_separator) {
            return Err(StartupError::Config(format!(
                "worker.default_separator {:?} is neither a built-in nor a configured model",
                cfg.worker.default_separator
            )));
        }
        let text_models = text_models(&cfg)?;
        if let Some(t) = &cfg.worker.text_model
            && !text_models.contains(t)
        {
            return Err(StartupError::Config(format!(
                "worker.text_model {t:?} is not a configured text-prompted model (a SAM-Audio package in \
                 worker.models or worker.named_models)"
            )));
        }
        let rate =
            RateLimits { ip: Limiter::new(cfg.limits.rate_per_ip), user: Limiter::new(cfg.limits.rate_per_user) };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| StartupError::Config(format!("HTTP client: {e}")))?;
        Ok(Arc::new(App {
            cfg,
            db,
            store,
            queue,
            auth,
            catalog,
            text_models,
            metrics: Metrics::default(),
            rate,
            http,
            store_health: CachedCheck::default(),
        }))
    }
}

/// Resolves `worker.named_models` through the model cache (pulling what it
/// lacks when `worker.pull_models` is on) into `worker.models` entries; returns
/// their stems, from their registry entries.
fn named_models(cfg: &mut Config) -> Result<BTreeMap<String, Vec<String>>, StartupError> {
    use splitsound_core::registry::{ModelCache, Registry};
    let mut out = BTreeMap::new();
    if cfg.worker.named_models.is_empty() {
        return Ok(out);
    }
    let bad = |name: &str, e: splitsound_core::Error| StartupError::Config(format!("worker.named_models.{name}: {e}"));
    let cache = match &cfg.worker.model_cache {
        Some(dir) => ModelCache::new(dir),
        None => ModelCache::from_env().map_err(|e| StartupError::Config(format!("worker.model_cache: {e}")))?,
    };
    let (sources, pull) = (cfg.worker.registries.clone(), cfg.worker.pull_models);
    for name in cfg.worker.named_models.clone() {
        if cfg.worker.models.contains_key(&name) {
            return Err(StartupError::Config(format!("{name:?} is both in worker.models and worker.named_models")));
        }
        let installed = match cache.get(&name).map_err(|e| bad(&name, e))? {
            Some(m) => m,
            None => {
                // The blocking HTTP client on its own thread, outside the async runtime.
                let (cache, sources, n) = (cache.clone(), sources.clone(), name.clone());
                let fetched = std::thread::spawn(move || {
                    if !pull {
                        // Nothing fetched: not even a registry named by URL.
                        let registry = Registry::load_local(&sources)?;
                        cache.resolve(&n, &registry)?;
                        // Installed meanwhile by another process.
                        return cache.get(&n)?.ok_or_else(|| splitsound_core::Error::ModelNotInstalled {
                            name: n.clone(),
                            cache: cache.root().to_path_buf(),
                            urls: Vec::new(),
                        });
                    }
                    let registry = Registry::load(&sources)?;
                    tracing::info!(model = %n, cache = %cache.root().display(), "fetching a named model");
                    cache.pull(registry.entry(&n)?, &mut |_| {}, &splitsound_core::CancelToken::new())
                })
                .join()
                .map_err(|_| StartupError::Config(format!("worker.named_models.{name}: the fetch panicked")))?;
                fetched.map_err(|e| bad(&name, e))?
            }
        };
        cfg.worker.models.insert(name.clone(), installed.load_path());
        out.insert(name, installed.entry.stems.clone());
    }
    Ok(out)
}

/// The built-ins and the configured model packages, with their stems (read
/// from each package's manifest, or a named model's registry entry, so the
/// API needs no ONNX Runtime).
fn catalog(cfg: &Config, named: BTreeMap<String, Vec<String>>) -> Result<BTreeMap<String, Vec<String>>, StartupError> {
    let mut out = BTreeMap::new();
    for name in splitsound_core::BUILTIN_NAMES {
        let spec = format!("builtin:{name}");
        let sep = splitsound_core::builtin_separator(&spec).map_err(|e| StartupError::Config(e.to_string()))?;
        out.insert(spec, sep.stems().to_vec());
    }
    for (name, path) in cfg.worker.models.iter().filter(|(n, _)| !named.contains_key(*n)) {
        let manifest_path = splitsound_core::model::manifest_path(path);
        let manifest = splitsound_core::model::Manifest::from_file(&manifest_path)
            .map_err(|e| StartupError::Config(format!("worker.models.{name}: {e}")))?;
        out.insert(name.clone(), manifest.stems.clone());
    }
    out.extend(named);
    Ok(out)
}

/// The configured models whose manifest says they are text-prompted.
fn text_models(cfg: &Config) -> Result<std::collections::BTreeSet<String>, StartupError> {
    let mut out = std::collections::BTreeSet::new();
    for (name, path) in &cfg.worker.models {
        if splitsound_core::model::is_text_prompted(path)
            .map_err(|e| StartupError::Config(format!("worker.models.{name}: {e}")))?
        {
            out.insert(name.clone());
        }
    }
    Ok(out)
}

/// A 32-byte random secret kept in `path` (created with mode 0600 when missing).
fn secret_file(path: &Path) -> Result<Vec<u8>, StartupError> {
    if let Ok(s) = std::fs::read(path)
        && s.len() >= 32
    {
        return Ok(s);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StartupError::Config(format!("no randomness: {e}")))?;
    let hexed = hex::encode(bytes).into_bytes();
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(&tmp)?.write_all(&hexed)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(hexed)
}

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let router = api::router(app);
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

/// Serves only `/health` and `/metrics` (a worker-only process's).
pub async fn serve_ops(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, api::ops_router(app))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}
