//! Prometheus metrics: requests by status, a latency histogram, and the
//! repository's totals (rendered at scrape time).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// Request counters and the latency histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The serving loop's connection counters (the server counts into
    /// them; rendered with the rest).
    pub http: std::sync::Arc<crate::http::HttpStats>,
    by_status: Mutex<BTreeMap<u16, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, status: u16, seconds: f64) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the repository totals.
    pub fn render(&self, objects: u64, stored_bytes: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP dms_objects Objects in the catalog.");
        let _ = writeln!(out, "# TYPE dms_objects gauge");
        let _ = writeln!(out, "dms_objects {objects}");
        let _ = writeln!(
            out,
            "# HELP dms_stored_bytes Bytes of distinct stored blobs."
        );
        let _ = writeln!(out, "# TYPE dms_stored_bytes gauge");
        let _ = writeln!(out, "dms_stored_bytes {stored_bytes}");
        let _ = writeln!(
            out,
            "# HELP dms_http_requests_total HTTP requests answered, by status."
        );
        let _ = writeln!(out, "# TYPE dms_http_requests_total counter");
        if let Ok(m) = self.by_status.lock() {
            for (status, n) in m.iter() {
                let _ = writeln!(out, "dms_http_requests_total{{status=\"{status}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP dms_http_request_duration_seconds Time to answer (headers)."
        );
        let _ = writeln!(out, "# TYPE dms_http_request_duration_seconds histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "dms_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "dms_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "dms_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "dms_http_request_duration_seconds_count {count}");
        out
    }
}

/// The `dms_sessions` gauge: broadcast sessions by state.
pub fn render_sessions(counts: &[(crate::sessions::SessionState, usize)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP dms_sessions Broadcast sessions, by state.");
    let _ = writeln!(out, "# TYPE dms_sessions gauge");
    for (state, n) in counts {
        let _ = writeln!(out, "dms_sessions{{state=\"{}\"}} {n}", state.as_str());
    }
    out
}

/// The `scrub` section: what the scrubs checked (kept in the catalog, so
/// an offline `dms scrub` counts too) and the objects marked damaged now.
pub fn render_scrub(t: &crate::catalog::ScrubTotals, damaged_now: u64) -> String {
    let mut out = String::new();
    let rows: [(&str, &str, &str, u64); 8] = [
        (
            "dms_scrub_runs_total",
            "counter",
            "Scrubs of the whole store.",
            t.runs,
        ),
        (
            "dms_scrub_objects_checked_total",
            "counter",
            "Objects checked by every scrub.",
            t.objects_total,
        ),
        (
            "dms_scrub_bytes_checked_total",
            "counter",
            "Bytes re-hashed by every scrub.",
            t.bytes_total,
        ),
        (
            "dms_scrub_last_objects_checked",
            "gauge",
            "Objects checked by the last scrub.",
            t.last_objects,
        ),
        (
            "dms_scrub_last_bytes_checked",
            "gauge",
            "Bytes re-hashed by the last scrub.",
            t.last_bytes,
        ),
        (
            "dms_scrub_last_damaged",
            "gauge",
            "Damaged objects the last scrub found.",
            t.last_damaged,
        ),
        (
            "dms_scrub_last_run_timestamp_seconds",
            "gauge",
            "When the last scrub ended (0: never).",
            t.last_at,
        ),
        (
            "dms_objects_damaged",
            "gauge",
            "Objects marked damaged (refused until uploaded again).",
            damaged_now,
        ),
    ];
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// Middleware recording every request.
pub async fn record(
    State(metrics): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.observe(response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_requests_and_buckets() {
        let m = Metrics::default();
        m.observe(200, 0.002);
        m.observe(404, 2.0);
        let text = m.render(3, 42);
        assert!(text.contains("dms_objects 3\n"));
        assert!(text.contains("dms_stored_bytes 42\n"));
        assert!(text.contains("dms_http_requests_total{status=\"404\"} 1\n"));
        assert!(text.contains("dms_http_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("dms_http_request_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("dms_http_request_duration_seconds_count 2\n"));
    }
}
