//! A fixed set of SQLite connections handed out one user at a time, without sqlx's pool.
//!
//! sqlx 0.8's pool pings a connection every time it is returned (a round trip to the
//! connection's thread, from a task it spawns for the purpose): every query cost two hand-offs
//! between threads instead of one, and on two cores the run workers spent more time waiting to
//! be scheduled than running. Here a connection is a mutex: taking it is an atomic operation
//! when it is free, giving it back is dropping the guard.
//!
//! What the ping did that still matters is done here. A transaction dropped without commit
//! queues its rollback on the connection's thread, which runs it before the next command; a
//! connection whose `COMMIT` or `ROLLBACK` failed (a full disk) can still be inside a
//! transaction, and reused it would hold the write lock or nest every later transaction in a
//! dead one, so it is replaced by a fresh connection (closing rolls back whatever is open).

use crate::DbResult;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// How long a caller waits for a connection before the request fails as transient (a writer
/// stuck behind another process's lock makes the writes queued behind it wait this long).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A fixed set of connections to one database (see the module docs).
#[derive(Debug)]
pub struct Connections {
    options: SqliteConnectOptions,
    slots: Vec<Mutex<Option<SqliteConnection>>>,
    next: AtomicUsize,
    closed: AtomicBool,
}

/// One connection, held until dropped.
pub struct Conn<'a>(MutexGuard<'a, Option<SqliteConnection>>);

impl std::ops::Deref for Conn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        // Set by `Connections::get` before a `Conn` is made.
        self.0.as_ref().expect("an open connection")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0.as_mut().expect("an open connection")
    }
}

impl Conn<'_> {
    /// Starts a transaction on this connection (rolled back when dropped uncommitted).
    pub async fn begin(&mut self) -> DbResult<sqlx::Transaction<'_, sqlx::Sqlite>> {
        Ok(Connection::begin(&mut **self).await?)
    }
}

impl Connections {
    /// Opens `count` (at least one) connections with `options`.
    pub async fn open(options: &SqliteConnectOptions, count: usize) -> DbResult<Connections> {
        let mut slots = Vec::new();
        for _ in 0..count.max(1) {
            slots.push(Mutex::new(Some(
                SqliteConnection::connect_with(options).await?,
            )));
        }
        Ok(Connections {
            options: options.clone(),
            slots,
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// A connection: a free one at once, else the next in turn when it is given back (at
    /// most [`ACQUIRE_TIMEOUT`], then `PoolTimedOut`, a transient error). Fails with
    /// `PoolClosed` after [`Connections::close`].
    pub async fn get(&self) -> DbResult<Conn<'_>> {
        let mut guard = match self.slots.iter().find_map(|s| s.try_lock().ok()) {
            Some(g) => g,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                tokio::time::timeout(ACQUIRE_TIMEOUT, self.slots[i].lock())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
            }
        };
        if self.closed.load(Ordering::SeqCst) {
            return Err(sqlx::Error::PoolClosed.into());
        }
        let healthy = match guard.as_mut() {
            None => false,
            Some(c) if c.is_in_transaction() => {
                // A dropped transaction's rollback may still be queued: the ping runs it.
                c.ping().await.is_ok() && !c.is_in_transaction()
            }
            Some(_) => true,
        };
        if !healthy {
            if let Some(c) = guard.take() {
                tracing::warn!(
                    "a database connection came back inside a transaction (a commit or \
                     rollback failed); it is closed and replaced"
                );
                // Closing rolls back what is open; a failure leaves nothing to do.
                let _ = c.close().await;
            }
            *guard = Some(SqliteConnection::connect_with(&self.options).await?);
        }
        Ok(Conn(guard))
    }

    /// Closes every connection, waiting for those in use to be given back.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for slot in &self.slots {
            if let Some(c) = slot.lock().await.take() {
                let _ = c.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction dropped uncommitted is rolled back before the connection's next use; a
    /// connection still inside a transaction (as a failed `COMMIT` leaves it; forgotten here) is
    /// replaced, which rolls its transaction back and frees the write lock.
    #[tokio::test]
    async fn connections_come_back_outside_any_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_millis(100));
        let db = Connections::open(&options, 1).await.unwrap();
        let count = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM t")
                .fetch_one(&mut *db.get().await.unwrap())
                .await
                .unwrap()
        };
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut *db.get().await.unwrap())
            .await
            .unwrap();

        {
            let mut conn = db.get().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        assert_eq!(count().await, 0, "the dropped transaction was rolled back");

        {
            let mut conn = db.get().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (2)")
                .execute(&mut *tx)
                .await
                .unwrap();
            std::mem::forget(tx);
        }
        let conn = db.get().await.unwrap();
        assert!(!conn.is_in_transaction(), "a fresh connection");
        drop(conn);
        assert_eq!(
            count().await,
            0,
            "the open transaction died with its connection"
        );
        // The write lock is free: another connection writes at once.
        let other = Connections::open(&options, 1).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut *other.get().await.unwrap())
            .await
            .unwrap();
        assert_eq!(count().await, 1);

        db.close().await;
        assert!(db.get().await.is_err(), "closed");
    }
}
