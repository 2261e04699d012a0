//! How long the host takes to answer webhooks, as a histogram an operator can scrape.
//!
//! Every delivery is timed from the moment its request's headers have been read (the router
//! calls the route) until its answer is ready to be written: the body read, the plugin's
//! `parse-webhook` call, the work item's batch and commit, and the wait for a request thread to
//! take the answer after the commit. What is not in it: the time a request waited in the socket
//! for a request thread, and the time the answer takes to reach the sender.
//! A load generator's latency minus this is the time spent outside the host's handler (queued
//! for a core, in the sockets, in the load generator itself).
//!
//! Recording is a few relaxed atomic additions (no lock), so it stays on for every delivery.
//! The buckets are fixed ([`BUCKET_BOUNDS_MICROS`]) and fine between 1 and 50 ms, where a
//! webhook's tail lies, so a percentile read from them is within a bucket of the true one.
//! [`LatencyHistogram::render`] writes the Prometheus text format
//! (`GET /api/admin/metrics`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of the buckets, in microseconds (each bucket counts the deliveries that
/// took at most its bound and more than the one before); a last bucket, `+Inf`, takes the rest.
pub const BUCKET_BOUNDS_MICROS: [u64; 32] = [
    250, 500, 1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 10_000, 12_000,
    14_000, 16_000, 18_000, 20_000, 25_000, 30_000, 35_000, 40_000, 50_000, 60_000, 80_000,
    100_000, 150_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The status classes answers are counted by: `1xx` to `5xx` (any other code counts as `5xx`).
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Webhook answer times and counts since the host started. Shared by every request thread.
pub struct LatencyHistogram {
    /// Deliveries per bucket (not cumulative), the last one `+Inf`.
    buckets: [AtomicU64; BUCKET_BOUNDS_MICROS.len() + 1],
    /// The sum of every delivery's time, in nanoseconds.
    sum_nanos: AtomicU64,
    /// Answers by status class ([`STATUS_CLASSES`]).
    statuses: [AtomicU64; STATUS_CLASSES.len()],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            statuses: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LatencyHistogram {
    /// Counts one answer with status `status` that took `took`.
    pub fn record(&self, took: Duration, status: u16) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_MICROS.partition_point(|&bound| bound < micros);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        let class = match status / 100 {
            class @ 1..=5 => usize::from(class) - 1,
            _ => STATUS_CLASSES.len() - 1,
        };
        self.statuses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram and the answers by status class in the Prometheus text format (0.0.4):
    /// `nitejar_webhook_request_duration_seconds` (a histogram: cumulative buckets, `_sum`,
    /// `_count`) and `nitejar_webhook_requests_total{class="2xx"}`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP nitejar_webhook_request_duration_seconds Time from a webhook request's \
             headers being read to its answer being ready.\n\
             # TYPE nitejar_webhook_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = match BUCKET_BOUNDS_MICROS.get(i) {
                Some(&micros) => format!("{}", micros as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "nitejar_webhook_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "nitejar_webhook_request_duration_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "nitejar_webhook_request_duration_seconds_count {cumulative}"
        );
        out.push_str(
            "# HELP nitejar_webhook_requests_total Webhook answers by status class.\n\
             # TYPE nitejar_webhook_requests_total counter\n",
        );
        for (class, count) in STATUS_CLASSES.iter().zip(&self.statuses) {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "nitejar_webhook_requests_total{{class=\"{class}\"}} {count}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"))
    }

    #[test]
    fn answers_land_in_the_bucket_of_their_bound_and_buckets_are_cumulative() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(250), 202); // on a bound: that bucket
        h.record(Duration::from_micros(251), 202); // just over: the next
        h.record(Duration::from_millis(19), 200);
        h.record(Duration::from_secs(60), 503); // past every bound: +Inf
        h.record(Duration::from_millis(3), 401);
        h.record(Duration::from_millis(3), 999); // not a status class: counted as 5xx
        let text = h.render();
        let bucket = |le: &str| {
            line(
                &text,
                &format!("nitejar_webhook_request_duration_seconds_bucket{{le=\"{le}\"}} "),
            )
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
        };
        assert_eq!(bucket("0.00025"), 1);
        assert_eq!(bucket("0.0005"), 2);
        assert_eq!(bucket("0.003"), 4);
        assert_eq!(bucket("0.018"), 4);
        assert_eq!(bucket("0.02"), 5);
        assert_eq!(bucket("10"), 5);
        assert_eq!(bucket("+Inf"), 6);
        assert_eq!(
            line(&text, "nitejar_webhook_request_duration_seconds_count"),
            "nitejar_webhook_request_duration_seconds_count 6"
        );
        let sum: f64 = line(&text, "nitejar_webhook_request_duration_seconds_sum ")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 60.025501).abs() < 1e-6, "{sum}");
        assert!(text.contains("nitejar_webhook_requests_total{class=\"2xx\"} 3\n"));
        assert!(text.contains("nitejar_webhook_requests_total{class=\"4xx\"} 1\n"));
        assert!(text.contains("nitejar_webhook_requests_total{class=\"5xx\"} 2\n"));
        assert!(text.contains("nitejar_webhook_requests_total{class=\"1xx\"} 0\n"));
    }

    #[test]
    fn every_bound_is_greater_than_the_one_before() {
        assert!(BUCKET_BOUNDS_MICROS.windows(2).all(|w| w[0] < w[1]));
    }
}
