//! The test harness: a real server on 127.0.0.1 (API and workers in this
//! process), and a client that does what a browser would: plain HTTP to the
//! API and to the presigned URLs.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use splitsound_core::AudioBuffer;
use splitsound_server::{App, Config};
use tokio::sync::watch;

pub mod faults;
pub mod flows;
pub mod ops;

pub struct Server {
    pub base: String,
    pub app: Arc<App>,
    pub http: reqwest::Client,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

/// The embedded default (SQLite, local files, the queue table) in a fresh
/// folder, with dev sign-in on and quick worker polls; `tweak` adjusts it.
pub fn embedded_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    cfg.auth.dev_login = true;
    cfg.worker.poll_secs = 1;
    cfg.worker.visibility_secs = 30;
    cfg.worker.retry_backoff_secs = 1;
    // Small parts, so the demo file goes up in several.
    cfg.limits.part_size = 256 * 1024;
    // Tests poll quickly; the limits have their own test.
    cfg.limits.rate_per_ip = splitsound_server::config::Rate { per_sec: 0.0, burst: 0 };
    cfg.limits.rate_per_user = splitsound_server::config::Rate { per_sec: 0.0, burst: 0 };
    cfg
}

impl Server {
    /// One pass of the retention task, as if the time were `at` (Unix ms).
    pub async fn cleanup(&self, at: i64) -> splitsound_server::media::retention::CleanupReport {
        self.app.media.cleanup(&self.app.db, &self.app.metrics, at).await.unwrap()
    }

