//! The flows every configuration must pass, embedded or production.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use splitsound_server::Config;

use super::{Server, decode, demo_flac, user_id, wav};

/// Sign in, upload in parts straight to the store, complete, create a job,
/// let a worker run it, poll, download through the signed URLs: the bytes
/// decode, and the stems sum to the mix.
pub async fn full_flow(cfg: Config) {
    let srv = Server::start(cfg, 1).await;
    let token = srv.login("ada@example.com").await;
    let user = user_id(&token);
    assert_eq!(srv.balance(&token).await, 10);

    let mix = demo_flac();
    let (s, v) = srv.upload(&token, "My Song (final).flac", &mix, "audio/flac").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let asset = v["asset"].clone();
    assert_eq!(asset["sample_rate"], 44100);
    assert_eq!(asset["channels"], 2);
    let secs = asset["duration_secs"].as_f64().unwrap();
    let cost = splitsound_server::control::credits::job_cost(secs);
    assert!(secs > 1.0);

    let body = json!({"asset_id": asset["id"], "model": "builtin:hpss", "options": {"bits": 32}});
    let (s, job) = srv.call_with("POST", "/v1/jobs", Some(&token), Some(body), &[("Idempotency-Key", "k1")]).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert!(matches!(job["status"].as_str(), Some("queued" | "running")), "{job}");
    assert_eq!(srv.balance(&token).await, 10 - cost);
    let id = job["id"].as_str().unwrap().to_string();

    let done = srv.wait_job(&token, &id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress_percent"], 100.0);
    assert_eq!(done["runs_on"], "cpu");
    let stems: Vec<&str> = done["outputs"].as_array().unwrap().iter().map(|o| o["stem"].as_str().unwrap()).collect();
    assert_eq!(stems.len(), 2, "{done}");

    let (s, dl) = srv.call("GET", &format!("/v1/jobs/{id}/downloads"), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{dl}");
    let original = decode(&mix);
    let mut sum = vec![vec![0f32; original.frames()]; original.num_channels()];
    for stem in dl["stems"].as_array().unwrap() {
        let (s, headers, bytes) = srv.get_bytes(stem["url"].as_str().unwrap()).await;
        assert_eq!(s, StatusCode::OK);
        let disp = headers.get("content-disposition").unwrap().to_str().unwrap();
        assert!(disp.starts_with("attachment;") && disp.contains("My Song (final) - "), "{disp}");
        assert_eq!(bytes.len() as u64, stem["size"].as_u64().unwrap());
        let audio = decode(&bytes);
        assert_eq!(audio.frames(), original.frames());
        for (acc, ch) in sum.iter_mut().zip(audio.channels()) {
            acc.iter_mut().zip(ch).for_each(|(a, x)| *a += x);
        }
    }
    let err = sum
        .iter()
        .zip(original.channels())
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    assert!(err < 1e-4, "stems sum to the mix within {err}");

    // Previews play inline, and seek (byte ranges) where the store serves them.
    let (s, pv) = srv.call("GET", &format!("/v1/jobs/{id}/preview"), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{pv}");
    let url = pv["stems"][0]["url"].as_str().unwrap();
    match &srv.app.media.store {
        splitsound_server::media::Store::S3(_) => assert!(url.contains("X-Amz-Signature="), "{url}"),
        splitsound_server::media::Store::Local(_) => assert!(url.contains("/storage/o/user_"), "{url}"),
    }
    let resp = srv.http.get(url).header("range", "bytes=0-11").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let disp = resp.headers().get("content-disposition").unwrap().to_str().unwrap().to_string();
    assert!(disp.starts_with("inline;"), "{disp}");
    assert_eq!(&resp.bytes().await.unwrap()[..4], b"RIFF");
    if let splitsound_server::media::Store::Local(_) = &srv.app.media.store {
        // The local store's objects, through tower-http's ServeFile: whole, a
        // suffix range, and a range past the end (416 naming the length, in
        // the API's error format).
        let whole = srv.http.get(url).send().await.unwrap();
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(whole.headers()["accept-ranges"], "bytes");
        assert_eq!(whole.headers()["content-type"], "audio/wav");
        let whole = whole.bytes().await.unwrap();
        let n = whole.len();
        let tail = srv.http.get(url).header("range", "bytes=-10").send().await.unwrap();
        assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(tail.headers()["content-range"].to_str().unwrap(), format!("bytes {}-{}/{n}", n - 10, n - 1));
        assert_eq!(tail.bytes().await.unwrap(), whole[n - 10..]);
        let past = srv.http.get(url).header("range", format!("bytes={n}-")).send().await.unwrap();
        assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(past.headers()["content-range"].to_str().unwrap(), format!("bytes */{n}"));
        assert_eq!(past.json::<Value>().await.unwrap()["error"]["code"], "range_not_satisfiable");
    }

    // Deterministic object keys.
    use sqlx::Row;
    let keys: Vec<String> = sqlx::query("SELECT object_key FROM output_tracks WHERE job_id = $1 ORDER BY stem")
        .bind(&id)
        .fetch_all(&srv.app.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys[0], format!("user_{user}/jobs/job_{id}/output/harmonic.wav"));
    let original_key: String = sqlx::query("SELECT object_key FROM media_assets WHERE id = $1")
        .bind(asset["id"].as_str().unwrap())
        .fetch_one(&srv.app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert!(
        original_key.starts_with(&format!("user_{user}/originals/")) && original_key.ends_with("/My_Song__final_.flac")
    );

    // Usage was logged with the job's time.
    let row = sqlx::query("SELECT outcome, audio_secs, wall_secs, runs_on FROM usage_logs WHERE job_id = $1")
        .bind(&id)
        .fetch_one(&srv.app.db.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "succeeded");
    assert!((row.get::<f64, _>(1) - secs).abs() < 1e-6);
    assert!(row.get::<f64, _>(2) > 0.0);

    // A description, resolved by the core's query resolver.
    let body = json!({"asset_id": asset["id"], "description": "remove the drums", "model": "builtin:hpss"});
    let (s, job2) = srv.call("POST", "/v1/jobs", Some(&token), Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job2}");
    assert_eq!(job2["targets"], json!(["percussive"]));
    assert_eq!(job2["mode"], "remove");
    let done2 = srv.wait_job(&token, job2["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done2["status"], "succeeded", "{done2}");
    let names: Vec<&str> = done2["outputs"].as_array().unwrap().iter().map(|o| o["stem"].as_str().unwrap()).collect();
    assert!(names.contains(&"no_percussive") && names.contains(&"percussive"), "{names:?}");

    // The library lists the asset and the jobs; the ledger balances.
    let (s, lib) = srv.call("GET", "/v1/me/library", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(lib["assets"].as_array().unwrap().len(), 1);
    assert_eq!(lib["recent_jobs"].as_array().unwrap().len(), 2);
    assert_eq!(srv.balance(&token).await, 10 - 2 * cost);
    srv.ledger_balances(&user).await;

    // Deleting the asset deletes its objects, then marks the rows.
    let (s, d) =
        srv.call("DELETE", &format!("/v1/me/library/{}", asset["id"].as_str().unwrap()), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["objects_deleted"], 5);
    for k in keys.iter().chain([&original_key]) {
        assert_eq!(srv.app.media.store.size(k).await.unwrap(), None, "{k} is gone");
    }
    let (_, lib) = srv.call("GET", "/v1/me/library", Some(&token), None).await;
    assert_eq!(lib["assets"].as_array().unwrap().len(), 0);
    // The job keeps its history and says its stems are gone.
    let (s, e) = srv.call("GET", &format!("/v1/jobs/{id}/downloads"), Some(&token), None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::GONE, Some("outputs_deleted")));
    srv.stop().await;
}

/// Same key and payload: the same job, one debit. Same key, another payload: 409.
/// Many concurrent creations with one key: one job, one debit.
pub async fn idempotency(cfg: Config) {
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("bo@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(3.0, 16000)).await;
    let body = json!({"asset_id": asset, "stems": ["harmonic"]});
    let (s1, j1) =
        srv.call_with("POST", "/v1/jobs", Some(&token), Some(body.clone()), &[("Idempotency-Key", "same")]).await;
    let (s2, j2) =
        srv.call_with("POST", "/v1/jobs", Some(&token), Some(body.clone()), &[("Idempotency-Key", "same")]).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(j1["id"], j2["id"]);
    assert_eq!(srv.balance(&token).await, 9);
    let other = json!({"asset_id": asset, "stems": ["percussive"]});
    let (s, e) = srv.call_with("POST", "/v1/jobs", Some(&token), Some(other), &[("Idempotency-Key", "same")]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], "idempotency_key_reused");

    let mut calls = Vec::new();
    for _ in 0..50 {
        let (http, url, token, body) = (srv.http.clone(), srv.url("/v1/jobs"), token.clone(), body.clone());
        calls.push(tokio::spawn(async move {
            let r =
                http.post(url).bearer_auth(token).header("Idempotency-Key", "race").json(&body).send().await.unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for c in calls {
        let (s, v) = c.await.unwrap();
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        ids.insert(v["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "one job for one key");
    assert_eq!(srv.balance(&token).await, 8, "one debit for one key");
    srv.ledger_balances(&user_id(&token)).await;
    srv.stop().await;
}

/// 402 when credits run short; 429 beyond the active-job limit; neither debits.
pub async fn credit_and_rate_limits(mut cfg: Config) {
    cfg.signup_credits = 3;
    cfg.limits.max_active_jobs = 2;
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("cy@example.com").await;
    let short = srv.asset(&token, "short.wav", &wav(2.0, 8000)).await;
    let long = srv.asset(&token, "long.wav", &wav(40.0, 8000)).await; // 2 credits
    let (s, _) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": long}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, e) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": long}))).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{e}");
    assert_eq!(e["error"]["code"], "insufficient_credits");
    assert_eq!(srv.balance(&token).await, 1);
    let (s, _) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": short}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    // Two active jobs: the third is refused before credits are looked at.
    let (s, e) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": short}))).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{e}");
    assert_eq!(e["error"]["code"], "too_many_active_jobs");
    assert_eq!(srv.balance(&token).await, 0);
    srv.ledger_balances(&user_id(&token)).await;
    srv.stop().await;
}

/// Uploads over the size or the duration limit, fake audio, and lying sizes
/// are refused with a typed error, and no asset is made.
pub async fn upload_limits(mut cfg: Config) {
    cfg.limits.max_duration_secs = 20.0;
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("di@example.com").await;
    let init = |size: u64, ct: &str| json!({"filename": "x.wav", "size": size, "content_type": ct});
    let (s, e) = srv.call("POST", "/v1/uploads/initialize", Some(&token), Some(init(100_000_001, "audio/wav"))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    let (s, _) = srv.call("POST", "/v1/uploads/initialize", Some(&token), Some(init(100_000_000, "audio/wav"))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, e) = srv.call("POST", "/v1/uploads/initialize", Some(&token), Some(init(0, "audio/wav"))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_file")));
    let (s, _) = srv.call("POST", "/v1/uploads/initialize", Some(&token), Some(init(10, "text/html"))).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, e) = srv.call("POST", "/v1/uploads/initialize", Some(&token), Some(json!({"filename": 1}))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_json")));

    let (s, e) = srv.upload(&token, "long.wav", &wav(21.0, 8000), "audio/wav").await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("too_long")), "{e}");
    let mut fake = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    fake.extend(std::iter::repeat_n(0x5a, 5000));
    let (s, e) = srv.upload(&token, "fake.wav", &fake, "audio/wav").await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("undecodable")), "{e}");
    let (s, e) = srv.upload(&token, "notes.mp3", b"just some text, not audio at all", "audio/mpeg").await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("undecodable")), "{e}");
    // A rejected upload stays rejected.
    let (id, parts) = srv.put_parts(&token, "again.wav", &fake, "audio/wav").await;
    let path = format!("/v1/uploads/{id}/complete");
    let (s, _) = srv.call("POST", &path, Some(&token), Some(json!({"parts": parts}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = srv.call("POST", &path, Some(&token), Some(json!({"parts": parts}))).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Declared larger than what was sent: the last part is short.
    let bytes = wav(1.0, 8000);
    let (s, init) = srv
        .call(
            "POST",
            "/v1/uploads/initialize",
            Some(&token),
            Some(json!({"filename": "s.wav", "size": bytes.len() + 10, "content_type": "audio/wav"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let part = &init["parts"][0];
    let r = srv.http.put(part["url"].as_str().unwrap()).body(bytes.clone()).send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let (s, e) = srv
        .call(
            "POST",
            &format!("/v1/uploads/{}/complete", init["upload_id"].as_str().unwrap()),
            Some(&token),
            Some(json!({"parts": [{"part_number": 1, "etag": etag}]})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("size_mismatch")), "{e}");
    // A wrong ETag can be corrected: the upload is still pending. (s3s-fs
    // does not compare ETags when completing; S3, moto and the local store do.)
    let (id, parts) = srv.put_parts(&token, "ok.wav", &bytes, "audio/wav").await;
    let path = format!("/v1/uploads/{id}/complete");
    if !store_ignores_etags(&srv.app.cfg) {
        let bad = json!({"parts": [{"part_number": 1, "etag": "\"bad\""}]});
        let (s, e) = srv.call("POST", &path, Some(&token), Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    }
    let (s, v) = srv.call("POST", &path, Some(&token), Some(json!({"parts": parts}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Aborting: pending only.
    let (id, _) = srv.put_parts(&token, "gone.wav", &bytes, "audio/wav").await;
    let (s, v) = srv.call("POST", &format!("/v1/uploads/{id}/abort"), Some(&token), None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("aborted")));
    let (_, lib) = srv.call("GET", "/v1/me/library", Some(&token), None).await;
    assert_eq!(lib["assets"].as_array().unwrap().len(), 1, "only the good upload became an asset");
    assert_eq!(srv.balance(&token).await, 10, "uploads cost nothing");
    srv.stop().await;
}

/// Cancel a queued job (ends at once) and a running one (stops at a segment
/// boundary, writes nothing); both refunded. Retry makes a new linked row.
pub async fn cancel_and_retry(cfg: Config) {
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("ed@example.com").await;
    let user = user_id(&token);
    let asset = srv.asset(&token, "long.wav", &wav(240.0, 44100)).await; // 4 credits
    let (s, queued) =
        srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset, "model": "builtin:repet"}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(srv.balance(&token).await, 6);
    let qid = queued["id"].as_str().unwrap().to_string();
    let (s, c) = srv.call("POST", &format!("/v1/jobs/{qid}/cancel"), Some(&token), None).await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("cancelled")), "{c}");
    assert_eq!(srv.balance(&token).await, 10);
    let (s, _) = srv.call("POST", &format!("/v1/jobs/{qid}/cancel"), Some(&token), None).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Retry: a new row pointing at its parent; the parent is untouched.
    let (s, r) = srv.call("POST", &format!("/v1/jobs/{qid}/retry"), Some(&token), None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    assert_ne!(r["id"], qid.as_str());
    assert_eq!(r["parent_job_id"], qid.as_str());
    assert_eq!(r["attempt"], 2);
    let (_, parent) = srv.call("GET", &format!("/v1/jobs/{qid}"), Some(&token), None).await;
    assert_eq!(parent["status"], "cancelled");
    let rid = r["id"].as_str().unwrap().to_string();
    let (s, _) = srv.call("POST", &format!("/v1/jobs/{rid}/retry"), Some(&token), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "a queued job is not retried");

    // The retry runs and is cancelled mid-run.
    let workers = srv.start_workers(1).await;
    let running = srv
        .wait_until(&token, &rid, Duration::from_secs(60), |v| v["status"] == "running" && v["stage"] == "separating")
        .await;
    assert_eq!(running["status"], "running");
    let (s, c) = srv.call("POST", &format!("/v1/jobs/{rid}/cancel"), Some(&token), None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{c}");
    assert_eq!(c["cancel_requested"], true);
    let done = srv.wait_job(&token, &rid, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(done["outputs"], json!([]));
    assert_eq!(srv.balance(&token).await, 10);
    use sqlx::Row;
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM output_tracks WHERE job_id = $1")
        .bind(&rid)
        .fetch_one(&srv.app.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    for stem in &srv.app.control.catalog.models["builtin:repet"] {
        let key = splitsound_server::media::keys::output_key(&user, &rid, stem, "wav");
        assert_eq!(srv.app.media.store.size(&key).await.unwrap(), None);
    }
    srv.ledger_balances(&user).await;
    workers.stop().await;
    srv.stop().await;
}

/// Another user's ids are "not found" on every endpoint.
pub async fn cross_user(cfg: Config) {
    let srv = Server::start(cfg, 1).await;
    let a = srv.login("owner@example.com").await;
    let b = srv.login("other@example.com").await;
    let asset = srv.asset(&a, "a.wav", &wav(2.0, 8000)).await;
    let (_, job) = srv.call("POST", "/v1/jobs", Some(&a), Some(json!({"asset_id": asset}))).await;
    let job = job["id"].as_str().unwrap().to_string();
    srv.wait_job(&a, &job, Duration::from_secs(60)).await;
    let (up, parts) = srv.put_parts(&a, "b.wav", &wav(1.0, 8000), "audio/wav").await;
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/jobs/{job}"), None),
        ("POST", format!("/v1/jobs/{job}/cancel"), None),
        ("POST", format!("/v1/jobs/{job}/retry"), None),
        ("GET", format!("/v1/jobs/{job}/preview"), None),
        ("GET", format!("/v1/jobs/{job}/downloads"), None),
        ("DELETE", format!("/v1/me/library/{asset}"), None),
        ("POST", "/v1/jobs".into(), Some(json!({"asset_id": asset}))),
        ("POST", format!("/v1/uploads/{up}/complete"), Some(json!({"parts": parts}))),
        ("POST", format!("/v1/uploads/{up}/abort"), None),
    ];
    for (m, path, body) in &calls {
        let (s, v) = srv.call(m, path, Some(&b), body.clone()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path}: {v}");
        let (s, _) = srv.call(m, path, None, body.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path} without a token");
    }
    let (s, _) = srv.call("GET", "/v1/me", Some("not-a-token"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The owner still has it all.
    let (s, _) = srv.call("POST", &format!("/v1/uploads/{up}/complete"), Some(&a), Some(json!({"parts": parts}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = srv.call("GET", &format!("/v1/jobs/{job}/downloads"), Some(&a), None).await;
    assert_eq!(s, StatusCode::OK);
    srv.stop().await;
}

/// A message delivered more than `max_attempts` times fails its job with a refund.
pub async fn poison_message(cfg: Config) {
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("fay@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 8000)).await;
    let (_, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(srv.balance(&token).await, 9);
    // Take the message max_attempts times without finishing it, as crashing workers would.
    let q = &srv.app.compute.queue;
    for _ in 0..srv.app.cfg.worker.max_attempts {
        let m = q.receive(Duration::from_secs(5), Duration::from_secs(0)).await.unwrap().expect("the message");
        assert_eq!(m.job_id, id);
        q.extend(&m, Duration::from_secs(0)).await.unwrap();
    }
    let workers = srv.start_workers(1).await;
    let done = srv.wait_job(&token, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["failure"]["code"], "too_many_attempts", "{done}");
    assert_eq!(srv.balance(&token).await, 10);
    workers.stop().await;
    srv.stop().await;
}

/// Signed URLs: a tampered signature, another key, no signature, an expired
/// URL or another method are refused by the store.
pub async fn signed_urls(mut cfg: Config) {
    cfg.limits.download_url_ttl_secs = 1;
    let local = matches!(cfg.storage, splitsound_server::config::StorageConfig::Local);
    let srv = Server::start(cfg, 1).await;
    let token = srv.login("gus@example.com").await;
    let asset = srv.asset(&token, "a.wav", &wav(2.0, 8000)).await;
    let (_, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    let id = job["id"].as_str().unwrap();
    srv.wait_job(&token, id, Duration::from_secs(60)).await;
    let (_, dl) = srv.call("GET", &format!("/v1/jobs/{id}/downloads"), Some(&token), None).await;
    let url = dl["stems"][0]["url"].as_str().unwrap().to_string();
    let (s, _, _) = srv.get_bytes(&url).await;
    assert_eq!(s, StatusCode::OK);
    let sig = if local { "X-Signature=" } else { "X-Amz-Signature=" };
    let at = url.find(sig).unwrap() + sig.len();
    let flipped = if &url[at..at + 1] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &url[..at], &url[at + 1..]);
    let (s, _, body) = srv.get_bytes(&tampered).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "tampered: {}", String::from_utf8_lossy(&body));
    if local {
        assert!(String::from_utf8_lossy(&body).contains("signature_invalid"));
    }
    let other_key = url.replace("/harmonic.wav", "/percussive.wav");
    assert_ne!(other_key, url);
    let (s, _, _) = srv.get_bytes(&other_key).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another key");
    let end = url[at..].find('&').map_or(url.len(), |e| at + e);
    let unsigned =
        format!("{}{}", &url[..at - sig.len()], &url[end..]).replace("?&", "?").trim_end_matches('&').to_string();
    let (s, _, _) = srv.get_bytes(&unsigned).await;
    assert!(s == StatusCode::FORBIDDEN || s == StatusCode::BAD_REQUEST, "unsigned: {s}");
    let r = srv.http.put(&url).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a GET URL used to PUT");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, _, body) = srv.get_bytes(&url).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "expired: {}", String::from_utf8_lossy(&body));
    if local {
        assert!(String::from_utf8_lossy(&body).contains("url_expired"));
    }
    srv.stop().await;
}

fn store_ignores_etags(cfg: &Config) -> bool {
    let s3s = std::env::var("SPLITSOUND_TEST_S3S_ENDPOINT").ok();
    matches!(&cfg.storage, splitsound_server::config::StorageConfig::S3(s) if s.endpoint.is_some() && s.endpoint == s3s)
}
