//! The write thread: where the frequent writes (webhook batches, a run's delivery and end,
//! receipts, claims, kv) run, on a connection of its own.
//!
//! sqlx runs every statement on a thread of the connection's, so a write is at least two
//! hand-offs between threads, and the writer stays taken across both. Under a steady 1,500
//! webhooks/s on two busy cores (about 30 runnable threads) a one-statement write held the
//! writer about 0.55 ms for about 0.1 ms of SQLite's work, which capped the writes at about
//! 1,800/s: the runs could not keep pace. Here the statements run on the thread that holds
//! the writer (rusqlite, on the same SQLite library sqlx links), so the writer is held for
//! SQLite's work only. A caller hands its write to the thread and waits for the result on its
//! own runtime; a caller that gives up (a dropped request) does not cancel a write halfway.
//!
//! The rarer writes (admin, plugins' lifecycle, migrations) still go through sqlx's writer
//! connection. Both take the same writer mutex ([`Connections`]), so the database sees one
//! writer of this process at a time either way, and never waits on its own lock.

use super::SqliteStore;
use super::connections::Connections;
use crate::{DbError, DbResult, Durability};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Statements kept prepared on the write connection (each distinct SQL text is one).
const PREPARED_STATEMENTS: usize = 64;

/// The write thread (see the module docs): a single-threaded tokio runtime on a thread of its
/// own, and the connection its writes use.
#[derive(Debug)]
pub(super) struct WriteThread {
    handle: tokio::runtime::Handle,
    connection: Arc<Mutex<WriteConnection>>,
    /// Dropped with the store: the thread ends (writes still queued are dropped, as their
    /// callers are gone).
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The write thread's connection, opened again when it was closed or found broken.
#[derive(Debug)]
struct WriteConnection {
    path: PathBuf,
    durability: Durability,
    open: Option<Connection>,
}

impl WriteConnection {
    /// The open connection, opening it if needed.
    fn get(&mut self) -> rusqlite::Result<&mut Connection> {
        if self.open.is_none() {
            self.open = Some(open(&self.path, self.durability)?);
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// After a write: a connection still inside a transaction (a `COMMIT` or `ROLLBACK` that
    /// failed, on a full disk) would hold the write lock or nest every later write in a dead
    /// transaction. It is rolled back, or if that fails too, closed (closing rolls back) and
    /// opened again by the next write.
    fn settle(&mut self) {
        let Some(c) = self.open.as_ref() else { return };
        if c.is_autocommit() {
            return;
        }
        if c.execute_batch("ROLLBACK").is_err() || !c.is_autocommit() {
            tracing::warn!(
                "the write connection stayed inside a transaction (a commit or rollback \
                 failed); it is closed and opened again"
            );
            self.open = None;
        }
    }
}

/// Opens the write connection to the (migrated) database at `path`, set as sqlx's
/// connections are: write-ahead log (a property of the file), foreign keys, the busy timeout
/// for another process's lock, and `synchronous` from `durability`.
fn open(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(10))?;
    c.pragma_update(None, "foreign_keys", true)?;
    c.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        },
    )?;
    c.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(c)
}

impl WriteThread {
    /// Opens the write connection to `path` and starts the thread.
    pub(super) fn start(path: &Path, durability: Durability) -> DbResult<WriteThread> {
        let connection = WriteConnection {
            path: path.to_path_buf(),
            durability,
            open: Some(open(path, durability)?),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("nitejar-db-writes".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(WriteThread {
            handle,
            connection: Arc::new(Mutex::new(connection)),
            _stop: stop,
        })
    }

    /// Closes the write connection (call once the writer is closed: no write is using it).
    pub(super) fn close(&self) {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open = None;
    }

    /// The write connection's `synchronous` mode (for tests).
    #[cfg(test)]
    pub(super) fn synchronous(&self) -> i64 {
        let mut c = self.connection.lock().unwrap();
        c.get()
            .unwrap()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }
}

impl SqliteStore {
    /// Runs `write` on the write thread's connection with the writer held (see the module
    /// docs) and returns its result. `write` runs to its end even if the caller stops
    /// waiting; a transaction it leaves open is rolled back.
    pub(super) async fn write<T, F>(&self, write: F) -> DbResult<T>
    where
        F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let writer: Arc<Connections> = self.writer.clone();
        let connection = self.writes.connection.clone();
        let task = async move {
            // The writer's turn, shared with the writes on sqlx's connection.
            let _turn = writer.get().await?;
            let mut c = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let result = c.get().map_err(DbError::from).and_then(write);
            c.settle();
            result
        };
        match self.writes.handle.spawn(task).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The thread stopped: the store is being dropped.
            Err(_) => Err(sqlx::Error::PoolClosed.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    async fn kv(db: &SqliteStore, key: &str) -> Option<Vec<u8>> {
        db.kv_get("p", key).await.unwrap()
    }

    /// A caller that stops waiting (a dropped request) does not cancel its write: it is
    /// written whole, before the writes queued after it.
    #[tokio::test]
    async fn a_write_whose_caller_gives_up_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        // The writer is taken, so the write below waits in line when its caller gives up.
        let turn = db.writer.get().await.unwrap();
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            db.kv_set_within("p", "first", b"1", 10, 1000),
        )
        .await;
        assert!(gave_up.is_err(), "the write waited for the writer");
        drop(turn);
        db.kv_set_within("p", "second", b"2", 10, 1000)
            .await
            .unwrap();
        assert_eq!(kv(&db, "first").await.as_deref(), Some(&b"1"[..]));
        assert_eq!(kv(&db, "second").await.as_deref(), Some(&b"2"[..]));
    }

    /// A write that leaves a transaction open does not keep it: it is rolled back, and the
    /// next write commits as usual.
    #[tokio::test]
    async fn a_transaction_left_open_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        db.write(|c| {
            c.execute_batch(
                "BEGIN; INSERT INTO plugin_kv (plugin_id, key, value, updated_at)
                 VALUES ('p', 'open', x'01', 0);",
            )?;
            Ok(())
        })
        .await
        .unwrap();
        db.kv_set_within("p", "next", b"2", 10, 1000).await.unwrap();
        assert_eq!(kv(&db, "open").await, None, "rolled back");
        assert_eq!(kv(&db, "next").await.as_deref(), Some(&b"2"[..]));
        // Nothing holds the write lock: sqlx's writer connection writes too.
        db.probe_write().await.unwrap();
    }

    /// A panic in a write reaches its caller; the write thread serves the next one.
    #[tokio::test]
    async fn a_write_that_panics_leaves_the_thread_serving() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let panicked = tokio::spawn({
            let db = db.clone();
            async move { db.write(|_| -> DbResult<()> { panic!("a bug") }).await }
        })
        .await;
        assert!(panicked.unwrap_err().is_panic());
        db.kv_set_within("p", "after", b"3", 10, 1000)
            .await
            .unwrap();
        assert_eq!(kv(&db, "after").await.as_deref(), Some(&b"3"[..]));
    }

    /// Closing the store closes the write connection; a write after it fails cleanly.
    #[tokio::test]
    async fn a_write_after_close_fails_without_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        db.close().await;
        assert!(db.writes.connection.lock().unwrap().open.is_none());
        assert!(db.kv_delete("p", "k").await.is_err());
        assert!(db.writes.connection.lock().unwrap().open.is_none());
    }
}
