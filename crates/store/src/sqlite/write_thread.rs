//! The write thread: where the frequent writes (webhook batches, a run's delivery and end,
//! receipts, claims, kv) run, on a connection of its own, several in one commit.
//!
//! sqlx runs every statement on a thread of the connection's, so a write is at least two
//! hand-offs between threads, and the writer stays taken across both. Under a steady 1,500
//! webhooks/s on two busy cores (about 30 runnable threads) a one-statement write held the
//! writer about 0.55 ms for about 0.1 ms of SQLite's work, which capped the writes at about
//! 1,800/s: the runs could not keep pace. Here the statements run on the thread that holds
//! the writer (rusqlite, on the same SQLite library sqlx links), so the writer is held for
//! SQLite's work only.
//!
//! **Group commit.** Each commit appends every page it changed to the write-ahead log: about
//! 2,000 small commits a second wrote about 100 MB/s, and the write thread spent most of its
//! time in those writes. The thread takes every write waiting when it gets the writer (up to
//! [`MAX_GROUP`]) and runs them in one transaction, each inside a savepoint of its own: a
//! write that fails is rolled back alone and gets its own error, the others commit together.
//! No caller hears of success before the commit that holds its write has returned, so what a
//! crash can lose is unchanged (see [`crate::Durability`]). An error that ends the whole
//! transaction (SQLite rolls it back itself on a full disk or an I/O error) or a failed
//! commit fails every write of the group with that error: none of them is written.
//!
//! **Two lines.** A webhook's work items are urgent ([`Priority`]): they start the next group
//! when they wait, and a group that holds them commits soon after instead of running every
//! background write queued (a run's records, receipts, claims). Measured at concurrency 64
//! (four alternated pairs): p99 21.7-22.8 ms against 24.1-30.5 ms, 6,445-7,112 against
//! 6,240-6,767 webhooks/s, with fewer runs finished during the burst (the runs wait, as their
//! lower priority already says).
//!
//! A caller hands its write to the thread and waits for the result on its own runtime; a
//! caller that gives up (a dropped request) does not cancel it: it is written whole or not at
//! all. The rarer writes (admin, plugins' lifecycle, migrations) still go through sqlx's
//! writer connection. Both take the same writer mutex ([`Connections`]), so the database sees
//! one writer of this process at a time either way, and never waits on its own lock.

use super::SqliteStore;
use super::checkpoints::{Checkpointer, WAL_AUTOCHECKPOINT_PAGES};
use super::connections::Connections;
use crate::{DbError, DbResult, Durability};
use rusqlite::{Connection, OpenFlags};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Statements kept prepared on the write connection (each distinct SQL text is one).
const PREPARED_STATEMENTS: usize = 64;

/// At most this many writes share a commit (a group holds the writer; the rarer writes wait
/// for it).
const MAX_GROUP: usize = 256;

/// Background writes a group still takes once an urgent write is in it (see [`Priority`]).
const BEHIND_URGENT: usize = 4;

/// Which line a write waits in. A webhook's answer waits for its work item's commit, and a
/// platform retries or gives up on a slow answer; a run's records and the receipts wait for
/// nobody outside. So once a group holds an urgent write it takes only the urgent writes
/// queued and at most [`BEHIND_URGENT`] background ones before it commits, and the thread
/// starts its next group with an urgent write when one waits. Background writes are never
/// starved: a group with no urgent write takes them all (up to [`MAX_GROUP`]), and every
/// group takes a few.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Priority {
    /// Someone outside is waiting for the commit (a webhook's work items).
    Urgent,
    /// Everything else: runs, receipts, claims, kv.
    Background,
}

/// The write thread (see the module docs): a single-threaded tokio runtime on a thread of its
/// own, the queue of writes it serves, and the connection they use.
#[derive(Debug)]
pub(super) struct WriteThread {
    queue: mpsc::UnboundedSender<Box<dyn Job>>,
    urgent: mpsc::UnboundedSender<Box<dyn Job>>,
    connection: Arc<Mutex<WriteConnection>>,
    /// Commits made (groups of writes), read by tests.
    #[cfg(test)]
    commits: Arc<AtomicU64>,
    /// Writes taken from a queue to start a group, read by tests.
    #[cfg(test)]
    started: Arc<AtomicU64>,
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

