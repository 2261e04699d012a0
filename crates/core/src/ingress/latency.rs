//! How long the host takes to answer webhooks, as histograms an operator can scrape.
//!
//! Every delivery is timed from the moment its request's headers have been read (the router
//! calls the route) until its answer is ready to be written: the body read, the plugin's
//! `parse-webhook` call, the work item's batch and commit, and the wait for a request thread to
//! take the answer after the commit. What is not in it: the time a request waited in the socket
//! for a request thread, and the time the answer takes to reach the sender.
//! A load generator's latency minus this is the time spent outside the host's handler (queued
//! for a core, in the sockets, in the load generator itself).
//!
//! Two stages of an answer are timed as well: the plugin's `parse-webhook` call (with its waits
//! for a call slot and a thread) and the work item's write (its batch, the database's write
//! thread, the commit, and the answer's way back), the second being where the tail has been
//! (`docs/performance-log.md`, eighteenth session).
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

/// Durations over [`BUCKET_BOUNDS_MICROS`]: a count per bucket and their sum.
pub struct Durations {
    /// Counts per bucket (not cumulative), the last one `+Inf`.
    buckets: [AtomicU64; BUCKET_BOUNDS_MICROS.len() + 1],
    /// The sum of every duration, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Default for Durations {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Durations {
    /// Counts one duration.
    pub fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_MICROS.partition_point(|&bound| bound < micros);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends the histogram's samples (cumulative `_bucket`s, `_sum`, `_count`) of metric
    /// `name` to `out`; `label` (`stage="parse"`, or empty) is put before `le` in each.
    fn render_into(&self, out: &mut String, name: &str, label: &str) {
        let (before_le, alone) = if label.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("{label},"), format!("{{{label}}}"))
        };
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = match BUCKET_BOUNDS_MICROS.get(i) {
                Some(&micros) => format!("{}", micros as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{name}_bucket{{{before_le}le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{alone} {sum}");
        let _ = writeln!(out, "{name}_count{alone} {cumulative}");
    }
}

/// Webhook answer times and counts since the host started, and the times of two stages of an
/// answer. Shared by every request thread.
#[derive(Default)]
pub struct LatencyHistogram {
    /// Every answer's time.
    answers: Durations,
    /// Answers by status class ([`STATUS_CLASSES`]).
    statuses: [AtomicU64; STATUS_CLASSES.len()],
    /// The plugin's `parse-webhook` call, with its wait for a call slot and a thread (a
    /// delivery refused because no slot came in time is not counted here).
    pub parse: Durations,
    /// The work item's write: its wait for a batch, the batch's turn on the database's write
    /// thread, its commit, and the wake-up that brings the answer back.
    pub write: Durations,
}

impl LatencyHistogram {
    /// Counts one answer with status `status` that took `took`.
    pub fn record(&self, took: Duration, status: u16) {
        self.answers.record(took);
        let class = match status / 100 {
            class @ 1..=5 => usize::from(class) - 1,
            _ => STATUS_CLASSES.len() - 1,
        };
        self.statuses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// The histograms and the answers by status class in the Prometheus text format (0.0.4):
    /// `nitejar_webhook_request_duration_seconds` (a histogram: cumulative buckets, `_sum`,
    /// `_count`), `nitejar_webhook_requests_total{class="2xx"}`, and
    /// `nitejar_webhook_stage_duration_seconds{stage="parse"|"write"}` (histograms).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str(
            "# HELP nitejar_webhook_request_duration_seconds Time from a webhook request's \
             headers being read to its answer being ready.\n\
             # TYPE nitejar_webhook_request_duration_seconds histogram\n",
        );
        self.answers
            .render_into(&mut out, "nitejar_webhook_request_duration_seconds", "");
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
        out.push_str(
            "# HELP nitejar_webhook_stage_duration_seconds Time a webhook delivery spent in a \
             stage of its answer: parse (the plugin's parse-webhook call, with its waits for a \
             call slot and a thread), write (its work item's batch and commit, with the waits \
             for them).\n\
             # TYPE nitejar_webhook_stage_duration_seconds histogram\n",
        );
        for (stage, durations) in [("parse", &self.parse), ("write", &self.write)] {
            durations.render_into(
                &mut out,
                "nitejar_webhook_stage_duration_seconds",
                &format!("stage=\"{stage}\""),
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

    /// Each stage is its own labelled histogram of the one metric, counted apart from the
    /// answers.
    #[test]
    fn stages_are_labelled_histograms_of_their_own() {
        let h = LatencyHistogram::default();
        h.parse.record(Duration::from_micros(100));
        h.write.record(Duration::from_millis(4));
        h.write.record(Duration::from_millis(9));
        let text = h.render();
        let name = "nitejar_webhook_stage_duration_seconds";
        assert!(text.contains(&format!("# TYPE {name} histogram\n")));
        assert!(text.contains(&format!(
            "{name}_bucket{{stage=\"parse\",le=\"0.00025\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "{name}_bucket{{stage=\"write\",le=\"0.003\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "{name}_bucket{{stage=\"write\",le=\"0.004\"}} 1\n"
        )));
        assert!(text.contains(&format!("{name}_bucket{{stage=\"write\",le=\"+Inf\"}} 2\n")));
        assert!(text.contains(&format!("{name}_count{{stage=\"parse\"}} 1\n")));
        assert!(text.contains(&format!("{name}_count{{stage=\"write\"}} 2\n")));
        assert!(text.contains(&format!("{name}_sum{{stage=\"write\"}} 0.013\n")));
        assert!(text.contains("nitejar_webhook_request_duration_seconds_count 0\n"));
    }

    #[test]
    fn every_bound_is_greater_than_the_one_before() {
        assert!(BUCKET_BOUNDS_MICROS.windows(2).all(|w| w[0] < w[1]));
    }
}
