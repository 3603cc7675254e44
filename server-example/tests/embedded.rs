//! The embedded default (SQLite, local files, the queue table): every flow,
//! plus what only it has (its own signed URLs) and what needs no servers
//! (OpenID Connect sign-in, a queue that is down).

mod common;
#[path = "../../core/tests/support/http.rs"]
mod http;

use std::time::Duration;

use common::{Server, embedded_config, faults, flows, ops, wav};
use reqwest::StatusCode;
use serde_json::json;

fn cfg() -> (tempfile::TempDir, splitsound_server::Config) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = embedded_config(dir.path());
    (dir, cfg)
}

/// The operators' flows of `common::ops`, one test each.
macro_rules! ops_tests {
    ($($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (_d, cfg) = cfg();
            ops::$name(cfg).await;
        }
    )*};
}

ops_tests!(billing, billing_disabled, admin, retention, observability, abuse_limits, hardening);

/// The API killed with SIGKILL mid-completion of uploads, on local disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn complete_crash() {
    let (_d, cfg) = cfg();
    faults::complete_crash(cfg).await;
}

/// SQLite shared by this process (the API) and worker processes killed with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_kill9() {
    let (_d, cfg) = cfg();
    faults::worker_kill9(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn balance_race() {
    let (_d, cfg) = cfg();
    faults::balance_race(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_flow() {
    let (_d, cfg) = cfg();
    flows::full_flow(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency() {
    let (_d, cfg) = cfg();
    flows::idempotency(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credit_and_rate_limits() {
    let (_d, cfg) = cfg();
    flows::credit_and_rate_limits(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_limits() {
    let (_d, cfg) = cfg();
    flows::upload_limits(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_and_retry() {
    let (_d, cfg) = cfg();
    flows::cancel_and_retry(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_user() {
    let (_d, cfg) = cfg();
    flows::cross_user(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_message() {
    let (_d, cfg) = cfg();
    flows::poison_message(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_urls_are_checked() {
    let (_d, cfg) = cfg();
    flows::signed_urls(cfg).await;
}

/// With the queue down, creating a job fails it and refunds it; the API stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_down_at_creation_refunds() {
    let (_d, mut cfg) = cfg();
    // An SQS endpoint nothing listens on (the URL is given, so nothing is asked at start).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    cfg.queue = splitsound_server::config::QueueConfig::Sqs(splitsound_server::config::SqsConfig {
        queue_url: Some(format!("http://{closed}/000000000000/jobs")),
        endpoint: Some(format!("http://{closed}")),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    });
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("hal@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 8000)).await;
    let (s, e) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert_eq!(e["error"]["code"], "queue_unavailable");
    assert_eq!(srv.balance(&token).await, 10);
    let (_, lib) = srv.call("GET", "/v1/me/library", Some(&token), None).await;
    let job = &lib["recent_jobs"][0];
    assert_eq!(job["status"], "failed");
    assert_eq!(job["failure"]["code"], "queue_unavailable");
    let (s, health) = srv.call("GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["queue"]["ok"], false);
    assert_eq!(health["database"]["ok"], true);
    srv.ledger_balances(&common::user_id(&token)).await;
    srv.stop().await;
}

/// Library pages by cursor, newest first, without repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn library_pages() {
    let (_d, cfg) = cfg();
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("ivy@example.com").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(srv.asset(&token, &format!("{i}.wav"), &wav(0.5, 8000)).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/me/library?limit=2&cursor={c}"),
            None => "/v1/me/library?limit=2".into(),
        };
        let (s, page) = srv.call("GET", &path, Some(&token), None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let assets = page["assets"].as_array().unwrap();
        assert!(assets.len() <= 2);
        seen.extend(assets.iter().map(|a| a["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let (s, _) = srv.call("GET", "/v1/me/library?cursor=garbage", Some(&token), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    srv.stop().await;
}

/// OpenID Connect: an RS256 ID token from the configured issuer, checked
/// against its JWKS, signs the user in; wrong audience, issuer, key or an
/// expired token do not. Dev sign-in is off unless enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oidc_login() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let (_d, mut cfg) = cfg();
    cfg.auth.dev_login = false;
    cfg.auth.admin_emails = vec!["Admin@Example.com".into()];
    let oidc = common::Oidc::configure(&mut cfg);
    // Another key under the same kid, which the server does not know.
    let other = common::Oidc::configure(&mut splitsound_server::Config::default());
    let srv = Server::start(cfg, 0).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sign = |k: &common::Oidc, claims: serde_json::Value| k.sign(&claims);
    let claims = |aud: &str, iss: &str, exp: u64| json!({"iss": iss, "aud": aud, "sub": "user-42", "email": "admin@example.com", "email_verified": true, "exp": exp, "iat": now});
    let login = |t: String| srv.call("POST", "/v1/auth/oauth/login", None, Some(json!({"id_token": t})));

    let (s, v) = login(sign(&oidc, claims("splitsound-web", "https://id.example.com", now + 600))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let (s, me) = srv.call("GET", "/v1/me", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["email"], "admin@example.com");
    assert_eq!(me["admin"], true);
    assert_eq!(me["credits"], 10);
    // The same subject again is the same user, credited once.
    let (_, v2) = login(sign(&oidc, claims("splitsound-web", "https://id.example.com", now + 600))).await;
    assert_eq!(v2["user_id"], v["user_id"]);

    // Refused, in the API's words (not the JWT library's).
    for (why, t) in [
        ("it was issued for another client", sign(&oidc, claims("someone-else", "https://id.example.com", now + 600))),
        (
            "unknown issuer \"https://evil.example.com\"",
            sign(&oidc, claims("splitsound-web", "https://evil.example.com", now + 600)),
        ),
        ("its signature does not match", sign(&other, claims("splitsound-web", "https://id.example.com", now + 600))),
        ("it has expired", sign(&oidc, claims("splitsound-web", "https://id.example.com", now - 3600))),
        ("not a JWT", "a.b.c".to_string()),
    ] {
        let (s, e) = login(t).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{why}: {e}");
        assert_eq!(e["error"]["message"], format!("invalid ID token: {why}"));
    }
    // An address the provider does not say it verified signs in, but not as an admin.
    let mut unverified = claims("splitsound-web", "https://id.example.com", now + 600);
    unverified["sub"] = "user-43".into();
    unverified.as_object_mut().unwrap().remove("email_verified");
    let (s, v) = login(sign(&oidc, unverified)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, me) = srv.call("GET", "/v1/me", Some(v["token"].as_str().unwrap()), None).await;
    assert_eq!(me["admin"], false);
    // A session token signed with another secret is refused.
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": v["user_id"], "email": "admin@example.com", "admin": true, "iat": now, "exp": now + 600, "iss": "splitsound"}),
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    let (s, _) = srv.call("GET", "/v1/me", Some(&forged), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = srv.call("POST", "/v1/auth/dev/login", None, Some(json!({"email": "x@example.com"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "dev sign-in is off");
    srv.stop().await;
}

/// The `splitsound-server` binary itself: `migrate`, then `all` serves and
/// works with zero configuration beyond a data folder and dev sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_runs_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = json!({"listen": format!("127.0.0.1:{port}"), "data_dir": dir.path(), "auth": {"dev_login": true}});
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let bin = env!("CARGO_BIN_EXE_splitsound-server");
    let out =
        std::process::Command::new(bin).args(["--config", cfg_path.to_str().unwrap(), "migrate"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied 3 migration(s): [1, 2, 3]"));
    let log_path = dir.path().join("server.log");
    let mut child = std::process::Command::new(bin)
        .args(["--config", cfg_path.to_str().unwrap(), "--json-logs", "all"])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            ok = r.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the binary answers /health");
    let r = http
        .post(format!("{base}/v1/auth/dev/login"))
        .header("x-request-id", "bin-req-1")
        .json(&json!({"email": "j@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The one-shot commands.
    let out =
        std::process::Command::new(bin).args(["--config", cfg_path.to_str().unwrap(), "cleanup"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["uploads_aborted"], 0);
    let out = std::process::Command::new(bin).arg("openapi").output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc, serde_json::to_value(splitsound_server::openapi()).unwrap());
    let bad = std::process::Command::new(bin).args(["--config", "/nonexistent.json", "serve"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    // SIGTERM: a clean exit.
    std::process::Command::new("kill").arg(child.id().to_string()).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // JSON log lines, the request's carrying its id.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let answered = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "bin-req-1" && l["fields"]["message"] == "answered")
        .unwrap_or_else(|| panic!("no log line of the request in:\n{log}"));
    assert_eq!(answered["span"]["route"], "/v1/auth/dev/login");
    assert_eq!(answered["fields"]["status"], "200");
}

/// A worker whose object store does not answer retries after a doubling
/// backoff, then fails the job with the stage's code and a refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_failures_retry_then_refund() {
    let (_d, mut cfg) = cfg();
    cfg.worker.max_attempts = 3;
    cfg.worker.retry_backoff_secs = 1;
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("jo@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 8000)).await;
    let (_, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(srv.balance(&token).await, 9);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut wcfg = srv.app.cfg.clone();
    wcfg.storage = splitsound_server::config::StorageConfig::S3(splitsound_server::config::S3Config {
        endpoint: Some(format!("http://{closed}")),
        path_style: true,
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    });
    let t0 = std::time::Instant::now();
    let workers = srv.start_workers_with(wcfg, 1).await;
    let retrying = srv.wait_until(&token, &id, Duration::from_secs(60), |v| v["stage"] == "retrying").await;
    assert_eq!(retrying["status"], "running");
    let done = srv.wait_job(&token, &id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "storage_download");
    assert!(done["failure"]["message"].as_str().unwrap().contains("after 3 attempts"), "{done}");
    // Backoffs of 1 s and 2 s between the three deliveries.
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(srv.balance(&token).await, 10);
    use sqlx::Row;
    let outcomes: Vec<String> = sqlx::query("SELECT outcome FROM usage_logs WHERE job_id = $1 ORDER BY created_at")
        .bind(&id)
        .fetch_all(&srv.app.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(outcomes, ["retrying", "retrying", "failed"]);
    workers.stop().await;
    srv.stop().await;
}

/// Video files are accepted for their audio track; a video without one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn video_uploads() {
    let ok = std::process::Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "`ffmpeg` is not installed; the README's test command installs it");
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, args: &[&str]| {
        let out = dir.path().join(name);
        let st = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=64x48:rate=10:duration=2",
            ])
            .args(args)
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(out).unwrap()
    };
    let with_audio = make(
        "clip.mp4",
        &["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "mpeg4", "-c:a", "aac", "-shortest"],
    );
    let silent_film = make("silent.mp4", &["-c:v", "mpeg4"]);
    let (_d, cfg) = cfg();
    let srv = Server::start(cfg, 1).await;
    let token = srv.login("kai@example.com").await;
    let (s, v) = srv.upload(&token, "clip.mp4", &with_audio, "video/mp4").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!((v["asset"]["duration_secs"].as_f64().unwrap() - 2.0).abs() < 0.1, "{v}");
    let (_, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": v["asset"]["id"]}))).await;
    let done = srv.wait_job(&token, job["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (s, e) = srv.upload(&token, "silent.mp4", &silent_film, "video/mp4").await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("undecodable")), "{e}");
    srv.stop().await;
}

/// Model packages from the configuration: the API lists them with the stems
/// of their manifests (found beside the ONNX files), and a worker runs them on
/// ONNX Runtime. A package that cannot separate fails its job with a refund;
/// one that is not there stops the server at start.
/// A model named by its registry name: a missing one stops the startup with
/// the command that fetches it; with `pull_models` the startup fetches it from
/// the (loopback) registry into the configured cache, and jobs run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn named_models_from_the_cache() {
    use sha2::Digest;
    let srv_http = http::Server::start();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/data/neural/demucs");
    let files: Vec<_> = ["ci.json", "ci.onnx"]
        .iter()
        .map(|f| {
            let bytes = std::fs::read(format!("{data}/{f}")).unwrap();
            let (size, sha) = (bytes.len(), hex::encode(sha2::Sha256::digest(&bytes)));
            json!({"url": srv_http.put(&format!("demucs-srv/{f}"), bytes), "size": size, "sha256": sha})
        })
        .collect();
    let (d, mut cfg) = cfg();
    let registry = d.path().join("registry.json");
    let doc = json!({"registry_version": 1, "models": [{"name": "demucs-srv", "family": "demucs-hybrid",
        "stems": ["drums", "bass", "other", "vocals"], "license": "MIT", "files": files, "load": "ci.json"}]});
    std::fs::write(&registry, doc.to_string()).unwrap();
    cfg.worker.named_models = vec!["demucs-srv".into()];
    cfg.worker.registries = vec![registry.to_string_lossy().into_owned()];
    cfg.worker.model_cache = Some(d.path().join("models"));
    let err = splitsound_server::App::new(cfg.clone()).await.unwrap_err().to_string();
    assert!(
        err.contains("worker.named_models.demucs-srv") && err.contains("splitsound model pull demucs-srv"),
        "{err}"
    );
    assert!(srv_http.requests("demucs-srv/ci.onnx").is_empty());

    cfg.worker.pull_models = true;
    let srv = Server::start(cfg, 1).await;
    assert_eq!(srv_http.requests("demucs-srv/ci.onnx").len(), 1);
    assert!(d.path().join("models/demucs-srv/ci.onnx").is_file());
    let (_, models) = srv.call("GET", "/v1/models", None, None).await;
    let listed = models["models"].as_array().unwrap().iter().find(|m| m["name"] == "demucs-srv").cloned().unwrap();
    assert_eq!(listed["stems"], json!(["drums", "bass", "other", "vocals"]));
    let token = srv.login("nia@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 44100)).await;
    let body = json!({"asset_id": asset, "model": "demucs-srv", "description": "just the drums"});
    let (s, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let done = srv.wait_job(&token, job["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configured_model_packages() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/data");
    let (_d, mut cfg) = cfg();
    cfg.worker.models.insert("demucs-ci".into(), "/nonexistent/model.onnx".into());
    let err = splitsound_server::App::new(cfg.clone()).await.unwrap_err().to_string();
    assert!(err.contains("worker.models.demucs-ci") && err.contains("/nonexistent/model.json"), "{err}");
    cfg.worker.models.insert("demucs-ci".into(), format!("{data}/neural/demucs/ci.onnx").into());
    // A graph-only package (the engine tests' `tiny`): its manifest lists stems, but it is no separator.
    cfg.worker.models.insert("tiny".into(), format!("{data}/models/tiny/tiny.onnx").into());
    let srv = Server::start(cfg, 1).await;
    let (_, models) = srv.call("GET", "/v1/models", None, None).await;
    let listed = models["models"].as_array().unwrap().iter().find(|m| m["name"] == "demucs-ci").cloned().unwrap();
    let stems = srv.app.control.catalog.models["demucs-ci"].clone();
    assert_eq!(listed["stems"], json!(stems));
    assert!(stems.contains(&"vocals".to_string()), "{stems:?}");
    let token = srv.login("lee@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 44100)).await;

    let (_, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset, "model": "tiny"}))).await;
    let done = srv.wait_job(&token, job["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(
        (done["status"].as_str(), done["failure"]["code"].as_str()),
        (Some("failed"), Some("model_unavailable"))
    );
    assert_eq!(srv.balance(&token).await, 10);

    let body = json!({"asset_id": asset, "model": "demucs-ci", "description": "remove the vocals"});
    let (s, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["targets"], json!(["vocals"]));
    let done = srv.wait_job(&token, job["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["runs_on"], "cpu");
    let names: Vec<&str> = done["outputs"].as_array().unwrap().iter().map(|o| o["stem"].as_str().unwrap()).collect();
    assert!(names.contains(&"vocals") && names.contains(&"no_vocals"), "{names:?}");
    srv.stop().await;
}

/// Descriptions that name no stem of the job's model go to the configured
/// text-prompted model (SAM-Audio), which writes the described sound and the
/// residual; credits are those of any job of that length.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn text_prompted_jobs() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/data");
    let (_d, mut cfg) = cfg();
    cfg.worker.models.insert("sam".into(), format!("{data}/neural/sam-audio/sam-audio-tiny.json").into());
    cfg.worker.text_model = Some("builtin:hpss".into());
    let err = splitsound_server::App::new(cfg.clone()).await.unwrap_err().to_string();
    assert!(err.contains("worker.text_model"), "{err}");
    cfg.worker.text_model = Some("sam".into());
    let srv = Server::start(cfg, 1).await;
    let token = srv.login("sam@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 44100)).await;
    let before = srv.balance(&token).await;

    // "remove the drums" names a stem of the default (hpss): it goes there.
    let (s, job) = srv
        .call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset, "description": "remove the drums"})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!((job["model"].as_str(), job["targets"].clone()), (Some("builtin:hpss"), json!(["percussive"])));
    // "a dog barking" names none: the text model separates it.
    let body = json!({"asset_id": asset, "description": "just a dog barking"});
    let (s, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(
        (job["model"].as_str(), job["text"].as_str(), job["mode"].as_str()),
        (Some("sam"), Some("a dog barking"), Some("isolate"))
    );
    let done = srv.wait_job(&token, job["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let mut names: Vec<&str> =
        done["outputs"].as_array().unwrap().iter().map(|o| o["stem"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["residual", "target"]);
    assert_eq!(srv.balance(&token).await, before - 2, "one credit per job of 2 s, as for any model");

    // The text model by name needs a description; one it cannot encode fails the job, refunded.
    let (s, e) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset, "model": "sam"}))).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("description_required")),
        "{e}"
    );
    let body = json!({"asset_id": asset, "model": "sam", "description": "犬が吠える"});
    let (_, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(body)).await;
    let done = srv.wait_job(&token, job["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done["failure"]["code"], "description_not_understood", "{done}");
    assert_eq!(srv.balance(&token).await, before - 2);
    srv.stop().await;

    // Without a text model, the refusal says that one would serve it.
    let (_d2, plain) = self::cfg();
    let srv = Server::start(plain, 1).await;
    let token = srv.login("sam@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 44100)).await;
    let (s, e) = srv
        .call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset, "description": "a dog barking"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e.to_string().contains("text-prompted"), "{e}");
    srv.stop().await;
}
