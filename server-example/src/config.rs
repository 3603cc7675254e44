//! Configuration: one JSON file (`--config`, or `SPLITSOUND_SERVER_CONFIG`),
//! every field optional. The defaults are the embedded configuration: a SQLite
//! file, objects on local disk, the queue in the database, all under
//! `data_dir`, so a fresh machine needs nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::billing::BillingConfig;
use crate::error::StartupError;
pub use crate::ratelimit::Rate;
pub use crate::retention::RetentionConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on.
    pub listen: String,
    /// The API's address as clients see it; local-disk storage signs its URLs under it.
    /// Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Where the embedded defaults keep their files (database, objects, secrets).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`. Defaults to `sqlite://<data_dir>/splitsound.db`.
    pub database_url: Option<String>,
    /// Apply pending migrations when `serve`, `worker` or `all` starts.
    pub auto_migrate: bool,
    pub storage: StorageConfig,
    pub queue: QueueConfig,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub worker: WorkerConfig,
    /// Credits granted once to every new user.
    pub signup_credits: i64,
    /// Selling credit packs through Stripe Checkout; off when absent.
    pub billing: Option<BillingConfig>,
    /// Lifetimes of stored objects, and the cleanup task that enforces them.
    pub retention: RetentionConfig,
    /// Where operators read `/health` and `/metrics`.
    pub ops: OpsConfig,
}

/// The operators' endpoints. `/health` is always on the API port (load
/// balancers probe it); `/metrics` is there only with a token, since it
/// tells anyone who reads it how busy the service is.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// A second listener that serves `/health` and `/metrics` (for example
    /// `127.0.0.1:9100`, or a private interface); none when absent. Every
    /// process that has it (API, worker or both) serves it.
    pub listen: Option<String>,
    /// When set, the API port also serves `/metrics` to requests carrying
    /// `Authorization: Bearer <metrics_token>` (and the ops listener asks for it too).
    pub metrics_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            data_dir: PathBuf::from("splitsound-data"),
            database_url: None,
            auto_migrate: true,
            storage: StorageConfig::default(),
            queue: QueueConfig::default(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            worker: WorkerConfig::default(),
            signup_credits: 10,
            billing: None,
            retention: RetentionConfig::default(),
            ops: OpsConfig::default(),
        }
    }
}

/// Where objects (originals and outputs) live.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageConfig {
    /// Files under `<data_dir>/objects`, with URLs the API signs and serves itself.
    #[default]
    Local,
    /// Any S3-compatible store.
    S3(S3Config),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// For S3-compatible servers (`http://127.0.0.1:9000`); AWS's own endpoint when absent.
    pub endpoint: Option<String>,
    /// `http://host/bucket/key` instead of `http://bucket.host/key`.
    pub path_style: bool,
    /// Credentials; `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` when absent.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Create the bucket at start if it does not exist (test servers).
    pub create_bucket: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: "splitsound".into(),
            region: "us-east-1".into(),
            endpoint: None,
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            create_bucket: false,
        }
    }
}

