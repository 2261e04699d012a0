//! Checkpoints off the writer's path: a thread of their own copies the write-ahead log into
//! the database while the writes go on.
//!
//! SQLite's default checkpoints run on the connection that commits, once the log passes 1,000
//! pages: that commit's caller, and every write queued behind it on the write thread, waits
//! for the copy and its two `fsync`s (the log's, then the database's). Under the ingest
//! benchmark at concurrency 64 that was about five checkpoints a second, and the write thread
//! spent 0.66 s of every 10 in `fsync` (`strace -T`: 96 calls, median 5.9 ms, longest 19 ms),
//! each time with the whole queue of writes waiting behind it.
//!
//! Here, after commits, the `nitejar-db-checkpoint` thread runs a passive checkpoint on a
//! connection of its own ([`CHECKPOINT_AFTER`] later, so one checkpoint covers many
//! commits): a passive checkpoint never takes the write lock, so writes go on while it
//! copies and syncs. Then the thread syncs the database file itself: SQLite syncs it only at
//! a checkpoint that copied the whole log, which under steady writes the thread never does.
//!
//! **Starting the log again.** The log starts again from the beginning of its file only at a
//! write that finds all of it copied, and with writes going on only a checkpoint on the
//! write thread, between two groups, copies all of it. That checkpoint syncs the log, copies
//! what the thread has not, and syncs the database, with every write waiting. Left to
//! SQLite's bound ([`WAL_AUTOCHECKPOINT_PAGES`]), it came every 1.5 s at concurrency 64 and
//! took 35-45 ms: copying about 150 ms of writes and syncing 1.5 s of them into the database
//! (`strace -T`). That was the p99 of the webhooks' answers. So once the log is past
//! [`RESTART_AT`] pages and the thread has just copied and synced it, the thread asks the
//! write thread ([`Checkpointer::take_restart`]) to finish it after its next commit, when
//! what is left is only what was written since the thread's own last copy. The writers'
//! bound stays, for when the thread cannot keep up or is not running.
//!
//! **Catching up before asking.** A checkpoint of the thread's after its pause copies some
//! 100 ms of writes and syncs them (about 25 ms at concurrency 64, more for the sync); what
//! came meanwhile (about 1,000 pages, 4 MiB) was the write thread's to copy and sync, 3.9-6.6
//! ms (median) with every write waiting. So before asking, the thread copies and syncs again,
//! each pass shorter than the one before since it has less to copy, until one takes under
//! [`CAUGHT_UP`] (at most [`CATCH_UP_PASSES`] more): the write thread is left about 130
//! pages and takes 1.8-2.0 ms (median; the server's own webhook p99 at 64 went from 7.8-9.8
//! to 7.0-7.5 ms in three alternated pairs).
//!
//! What a crash can lose does not grow: SQLite syncs the log before it copies any of it into
//! the database, and the database before the log is reused, whichever connection checkpoints.
//! Under load the log is now synced about every [`CHECKPOINT_AFTER`] (by each checkpoint),
//! so an operating system crash loses fewer commits than with a sync every 1,000 pages.

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

/// The log size (pages) past which a committing connection checkpoints itself: SQLite's
/// `wal_autocheckpoint` on the writers' connections (SQLite's default is 1,000). 10,000 pages
/// is about 40 MiB of log at most, its file reused from the start after each checkpoint.
pub(super) const WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// How long after a commit the thread checkpoints: commits in between share the checkpoint.
const CHECKPOINT_AFTER: Duration = Duration::from_millis(100);

/// The log size (pages) past which the thread asks the write thread to finish a checkpoint
/// and so start the log again (see the module docs): about 16 MiB of log.
pub(super) const RESTART_AT: i64 = 4_096;

/// A copy-and-sync pass of the thread shorter than this leaves little for the write thread to
/// finish (see "Catching up before asking" in the module docs).
const CAUGHT_UP: Duration = Duration::from_millis(3);

/// Most passes the thread makes after its first to catch up before asking for a restart: the
/// writes may come faster than it copies, and it asks anyway then (the write thread copies
/// what is left).
const CATCH_UP_PASSES: usize = 5;

