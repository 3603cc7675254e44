//! The worker: takes a message, reloads the job from the database (the
//! truth; a message may come twice), and runs download → separate → upload →
//! record, extending the message's visibility while it works. A failure has a
//! code per stage; transient ones (storage, database) come back after a
//! backoff, up to `max_attempts` deliveries; the rest end the job failed and
//! refunded. A cancel request is seen at the next segment boundary.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use splitsound_core::model::NeuralOptions;
use splitsound_core::{CancelToken, DecodeOptions, FileJobOptions, Progress, SeparateOptions, Separator, Stage};
use sqlx::Row;
use tokio::sync::watch;
use tracing::Instrument;

use super::queue::{Message, Queue};
use crate::control::jobs::{self, JobConfig, JobRow};
use crate::db::{ACTIVE_JOB_STATUSES as ACTIVE, Db, new_sorted_id, now_ms};
use crate::media::Media;
use crate::media::keys::{output_key, safe_name};
use crate::media::store::StoreError;
use crate::metrics::Metrics;

/// `worker` in the configuration.
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

/// What a worker process uses, and nothing else: the jobs' database, the
/// store, the queue, its metrics and its configuration.
#[derive(Debug)]
pub struct Worker {
    pub db: Db,
    pub media: Arc<Media>,
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub cfg: WorkerConfig,
    /// The longest input a job may have (`limits.max_duration_secs`).
    pub max_duration_secs: f64,
}

/// How a run ended.
#[derive(Debug)]
enum Outcome {
    Succeeded,
    /// The job was ended elsewhere while this run worked (another delivery, a failure).
    Superseded,
    Cancelled,
    /// Permanent: the job fails now, refunded.
    Failed(&'static str, String),
    /// Worth another delivery after a backoff.
    Transient(&'static str, String),
}

/// Loaded separators, by name, kept between jobs (a model package loads once).
type Cache = HashMap<String, Box<dyn Separator>>;

/// Runs `concurrency` job loops until `shutdown` turns true. A job in progress
/// when it does is finished first.
pub async fn run(w: Arc<Worker>, shutdown: watch::Receiver<bool>) {
    let n = w.cfg.concurrency.max(1);
    let mut loops = tokio::task::JoinSet::new();
    for i in 0..n {
        let (w, shutdown) = (w.clone(), shutdown.clone());
        loops.spawn(async move { job_loop(w, shutdown, i).await });
    }
    while loops.join_next().await.is_some() {}
}

async fn job_loop(w: Arc<Worker>, mut shutdown: watch::Receiver<bool>, index: usize) {
    let wcfg = &w.cfg;
    let (poll, vis) = (Duration::from_secs(wcfg.poll_secs), Duration::from_secs(wcfg.visibility_secs));
    let mut cache = Cache::new();
    tracing::info!(worker = index, "worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        let received = tokio::select! {
            r = w.queue.receive(poll, vis) => r,
            _ = shutdown.changed() => break,
        };
        match received {
            Ok(Some(m)) => handle(&w, &mut cache, m).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "queue receive failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::info!(worker = index, "worker stopped");
}

async fn handle(w: &Arc<Worker>, cache: &mut Cache, m: Message) {
    let job_id = m.job_id.clone();
    let span = tracing::info_span!("job", job_id = %job_id, delivery = m.receive_count);
    match handle_inner(w, cache, &m).instrument(span).await {
        Ok(true) => {
            if let Err(e) = w.queue.delete(&m).await {
                // The message comes back; the job is terminal by then and is skipped.
                tracing::warn!(job = %job_id, error = %e, "could not delete a finished job's message");
            }
        }
        Ok(false) => {}
        Err(e) => {
            // The database failed us: leave the message to come back.
            tracing::error!(job = %job_id, error = %e, "database error while handling a job");
        }
    }
}

/// Returns whether the message is done with (to be deleted).
async fn handle_inner(w: &Arc<Worker>, cache: &mut Cache, m: &Message) -> sqlx::Result<bool> {
    let db = &w.db;
    let Some(job) = jobs::get(db, &m.job_id).await? else {
        tracing::warn!(job = %m.job_id, "message for an unknown job; dropping it");
        return Ok(true);
    };
    if job.is_terminal() {
        return Ok(true);
    }
    let max = w.cfg.max_attempts;
    if m.receive_count > max {
        let msg = format!("delivered {} times without finishing", m.receive_count);
        jobs::finish(db, &job.id, "failed", Some(("too_many_attempts", &msg))).await?;
        tracing::warn!(job = %job.id, "{msg}; failed and refunded");
        return Ok(true);
    }
    if job.cancel_requested {
        jobs::finish(db, &job.id, "cancelled", None).await?;
        return Ok(true);
    }
    let now = now_ms();
    let started = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'running', stage = 'downloading', progress = 0, started_at = COALESCE(started_at, $1), \
         updated_at = $1 WHERE id = $2 AND status IN {ACTIVE}"
    )))
    .bind(now)
    .bind(&job.id)
    .execute(&db.pool)
    .await?;
    if started.rows_affected() != 1 {
        return Ok(true);
    }

