//! The wiring: a process's three planes, built from one configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::compute::{Compute, Worker};
use crate::config::Config;
use crate::control::{Auth, Billing, Catalog, Control};
use crate::db::Db;
use crate::error::StartupError;
use crate::media::{Media, UploadPolicy};
use crate::metrics::Metrics;

/// One process of the service: its configuration, the database and metrics
/// every plane shares, and the planes.
#[derive(Debug)]
pub struct App {
    pub cfg: Config,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    /// Sessions, credits, billing, the catalog and jobs as records.
    pub control: Control,
    /// The store, uploads and retention.
    pub media: Arc<Media>,
    /// The queue new jobs go to.
    pub compute: Compute,
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
        if cfg.ops.metrics_token.as_deref().is_some_and(|t| t.trim().len() < 16) {
            return Err(StartupError::Config("ops.metrics_token needs at least 16 characters".into()));
        }
        let limits = &cfg.limits;
        let uploads = UploadPolicy {
            max_upload_bytes: limits.max_upload_bytes,
            max_duration_secs: limits.max_duration_secs,
            part_size: limits.part_size,
            upload_url_ttl: std::time::Duration::from_secs(limits.upload_url_ttl_secs),
            download_url_ttl: std::time::Duration::from_secs(limits.download_url_ttl_secs),
            complete_lease: std::time::Duration::from_secs(limits.upload_complete_lease_secs),
        };
        let media = Media::open(&cfg.storage, &cfg.data_dir, &cfg.public_url(), uploads, cfg.retention.clone()).await?;
        let compute = Compute::open(&cfg.queue, &db).await?;
        let session_secret = match &cfg.auth.session_secret {
            Some(s) if s.len() >= 32 => s.as_bytes().to_vec(),
            Some(_) => return Err(StartupError::Config("auth.session_secret needs at least 32 characters".into())),
            None => crate::secrets::secret_file(&cfg.data_dir.join("session-secret"))?,
        };
        let auth = Auth::new(&cfg.auth, &session_secret);
        if cfg.auth.dev_login && !cfg.auth.admin_emails.is_empty() {
            tracing::warn!(
                "auth.dev_login is on: anyone can sign in as any address there, so dev sessions never carry \
                 admin rights; the addresses in auth.admin_emails are admins only when signed in through OpenID Connect"
            );
        }
        let named = named_models(&mut cfg)?;
        let w = &cfg.worker;
        let catalog = Catalog::build(&w.models, named, &w.default_separator, w.text_model.as_deref())?;
        let billing = cfg.billing.clone().map(|b| Billing::new(b, &cfg.public_url())).transpose()?;
        let control = Control {
            auth,
            catalog,
            billing,
            signup_credits: cfg.signup_credits,
            max_active_jobs: cfg.limits.max_active_jobs,
        };
        Ok(Arc::new(App { cfg, db, metrics: Arc::new(Metrics::default()), control, media: Arc::new(media), compute }))
    }

    /// What this process's workers run with: the database, the store, the
    /// queue, the metrics and the `worker` configuration; nothing of the API.
    pub fn worker(&self) -> Arc<Worker> {
        Arc::new(Worker {
            db: self.db.clone(),
            media: self.media.clone(),
            queue: self.compute.queue.clone(),
            metrics: self.metrics.clone(),
            cfg: self.cfg.worker.clone(),
            max_duration_secs: self.cfg.limits.max_duration_secs,
        })
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