/// The checkpoint thread (see the module docs). [`Checkpointer::close`] stops the thread and
/// waits for it; dropping it stops the thread without waiting.
#[derive(Debug)]
pub(super) struct Checkpointer {
    /// Wakes the thread after a commit; dropped to stop it.
    wake: Mutex<Option<SyncSender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Set by the thread when the write thread should finish a checkpoint (see the module
    /// docs); taken by [`Checkpointer::take_restart`].
    restart: Arc<AtomicBool>,
    /// Checkpoints after which some of the log was in the database (for tests).
    #[cfg(test)]
    copied: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread for the (migrated, write-ahead-log) database at `path`. Its
    /// connection opens on the first checkpoint.
    pub(super) fn start(path: &Path) -> std::io::Result<Checkpointer> {
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let path = path.to_path_buf();
        let restart = Arc::new(AtomicBool::new(false));
        let asks = restart.clone();
        #[cfg(test)]
        let copied = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        #[cfg(test)]
        let done = {
            let counted = copied.clone();
            move |pages: u64| {
                if pages > 0 {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        };
        #[cfg(not(test))]
        let done = |_: u64| {};
        let thread = std::thread::Builder::new()
            .name("nitejar-db-checkpoint".into())
            .spawn(move || serve(&path, woken, &asks, done))?;
        Ok(Checkpointer {
            wake: Mutex::new(Some(wake)),
            thread: Mutex::new(Some(thread)),
            restart,
            #[cfg(test)]
            copied,
        })
    }

    /// Tells the thread a commit happened (never blocks: a wake-up already pending covers it).
    pub(super) fn committed(&self) {
        if let Some(wake) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            // Full: a wake-up is pending already; disconnected: the thread stopped.
            let _ = wake.try_send(());
        }
    }

    /// Whether the write thread should finish a checkpoint now, after its commit (see the
    /// module docs); true once per request of the thread.
    pub(super) fn take_restart(&self) -> bool {
        self.restart.load(Ordering::Relaxed) && self.restart.swap(false, Ordering::Relaxed)
    }

    /// Stops the thread and waits for it (a checkpoint in progress finishes first), so its
    /// connection is closed when this returns.
    pub(super) fn close(&self) {
        self.wake.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Checkpoints so far after which some of the log was in the database (for tests).
    #[cfg(test)]
    pub(super) fn copied(&self) -> u64 {
        self.copied.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The thread ends after the checkpoint in progress, if any; not waited for here (a
        // store may be dropped on an async runtime's thread).
        self.wake.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The thread's loop: after each wake-up, wait [`CHECKPOINT_AFTER`], then checkpoint and sync
/// the database file; asks for a restart through `restart` when the log is long; ends when the
/// sender is dropped. `done` hears how many of the log's pages are in the database after each
/// checkpoint.
fn serve(path: &Path, woken: Receiver<()>, restart: &AtomicBool, mut done: impl FnMut(u64)) {
    let mut connection: Option<(rusqlite::Connection, std::fs::File)> = None;
    let mut warned = false;
    // Pages of the log in the database when it was last synced (the log's numbering).
    let mut synced = 0;
    while woken.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_AFTER);
        // Commits during the pause are covered by this checkpoint.
        while woken.try_recv().is_ok() {}
        if connection.is_none() {
            connection = open(path)
                .map_err(|e| {
                    // Once: the writers' own checkpoints still bound the log meanwhile.
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!(error = %e, "cannot open the checkpoint connection");
                    }
                })
                .ok();
        }
        let Some((c, file)) = connection.as_ref() else {
            continue;
        };
        // Passes: copy the log into the database and sync it. Past `RESTART_AT` they repeat
        // until one is short or `CATCH_UP_PASSES` more were made (see "Catching up before
        // asking"). A failure (a full disk) leaves the log as it was, asks for no restart, and
        // the next commit tries again.
        let mut more = 0;
        let counts = loop {
            let pass = std::time::Instant::now();
            // (pages in the log, of those in the database now).
            let (log, copied) = match passive_checkpoint(c) {
                Ok(counts) => counts,
                Err(e) => {
                    tracing::debug!(error = %e, "checkpoint failed; retried after the next commit");
                    connection = None;
                    break None;
                }
            };
            done(copied.max(0) as u64);
            // More copied since the last sync, or fewer: the log started again since.
            if copied != synced {
                if let Err(e) = file.sync_data() {
                    tracing::debug!(error = %e, "syncing the database failed; retried later");
                    break None;
                }
                synced = copied;
            }
            if log < RESTART_AT || more == CATCH_UP_PASSES || pass.elapsed() < CAUGHT_UP {
                break Some((log, copied));
            }
            more += 1;
        };
        let Some((log, copied)) = counts else {
            continue;
        };
        // Only when little is left to copy: what the write thread copies, writes wait for.
        if log >= RESTART_AT && log - copied <= RESTART_AT / 4 {
            restart.store(true, Ordering::Relaxed);
        }
    }
}

/// A passive checkpoint on `c`: (pages in the log, of those in the database now).
pub(super) fn passive_checkpoint(c: &rusqlite::Connection) -> rusqlite::Result<(i64, i64)> {
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

/// The checkpoint connection (it waits for nothing: a passive checkpoint skips what it cannot
/// lock at once), and the database file, to sync.
fn open(path: &Path) -> Result<(rusqlite::Connection, std::fs::File), crate::DbError> {
    let c = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::ZERO)?;
    let file = std::fs::File::open(path)?;
    Ok((c, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DbResult;
    use crate::sqlite::SqliteStore;
    use std::time::Instant;

    /// Inserts kv `key` of plugin `p` with a value of `bytes` bytes (a write of the tests' own).
    fn put(c: &rusqlite::Connection, key: &str, bytes: usize) -> DbResult<()> {
        c.execute(
            "INSERT INTO plugin_kv (plugin_id, key, value, updated_at) VALUES ('p', ?1, ?2, 0)",
            rusqlite::params![key, vec![7u8; bytes]],
        )?;
        Ok(())
    }

    /// The write-ahead log's size on disk, in frames (a 24-byte header and a 4 KiB page each,
    /// after the log's 32-byte header).
    fn log_pages(db: &Path) -> u64 {
        let log = db.with_extension("db-wal");
        std::fs::metadata(log).map_or(0, |m| m.len().saturating_sub(32) / (4096 + 24))
    }

    /// Commits on the write thread wake the checkpoint thread, which copies the log into the
    /// database; the writers' own checkpoint waits for a log of 10,000 pages.
    #[tokio::test]
    async fn the_checkpoint_thread_copies_the_log_after_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let before = db.checkpoints.copied();
        for i in 0..20 {
            db.write(move |c| put(c, &format!("k{i}"), 100))
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while db.checkpoints.copied() == before {
            assert!(
                Instant::now() < deadline,
                "no checkpoint within 10 s of the commits"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let write_thread: i64 = db
            .write(|c| Ok(c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(write_thread, i64::from(WAL_AUTOCHECKPOINT_PAGES));
        let sqlx_writer: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *db.writer.get().await.unwrap())
            .await
            .unwrap();
        assert_eq!(sqlx_writer, i64::from(WAL_AUTOCHECKPOINT_PAGES));
        db.close().await;
    }

    /// Without the checkpoint thread (stopped here) the log grows past SQLite's default of
    /// 1,000 pages but not past the writers' bound: the write thread checkpoints itself there
    /// and the log starts again from the beginning of its file. Every value is still read back.
    #[tokio::test]
    async fn the_log_is_bounded_by_the_writers_own_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = SqliteStore::open(&path).await.unwrap();
        db.checkpoints.close();
        // 64 KiB values: about 17 pages each, 1,000 of them about 17,000 pages of log.
        let mut most = 0;
        for i in 0..1000 {
            db.write(move |c| put(c, &format!("k{i}"), 64 * 1024))
                .await
                .unwrap();
            most = most.max(log_pages(&path));
        }
        assert!(
            most > 2_000,
            "the log grew past the default bound: {most} pages"
        );
        assert!(
            most < u64::from(WAL_AUTOCHECKPOINT_PAGES) + 100,
            "the writers' checkpoint bounds the log: {most} pages"
        );
        let stored: i64 = db
            .write(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM plugin_kv WHERE length(value) = 65536",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(stored, 1000);
        db.close().await;
    }

    /// The log's last page (`mxFrame` of the write-ahead log index's header, at byte 16 of the
    /// `-shm` file, native-endian): what SQLite considers the log, whatever the file's size.
    fn log_end(db: &Path) -> u32 {
        let shm = std::fs::read(db.with_extension("db-shm")).unwrap();
        u32::from_ne_bytes(shm[16..20].try_into().unwrap())
    }

    /// Past [`RESTART_AT`] pages the thread has the write thread finish its checkpoint, and the
    /// log starts again long before the writers' own bound would have started it.
    #[tokio::test]
    async fn a_long_log_starts_again_before_the_writers_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = SqliteStore::open(&path).await.unwrap();
        // 64 KiB values: about 17 pages each.
        let mut i = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while i64::from(log_end(&path)) < RESTART_AT + 500 {
            assert!(
                Instant::now() < deadline,
                "the log never grew past the request size"
            );
            db.write(move |c| put(c, &format!("k{i}"), 64 * 1024))
                .await
                .unwrap();
            i += 1;
        }
        // Small writes about a millisecond apart: the gaps are shorter than any of the
        // thread's own checkpoints here, so those never find the whole log copied (a quiet
        // moment would let them start it again without the request); and the writes cannot
        // outrun the thread (unpaced, on a fast machine, they added 6,700 pages while the
        // thread copied and synced the first 4,600, and the writers' bound came first: CI,
        // 2026-12-04).
        let (mut restarted, mut small, mut longest) = (false, 0, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            db.write(move |c| put(c, &format!("s{small}"), 10))
                .await
                .unwrap();
            small += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
            let end = log_end(&path);
            if i64::from(end) < RESTART_AT / 2 {
                restarted = true;
                break;
            }
            longest = longest.max(end);
        }
        assert!(restarted, "the log is still {} pages", log_end(&path));
        assert!(
            longest < WAL_AUTOCHECKPOINT_PAGES,
            "started again by the writers' own bound ({longest} pages), not on request"
        );
        let stored: i64 = db
            .write(|c| Ok(c.query_row("SELECT count(*) FROM plugin_kv", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(stored, i + small, "every value is still there");
        db.close().await;
    }

    /// Closing the store stops the thread (its connection closed with it), and commits after
    /// that are not held up by it.
    #[tokio::test]
    async fn close_stops_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        db.write(|c| put(c, "a", 10)).await.unwrap();
        db.checkpoints.close();
        assert!(db.checkpoints.thread.lock().unwrap().is_none());
        db.checkpoints.committed();
        db.write(|c| put(c, "b", 10)).await.unwrap();
        db.close().await;
    }
}