    let state = Arc::new(Mutex::new(("downloading".to_string(), 0.0f64)));
    let cancel = CancelToken::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let beat = tokio::spawn(heartbeat(w.clone(), m.clone(), job.id.clone(), state.clone(), cancel.clone(), stop_rx));
    let t0 = Instant::now();
    let cpu0 = process_cpu_secs();
    let (outcome, audio_secs, runs_on) = run_job(w, cache, &job, &state, &cancel).await;
    let _ = stop_tx.send(true);
    let _ = beat.await;
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), process_cpu_secs() - cpu0);
    let gpu = if runs_on.starts_with("cpu") { 0.0 } else { wall };
    tracing::info!(job = %job.id, outcome = ?outcome, wall_secs = wall, "job run ended");
    let label = match &outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Superseded => "superseded",
        Outcome::Cancelled => "cancelled",
        Outcome::Failed(..) => "failed",
        Outcome::Transient(..) => "transient",
    };
    w.metrics.job_run(label);
    if let Outcome::Succeeded = outcome {
        w.metrics.job_audio(audio_secs);
    }

    // Whether the message is done with, and this run's outcome for the usage log.
    let (done, logged) = match outcome {
        Outcome::Succeeded => (true, "succeeded"),
        Outcome::Superseded => (true, "superseded"),
        Outcome::Cancelled => {
            jobs::finish(db, &job.id, "cancelled", None).await?;
            (true, "cancelled")
        }
        Outcome::Failed(code, msg) => {
            jobs::finish(db, &job.id, "failed", Some((code, &msg))).await?;
            (true, "failed")
        }
        Outcome::Transient(code, msg) if m.receive_count >= max => {
            let msg = format!("{msg} (after {} attempts)", m.receive_count);
            jobs::finish(db, &job.id, "failed", Some((code, &msg))).await?;
            (true, "failed")
        }
        Outcome::Transient(code, msg) => {
            let backoff = w.cfg.retry_backoff_secs.saturating_mul(1 << (m.receive_count - 1).clamp(0, 10));
            tracing::warn!(job = %job.id, code, error = %msg, backoff, "transient failure; will retry");
            sqlx::query("UPDATE jobs SET stage = 'retrying', failure_message = $1, updated_at = $2 WHERE id = $3 AND status = 'running'")
                .bind(format!("{code}: {msg}"))
                .bind(now_ms())
                .bind(&job.id)
                .execute(&db.pool)
                .await?;
            if let Err(e) = w.queue.extend(m, Duration::from_secs(backoff)).await {
                tracing::warn!(job = %job.id, error = %e, "could not set the retry backoff");
            }
            (false, "retrying")
        }
    };
    sqlx::query(
        "INSERT INTO usage_logs (id, user_id, job_id, outcome, audio_secs, wall_secs, cpu_secs, gpu_secs, runs_on, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_sorted_id())
    .bind(&job.user_id)
    .bind(&job.id)
    .bind(logged)
    .bind(audio_secs)
    .bind(wall)
    .bind(cpu)
    .bind(gpu)
    .bind(&runs_on)
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    Ok(done)
}

/// While a job runs: writes its stage and progress, watches for a cancel
/// request, and keeps its message hidden.
async fn heartbeat(
    w: Arc<Worker>,
    m: Message,
    job: String,
    state: Arc<Mutex<(String, f64)>>,
    cancel: CancelToken,
    mut stop: watch::Receiver<bool>,
) {
    let vis = Duration::from_secs(w.cfg.visibility_secs);
    let extend_every = (vis / 3).max(Duration::from_secs(1));
    let mut last_extend = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => return,
        }
        let (stage, progress) = state.lock().map(|s| s.clone()).unwrap_or_default();
        let row = sqlx::query(
            "UPDATE jobs SET stage = $1, progress = $2, updated_at = $3 WHERE id = $4 AND status = 'running' RETURNING cancel_requested",
        )
        .bind(&stage)
        .bind(progress)
        .bind(now_ms())
        .bind(&job)
        .fetch_optional(&w.db.pool)
        .await;
        match row {
            Ok(Some(r)) if r.try_get::<i64, _>(0).unwrap_or(0) != 0 => cancel.cancel(),
            Ok(None) => cancel.cancel(), // ended elsewhere: stop working on it
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(job = %job, error = %e, "progress update failed"),
        }
        if last_extend.elapsed() >= extend_every {
            last_extend = Instant::now();
            if let Err(e) = w.queue.extend(&m, vis).await {
                tracing::warn!(job = %job, error = %e, "visibility extension failed");
            }
        }
    }
}

