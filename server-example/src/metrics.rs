//! The process's metrics on prometheus-client, written in the OpenMetrics
//! text format at `GET /metrics`: request latency by route, job outcomes and
//! stage durations (in the process that runs the workers), and, read at
//! scrape time, the queue's depth and the jobs by status. Each metric is a
//! typed family with its own label set, so a call site cannot misspell a
//! name or a label.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the histogram buckets: from 1 ms requests to 20-minute jobs.
const BUCKETS: [f64; 20] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1200.0,
];

/// What `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// What the scrape reads from the queue and the database just before encoding.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// Messages waiting, messages in flight, and the oldest waiting one's age in seconds.
    pub queue: Option<(i64, i64, f64)>,
    /// Jobs in the database by status.
    pub jobs: Option<Vec<(String, i64)>>,
}

/// The process's metrics. Cheap to update from any task; shared behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    rate_limited: Family<LimitLabels, Counter>,
    job_runs: Family<OutcomeLabels, Counter>,
    job_stages: Histograms<StageLabels>,
    job_audio: Counter<f64, AtomicU64>,
    webhook_events: Family<ResultLabels, Counter>,
    retention_deleted: Family<KindLabels, Counter>,
    queue_messages: Family<StateLabels, Gauge>,
    queue_oldest_age: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    jobs: Family<StatusLabels, Gauge>,
    /// One scrape at a time sets the scrape-time gauges and encodes them.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("splitsound"),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(histogram),
            rate_limited: Family::default(),
            job_runs: Family::default(),
            job_stages: Family::new_with_constructor(histogram),
            job_audio: Counter::default(),
            webhook_events: Family::default(),
            retention_deleted: Family::default(),
            queue_messages: Family::default(),
            queue_oldest_age: Family::default(),
            jobs: Family::default(),
            scrape: Mutex::new(()),
        };
        let r = &mut m.registry;
        r.register("http_requests", "HTTP requests answered, by method, route and status", m.http_requests.clone());
        r.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            m.http_duration.clone(),
        );
        r.register("rate_limited", "Requests refused by a rate limit, by limit (ip or user)", m.rate_limited.clone());
        r.register("job_runs", "Job runs ended in this process, by outcome", m.job_runs.clone());
        r.register("job_stage_duration_seconds", "Time a job run spent in each stage", m.job_stages.clone());
        r.register("job_audio_seconds", "Seconds of audio separated by successful runs", m.job_audio.clone());
        r.register("webhook_events", "Billing webhook deliveries, by result", m.webhook_events.clone());
        r.register("retention_deleted", "Objects deleted by the retention task, by kind", m.retention_deleted.clone());
        r.register("queue_messages", "Queue messages by state (visible, in_flight)", m.queue_messages.clone());
        r.register("queue_oldest_age_seconds", "Age of the oldest waiting queue message", m.queue_oldest_age.clone());
        r.register("jobs", "Jobs in the database by status", m.jobs.clone());
        m
    }
}

impl Metrics {
    pub fn http_request(&self, method: &str, route: &str, status: u16, secs: f64) {
        let (method, route) = (method.to_string(), route.to_string());
        self.http_requests
            .get_or_create(&RequestLabels { method: method.clone(), route: route.clone(), status: status.to_string() })
            .inc();
        self.http_duration.get_or_create(&RouteLabels { method, route }).observe(secs);
    }

    /// A request refused by the `limit` (`ip` or `user`) rate limit.
    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.get_or_create(&LimitLabels { limit: limit.into() }).inc();
    }

    /// A job run that ended `outcome` (`succeeded`, `failed`, `transient`, …).
    pub fn job_run(&self, outcome: &str) {
        self.job_runs.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }

    pub fn job_stage(&self, stage: &str, secs: f64) {
        self.job_stages.get_or_create(&StageLabels { stage: stage.into() }).observe(secs);
    }

    /// Seconds of audio a successful run separated.
    pub fn job_audio(&self, secs: f64) {
        self.job_audio.inc_by(secs);
    }

    pub fn webhook_event(&self, result: &str) {
        self.webhook_events.get_or_create(&ResultLabels { result: result.into() }).inc();
    }

    pub fn retention_deleted(&self, kind: &str, n: u64) {
        self.retention_deleted.get_or_create(&KindLabels { kind: kind.into() }).inc_by(n);
    }

    /// The exposition: this process's counters and histograms, and `readings`
    /// as gauges (a reading that is missing leaves its gauges out).
    pub fn render(&self, readings: &Readings) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.queue_messages.clear();
        self.queue_oldest_age.clear();
        if let Some((visible, in_flight, oldest)) = readings.queue {
            self.queue_messages.get_or_create(&StateLabels { state: "visible".into() }).set(visible);
            self.queue_messages.get_or_create(&StateLabels { state: "in_flight".into() }).set(in_flight);
            self.queue_oldest_age.get_or_create(&Vec::new()).set(oldest);
        }
        // Cleared first, so a status no job has any more is not reported with its last count.
        self.jobs.clear();
        for (status, n) in readings.jobs.iter().flatten() {
            self.jobs.get_or_create(&StatusLabels { status: status.clone() }).set(*n);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let m = Metrics::default();
        m.http_request("GET", "/v1/jobs/{id}", 200, 0.003);
        m.http_request("GET", "/v1/jobs/{id}", 200, 5000.0);
        m.job_audio(1.5);
        let readings = Readings { queue: Some((2, 1, 3.5)), jobs: Some(vec![("queued".into(), 3)]) };
        let text = m.render(&readings);
        assert!(text.contains("# TYPE splitsound_http_requests counter\n"), "{text}");
        assert!(
            text.contains("splitsound_http_requests_total{method=\"GET\",route=\"/v1/jobs/{id}\",status=\"200\"} 2\n"),
            "{text}"
        );
        // Cumulative buckets (prometheus-client writes `le` first): 0.003 s is
        // in every bucket from 5 ms up; 5000 s only in +Inf.
        let bucket = |le: &str| {
            format!(
                "splitsound_http_request_duration_seconds_bucket{{le=\"{le}\",method=\"GET\",route=\"/v1/jobs/{{id}}\"}}"
            )
        };
        assert!(text.contains(&format!("{} 0\n", bucket("0.0025"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", bucket("0.005"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", bucket("1200.0"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", bucket("+Inf"))), "{text}");
        assert!(
            text.contains("splitsound_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/jobs/{id}\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("splitsound_job_audio_seconds_total 1.5\n"), "{text}");
        assert!(text.contains("splitsound_jobs{status=\"queued\"} 3\n"), "{text}");
        assert!(text.contains("splitsound_queue_messages{state=\"in_flight\"} 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");

        // A status with no jobs any more, and a queue that did not answer, drop out.
        let text = m.render(&Readings { queue: None, jobs: Some(vec![("running".into(), 1)]) });
        assert!(!text.contains("status=\"queued\""), "{text}");
        assert!(text.contains("splitsound_jobs{status=\"running\"} 1\n"), "{text}");
        assert!(!text.contains("splitsound_queue_messages{"), "{text}");
    }
}
