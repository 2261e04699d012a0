//! Named crash points for crash-safety tests.
//!
//! When `NITEJAR_CRASH_POINT` names a point, the process stops there: it prints
//! `nitejar: paused at crash point <name>` on stderr and blocks that task forever, so a test can
//! `kill -9` it at exactly that step of an install or upgrade and check that the next boot finds
//! the previous state intact. Unset (always, in production) it costs one cached comparison.

use std::sync::OnceLock;

/// Where the installer and the lifecycle service can be stopped (in order of an install, then
/// of an upgrade).
pub const POINTS: &[&str] = &[
    "install.validated",
    "install.staged",
    "install.version_dir",
    "install.current",
    "upgrade.staged",
    "upgrade.db_active",
];

fn configured() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            std::env::var("NITEJAR_CRASH_POINT")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .as_deref()
}

/// Stops here, forever, when `NITEJAR_CRASH_POINT` is `name` (see the module docs).
pub fn reach(name: &str) {
    if configured() == Some(name) {
        eprintln!("nitejar: paused at crash point {name}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
