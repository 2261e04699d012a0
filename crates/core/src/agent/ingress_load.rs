//! Whether the webhook ingress is using every core it has: while it is, most run workers start
//! no new run.
//!
//! The runs already run on threads the OS schedules after the ingress's
//! ([`super::runs_runtime`]), but a lower priority does not make a run free for the ingress: its
//! plugin instances are made and reset (page-table work every thread of the process pays for),
//! its writes queue on the one database writer the webhooks' work items need, and its threads
//! still preempt the request threads now and then. Measured at concurrency 64 (20 s, this
//! machine class): with 64 run workers running, a delivery cost the server 298-312 µs of CPU
//! and the ingress took 5,475-5,954 webhooks/s (p99 24.7-30.8 ms); with one, 235 µs and
//! 6,926-7,054 webhooks/s (p99 20.6-21.8 ms).
//!
//! So a sampler reads how busy the request runtime's workers were (tokio's per-worker busy
//! time: time not parked, which on contended cores includes time preempted) every
//! [`SAMPLE_MS`]; when their share reaches the operator's threshold (`NITEJAR_RUN_YIELD_PERCENT`,
//! [`crate::limits::RUN_YIELD_PERCENT`] by default; 0 never yields) the ingress counts as
//! saturated until a window below it. Meanwhile only the first
//! [`crate::limits::RUN_WORKERS_WHILE_INGRESS_BUSY`] workers start runs; the others finish the
//! run they have (a run in progress is never held) and wait. What waits is a run's start, never
//! a webhook or a run's writes: the work items are stored and answered, and the backlog drains
//! when the burst ends. Under the steady 1,500 webhooks/s of the benchmark the request workers
//! were busy 10-50% of each window, so steady traffic never holds the runs back; at
//! concurrency 64 about three windows in four were at 80% or more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often the request workers' busy share is read (and the longest a saturated window
/// holds a run back after the ingress has calmed down).
pub const SAMPLE_MS: u64 = 50;

/// How often the sampler logs how many windows held the runs back (only when any did), so an
/// operator sees why runs started late under a burst.
pub const REPORT_SECS: u64 = 60;

/// The request runtime's load as the run workers see it (see the module docs).
#[derive(Debug, Default)]
pub struct IngressLoad {
    saturated: AtomicBool,
    cleared: Notify,
}

impl IngressLoad {
    /// A load that is never saturated (nothing watched: tests, or yielding turned off).
    pub fn never() -> Arc<IngressLoad> {
        Arc::new(IngressLoad::default())
    }

    /// Watches `requests` (the ingress's runtime) with a task on `on` (the runs' runtime):
    /// saturated while its workers' busy share of a [`SAMPLE_MS`] window is at least
    /// `percent` (0: never). The task ends when the returned value is dropped.
    pub fn watch(
        requests: tokio::runtime::Handle,
        on: &tokio::runtime::Handle,
        percent: u8,
    ) -> Arc<IngressLoad> {
        let load = IngressLoad::never();
        if percent == 0 {
            return load;
        }
        let weak = Arc::downgrade(&load);
        on.spawn(sample(requests.metrics(), weak, f64::from(percent) / 100.0));
        load
    }

    /// Whether the ingress was saturated in the last window read.
    pub fn saturated(&self) -> bool {
        self.saturated.load(Ordering::Relaxed)
    }

    /// Returns once the ingress is not saturated (at once when it is not).
    pub async fn until_clear(&self) {
        loop {
            let cleared = self.cleared.notified();
            tokio::pin!(cleared);
            cleared.as_mut().enable();
            if !self.saturated() {
                return;
            }
            cleared.await;
        }
    }

    /// Records one window's verdict, waking the waiting workers when it clears.
    pub fn set(&self, saturated: bool) {
        let was = self.saturated.swap(saturated, Ordering::Relaxed);
        if was && !saturated {
            self.cleared.notify_waiters();
        }
    }
}