    /// After a group: a connection still inside a transaction (a `COMMIT` or `ROLLBACK` that
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
/// for another process's lock, and `synchronous` from `durability`. Its temporary storage is
/// memory: each write of a group runs in a savepoint, whose undo pages (the statement journal)
/// would otherwise spill to a temporary file past 64 KiB, written, truncated and unlinked on
/// every commit. Its checkpoints are the bound on the log only: they are the checkpoint
/// thread's work ([`super::checkpoints`]).
fn open(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(10))?;
    c.pragma_update(None, "foreign_keys", true)?;
    c.pragma_update(None, "temp_store", "MEMORY")?;
    c.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
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

/// A write waiting for the thread, with its caller's reply.
trait Job: Send {
    /// Runs the write (inside the group's transaction and a savepoint of its own); returns a
    /// copy of its error when it failed.
    fn run(&mut self, c: &Connection) -> Option<DbError>;
    /// Answers the caller: the write's own failure, else `group` (how its commit went).
    fn finish(self: Box<Self>, group: Result<(), DbError>);
}

/// What the caller of a write gets: a panic in the write is resumed in the caller.
type Reply<T> = std::thread::Result<DbResult<T>>;

/// A [`Job`] of [`SqliteStore::write`].
struct Write<T, F> {
    write: Option<F>,
    outcome: Option<Reply<T>>,
    reply: oneshot::Sender<Reply<T>>,
}

impl<T, F> Job for Write<T, F>
where
    F: FnOnce(&Connection) -> DbResult<T> + Send,
    T: Send,
{
    fn run(&mut self, c: &Connection) -> Option<DbError> {
        let write = self.write.take()?;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| write(c)));
        let error = match &outcome {
            Ok(Err(e)) => Some(copy(e)),
            Ok(Ok(_)) => None,
            Err(_) => Some(DbError::Io(std::io::Error::other("a write panicked"))),
        };
        self.outcome = Some(outcome);
        error
    }

    fn finish(self: Box<Self>, group: Result<(), DbError>) {
        let reply = match (self.outcome, group) {
            (Some(Ok(Ok(v))), Ok(())) => Ok(Ok(v)),
            (Some(Ok(Ok(_))) | None, Err(e)) => Ok(Err(e)),
            (Some(failed), _) => failed,
            (None, Ok(())) => Ok(Err(sqlx::Error::PoolClosed.into())),
        };
        // A caller that gave up is not waiting.
        let _ = self.reply.send(reply);
    }
}

/// A copy of `e` for another caller (the commit's failure goes to every write of the group),
/// keeping what [`DbError::is_transient`] reads.
fn copy(e: &DbError) -> DbError {
    match e {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
            rusqlite::Error::SqliteFailure(*code, message.clone()).into()
        }
        DbError::Sqlx(sqlx::Error::PoolClosed) => sqlx::Error::PoolClosed.into(),
        DbError::Sqlx(sqlx::Error::PoolTimedOut) => sqlx::Error::PoolTimedOut.into(),
        DbError::Io(io) | DbError::Sqlx(sqlx::Error::Io(io)) => match io.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(io.kind(), io.to_string()),
        }
        .into(),
        other => DbError::Io(std::io::Error::other(other.to_string())),
    }
}