fn set(state: &Mutex<(String, f64)>, stage: &str, progress: f64) {
    if let Ok(mut s) = state.lock() {
        *s = (stage.to_string(), progress.clamp(0.0, 1.0));
    }
}

async fn run_job(
    w: &Arc<Worker>,
    cache: &mut Cache,
    job: &JobRow,
    state: &Arc<Mutex<(String, f64)>>,
    cancel: &CancelToken,
) -> (Outcome, f64, String) {
    let mut runs_on = "cpu".to_string();
    let cfg = match job.config() {
        Ok(c) => c,
        Err(e) => return (Outcome::Failed("invalid_config", e.to_string()), 0.0, runs_on),
    };
    let asset = sqlx::query(
        "SELECT object_key, filename, duration_secs FROM media_assets WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(&job.asset_id)
    .fetch_optional(&w.db.pool)
    .await;
    let (key, filename, audio_secs): (String, String, f64) = match asset {
        Ok(Some(r)) => (r.get(0), r.get(1), r.get(2)),
        Ok(None) => return (Outcome::Failed("asset_deleted", "the upload was deleted".into()), 0.0, runs_on),
        Err(e) => return (Outcome::Transient("database", e.to_string()), 0.0, runs_on),
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return (Outcome::Transient("scratch_space", e.to_string()), audio_secs, runs_on),
    };
    let input = dir.path().join(safe_name(&filename));
    let stage_t0 = Instant::now();
    let stage_done = |stage: &'static str, t0: Instant| {
        w.metrics.job_stage(stage, t0.elapsed().as_secs_f64());
        Instant::now()
    };
    match w.media.store.download(&key, &input).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => {
            return (Outcome::Failed("original_missing", "the uploaded file is gone".into()), audio_secs, runs_on);
        }
        Err(e) => return (Outcome::Transient("storage_download", e.to_string()), audio_secs, runs_on),
    }
    let stage_t0 = stage_done("download", stage_t0);
    set(state, "separating", 0.05);

    // Separate on a blocking thread; the separator travels there and back.
    let spec = cfg.separator.clone();
    let sep = match cache.remove(&spec) {
        Some(s) => Ok(s),
        None => load(w, &spec),
    };
    let mut sep = match sep {
        Ok(s) => s,
        Err(e) => return (Outcome::Failed("model_unavailable", e), audio_secs, runs_on),
    };
    // A cached text-prompted separator still holds the last job's description: set this one's.
    let described = match &cfg.text {
        Some(d) => sep.set_description(d).map_err(|e| ("description_not_understood", e.to_string())),
        None if sep.text_prompted() => {
            Err(("description_required", format!("{spec} is text-prompted and the job has no description")))
        }
        None => Ok(()),
    };
    if let Err((code, e)) = described {
        cache.insert(spec, sep);
        return (Outcome::Failed(code, e), audio_secs, runs_on);
    }
    let write = match jobs::write_options(&cfg.format, cfg.bits) {
        Ok(w) => w,
        Err(e) => return (Outcome::Failed("invalid_config", e), audio_secs, runs_on),
    };
    runs_on = sep.runs_on();
    let out_dir = dir.path().join("out");
    let (cfg2, state2, cancel2, input2, out2) =
        (cfg.clone(), state.clone(), cancel.clone(), input.clone(), out_dir.clone());
    let max_secs = w.max_duration_secs;
    let joined = tokio::task::spawn_blocking(move || {
        let r = separate(sep.as_mut(), &cfg2, write, &input2, &out2, &state2, &cancel2, max_secs);
        (sep, r)
    })
    .await;
    let report = match joined {
        Ok((sep, r)) => {
            cache.insert(spec, sep);
            r
        }
        Err(e) => {
            return (
                Outcome::Failed("separation_failed", format!("the separation panicked: {e}")),
                audio_secs,
                runs_on,
            );
        }
    };
    let report = match report {
        Ok(r) => r,
        Err(e) if e.code() == "cancelled" => return (Outcome::Cancelled, audio_secs, runs_on),
        Err(e) => {
            let code = match e.code() {
                "unrecognized_format" | "unsupported_codec" | "corrupt" | "no_audio_track" | "io" => "decode_failed",
                "too_large" => "too_long",
                _ => "separation_failed",
            };
            return (Outcome::Failed(code, e.to_string()), audio_secs, runs_on);
        }
    };

    let stage_t0 = stage_done("separate", stage_t0);
    set(state, "uploading", 0.9);
    let ext = if cfg.format == "flac" { "flac" } else { "wav" };
    let content_type = if ext == "flac" { "audio/flac" } else { "audio/wav" };
    let mut uploaded = Vec::new();
    for (i, stem) in report.stems.iter().enumerate() {
        if cancel.is_cancelled() {
            delete_all(w, &uploaded).await;
            return (Outcome::Cancelled, audio_secs, runs_on);
        }
        let key = output_key(&job.user_id, &job.id, &stem.name, ext);
        if let Err(e) = w.media.store.upload_file(&key, &stem.path, content_type).await {
            return (Outcome::Transient("storage_upload", e.to_string()), audio_secs, runs_on);
        }
        let size = std::fs::metadata(&stem.path).map_or(0, |m| m.len() as i64);
        uploaded.push((stem.name.clone(), key, size));
        set(state, "uploading", 0.9 + 0.1 * (i + 1) as f64 / report.stems.len() as f64);
    }
    if cancel.is_cancelled() {
        delete_all(w, &uploaded).await;
        return (Outcome::Cancelled, audio_secs, runs_on);
    }
    stage_done("upload", stage_t0);
    match record_success(w, job, &uploaded, content_type, &runs_on).await {
        Ok(true) => (Outcome::Succeeded, audio_secs, runs_on),
        Ok(false) => {
            // Ended elsewhere meanwhile. If it succeeded there, the objects
            // are the same (same keys, same input); otherwise they are orphans.
            let status = jobs::get(&w.db, &job.id).await.ok().flatten().map(|j| j.status);
            if status.as_deref() != Some("succeeded") {
                delete_all(w, &uploaded).await;
            }
            (Outcome::Superseded, audio_secs, runs_on)
        }
        Err(e) => (Outcome::Transient("database", e.to_string()), audio_secs, runs_on),
    }
}

