//! Crash-guard accounting: how many times each plugin failed recently.
//!
//! Every hook call reports success or failure here. The count of failures inside the window is
//! what the crash-loop protection (auto-disable after N failures in M minutes, spec §6) acts on;
//! it is shown per plugin in the admin API as `recentFailures`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures per plugin inside a sliding window.
pub struct CrashGuard {
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl CrashGuard {
    /// A guard counting failures over `window`.
    pub fn new(window: Duration) -> CrashGuard {
        CrashGuard {
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records one call of `plugin_id`; returns its failures inside the window.
    pub fn record(&self, plugin_id: &str, ok: bool) -> usize {
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

    /// Forgets `plugin_id`'s failures (re-enable).
    pub fn clear(&self, plugin_id: &str) {
        self.failures
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
        let g = CrashGuard::new(Duration::from_millis(50));
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
    }
}