/// Where job messages wait for a worker.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueConfig {
    /// A table in the job database (`SKIP LOCKED` on PostgreSQL).
    #[default]
    Database,
    Sqs(SqsConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqsConfig {
    /// The queue's URL; or `queue_name`, looked up (and created when `create_queue`).
    pub queue_url: Option<String>,
    pub queue_name: Option<String>,
    pub create_queue: bool,
    pub region: String,
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue_url: None,
            queue_name: None,
            create_queue: false,
            region: "us-east-1".into(),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret of session tokens. When absent, one is generated and kept
    /// in `<data_dir>/session-secret` (fine for one machine; set it when the
    /// API runs on several).
    pub session_secret: Option<String>,
    pub session_ttl_secs: u64,
    /// `POST /v1/auth/dev/login` signs anyone in by e-mail alone. Off unless set.
    pub dev_login: bool,
    /// OpenID Connect providers whose ID tokens `POST /v1/auth/oauth/login` accepts.
    pub oidc: Vec<OidcProvider>,
    /// E-mail addresses whose sessions carry the admin claim.
    pub admin_emails: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_secret: None,
            session_ttl_secs: 12 * 3600,
            dev_login: false,
            oidc: Vec::new(),
            admin_emails: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// The `iss` the tokens carry.
    pub issuer: String,
    /// The `aud` they must carry: our client id at that provider.
    pub audience: String,
    /// Where its signing keys are: an `https://` JWKS URL or a local file.
    pub jwks: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_duration_secs: f64,
    /// Queued or running jobs per user.
    pub max_active_jobs: i64,
    /// Size of each presigned part (S3's minimum is 5 MiB, except the last part).
    pub part_size: u64,
    /// Lifetime of presigned upload URLs.
    pub upload_url_ttl_secs: u64,
    /// Lifetime of presigned preview and download URLs.
    pub download_url_ttl_secs: u64,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests per client IP address (`per_sec` 0: unlimited).
    pub rate_per_ip: Rate,
    /// Requests per signed-in user.
    pub rate_per_user: Rate,
    /// A header set by a trusted reverse proxy that carries the client's
    /// address (`x-forwarded-for`: its last entry is used). Without it, the
    /// peer address of the connection.
    pub client_ip_header: Option<String>,
    /// How long one `POST /v1/uploads/{id}/complete` holds the upload. A
    /// server that dies mid-completion leaves it `completing` until then;
    /// after that, completing again resumes and aborting rolls back.
    pub upload_complete_lease_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 100 * 1000 * 1000,
            max_duration_secs: 300.0,
            max_active_jobs: 10,
            part_size: 8 * 1024 * 1024,
            upload_url_ttl_secs: 3600,
            download_url_ttl_secs: 300,
            max_body_bytes: 64 * 1024,
            rate_per_ip: Rate { per_sec: 50.0, burst: 100 },
            rate_per_user: Rate { per_sec: 20.0, burst: 60 },
            client_ip_header: None,
            upload_complete_lease_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs one worker process runs at once.
    pub concurrency: usize,
    /// How long a received message stays hidden; extended while the job runs.
    pub visibility_secs: u64,
    /// Long-poll wait of one receive.
    pub poll_secs: u64,
    /// Deliveries of one message before its job fails as poison.
    pub max_attempts: i64,
    /// First retry delay after a transient failure; doubles per attempt.
    pub retry_backoff_secs: u64,
    /// The separator used when a job names none.
    pub default_separator: String,
    /// Model packages jobs may name: name → path of the manifest, ONNX file or folder.
    pub models: BTreeMap<String, PathBuf>,
    /// Extra options of the neural models (providers, threads, …), as the CLI's `--options` JSON.
    pub neural: Option<serde_json::Value>,
    /// Models that jobs may name by their registry name (`splitsound model
    /// list`), opened from the model cache.
    pub named_models: Vec<String>,
    /// Registries (files or URLs) for `named_models`, after the compiled-in
    /// one and $SPLITSOUND_REGISTRY: a deployment's own mirror.
    pub registries: Vec<String>,
    /// The model cache's folder (else $SPLITSOUND_MODELS, else the platform's cache folder).
    pub model_cache: Option<PathBuf>,
    /// Fetch the `named_models` the cache lacks at startup. Off, a missing
    /// one stops the startup with the command that fetches it.
    pub pull_models: bool,
    /// A text-prompted model (a SAM-Audio package in `models` or
    /// `named_models`) for descriptions that name no stem of the job's
    /// model: "a dog barking" then gives that sound and the residual.
    pub text_model: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 1,
            visibility_secs: 60,
            poll_secs: 10,
            max_attempts: 5,
            retry_backoff_secs: 2,
            default_separator: "builtin:hpss".into(),
            models: BTreeMap::new(),
            neural: None,
            named_models: Vec::new(),
            registries: Vec::new(),
            model_cache: None,
            pull_models: false,
            text_model: None,
        }
    }
}

impl Config {
    /// Reads `path` (JSON), or the defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, StartupError> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text = std::fs::read(path).map_err(|e| StartupError::Config(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&text).map_err(|e| StartupError::Config(format!("{}: {e}", path.display())))
    }

    /// The configuration as JSON with its secrets replaced by `"<redacted>"`:
    /// every field whose name holds `secret`, `token` or `password`, and the
    /// password of any URL (`postgres://user:…@host`). For printing and logs.
    pub fn redacted(&self) -> serde_json::Value {
        fn walk(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, v) in map.iter_mut() {
                        let k = k.to_ascii_lowercase();
                        if ["secret", "token", "password"].iter().any(|s| k.contains(s)) && !v.is_null() {
                            *v = serde_json::Value::String("<redacted>".into());
                        } else {
                            walk(v);
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
                serde_json::Value::String(s) => {
                    // scheme://user:password@host…: the password.
                    if let Some(start) = s.find("://").map(|i| i + 3) {
                        let authority_end = s[start..].find(['/', '?', '#']).map_or(s.len(), |i| start + i);
                        if let Some(at) = s[start..authority_end].rfind('@').map(|i| start + i)
                            && let Some(colon) = s[start..at].find(':').map(|i| start + i)
                        {
                            s.replace_range(colon + 1..at, "<redacted>");
                        }
                    }
                }
                _ => {}
            }
        }
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        walk(&mut v);
        v
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("splitsound.db").display()))
    }

    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_config_hides_secrets() {
        let mut cfg = Config {
            database_url: Some("postgres://splitsound:hunter2@db.internal:5432/app".into()),
            ..Config::default()
        };
        cfg.auth.session_secret = Some("s3ssion-secret-value".into());
        cfg.ops.metrics_token = Some("metrics-token-value-1234".into());
        cfg.billing = Some(crate::billing::BillingConfig {
            stripe_secret_key: "sk_test_abcdef".into(),
            webhook_secret: "whsec_abcdef".into(),
            ..Default::default()
        });
        let text = cfg.redacted().to_string();
        for secret in ["hunter2", "s3ssion-secret-value", "metrics-token-value-1234", "sk_test_abcdef", "whsec_abcdef"]
        {
            assert!(!text.contains(secret), "{secret} printed: {text}");
        }
        assert!(text.contains("postgres://splitsound:<redacted>@db.internal:5432/app"), "{text}");
        assert!(text.contains("\"session_secret\":\"<redacted>\""), "{text}");
        // Unset secrets stay null, so the output still says they are unset.
        assert!(Config::default().redacted()["auth"]["session_secret"].is_null());
    }
}
