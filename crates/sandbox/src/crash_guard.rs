//! Crash-loop protection: how many times each plugin failed recently, and the trip that
//! disables it (spec §21.2, WS7 §6).
//!
//! Every hook call reports success or failure here, and every other call (webhook parsing,
//! delivery, tools) reports its crashes (traps, timeouts, limits; not errors a plugin returns on
//! purpose). When a plugin reaches `threshold` failures inside the sliding `window`, the guard
//! **trips**: from that moment the dispatcher makes no more calls to it, and the notifier tells
//! the application to disable it (registry, database, `auto_disable` receipt, alert). Successes
//! do not reset the count: it is N failures in M minutes, so a plugin that fails every other
//! call still trips. Re-enabling the plugin clears both the count and the trip.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// A trip: the plugin id and its failures inside the window.
pub type Trip = (String, usize);

/// Failures per plugin inside a sliding window, and the plugins it tripped on.
pub struct CrashGuard {
    window: Duration,
    threshold: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    tripped: Mutex<HashSet<String>>,
    notify: Mutex<Option<UnboundedSender<Trip>>>,
}

impl CrashGuard {
    /// A guard counting failures over `window`, tripping at `threshold` (0: never).
    pub fn new(window: Duration, threshold: usize) -> CrashGuard {
        CrashGuard {
            window,
            threshold,
            failures: Mutex::new(HashMap::new()),
            tripped: Mutex::new(HashSet::new()),
            notify: Mutex::new(None),
        }
    }

    /// Where trips are sent (the application's auto-disable task).
    pub fn set_notifier(&self, tx: UnboundedSender<Trip>) {
        *self.notify.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    /// The failure count that trips the guard.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The sliding window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records one call of `plugin_id`; returns its failures inside the window. Trips the
    /// guard (once) when they reach the threshold.
    pub fn record(&self, plugin_id: &str, ok: bool) -> usize {
        let n = {
            let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if ok && !map.contains_key(plugin_id) {
                return 0;
            }
            let now = Instant::now();
            let q = map.entry(plugin_id.to_string()).or_default();
            if !ok {
                q.push_back(now);
            }
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.window)
            {
                q.pop_front();
            }
            let n = q.len();
            if n == 0 {
                map.remove(plugin_id);
            }
            n
        };
        if !ok && self.threshold > 0 && n >= self.threshold {
            let newly = self
                .tripped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(plugin_id.to_string());
            if newly
                && let Some(tx) = self
                    .notify
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
            {
                let _ = tx.send((plugin_id.to_string(), n));
            }
        }
        n
    }

    /// Whether the guard tripped on `plugin_id` (no more calls may be made to it).
    pub fn is_tripped(&self, plugin_id: &str) -> bool {
        self.tripped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(plugin_id)
    }

    /// Failures of `plugin_id` inside the window.
    pub fn recent_failures(&self, plugin_id: &str) -> usize {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.get(plugin_id).map_or(0, |q| {
            q.iter()
                .filter(|t| now.duration_since(**t) <= self.window)
                .count()
        })
    }

    /// Forgets `plugin_id`'s failures and trip (re-enable).
    pub fn clear(&self, plugin_id: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(plugin_id);
        self.tripped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(plugin_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_inside_the_window_only() {
        let g = CrashGuard::new(Duration::from_millis(50), 0);
        assert_eq!(g.record("a", true), 0);
        assert_eq!(g.record("a", false), 1);
        assert_eq!(g.record("a", false), 2);
        assert_eq!(g.record("b", false), 1);
        assert_eq!(g.recent_failures("a"), 2);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(g.recent_failures("a"), 0);
        assert_eq!(g.record("a", true), 0);
        g.clear("b");
        assert_eq!(g.recent_failures("b"), 0);
        assert!(!g.is_tripped("a"), "threshold 0 never trips");
    }

    #[test]
    fn trips_once_at_the_threshold_and_clears_on_reenable() {
        let g = CrashGuard::new(Duration::from_secs(60), 3);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        g.set_notifier(tx);
        g.record("p", false);
        g.record("p", true);
        g.record("p", false);
        assert!(!g.is_tripped("p"));
        assert_eq!(g.record("p", false), 3, "successes do not reset the count");
        assert!(g.is_tripped("p"));
        g.record("p", false);
        assert_eq!(rx.try_recv().unwrap(), ("p".to_string(), 3));
        assert!(rx.try_recv().is_err(), "one notification per trip");
        g.clear("p");
        assert!(!g.is_tripped("p"));
        assert_eq!(g.recent_failures("p"), 0);
    }
}