/// The sampler (see [`IngressLoad::watch`]); ends when the load is dropped.
async fn sample(metrics: tokio::runtime::RuntimeMetrics, load: Weak<IngressLoad>, at: f64) {
    let busy = |m: &tokio::runtime::RuntimeMetrics| -> Duration {
        (0..m.num_workers())
            .map(|w| m.worker_total_busy_duration(w))
            .sum()
    };
    let mut tick = tokio::time::interval(Duration::from_millis(SAMPLE_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut then, mut busy_then) = (Instant::now(), busy(&metrics));
    let (mut reported, mut windows, mut held) = (then, 0u64, 0u64);
    loop {
        tick.tick().await;
        let Some(load) = load.upgrade() else { return };
        let (now, busy_now) = (Instant::now(), busy(&metrics));
        let share = busy_share(
            busy_now.saturating_sub(busy_then),
            now - then,
            metrics.num_workers(),
        );
        let saturated = share >= at;
        load.set(saturated);
        (then, busy_then) = (now, busy_now);
        windows += 1;
        held += u64::from(saturated);
        if now.duration_since(reported) >= Duration::from_secs(REPORT_SECS) {
            if let Some(line) = report(held, windows, now.duration_since(reported)) {
                tracing::info!(windows, held, "{line}");
            }
            (reported, windows, held) = (now, 0, 0);
        }
    }
}

/// The sampler's periodic line: `held` of `windows` windows over `span` found the ingress
/// saturated (none: no line).
fn report(held: u64, windows: u64, span: Duration) -> Option<String> {
    (held > 0).then(|| {
        format!(
            "runs were held back in {held} of {windows} windows of the last {} s (only {} \
             run worker started runs): the webhook ingress was saturated \
             (NITEJAR_RUN_YIELD_PERCENT); its work items are stored and wait for a run",
            span.as_secs(),
            crate::limits::RUN_WORKERS_WHILE_INGRESS_BUSY
        )
    })
}

/// The share (0 to 1) of `workers` workers' time over `window` that `busy` (their busy time
/// in it, summed) is.
pub fn busy_share(busy: Duration, window: Duration, workers: usize) -> f64 {
    let capacity = window.as_secs_f64() * workers as f64;
    if capacity <= 0.0 {
        return 0.0;
    }
    (busy.as_secs_f64() / capacity).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_held_windows_and_only_when_there_were_any() {
        assert_eq!(report(0, 1200, Duration::from_secs(60)), None);
        let line = report(3, 1200, Duration::from_secs(60)).unwrap();
        assert!(
            line.contains("3 of 1200 windows of the last 60 s"),
            "{line}"
        );
        assert!(line.contains("NITEJAR_RUN_YIELD_PERCENT"), "{line}");
    }

    #[test]
    fn the_share_is_of_every_worker_s_time() {
        let ms = Duration::from_millis;
        assert_eq!(busy_share(ms(100), ms(50), 2), 1.0);
        assert_eq!(busy_share(ms(50), ms(50), 2), 0.5);
        assert_eq!(
            busy_share(ms(500), ms(50), 2),
            1.0,
            "capped: samples can lag"
        );
        assert_eq!(busy_share(ms(10), Duration::ZERO, 2), 0.0);
        assert_eq!(busy_share(ms(10), ms(50), 0), 0.0);
    }

    #[tokio::test]
    async fn waiting_workers_go_on_when_the_ingress_clears() {
        let load = IngressLoad::never();
        load.until_clear().await; // not saturated: no wait
        load.set(true);
        let waiter = tokio::spawn({
            let load = load.clone();
            async move { load.until_clear().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "saturated: the worker waits");
        load.set(true);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "still saturated");
        load.set(false);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken when it clears")
            .unwrap();
    }

    #[test]
    fn a_busy_runtime_reads_as_saturated_and_an_idle_one_does_not() {
        let requests = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let runs = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let load = IngressLoad::watch(requests.handle().clone(), runs.handle(), 80);
        // Whether the load reads `want` within 10 s.
        let reads = |want: bool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while load.saturated() != want {
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            true
        };
        // Idle: both workers parked.
        std::thread::sleep(Duration::from_millis(3 * SAMPLE_MS));
        assert!(!load.saturated());
        // Both workers busy, each with a task that computes for 200 µs at a time between
        // yields (as request tasks and inline plugin calls do; tokio reads a worker's busy
        // time when it parks and every 61 tasks).
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..2 {
            let stop = stop.clone();
            requests.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let until = Instant::now() + Duration::from_micros(200);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                    tokio::task::yield_now().await;
                }
            });
        }
        let busy_read = reads(true);
        stop.store(true, Ordering::Relaxed);
        assert!(busy_read, "two busy workers never read as saturated");
        assert!(reads(false), "idle again, yet still read as saturated");
        // Never when turned off.
        let off = IngressLoad::watch(requests.handle().clone(), runs.handle(), 0);
        assert!(!off.saturated());
    }
}
