//! Integration instances read from memory.
//!
//! Every webhook reads its instance, and SQLite answers that read on a cold page cache: a
//! reader's cache is emptied whenever the write-ahead log changed, which under load is
//! thousands of times a second. `perf` put that read at about a sixth of the async request
//! workers' time (8.6% of all request threads') at concurrency 64. The rows are small, few
//! (an operator creates them) and seldom change, so
//! [`SqliteStore::get_instance`](crate::InstanceStore::get_instance) keeps the ones it read
//! here.
//!
//! - **This process's writes are seen at once:** every store method that writes an instance
//!   forgets it after the statement (committed or failed), and a read that began before such a
//!   write is not kept (a generation counter, compared under the same lock), so a stale row can
//!   never be put back after the write that replaced it. (One exception: a write whose caller
//!   gave up while the statement still ran on sqlx's thread forgets the row when the caller
//!   stops waiting, which can be before the commit; the [`FRESH_FOR`] bound covers that.)
//! - **Another process's writes are seen within [`FRESH_FOR`]:** a row is read again once it is
//!   that old. Nothing else writes a host's database today; this bounds what a tool run beside
//!   it (or a later host sharing a database) could leave stale.
//! - Missing instances are not kept (ids come from request paths: an attacker's made-up ids
//!   must not fill memory), and at most [`MAX_ENTRIES`] rows are (past that, all are dropped
//!   and read again).

use crate::InstanceRow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a row read from the database is answered from memory.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

/// At most this many rows are kept.
pub(crate) const MAX_ENTRIES: usize = 4096;

/// The instances read lately, by id (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct InstanceCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rows: HashMap<String, (InstanceRow, Instant)>,
    /// Bumped by every write of an instance.
    generation: u64,
}

impl InstanceCache {
    /// The row of `id` when one read less than [`FRESH_FOR`] ago is kept.
    pub(crate) fn get(&self, id: &str) -> Option<InstanceRow> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.rows.get(id) {
            Some((row, read_at)) if read_at.elapsed() < FRESH_FOR => Some(row.clone()),
            _ => None,
        }
    }

    /// What to pass to [`InstanceCache::put`] for a read that starts now.
    pub(crate) fn generation(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    /// Keeps `row`, read by a read that started at `generation`, unless an instance was written
    /// since.
    pub(crate) fn put(&self, row: &InstanceRow, generation: u64, read_at: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.generation != generation {
            return;
        }
        if inner.rows.len() >= MAX_ENTRIES && !inner.rows.contains_key(&row.id) {
            inner.rows.clear();
        }
        inner.rows.insert(row.id.clone(), (row.clone(), read_at));
    }

    /// Forgets `id` (its row was written, or may have been) and every read begun before.
    pub(crate) fn changed(&self, id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.generation = inner.generation.wrapping_add(1);
        inner.rows.remove(id);
    }

    /// Forgets every row and every read begun before (the store is closing: later reads must
    /// find it closed, not a row from memory).
    pub(crate) fn forget_all(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.generation = inner.generation.wrapping_add(1);
        inner.rows.clear();
    }

    /// Calls [`InstanceCache::changed`] for `id` when dropped: held by a write of the instance
    /// from before its statement to the end, so the row is forgotten after the statement
    /// whether it committed or failed (for a caller that gave up, see the module docs).
    pub(crate) fn writing<'a>(&'a self, id: &'a str) -> Writing<'a> {
        Writing { cache: self, id }
    }
}

/// See [`InstanceCache::writing`].
pub(crate) struct Writing<'a> {
    cache: &'a InstanceCache,
    id: &'a str,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.cache.changed(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str) -> InstanceRow {
        InstanceRow {
            id: id.into(),
            plugin_id: "p".into(),
            integration_type: "webhook".into(),
            name: name.into(),
            config_json: "{}".into(),
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// A read that began before a write is not kept: the write's row would be hidden by it.
    #[test]
    fn a_read_begun_before_a_write_is_not_kept() {
        let cache = InstanceCache::default();
        let before = cache.generation();
        cache.changed("i");
        cache.put(&row("i", "old"), before, Instant::now());
        assert!(cache.get("i").is_none());
        let now = cache.generation();
        cache.put(&row("i", "new"), now, Instant::now());
        assert_eq!(cache.get("i").unwrap().name, "new");
    }

    /// A kept row is answered until it is [`FRESH_FOR`] old, then read again.
    #[test]
    fn rows_expire() {
        let cache = InstanceCache::default();
        let g = cache.generation();
        cache.put(&row("a", "a"), g, Instant::now());
        assert!(cache.get("a").is_some());
        let old = Instant::now()
            .checked_sub(FRESH_FOR + Duration::from_millis(1))
            .unwrap();
        cache.put(&row("b", "b"), g, old);
        assert!(cache.get("b").is_none());
        cache.changed("a");
        assert!(cache.get("a").is_none());
    }

    /// Past [`MAX_ENTRIES`] rows the cache starts afresh instead of growing.
    #[test]
    fn the_cache_is_bounded() {
        let cache = InstanceCache::default();
        let g = cache.generation();
        for n in 0..MAX_ENTRIES + 10 {
            cache.put(&row(&n.to_string(), "x"), g, Instant::now());
        }
        let kept = cache.inner.lock().unwrap().rows.len();
        assert!(kept <= MAX_ENTRIES, "{kept} rows kept");
        assert!(cache.get(&(MAX_ENTRIES + 9).to_string()).is_some());
    }
}

#[cfg(test)]
mod store_tests {
    use super::FRESH_FOR;
    use crate::sqlite::SqliteStore;
    use crate::*;
    use std::time::{Duration, Instant};

    /// The store's own writes of an instance are seen by the next read, though reads are
    /// answered from memory; another connection's write is seen once the row is
    /// [`FRESH_FOR`] old.
    #[tokio::test]
    async fn reads_from_memory_see_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        db.insert_instance("i", "plug", "webhook", "first", "{}", true)
            .await
            .unwrap();
        let name = |r: Option<InstanceRow>| r.map(|r| (r.name, r.enabled));
        assert_eq!(
            name(db.get_instance("i").await.unwrap()),
            Some(("first".into(), true))
        );
        db.update_instance("i", Some("second"), None).await.unwrap();
        assert_eq!(
            name(db.get_instance("i").await.unwrap()),
            Some(("second".into(), true))
        );
        db.set_instance_enabled("i", false).await.unwrap();
        // Before the read that keeps the row: the row is at most this old below.
        let started = Instant::now();
        assert_eq!(
            name(db.get_instance("i").await.unwrap()),
            Some(("second".into(), false))
        );

        // Written behind the store's back: answered from memory for a while, then read again.
        sqlx::query("UPDATE plugin_instances SET name = 'elsewhere' WHERE id = 'i'")
            .execute(&mut *db.pool.get().await.unwrap())
            .await
            .unwrap();
        let soon = name(db.get_instance("i").await.unwrap());
        if started.elapsed() < FRESH_FOR {
            assert_eq!(soon, Some(("second".into(), false)), "read from memory");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = name(db.get_instance("i").await.unwrap());
            if now == Some(("elsewhere".into(), false)) {
                break;
            }
            assert!(Instant::now() < deadline, "never read again: {now:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        assert!(db.delete_instance("i").await.unwrap());
        assert_eq!(name(db.get_instance("i").await.unwrap()), None);
        // A missing instance is not kept: created later, it is found at once.
        db.insert_instance("i", "plug", "webhook", "again", "{}", true)
            .await
            .unwrap();
        assert_eq!(
            name(db.get_instance("i").await.unwrap()),
            Some(("again".into(), true))
        );
    }
}
