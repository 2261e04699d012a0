//! The Nitejar host's storage: every SQL statement lives here, behind one trait per aggregate
//! (STYLE #9); the application, the server and the CLI never write SQL.
//!
//! The aggregate modules ([`plugins`], [`events`], [`instances`], [`runs`], [`skills`]) hold the
//! row types and the traits; a backend implements them all and [`Store`] names the whole. The
//! embedded default is [`sqlite::SqliteStore`]; a second backend (PostgreSQL) goes beside it. The
//! application holds an `Arc<dyn Store>` and never names a backend past [`open`]. This crate sits
//! beside the sandbox at the bottom of the host: it implements the sandbox's kv store trait and
//! knows nothing above it.

use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

pub mod events;
pub mod import;
pub mod instances;
pub mod nitejar_source;
pub mod plugins;
pub mod runs;
pub mod skills;
pub mod sqlite;

pub use events::{EventFilter, EventRow, EventStore};
pub use import::{ImportStore, ImportedCounts, ImportedInstance, ImportedWorkItem};
pub use instances::{
    CreateOutcome, Created, InstanceRow, InstanceStore, JobPlan, NewWorkItem, SessionTurn,
    WorkItemCreate, WorkItemFilter, WorkItemRow, WorkItemStore,
};
pub use plugins::{
    DisclosureRow, GrantStore, InstallRecord, LoadInputs, PluginRow, PluginStore, Purge,
    TrustLevel, VersionRow,
};
pub use runs::{
    ActivityMinute, AgentFields, AgentRow, AgentStore, DeliveryRow, JobEnd, JobRow, JobStore,
    NewStep, RunInputs, StepRow,
};
pub use skills::{NewSkill, SkillRow, SkillStore};

/// A database failure. Handlers map it to a 500 without leaking the SQL.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The query failed.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A write on the write thread's connection failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database directory could not be created.
    #[error("cannot create the database directory: {0}")]
    Io(#[from] std::io::Error),
}

impl DbError {
    /// Whether the failure is the database's state right now, not the request's: locked or
    /// busy (another writer), full (disk space), or no connection free in time. Such a request
    /// can be retried later unchanged; the API answers it 503 with `Retry-After`.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Sqlx(sqlx::Error::PoolTimedOut) => true,
            DbError::Sqlx(sqlx::Error::Database(db)) => {
                // SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_FULL (13), and the extended codes
                // built on them (code + n * 256).
                let primary = db
                    .code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .map(|c| c & 0xff);
                matches!(primary, Some(5 | 6 | 13))
                    || db.message().contains("database is locked")
                    || db.message().contains("disk is full")
            }
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, message)) => {
                // As above; rusqlite reports extended codes.
                matches!(e.extended_code & 0xff, 5 | 6 | 13)
                    || message.as_deref().is_some_and(|m| {
                        m.contains("database is locked") || m.contains("disk is full")
                    })
            }
            DbError::Sqlx(sqlx::Error::Io(e)) | DbError::Io(e) => {
                e.raw_os_error() == Some(28) // ENOSPC
            }
            _ => false,
        }
    }
}

/// Which kv quota refused a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvQuotaHit {
    /// Too many keys.
    Keys,
    /// Too many bytes.
    Bytes,
}

/// Result alias for database calls.
pub type DbResult<T> = Result<T, DbError>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A whole storage backend: every aggregate, the sandbox's kv store, and shutdown.
#[async_trait]
pub trait Store:
    PluginStore
    + GrantStore
    + EventStore
    + InstanceStore
    + WorkItemStore
    + AgentStore
    + JobStore
    + SkillStore
    + ImportStore
    + nitejar_sandbox::capabilities::kv::KvStore
    + Send
    + Sync
{
    /// Closes the backend (waits for connections in use to be returned).
    async fn close(&self);

    /// Writes one small row (the readiness probe): fails while the database cannot take a
    /// write (full disk, locked by another process, read-only).
    async fn probe_write(&self) -> DbResult<()>;
}

/// Opens the embedded default store (SQLite at `path`, created and migrated as needed).
pub async fn open(path: &Path) -> DbResult<Arc<dyn Store>> {
    open_with(path, Durability::default()).await
}

/// Opens the SQLite store at `path` with a chosen [`Durability`].
pub async fn open_with(path: &Path, durability: Durability) -> DbResult<Arc<dyn Store>> {
    Ok(Arc::new(
        sqlite::SqliteStore::open_with(path, durability).await?,
    ))
}

/// What a committed write survives (SQLite in WAL mode either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL` (the default): a commit survives the process being killed (kill
    /// -9, out of memory, a panic) the moment it returns; the operating system crashing or
    /// the power failing can lose the last commits before it (those since the write-ahead log
    /// was last synced to disk, at most one checkpoint's worth), never corrupt the database.
    #[default]
    Process,
    /// `synchronous=FULL`: every commit is synced to disk before it returns, so it survives an
    /// operating system crash or power loss too; each commit waits for the disk.
    Power,
}