impl WriteThread {
    /// Opens the write connection to `path` and starts the thread, whose writes wait for
    /// `writer`'s turn.
    pub(super) fn start(
        path: &Path,
        durability: Durability,
        writer: Arc<Connections>,
        checkpoints: Arc<Checkpointer>,
    ) -> DbResult<WriteThread> {
        let connection = Arc::new(Mutex::new(WriteConnection {
            path: path.to_path_buf(),
            durability,
            open: Some(open(path, durability)?),
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (queue, jobs) = mpsc::unbounded_channel();
        let (urgent, urgent_jobs) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let serving = Serve {
            jobs,
            urgent: urgent_jobs,
            held: None,
            writer,
            connection: connection.clone(),
            commits: commits.clone(),
            started: started.clone(),
            checkpoints,
        };
        std::thread::Builder::new()
            .name("nitejar-db-writes".into())
            .spawn(move || runtime.block_on(serving.run()))?;
        Ok(WriteThread {
            queue,
            urgent,
            connection,
            #[cfg(test)]
            commits,
            #[cfg(test)]
            started,
        })
    }

    /// Closes the write connection (call once the writer is closed: no write is using it).
    pub(super) fn close(&self) {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open = None;
    }

    /// Commits made so far (for tests).
    #[cfg(test)]
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Writes taken from a queue to start a group so far (for tests).
    #[cfg(test)]
    pub(super) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
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

/// The write thread's loop: ends when the store (every sender of the queue) is dropped.
struct Serve {
    /// Background writes.
    jobs: mpsc::UnboundedReceiver<Box<dyn Job>>,
    /// Urgent writes (see [`Priority`]).
    urgent: mpsc::UnboundedReceiver<Box<dyn Job>>,
    /// A background write taken from its queue but not run yet: an urgent write that came
    /// while it waited for the writer's turn went first, and a group full of background
    /// writes left it for the next.
    held: Option<Box<dyn Job>>,
    writer: Arc<Connections>,
    connection: Arc<Mutex<WriteConnection>>,
    commits: Arc<AtomicU64>,
    /// Writes taken from a queue to start a group (one held back is not counted again).
    started: Arc<AtomicU64>,
    checkpoints: Arc<Checkpointer>,
}

impl Serve {
    async fn run(mut self) {
        let (writer, connection) = (self.writer.clone(), self.connection.clone());
        loop {
            let first = match self.held.take() {
                Some(job) => (job, Priority::Background),
                None => {
                    let first = tokio::select! {
                        biased;
                        Some(job) = self.urgent.recv() => (job, Priority::Urgent),
                        Some(job) = self.jobs.recv() => (job, Priority::Background),
                        else => break,
                    };
                    self.started.fetch_add(1, Ordering::Relaxed);
                    first
                }
            };
            // The writer's turn, shared with the writes on sqlx's connection.
            let turn = match writer.get().await {
                Ok(turn) => turn,
                Err(e) => {
                    first.0.finish(Err(e));
                    continue;
                }
            };
            let mut c = connection.lock().unwrap_or_else(PoisonError::into_inner);
            match c.get() {
                Ok(conn) => self.group(conn, first),
                Err(e) => first.0.finish(Err(e.into())),
            }
            c.settle();
            drop(turn);
        }
    }

    /// Runs `first` and the writes queued behind it in one transaction (see the module docs
    /// and [`Priority`] for which it takes).
    fn group(&mut self, c: &Connection, (first, priority): (Box<dyn Job>, Priority)) {
        let mut ran: Vec<Box<dyn Job>> = Vec::new();
        // An urgent write that came while a background one waited for the writer goes first.
        let (mut next, mut urgent) = match priority {
            Priority::Urgent => (Some(first), true),
            Priority::Background => match self.urgent.try_recv() {
                Ok(job) => {
                    self.held = Some(first);
                    (Some(job), true)
                }
                Err(_) => (Some(first), false),
            },
        };
        let mut behind_urgent = 0;
        while let Some(mut job) = next.take() {
            if c.is_autocommit()
                && let Err(e) = exec(c, "BEGIN IMMEDIATE")
            {
                job.finish(Err(e.into()));
                break;
            }
            let failed = match exec(c, "SAVEPOINT write") {
                Ok(()) => {
                    let failed = job.run(c);
                    let end = match failed {
                        None => exec(c, "RELEASE write"),
                        Some(_) => exec(c, "ROLLBACK TO write").and(exec(c, "RELEASE write")),
                    };
                    match end {
                        Ok(()) => failed,
                        Err(e) => failed.or(Some(e.into())),
                    }
                }
                Err(e) => Some(e.into()),
            };
            if c.is_autocommit() {
                // The transaction is over: SQLite rolled it back (a full disk, an I/O error),
                // so nothing of the group is written.
                let e = failed.unwrap_or_else(rolled_back);
                for written in ran.drain(..) {
                    written.finish(Err(copy(&e)));
                }
                job.finish(Err(e));
            } else {
                ran.push(job);
            }
            if ran.len() < MAX_GROUP {
                next = self.next_job(&mut urgent, &mut behind_urgent);
            }
        }
        if ran.is_empty() {
            return;
        }
        let committed = exec(c, "COMMIT").map_err(DbError::from);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.checkpoints.committed();
        let ok = committed.is_ok();
        match committed {
            Ok(()) => ran.into_iter().for_each(|j| j.finish(Ok(()))),
            Err(e) => ran.into_iter().for_each(|j| j.finish(Err(copy(&e)))),
        }
        // After the callers are answered; the next group waits for it.
        if ok && self.checkpoints.take_restart() {
            finish_checkpoint(c);
        }
    }

    /// The next write of a group: an urgent one if any waits, else a background one, unless
    /// the group already holds an urgent write and [`BEHIND_URGENT`] background ones after it.
    fn next_job(&mut self, urgent: &mut bool, behind_urgent: &mut usize) -> Option<Box<dyn Job>> {
        if let Ok(job) = self.urgent.try_recv() {
            *urgent = true;
            return Some(job);
        }
        if *urgent {
            if *behind_urgent == BEHIND_URGENT {
                return None;
            }
            *behind_urgent += 1;
        }
        self.held.take().or_else(|| self.jobs.try_recv().ok())
    }
}

/// Finishes the checkpoint thread's work on the write connection, between two groups, so that
/// the next write starts the log again (see [`super::checkpoints`]). A failure leaves the log
/// as it was, bounded by the writers' own checkpoints.
fn finish_checkpoint(c: &Connection) {
    match super::checkpoints::passive_checkpoint(c) {
        Ok((log, copied)) if log != copied => {
            tracing::debug!(log, copied, "a checkpoint could not copy the whole log")
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "finishing a checkpoint failed"),
    }
}

/// Runs one statement of the write thread's own (kept prepared).
fn exec(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The error of the writes of a group whose transaction ended without one of them failing.
fn rolled_back() -> DbError {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("the transaction was rolled back".into()),
    )
    .into()
}

impl SqliteStore {
    /// Runs `write` on the write thread's connection, in a group commit (see the module docs),
    /// and returns its result once it is committed. `write` runs to its end even if the
    /// caller stops waiting; if it fails, what it wrote is rolled back and nothing else.
    pub(super) async fn write<T, F>(&self, write: F) -> DbResult<T>
    where
        F: FnOnce(&Connection) -> DbResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_as(Priority::Background, write).await
    }

    /// [`Self::write`] in the line of `priority` (see [`Priority`]).
    pub(super) async fn write_as<T, F>(&self, priority: Priority, write: F) -> DbResult<T>
    where
        F: FnOnce(&Connection) -> DbResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Write {
            write: Some(write),
            outcome: None,
            reply,
        });
        let queue = match priority {
            Priority::Urgent => &self.writes.urgent,
            Priority::Background => &self.writes.queue,
        };
        if queue.send(job).is_err() {
            // The thread stopped: the store is being dropped.
            return Err(sqlx::Error::PoolClosed.into());
        }
        match answer.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
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

    /// Inserts kv `key` of plugin `p` (a write of the tests' own).
    fn put(c: &Connection, key: &str) -> DbResult<()> {
        c.execute(
            "INSERT INTO plugin_kv (plugin_id, key, value, updated_at) VALUES ('p', ?1, x'01', 0)",
            [key],
        )?;
        Ok(())
    }

    /// Writes queued while the writer is taken share one commit; one that fails is rolled
    /// back alone and gets its own error.
    #[tokio::test]
    async fn queued_writes_share_a_commit_and_a_failed_one_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let before = db.writes.commits();
        let turn = db.writer.get().await.unwrap();
        let (a, b, c, ()) = tokio::join!(
            db.write(|c| put(c, "a")),
            db.write(|c| {
                put(c, "b")?;
                Err::<(), _>(DbError::Io(std::io::Error::other("b gives up")))
            }),
            db.write(|c| put(c, "c")),
            async {
                // The three are queued when they are first polled, before this.
                tokio::task::yield_now().await;
                drop(turn);
            }
        );
        assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
        assert!(b.unwrap_err().to_string().contains("b gives up"));
        assert_eq!(db.writes.commits() - before, 1, "one commit for the three");
        assert!(kv(&db, "a").await.is_some() && kv(&db, "c").await.is_some());
        assert_eq!(kv(&db, "b").await, None, "rolled back alone");
    }

    /// An urgent write (a webhook's work items) queued behind background writes runs first,
    /// even before the background write the thread took while it waited for the writer's
    /// turn, and its group commits after at most [`BEHIND_URGENT`] of them; the rest follow
    /// in the next group, so the background is slowed, never dropped.
    #[tokio::test]
    async fn an_urgent_write_jumps_the_line_and_cuts_its_group_short() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::<String>::new()));
        let write = |priority, key: String| {
            let (db, order) = (&db, order.clone());
            async move {
                db.write_as(priority, move |c| {
                    order.lock().unwrap().push(key.clone());
                    put(c, &key)
                })
                .await
            }
        };
        let before = db.writes.commits();
        let turn = db.writer.get().await.unwrap();
        // A write is queued at its first poll. The thread takes the first and waits for the
        // turn with it before the others are queued.
        let started = db.writes.started();
        let mut first = Box::pin(write(Priority::Background, "b0".into()));
        assert!(futures::poll!(&mut first).is_pending());
        let waited = std::time::Instant::now();
        while db.writes.started() == started {
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "the thread took b0"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let background = 10;
        let mut rest = Box::pin(futures::future::join_all(
            (1..background)
                .map(|i| write(Priority::Background, format!("b{i}")))
                .chain([write(Priority::Urgent, "urgent".into())]),
        ));
        assert!(futures::poll!(&mut rest).is_pending());
        drop(turn);
        let (first, rest) = tokio::join!(first, rest);
        assert!(
            first.is_ok() && rest.iter().all(Result::is_ok),
            "{first:?} {rest:?}"
        );
        let order = order.lock().unwrap().clone();
        let expected: Vec<String> = std::iter::once("urgent".to_string())
            .chain((0..background).map(|i| format!("b{i}")))
            .collect();
        assert_eq!(
            order, expected,
            "the urgent write first, the rest in their order"
        );
        assert_eq!(
            db.writes.commits() - before,
            2,
            "the urgent write's group took {BEHIND_URGENT} background writes, the next the rest"
        );
        for key in expected {
            assert!(kv(&db, &key).await.is_some(), "{key} was written");
        }
    }

    /// A write that ends the group's transaction (as SQLite does itself on a full disk) fails
    /// every write of the group: none of them is written, and none is told it was. The next
    /// write starts a new transaction.
    #[tokio::test]
    async fn a_group_whose_transaction_ended_fails_every_write_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let turn = db.writer.get().await.unwrap();
        let (a, b, ()) = tokio::join!(
            db.write(|c| put(c, "a")),
            db.write(|c| Ok(c.execute_batch("ROLLBACK")?)),
            async {
                tokio::task::yield_now().await;
                drop(turn);
            }
        );
        assert!(a.is_err() && b.is_err(), "{a:?} {b:?}");
        assert_eq!(kv(&db, "a").await, None);
        db.write(|c| put(c, "after")).await.unwrap();
        assert!(kv(&db, "after").await.is_some());
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
