//! Counters and histograms kept in memory and written in Prometheus's text
//! format at `GET /metrics`: request latency by route, job outcomes and stage
//! durations (in the process that runs the workers), and, read at scrape time,
//! queue depth and jobs by status.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the histogram buckets: from 1 ms requests to 10-minute jobs.
const BUCKETS: [f64; 20] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1200.0,
];

/// What each metric is, for the `# HELP` and `# TYPE` lines.
const DESCRIPTIONS: &[(&str, &str, &str)] = &[
    ("splitsound_http_requests_total", "counter", "HTTP requests answered, by method, route and status"),
    ("splitsound_http_request_duration_seconds", "histogram", "Time to answer an HTTP request, by method and route"),
    ("splitsound_rate_limited_total", "counter", "Requests refused by a rate limit, by limit (ip or user)"),
    ("splitsound_job_runs_total", "counter", "Job runs ended in this process, by outcome"),
    ("splitsound_job_stage_duration_seconds", "histogram", "Time a job run spent in each stage"),
    ("splitsound_job_audio_seconds_total", "counter", "Seconds of audio separated by successful runs"),
    ("splitsound_queue_messages", "gauge", "Queue messages by state (visible, in_flight)"),
    ("splitsound_queue_oldest_age_seconds", "gauge", "Age of the oldest waiting queue message"),
    ("splitsound_jobs", "gauge", "Jobs in the database by status"),
    ("splitsound_webhook_events_total", "counter", "Billing webhook deliveries, by result"),
    ("splitsound_retention_deleted_total", "counter", "Objects deleted by the retention task, by kind"),
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The process's metrics. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

impl Metrics {
    pub fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], by: f64) {
        if let Ok(mut m) = self.inner.lock() {
            *m.counters.entry((name, labels(pairs))).or_default() += by;
        }
    }

    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], secs: f64) {
        if let Ok(mut m) = self.inner.lock() {
            let h = m.histograms.entry((name, labels(pairs))).or_default();
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                h.counts[i] += 1;
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// A counter's current value (0 when never touched).
    pub fn counter(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> f64 {
        self.inner.lock().ok().and_then(|m| m.counters.get(&(name, labels(pairs))).copied()).unwrap_or(0.0)
    }

    /// The exposition text: this process's counters and histograms, then `gauges`.
    pub fn render(&self, gauges: &[(&'static str, Labels, f64)]) -> String {
        let mut out = String::new();
        let Ok(m) = self.inner.lock() else { return out };
        let mut written = std::collections::BTreeSet::new();
        let mut header = |out: &mut String, name: &'static str| {
            if written.insert(name)
                && let Some((_, kind, help)) = DESCRIPTIONS.iter().find(|d| d.0 == name)
            {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            }
        };
        for ((name, l), v) in &m.counters {
            header(&mut out, name);
            let _ = writeln!(out, "{name}{} {}", fmt_labels(l, None), num(*v));
        }
        for ((name, l), h) in &m.histograms {
            header(&mut out, name);
            let mut cumulative = 0;
            for (b, c) in BUCKETS.iter().zip(h.counts) {
                cumulative += c;
                let _ = writeln!(out, "{name}_bucket{} {cumulative}", fmt_labels(l, Some(&num(*b))));
            }
            let _ = writeln!(out, "{name}_bucket{} {}", fmt_labels(l, Some("+Inf")), h.count);
            let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(l, None), num(h.sum));
            let _ = writeln!(out, "{name}_count{} {}", fmt_labels(l, None), h.count);
        }
        for (name, l, v) in gauges {
            header(&mut out, name);
            let _ = writeln!(out, "{name}{} {}", fmt_labels(l, None), num(*v));
        }
        out
    }
}

fn num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

fn fmt_labels(l: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let m = Metrics::default();
        m.inc("splitsound_http_requests_total", &[("route", "/v1/jobs/{id}"), ("status", "200")]);
        m.inc("splitsound_http_requests_total", &[("route", "/v1/jobs/{id}"), ("status", "200")]);
        m.observe("splitsound_http_request_duration_seconds", &[("route", "a\"b")], 0.003);
        m.observe("splitsound_http_request_duration_seconds", &[("route", "a\"b")], 5000.0);
        let text = m.render(&[("splitsound_jobs", vec![("status", "queued".into())], 3.0)]);
        assert!(text.contains("# TYPE splitsound_http_requests_total counter\n"), "{text}");
        assert!(text.contains("splitsound_http_requests_total{route=\"/v1/jobs/{id}\",status=\"200\"} 2\n"), "{text}");
        // Cumulative buckets: 0.003 s is in every bucket from 5 ms up; 5000 s only in +Inf.
        assert!(text.contains("_bucket{route=\"a\\\"b\",le=\"0.0025\"} 0\n"), "{text}");
        assert!(text.contains("_bucket{route=\"a\\\"b\",le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("_bucket{route=\"a\\\"b\",le=\"1200\"} 1\n"), "{text}");
        assert!(text.contains("_bucket{route=\"a\\\"b\",le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("splitsound_http_request_duration_seconds_count{route=\"a\\\"b\"} 2\n"), "{text}");
        assert!(text.contains("splitsound_jobs{status=\"queued\"} 3\n"), "{text}");
        assert_eq!(m.counter("splitsound_http_requests_total", &[("route", "/v1/jobs/{id}"), ("status", "200")]), 2.0);
    }
}
