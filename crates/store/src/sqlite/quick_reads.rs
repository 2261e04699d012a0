//! Quick reads: the point reads of the hot paths (a webhook's instance, a run's inputs, its
//! skills and its session history) run on the caller's own thread, on connections of their
//! own (rusqlite, on the same SQLite library sqlx links).
//!
//! sqlx runs every statement on a thread of the connection's: a read is a hand-off there and
//! one back, each waking a sleeping thread. Under a steady 1,500 webhooks/s that was four
//! reads per webhook and its run, and the connection threads used about a quarter of a core
//! for reads that take SQLite 5 to 200 µs. In write-ahead-log mode a reader never waits for
//! the writer, so such a read is shorter than the hand-off it replaces, and it runs inline.
//!
//! A read that finds the database locked all the same (another process in exclusive locking
//! mode, a log being recovered) is not waited for on the caller's thread: it runs again on a
//! blocking thread, where the busy timeout applies as it does everywhere else (10 s, then a
//! transient error: 503 with `Retry-After` at the API).

use super::SqliteStore;
use crate::DbResult;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Connections kept for the next quick read. At most one is in use per thread reading, so the
/// runtime's worker threads bound how many are open at once; a few more are closed when given
/// back.
const IDLE_KEPT: usize = 8;

/// Statements kept prepared on each connection.
const PREPARED_STATEMENTS: usize = 16;

/// How long a read that found the database locked waits for it on a blocking thread (sqlx's
/// connections wait as long).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The quick reads' connections (see the module docs).
#[derive(Debug)]
pub(super) struct QuickReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
    /// Reads that found the database locked and ran again on a blocking thread (for tests).
    #[cfg(test)]
    waited: std::sync::atomic::AtomicU64,
}

impl QuickReads {
    /// Quick reads of the (migrated) database at `path`; connections open on first use.
    pub(super) fn new(path: &Path) -> QuickReads {
        QuickReads {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            #[cfg(test)]
            waited: Default::default(),
        }
    }

    /// An idle connection, or a new one. Its busy timeout is zero: a locked database is an
    /// error at once (see [`SqliteStore::read`]).
    fn take(&self) -> DbResult<Connection> {
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed.into());
        }
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(c) => Ok(c),
            None => Ok(open(&self.path)?),
        }
    }

    /// Keeps `c` for the next read, unless enough are kept or the store is closed.
    fn give_back(&self, c: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_KEPT && !self.closed.load(Ordering::Acquire) {
            idle.push(c);
        }
    }

    /// Closes the idle connections; later reads fail (a read under way finishes).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Opens a read connection to the database at `path`: read-write as SQLite needs for the
/// log's shared memory, but it refuses every write (`query_only`).
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::ZERO)?;
    c.pragma_update(None, "query_only", true)?;
    c.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(c)
}

/// Whether SQLite refused the read because the database was locked (busy or locked codes).
fn locked(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl SqliteStore {
    /// Runs `read` at once on the caller's thread (see the module docs). When it finds the
    /// database locked, it runs again on a blocking thread with the busy timeout, so `read`
    /// must be a read only, safe to run twice. A panic in it is the caller's.
    pub(super) async fn read<T, F>(&self, read: F) -> DbResult<T>
    where
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let c = self.reads.take()?;
        let c = match read(&c) {
            Err(e) if locked(&e) => c,
            done => {
                self.reads.give_back(c);
                return Ok(done?);
            }
        };
        #[cfg(test)]
        self.reads.waited.fetch_add(1, Ordering::Relaxed);
        let reads = self.reads.clone();
        let waited = tokio::task::spawn_blocking(move || {
            c.busy_timeout(BUSY_TIMEOUT)?;
            let done = read(&c);
            c.busy_timeout(Duration::ZERO)?;
            reads.give_back(c);
            done
        })
        .await;
        match waited {
            Ok(done) => Ok(done?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(sqlx::Error::PoolClosed.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A quick read sees what the write thread committed, and one that finds the database
    /// locked runs again off the caller's thread with the busy timeout. (Readers in WAL mode are
    /// locked out only by rare states, such as another process in exclusive locking mode, which
    /// a test cannot reach while the store's own connections are open; the read here reports
    /// the lock itself the first time.)
    #[tokio::test]
    async fn quick_reads_see_commits_and_wait_out_a_lock_off_the_callers_thread() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("q.db")).await.unwrap();
        db.insert_instance("i1", "builtin.webhook", "webhook", "hook", "{}", true)
            .await
            .unwrap();
        assert_eq!(db.get_instance("i1").await.unwrap().unwrap().name, "hook");
        assert!(db.get_instance("nope").await.unwrap().is_none());

        let caller = std::thread::current().id();
        let first = Arc::new(AtomicBool::new(true));
        let seen = {
            let first = first.clone();
            db.read(move |c| {
                let timeout: i64 = c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
                if first.swap(false, Ordering::Relaxed) {
                    assert_eq!(std::thread::current().id(), caller, "inline first");
                    assert_eq!(timeout, 0, "no waiting on the caller's thread");
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        None,
                    ));
                }
                let name: String =
                    c.query_row("SELECT name FROM plugin_instances", [], |r| r.get(0))?;
                Ok((std::thread::current().id(), timeout, name))
            })
            .await
            .unwrap()
        };
        assert_ne!(seen.0, caller, "the second try runs on a blocking thread");
        assert_eq!((seen.1, seen.2.as_str()), (10_000, "hook"));
        assert_eq!(db.reads.waited.load(Ordering::Relaxed), 1);
        // The connection went back with no busy timeout.
        let timeout = db
            .read(|c| c.query_row("PRAGMA busy_timeout", [], |r| r.get::<_, i64>(0)))
            .await
            .unwrap();
        assert_eq!(timeout, 0);

        // Any other error is the caller's at once.
        let err = db
            .read(|c| {
                c.query_row("SELECT nope FROM plugin_instances", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no such column"), "{err}");
        assert_eq!(db.reads.waited.load(Ordering::Relaxed), 1);
        // It refuses writes.
        let err = db
            .read(|c| c.execute("DELETE FROM plugin_instances", []))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");

        db.close().await;
        assert!(db.get_instance("i1").await.is_err(), "closed");
    }
}