async fn delete_all(w: &Worker, uploaded: &[(String, String, i64)]) {
    for (_, key, _) in uploaded {
        if let Err(e) = w.media.store.delete(key).await {
            tracing::warn!(key = %key, error = %e, "could not delete an output of a job that did not succeed");
        }
    }
}

/// Inserts the output rows and marks the job succeeded, in one transaction.
async fn record_success(
    w: &Worker,
    job: &JobRow,
    uploaded: &[(String, String, i64)],
    content_type: &str,
    runs_on: &str,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let mut tx = w.db.pool.begin().await?;
    let r = sqlx::query(
        "UPDATE jobs SET status = 'succeeded', stage = 'done', progress = 1, runs_on = $1, failure_message = NULL, \
         finished_at = $2, updated_at = $2 WHERE id = $3 AND status = 'running'",
    )
    .bind(runs_on)
    .bind(now)
    .bind(&job.id)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    for (stem, key, size) in uploaded {
        sqlx::query(
            "INSERT INTO output_tracks (id, job_id, stem, object_key, content_type, size, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_sorted_id())
        .bind(&job.id)
        .bind(stem)
        .bind(key)
        .bind(content_type)
        .bind(size)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

fn load(w: &Worker, spec: &str) -> Result<Box<dyn Separator>, String> {
    if let Some(path) = w.cfg.models.get(spec) {
        let opts: NeuralOptions = match &w.cfg.neural {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("worker.neural: {e}"))?,
            None => NeuralOptions::default(),
        };
        splitsound_core::load_separator(&path.to_string_lossy(), opts).map_err(|e| e.to_string())
    } else if splitsound_core::builtin::BUILTIN_NAMES.contains(&spec.strip_prefix("builtin:").unwrap_or(spec)) {
        splitsound_core::load_separator(spec, Default::default()).map_err(|e| e.to_string())
    } else {
        // Only the configured models and the built-ins: never a path a job names.
        Err(format!("{spec:?} is neither a configured model nor a built-in"))
    }
}

#[allow(clippy::too_many_arguments)]
fn separate(
    sep: &mut dyn Separator,
    cfg: &JobConfig,
    write: splitsound_core::WriteOptions,
    input: &Path,
    out_dir: &Path,
    state: &Mutex<(String, f64)>,
    cancel: &CancelToken,
    max_secs: f64,
) -> splitsound_core::Result<splitsound_core::FileJobReport> {
    let opts = FileJobOptions {
        decode: DecodeOptions { max_duration_secs: Some(max_secs + 1.0), ..DecodeOptions::default() },
        write,
        selection: cfg.selection.clone(),
    };
    let progress = |p: Progress| {
        let frac = if p.total > 0 { p.done as f64 / p.total as f64 } else { 0.0 };
        match p.stage {
            Stage::Write => set(state, "encoding", 0.88),
            _ => set(state, "separating", 0.05 + 0.8 * frac),
        }
    };
    let call = SeparateOptions { progress: Some(&progress), cancel: Some(cancel) };
    let report = splitsound_core::separate_file(sep, input, out_dir, &opts, &call)?;
    Ok(report)
}

/// CPU seconds this process has used (user + system), 0 where `/proc` is missing.
fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces) in parentheses.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ")"; USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
