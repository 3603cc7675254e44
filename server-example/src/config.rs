//! Configuration: one JSON file (`--config`, or `SPLITSOUND_SERVER_CONFIG`),
//! every field optional, and secrets from the environment. The defaults are
//! the embedded configuration: a SQLite file, objects on local disk, the
//! queue in the database, all under `data_dir`, so a fresh machine needs
//! nothing.
//!
//! Each plane owns its sections (`storage` and `retention`: media; `queue`
//! and `worker`: compute; `auth` and `billing`: control); this module
//! aggregates them, with the sections that span the planes: `limits` and `ops`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::compute::{QueueConfig, SqsConfig, WorkerConfig};
pub use crate::control::{AuthConfig, BillingConfig, OidcProvider};
use crate::error::StartupError;
pub use crate::media::{RetentionConfig, S3Config, StorageConfig};

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

/// A sustained rate and the burst allowed above it. A rate or a burst of 0
/// means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: u32,
}

/// `limits`: what one request, upload or user may do. The media plane takes
/// the upload limits, the control plane `max_active_jobs`, the workers
/// `max_duration_secs`, and the HTTP layer the rest.
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

/// The environment variables that set secrets, over the file's values:
/// the database URL (which may hold a password), the session secret, the
/// metrics token and Stripe's two secrets. S3 and SQS take the standard
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
pub const SECRET_VARIABLES: [&str; 5] = [
    "SPLITSOUND_DATABASE_URL",
    "SPLITSOUND_SESSION_SECRET",
    "SPLITSOUND_METRICS_TOKEN",
    "SPLITSOUND_STRIPE_SECRET_KEY",
    "SPLITSOUND_STRIPE_WEBHOOK_SECRET",
];

impl Config {
    /// Reads `path` (JSON), or the defaults when `None`, then takes the
    /// secrets the environment sets ([`SECRET_VARIABLES`]) over the file's.
    pub fn load(path: Option<&Path>) -> Result<Config, StartupError> {
        let mut cfg = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read(path).map_err(|e| StartupError::Config(format!("{}: {e}", path.display())))?;
                serde_json::from_slice(&text).map_err(|e| StartupError::Config(format!("{}: {e}", path.display())))?
            }
        };
        cfg.take_secrets(|name| std::env::var(name).ok())?;
        Ok(cfg)
    }

    /// Sets each secret that `var` (the environment) gives a non-empty value,
    /// so that none has to be written in the file. A Stripe variable without
    /// a `billing` section is an error: it would be ignored.
    pub fn take_secrets(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), StartupError> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        if let Some(v) = get("SPLITSOUND_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("SPLITSOUND_SESSION_SECRET") {
            self.auth.session_secret = Some(v);
        }
        if let Some(v) = get("SPLITSOUND_METRICS_TOKEN") {
            self.ops.metrics_token = Some(v);
        }
        for (name, is_key) in [("SPLITSOUND_STRIPE_SECRET_KEY", true), ("SPLITSOUND_STRIPE_WEBHOOK_SECRET", false)] {
            if let Some(v) = get(name) {
                let billing = self.billing.as_mut().ok_or_else(|| {
                    StartupError::Config(format!("{name} is set but the configuration has no billing section"))
                })?;
                if is_key {
                    billing.stripe_secret_key = v;
                } else {
                    billing.webhook_secret = v;
                }
            }
        }
        Ok(())
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
        cfg.billing = Some(BillingConfig {
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

    #[test]
    fn secrets_come_from_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let mut cfg = Config { billing: Some(BillingConfig::default()), ..Config::default() };
        cfg.take_secrets(env(&[
            ("SPLITSOUND_DATABASE_URL", "postgres://app:pw-from-env@db/app"),
            ("SPLITSOUND_SESSION_SECRET", "a-session-secret-from-the-environment"),
            ("SPLITSOUND_METRICS_TOKEN", ""),
            ("SPLITSOUND_STRIPE_SECRET_KEY", "sk_test_env"),
            ("SPLITSOUND_STRIPE_WEBHOOK_SECRET", "whsec_env"),
        ]))
        .unwrap();
        assert_eq!(cfg.database_url.as_deref(), Some("postgres://app:pw-from-env@db/app"));
        assert_eq!(cfg.auth.session_secret.as_deref(), Some("a-session-secret-from-the-environment"));
        // Empty is unset.
        assert_eq!(cfg.ops.metrics_token, None);
        let billing = cfg.billing.as_ref().unwrap();
        assert_eq!((billing.stripe_secret_key.as_str(), billing.webhook_secret.as_str()), ("sk_test_env", "whsec_env"));
        // Printed, they are redacted like the file's.
        let text = cfg.redacted().to_string();
        for secret in ["pw-from-env", "a-session-secret-from-the-environment", "sk_test_env", "whsec_env"] {
            assert!(!text.contains(secret), "{secret} printed: {text}");
        }
        // A Stripe secret with billing off would be silently ignored: refused.
        let e = Config::default().take_secrets(env(&[("SPLITSOUND_STRIPE_SECRET_KEY", "sk_x")])).unwrap_err();
        assert!(e.to_string().contains("no billing section"), "{e}");
        for name in SECRET_VARIABLES {
            assert!(name.starts_with("SPLITSOUND_"));
        }
    }
}
