//! Faults, bounded and on loopback: workers killed with SIGKILL mid-job, the
//! API killed mid-completion of uploads, the object store going away mid-job,
//! and creates racing one balance.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use splitsound_server::Config;
use sqlx::Row;

use super::{Server, user_id, wav};

/// A worker process of the real binary over `cfg` (the same database, store
/// and queue), logging JSON lines to `log`.
fn spawn_worker(cfg_path: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_splitsound-server"))
        .args(["--config", cfg_path.to_str().unwrap(), "--json-logs", "worker"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("the server binary starts")
}

/// What must hold after any fault: each job in a terminal state with one
/// debit and a refund exactly when it did not succeed, the ledger balancing,
/// and every stored object known to a row.
pub async fn invariants(srv: &Server, user: &str, jobs: &[String]) {
    let pool = &srv.app.db.pool;
    for id in jobs {
        let row = sqlx::query("SELECT status FROM jobs WHERE id = $1").bind(id).fetch_one(pool).await.unwrap();
        let status: String = row.get(0);
        assert!(matches!(status.as_str(), "succeeded" | "failed" | "cancelled"), "job {id} is {status}");
        let count = |r: String| async move {
            sqlx::query("SELECT COUNT(*) FROM credit_ledger WHERE ref = $1")
                .bind(r)
                .fetch_one(pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        };
        assert_eq!(count(format!("job:{id}:debit")).await, 1, "job {id}: one debit");
        let refunds = count(format!("job:{id}:refund")).await;
        assert_eq!(refunds, i64::from(status != "succeeded"), "job {id} ({status}): refunds");
        let succeeded: i64 = sqlx::query("SELECT COUNT(*) FROM usage_logs WHERE job_id = $1 AND outcome = 'succeeded'")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
            .get(0);
        // Never two successful runs. (A worker killed between recording the
        // success and writing its usage log leaves none, hence not "== 1".)
        assert!(succeeded <= i64::from(status == "succeeded"), "job {id}: {succeeded} runs recorded success");
    }
    srv.ledger_balances(user).await;
    no_orphans(srv).await;
}

/// The store holds the live originals and the succeeded jobs' outputs, nothing else.
pub async fn no_orphans(srv: &Server) {
    let pool = &srv.app.db.pool;
    let mut known = BTreeSet::new();
    for r in sqlx::query("SELECT object_key FROM media_assets WHERE deleted_at IS NULL").fetch_all(pool).await.unwrap()
    {
        known.insert(r.get::<String, _>(0));
    }
    for r in sqlx::query("SELECT object_key FROM output_tracks WHERE deleted_at IS NULL").fetch_all(pool).await.unwrap()
    {
        known.insert(r.get::<String, _>(0));
    }
    let stored: BTreeSet<String> = srv.app.media.store.list("").await.unwrap().into_iter().collect();
    assert_eq!(stored, known, "objects in the store vs rows");
}

/// Workers killed with SIGKILL at random moments, again and again, while
/// jobs run: every job still ends once, charged once, with nothing orphaned.
pub async fn worker_kill9(mut cfg: Config) {
    cfg.worker.visibility_secs = 2;
    cfg.worker.max_attempts = 50;
    cfg.worker.poll_secs = 1;
    cfg.signup_credits = 20;
    let srv = Server::start(cfg, 0).await;
    let cfg_path = srv.dir.path().join("worker.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&srv.app.cfg).unwrap()).unwrap();
    let token = srv.login("kill@example.com").await;
    let user = user_id(&token);
    // Long enough that a kill often lands mid-separation.
    let asset = srv.asset(&token, "long.wav", &wav(25.0, 44100)).await;
    let mut jobs = Vec::new();
    for i in 0..6 {
        let body = json!({"asset_id": asset, "options": {"format": if i % 2 == 0 { "wav" } else { "flac" }}});
        let (s, j) = srv.call("POST", "/v1/jobs", Some(&token), Some(body)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{j}");
        jobs.push(j["id"].as_str().unwrap().to_string());
    }
    // Kill after 0.2 to 1.5 s, twelve times (a fixed pseudo-random sequence).
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut kills_mid_job = 0;
    let logs: Vec<_> = (0..13).map(|n| srv.dir.path().join(format!("worker-{n}.log"))).collect();
    for log in &logs[..12] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = spawn_worker(&cfg_path, log);
        tokio::time::sleep(Duration::from_millis(200 + seed % 1300)).await;
        let running: i64 = sqlx::query("SELECT COUNT(*) FROM jobs WHERE status = 'running'")
            .fetch_one(&srv.app.db.pool)
            .await
            .unwrap()
            .get(0);
        kills_mid_job += usize::from(running > 0);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(kills_mid_job >= 3, "only {kills_mid_job} kills landed mid-job");
    // Then a worker that is left alone finishes them (on a fast machine the
    // killed ones may already have).
    let mut child = spawn_worker(&cfg_path, &logs[12]);
    let t0 = Instant::now();
    for id in &jobs {
        let left = Duration::from_secs(180).saturating_sub(t0.elapsed());
        let done = srv.wait_job(&token, id, left).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The workers' JSON log lines name the job they are about. (A line cut
    // short by SIGKILL does not parse and is skipped.)
    let log: String = logs.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default() + "\n").collect();
    let ended: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "job run ended")
        .collect();
    assert!(!ended.is_empty(), "no 'job run ended' line in:\n{log}");
    for l in &ended {
        assert!(jobs.iter().any(|j| l["span"]["job_id"] == j.as_str()), "a job line without its job_id: {l}");
    }
    invariants(&srv, &user, &jobs).await;
    assert_eq!(srv.balance(&token).await, 20 - jobs.len() as i64);
    srv.stop().await;
}

/// Creates with distinct keys racing one balance: as many succeed as the
/// credits pay for, the rest get 402, and the balance never goes below zero.
pub async fn balance_race(mut cfg: Config) {
    cfg.limits.max_active_jobs = 1000;
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("race@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 8000)).await;
    let mut calls = Vec::new();
    for i in 0..40 {
        let (http, url, token) = (srv.http.clone(), srv.url("/v1/jobs"), token.clone());
        let body = json!({"asset_id": asset});
        calls.push(tokio::spawn(async move {
            let r = http.post(url).bearer_auth(token).header("Idempotency-Key", format!("k{i}")).json(&body).send();
            let r = r.await.unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap())
        }));
    }
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for c in calls {
        let (s, v) = c.await.unwrap();
        match s {
            StatusCode::ACCEPTED => accepted.push(v["id"].as_str().unwrap().to_string()),
            StatusCode::PAYMENT_REQUIRED => {
                assert_eq!(v["error"]["code"], "insufficient_credits");
                refused += 1;
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!((accepted.len(), refused), (10, 30));
    assert_eq!(srv.balance(&token).await, 0);
    srv.ledger_balances(&user_id(&token)).await;
    srv.stop().await;
}

/// A private s3s-fs server whose process the test stops and starts.
pub struct S3Server {
    bin: String,
    root: std::path::PathBuf,
    pub port: u16,
    child: Option<std::process::Child>,
}

impl S3Server {
    pub fn start(bin: &str, root: &std::path::Path) -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = S3Server { bin: bin.into(), root: root.into(), port, child: None };
        s.up();
        s
    }

    pub fn up(&mut self) {
        std::fs::create_dir_all(&self.root).unwrap();
        let child = std::process::Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", "test", "--secret-key", "testsecret"])
            .arg(&self.root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(20), "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.down();
    }
}

/// The object store stops mid-job: the job retries and succeeds once it is
/// back; when it stays away, the job fails with a storage code and a refund.
/// The API keeps answering throughout. `cfg` points at `s3`.
pub async fn storage_outage(mut cfg: Config, s3: &mut S3Server) {
    cfg.worker.retry_backoff_secs = 1;
    cfg.worker.max_attempts = 4;
    cfg.worker.visibility_secs = 5;
    let srv = Server::start(cfg, 1).await;
    let token = srv.login("outage@example.com").await;
    let user = user_id(&token);
    let asset = srv.asset(&token, "a.wav", &wav(3.0, 16000)).await;

    // Down before the worker downloads; back two seconds later.
    s3.down();
    let (s, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let first = job["id"].as_str().unwrap().to_string();
    let retrying = srv.wait_until(&token, &first, Duration::from_secs(30), |v| v["stage"] == "retrying").await;
    assert_eq!(retrying["status"], "running", "{retrying}");
    let (s, health) = srv.call("GET", "/health", None, None).await;
    assert_eq!((s, &health["storage"]["ok"]), (StatusCode::SERVICE_UNAVAILABLE, &json!(false)), "{health}");
    s3.up();
    let done = srv.wait_job(&token, &first, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["attempt"].as_i64().is_some());

    // Down for good: failed with the stage's storage code, refunded.
    s3.down();
    let (s, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let second = job["id"].as_str().unwrap().to_string();
    let done = srv.wait_job(&token, &second, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "storage_download", "{done}");
    assert_eq!(srv.balance(&token).await, 10 - 1);
    s3.up();
    invariants(&srv, &user, &[first, second]).await;
    srv.stop().await;
}

/// The API process killed with SIGKILL while it completes three uploads of a
/// 26 MB file (assembling, downloading and probing them): none is stuck.
/// While the dead request's lease runs, completing or aborting answers 409
/// with Retry-After; after it, completing again resumes (the asset appears
/// once), aborting rolls back (the assembled object is deleted), and the
/// cleanup task rolls back the one nobody touched. An object no row knows
/// is deleted once past its grace, and the store ends up holding exactly
/// what the rows know.
/// (On S3 servers that, unlike S3 and moto, drop a multipart upload whose
/// completing request went away, such as s3s-fs, there is nothing to resume.)
pub async fn complete_crash(mut cfg: Config) {
    cfg.limits.upload_complete_lease_secs = 60;
    cfg.retention.interval_secs = 0;
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("crash@example.com").await;
    let big = wav(150.0, 44100);
    // The API to kill: another process of the same deployment (same
    // database, store and secrets), on its own port, logging text.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child_cfg = srv.app.cfg.clone();
    child_cfg.listen = format!("127.0.0.1:{port}");
    child_cfg.public_url = None;
    let cfg_path = srv.dir.path().join("api.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&child_cfg).unwrap()).unwrap();
    let log_path = srv.dir.path().join("api.log");
    let pool = srv.app.db.pool.clone();
    let status = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT status FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                .get::<String, _>(0)
        }
    };

    let mut stuck = Vec::new();
    for round in 0..5 {
        // All parts first, then the three completions at once.
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(srv.put_parts(&token, &format!("big-{round}-{i}.wav"), &big, "audio/wav").await);
        }
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_splitsound-server"))
            .args(["--config", cfg_path.to_str().unwrap(), "serve"])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("the server binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        while srv.http.get(format!("{base}/health")).send().await.is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "the API process did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (id, parts) in &ids {
            let (http, url, token) = (srv.http.clone(), format!("{base}/v1/uploads/{id}/complete"), token.clone());
            let body = json!({"parts": parts});
            // The answer never comes: the process dies first (or it does, and this round is retried).
            tokio::spawn(async move {
                let _ = http.post(url).bearer_auth(token).json(&body).send().await;
            });
        }
        // SIGKILL as soon as all three are being completed.
        let t0 = Instant::now();
        loop {
            let mut completing = 0;
            for (id, _) in &ids {
                completing += usize::from(status(id.clone()).await == "completing");
            }
            if completing == ids.len() || t0.elapsed() > Duration::from_secs(20) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let mut all = true;
        for (id, _) in &ids {
            all &= status(id.clone()).await == "completing";
        }
        if all {
            stuck = ids;
            break;
        }
        // A fast machine finished one first: roll this round back once its leases are over, and try again.
        sqlx::query("UPDATE uploads SET lease_until = 0 WHERE status = 'completing'").execute(&pool).await.unwrap();
        for (id, _) in &ids {
            let (s, v) = srv.call("POST", &format!("/v1/uploads/{id}/abort"), Some(&token), None).await;
            assert!(s == StatusCode::OK || s == StatusCode::CONFLICT, "{v}");
        }
    }
    assert_eq!(stuck.len(), 3, "no round left three uploads mid-completion");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains('\x1b'), "colour codes in a log that is not a terminal:\n{log}");
    let ((resume, parts), (rollback, _), (untouched, _)) = (&stuck[0], &stuck[1], &stuck[2]);
    let (srv_ref, token_ref) = (&srv, &token);
    let complete = |id: &String| {
        let (path, body) = (format!("/v1/uploads/{id}/complete"), json!({"parts": parts}));
        async move { srv_ref.call("POST", &path, Some(token_ref), Some(body)).await }
    };

    // While the dead request's lease runs: busy, with a time to come back.
    let (s, e) = complete(resume).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("upload_completing")), "{e}");
    let resp =
        srv.http.post(srv.url(&format!("/v1/uploads/{rollback}/abort"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // The store may still be finishing what the dead process asked of it (an
    // S3 server completes a multipart upload whether or not its client is
    // alive); the 60 s lease covers that in life, a pause does here.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The leases run out (moved to the past rather than waited for).
    let now = splitsound_server::db::now_ms();
    sqlx::query("UPDATE uploads SET lease_until = $1 WHERE status = 'completing'")
        .bind(now - 1)
        .execute(&pool)
        .await
        .unwrap();

    // Resumed, with the parts the client still has: whether or not the
    // store had assembled the object before the process died.
    let (s, v) = complete(resume).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!((v["asset"]["duration_secs"].as_f64().unwrap() - 150.0).abs() < 0.01, "{v}");
    let (s, again) = complete(resume).await;
    assert_eq!((s, &again["asset"]["id"]), (StatusCode::OK, &v["asset"]["id"]));

    // Rolled back by an abort.
    let (s, v) = srv.call("POST", &format!("/v1/uploads/{rollback}/abort"), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(status(rollback.clone()).await, "aborted");

    // Rolled back by the cleanup task, once its grace has passed.
    let grace = srv.app.cfg.retention.abandoned_upload_grace_secs as i64 * 1000;
    let report = srv.cleanup(splitsound_server::db::now_ms() + 1000).await;
    assert_eq!(report.uploads_rolled_back, 0, "not before the grace: {report:?}");
    let report = srv.cleanup(splitsound_server::db::now_ms() + grace + 5000).await;
    assert_eq!(report.uploads_rolled_back, 1, "{report:?}");
    assert_eq!(status(untouched.clone()).await, "aborted");

    // An object nobody recorded (a process killed between writing and
    // recording it) goes once it is past its grace, and not before.
    let stray = srv.dir.path().join("stray.wav");
    std::fs::write(&stray, b"RIFF").unwrap();
    srv.app.media.store.upload_file("user_nobody/originals/x/stray.wav", &stray, "audio/wav").await.unwrap();
    let day = srv.app.cfg.retention.orphan_grace_secs as i64 * 1000;
    let report = srv.cleanup(splitsound_server::db::now_ms() + grace + 5000).await;
    assert_eq!(report.orphans_deleted, 0, "{report:?}");
    let report = srv.cleanup(splitsound_server::db::now_ms() + day + 5000).await;
    assert!(report.orphans_deleted >= 1, "{report:?}");
    no_orphans(&srv).await;
    srv.stop().await;
}