    /// Starts the API and, when `workers` > 0, that many job loops.
    pub async fn start(mut cfg: Config, workers: usize) -> Server {
        // The server's warnings and errors, shown with a failing test's output.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let dir = tempfile::tempdir().unwrap();
        if cfg.data_dir == Config::default().data_dir {
            cfg.data_dir = dir.path().to_path_buf();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        cfg.listen = addr.to_string();
        cfg.public_url = Some(format!("http://{addr}"));
        cfg.worker.concurrency = workers.max(1);
        let app = App::new(cfg).await.expect("the server starts");
        let (tx, rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn({
            let (app, rx) = (app.clone(), rx.clone());
            async move { splitsound_server::serve(app, listener, rx).await.unwrap() }
        })];
        if workers > 0 {
            tasks.push(tokio::spawn(splitsound_server::compute::worker::run(app.worker(), rx)));
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Server { base: format!("http://{addr}"), app, http, shutdown: tx, tasks, dir }
    }

    /// Starts workers on a second App over the same configuration (another "machine").
    pub async fn start_workers(&self, n: usize) -> Workers {
        self.start_workers_with(self.app.cfg.clone(), n).await
    }

    /// Starts workers on their own App over `cfg` (a worker machine configured differently).
    pub async fn start_workers_with(&self, mut cfg: Config, n: usize) -> Workers {
        cfg.worker.concurrency = n;
        let app = App::new(cfg).await.unwrap();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(splitsound_server::compute::worker::run(app.worker(), rx));
        Workers { tx, task }
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn login(&self, email: &str) -> String {
        let (s, v) = self.call("POST", "/v1/auth/dev/login", None, Some(json!({"email": email}))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// Initialises an upload and PUTs every part to its presigned URL, as a
    /// browser would; returns the upload id and the parts' ETags.
    pub async fn put_parts(&self, token: &str, name: &str, bytes: &[u8], content_type: &str) -> (String, Value) {
        let (s, init) = self
            .call(
                "POST",
                "/v1/uploads/initialize",
                Some(token),
                Some(json!({"filename": name, "size": bytes.len(), "content_type": content_type})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{init}");
        let part_size = init["part_size"].as_u64().unwrap() as usize;
        let mut parts = Vec::new();
        for (i, p) in init["parts"].as_array().unwrap().iter().enumerate() {
            let chunk = &bytes[i * part_size..((i + 1) * part_size).min(bytes.len())];
            assert_eq!(p["size"].as_u64().unwrap() as usize, chunk.len());
            let resp = self
                .http
                .put(p["url"].as_str().unwrap())
                .header("content-type", "application/octet-stream")
                .body(chunk.to_vec())
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "part {i}: {} {}", resp.status(), resp.text().await.unwrap());
            let etag = resp.headers().get("etag").expect("an ETag").to_str().unwrap().to_string();
            parts.push(json!({"part_number": p["part_number"], "etag": etag}));
        }
        (init["upload_id"].as_str().unwrap().to_string(), Value::Array(parts))
    }

    /// Uploads `bytes` and completes the upload; returns the answer.
    pub async fn upload(&self, token: &str, name: &str, bytes: &[u8], content_type: &str) -> (StatusCode, Value) {
        let (id, parts) = self.put_parts(token, name, bytes, content_type).await;
        self.call("POST", &format!("/v1/uploads/{id}/complete"), Some(token), Some(json!({"parts": parts}))).await
    }

    /// Uploads and expects an asset; returns its id.
    pub async fn asset(&self, token: &str, name: &str, bytes: &[u8]) -> String {
        let (s, v) = self.upload(token, name, bytes, "audio/wav").await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["asset"]["id"].as_str().unwrap().to_string()
    }

    pub async fn balance(&self, token: &str) -> i64 {
        let (s, v) = self.call("GET", "/v1/me/credits", Some(token), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["balance"].as_i64().unwrap()
    }

    /// Polls the job until it is terminal.
    pub async fn wait_job(&self, token: &str, id: &str, within: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let (s, v) = self.call("GET", &format!("/v1/jobs/{id}"), Some(token), None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if matches!(v["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                return v;
            }
            assert!(t0.elapsed() < within, "job {id} still {} after {within:?}", v["status"]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the job until `pred` holds.
    pub async fn wait_until(&self, token: &str, id: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            let (_, v) = self.call("GET", &format!("/v1/jobs/{id}"), Some(token), None).await;
            if pred(&v) {
                return v;
            }
            assert!(t0.elapsed() < within, "job {id}: condition not met after {within:?}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get_bytes(&self, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let resp = self.http.get(url).send().await.unwrap();
        let (s, h) = (resp.status(), resp.headers().clone());
        (s, h, resp.bytes().await.unwrap().to_vec())
    }

    /// The sum of all rows of the credit ledger equals the balance (the ledger balances).
    pub async fn ledger_balances(&self, user: &str) {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT), (SELECT balance FROM credit_accounts WHERE user_id = $1) \
             FROM credit_ledger WHERE user_id = $1",
        )
        .bind(user)
        .fetch_one(&self.app.db.pool)
        .await
        .unwrap();
        let (sum, balance): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(sum, balance, "ledger sum vs balance");
        assert!(balance >= 0);
    }
}

pub struct Workers {
    tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Workers {
    pub async fn stop(self) {
        let _ = self.tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(60), self.task).await;
    }
}

/// The demo mix (stereo, 44.1 kHz FLAC) from the repository.
pub fn demo_flac() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data/demo/mixture.flac")).unwrap()
}

/// A WAV of `secs` seconds: a chord and clicks, so both HPSS stems have something.
pub fn wav(secs: f64, rate: u32) -> Vec<u8> {
    let n = (secs * rate as f64) as usize;
    let ch = |phase: f32| -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let tone = 0.2 * (2.0 * std::f32::consts::PI * 220.0 * t + phase).sin()
                    + 0.1 * (2.0 * std::f32::consts::PI * 330.0 * t).sin();
                let click = if i % (rate as usize / 2) < 40 { 0.5 } else { 0.0 };
                tone + click
            })
            .collect()
    };
    let audio = AudioBuffer::new(rate, vec![ch(0.0), ch(0.5)]).unwrap();
    splitsound_core::encode(&audio, &splitsound_core::WriteOptions::default()).unwrap()
}

pub fn decode(bytes: &[u8]) -> AudioBuffer {
    splitsound_core::decode_bytes(bytes.to_vec(), None, &splitsound_core::DecodeOptions::default()).unwrap()
}

pub fn user_id(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let v: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    v["sub"].as_str().unwrap().to_string()
}

/// An OpenID Connect provider of the tests' own: an RSA key whose JWKS the
/// server reads from a file, and ID tokens signed with it.
pub struct Oidc {
    key: rsa::RsaPrivateKey,
    _dir: tempfile::TempDir,
}

pub const OIDC_ISSUER: &str = "https://id.example.com";
pub const OIDC_AUDIENCE: &str = "splitsound-web";

impl Oidc {
    /// A new provider, added to `cfg`'s configured ones.
    pub fn configure(cfg: &mut Config) -> Oidc {
        use base64::Engine;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
            "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be()),
        }]});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        cfg.auth.oidc.push(splitsound_server::config::OidcProvider {
            issuer: OIDC_ISSUER.into(),
            audience: OIDC_AUDIENCE.into(),
            jwks: path.to_string_lossy().into_owned(),
        });
        Oidc { key, _dir: dir }
    }

    /// An RS256 ID token with these claims, signed by this provider's key.
    pub fn sign(&self, claims: &Value) -> String {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("k1".into());
        let der = self.key.to_pkcs1_der().unwrap();
        jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes())).unwrap()
    }

    /// A valid ID token for `email` (its subject is the address).
    pub fn id_token(&self, email: &str) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        self.sign(&json!({"iss": OIDC_ISSUER, "aud": OIDC_AUDIENCE, "sub": email, "email": email,
                          "email_verified": true, "iat": now, "exp": now + 600}))
    }
}

impl Server {
    /// Signs in through `oidc`; returns the session token.
    pub async fn oidc_login(&self, oidc: &Oidc, email: &str) -> String {
        let (s, v) =
            self.call("POST", "/v1/auth/oauth/login", None, Some(json!({"id_token": oidc.id_token(email)}))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}
