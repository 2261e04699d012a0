//! The Nitejar host's storage: every SQL statement lives here as a typed function (STYLE #9);
//! the application, the server and the CLI never write SQL.
//!
//! SQLite (WAL) via sqlx is the embedded default; the migrations in the repository's
//! `migrations/` are compiled in and run at open. This crate sits beside the sandbox at the
//! bottom of the host: it implements the sandbox's kv store trait and knows nothing above it.

use futures::future::BoxFuture;
use nitejar_sandbox::capabilities::kv::{KvQuota, KvStoreError};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};
use std::path::Path;
use std::time::Duration;

mod lifecycle;
mod runs;
mod skills;
pub use lifecycle::{Purge, VersionRow};
pub use runs::*;
pub use skills::{NewSkill, SkillRow};

/// A database failure. Handlers map it to a 500 without leaking the SQL.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The query failed.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database directory could not be created.
    #[error("cannot create the database directory: {0}")]
    Io(#[from] std::io::Error),
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

/// Handle to the database (cheap to clone).
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

/// A `plugins` row.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct PluginRow {
    /// Plugin id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the plugin runs.
    pub enabled: bool,
    /// builtin | trusted | untrusted | unknown.
    pub trust_level: String,
    /// builtin | npm | git | upload | local.
    pub source_kind: String,
    /// Package name, URL or file reference.
    pub source_ref: Option<String>,
    /// Active version.
    pub current_version: Option<String>,
    /// sha256 of the active component.
    pub current_checksum: Option<String>,
    /// Directory of the active version.
    pub current_install_path: Option<String>,
    /// Active manifest.
    pub manifest_json: String,
    /// Last load error, if the plugin failed to load.
    pub last_load_error: Option<String>,
    /// Install time.
    pub installed_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// A staged upgrade waiting for consent to its added permissions.
    pub pending_version: Option<String>,
    /// Why the host disabled the plugin on its own (crash-loop protection), as JSON.
    pub alert_json: Option<String>,
}

/// Everything recorded about one installed plugin version.
#[derive(Debug, Clone, Copy)]
pub struct InstallRecord<'a> {
    /// Plugin id.
    pub plugin_id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// builtin | trusted | untrusted | unknown.
    pub trust_level: &'a str,
    /// builtin | upload | local | npm | git.
    pub source_kind: &'a str,
    /// Package name, path, file or URL.
    pub source_ref: Option<&'a str>,
    /// Version installed (becomes current).
    pub version: &'a str,
    /// sha256 of the component.
    pub checksum: &'a str,
    /// Version directory.
    pub install_path: &'a str,
    /// Manifest JSON.
    pub manifest_json: &'a str,
    /// WIT API version of the component.
    pub api_version: &'a str,
    /// Component bytes (kept so boot can restore missing or tampered files).
    pub wasm: &'a [u8],
    /// The package signature with the digests it covers (boot re-checks it).
    pub signature_json: Option<&'a str>,
    /// Where the version came from: `{"kind", "ref", "commit"}`.
    pub source_json: Option<&'a str>,
}

/// A `plugin_disclosure_acks` row.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq)]
pub struct DisclosureRow {
    /// `network:<rule>`, `secret:<key>`, `fs:read:<dir>`, `fs:write:<dir>`.
    pub permission: String,
    /// Whether the operator granted it.
    pub acknowledged: bool,
}

/// A receipt as stored in `plugin_events`.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    /// UUIDv7 id (time-ordered).
    pub id: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Plugin version.
    pub plugin_version: Option<String>,
    /// Kind of action.
    pub kind: String,
    /// Outcome.
    pub status: String,
    /// Correlated work item.
    pub work_item_id: Option<String>,
    /// Correlated job.
    pub job_id: Option<String>,
    /// Hook event name, for hook receipts.
    pub hook_name: Option<String>,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// Always `wasm_sandbox` for plugin code.
    pub execution_mode: String,
    /// Structured detail (JSON).
    pub detail_json: Option<String>,
    /// Creation time.
    pub created_at: i64,
}

impl From<nitejar_sandbox::receipts::Receipt> for EventRow {
    fn from(r: nitejar_sandbox::receipts::Receipt) -> Self {
        EventRow {
            id: r.id,
            plugin_id: r.plugin_id,
            plugin_version: r.plugin_version,
            kind: r.kind,
            status: r.status,
            work_item_id: r.work_item_id,
            job_id: r.job_id,
            hook_name: r.hook_name,
            duration_ms: r.duration_ms,
            execution_mode: r.execution_mode,
            detail_json: r.detail_json,
            created_at: r.created_at,
        }
    }
}

/// A `plugin_instances` row.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct InstanceRow {
    /// Instance id.
    pub id: String,
    /// Owning plugin.
    pub plugin_id: String,
    /// Integration type.
    #[sqlx(rename = "type")]
    pub integration_type: String,
    /// Display name.
    pub name: String,
    /// Config JSON with sensitive fields encrypted.
    pub config_json: String,
    /// Whether webhooks are accepted.
    pub enabled: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A work item to create.
#[derive(Debug, Clone)]
pub struct NewWorkItem {
    /// Instance it came from.
    pub plugin_instance_id: String,
    /// Integration type.
    pub integration_type: String,
    /// Title.
    pub title: String,
    /// Message text.
    pub text: String,
    /// Session key.
    pub session_key: String,
    /// Platform reference.
    pub source_ref: String,
    /// Sender as JSON.
    pub sender_json: Option<String>,
    /// Command, if any.
    pub command: Option<String>,
    /// Payload JSON.
    pub payload_json: String,
    /// Response context JSON.
    pub response_context_json: Option<String>,
}

/// A `work_items` row.
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkItemRow {
    /// Id.
    pub id: String,
    /// Instance it came from.
    pub plugin_instance_id: String,
    /// Integration type.
    pub integration_type: String,
    /// Title.
    pub title: String,
    /// Message text.
    pub text: String,
    /// Session key.
    pub session_key: String,
    /// Platform reference.
    pub source_ref: String,
    /// Command, if any.
    pub command: Option<String>,
    /// Payload JSON.
    pub payload_json: String,
    /// Opaque JSON the integration gets back when replying.
    #[serde(skip)]
    pub response_context_json: Option<String>,
    /// Status (`pending`, `running`, `done`, `failed`, `blocked`).
    pub status: String,
    /// Creation time.
    pub created_at: i64,
}

/// Whether an idempotent create made a new row.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// A new work item with this id.
    Created(String),
    /// The key was seen before; this is the work item it created.
    Duplicate(String),
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `path` and runs migrations.
    pub async fn open(path: &Path) -> DbResult<Db> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("../../migrations").run(&pool).await?;
        Ok(Db { pool })
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- plugins -------------------------------------------------------------------------

    /// Records an install in one transaction: the plugin row (keeping `enabled` and
    /// `installed_at` of an existing row), the version row and the artifact bytes.
    pub async fn record_install(&self, v: &InstallRecord<'_>) -> DbResult<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO plugins (id, name, trust_level, source_kind, source_ref, current_version,
               current_checksum, current_install_path, manifest_json, installed_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, trust_level = excluded.trust_level,
               source_kind = excluded.source_kind, source_ref = excluded.source_ref,
               current_version = excluded.current_version, current_checksum = excluded.current_checksum,
               current_install_path = excluded.current_install_path,
               manifest_json = excluded.manifest_json, updated_at = excluded.updated_at",
        )
        .bind(v.plugin_id)
        .bind(v.name)
        .bind(v.trust_level)
        .bind(v.source_kind)
        .bind(v.source_ref)
        .bind(v.version)
        .bind(v.checksum)
        .bind(v.install_path)
        .bind(v.manifest_json)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        lifecycle::insert_version(&mut tx, v, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One plugin.
    pub async fn get_plugin(&self, id: &str) -> DbResult<Option<PluginRow>> {
        Ok(sqlx::query_as("SELECT * FROM plugins WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// All plugins, by id.
    pub async fn list_plugins(&self) -> DbResult<Vec<PluginRow>> {
        Ok(sqlx::query_as("SELECT * FROM plugins ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Enables or disables a plugin.
    pub async fn set_plugin_enabled(&self, id: &str, enabled: bool) -> DbResult<bool> {
        let r = sqlx::query("UPDATE plugins SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records (or clears) a plugin's load error.
    pub async fn set_plugin_load_error(&self, id: &str, error: Option<&str>) -> DbResult<()> {
        sqlx::query("UPDATE plugins SET last_load_error = ?, last_loaded_at = ? WHERE id = ?")
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The stored component bytes of a plugin version.
    pub async fn get_artifact(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> DbResult<Option<(String, Vec<u8>)>> {
        Ok(sqlx::query_as(
            "SELECT checksum, bytes FROM plugin_artifacts WHERE plugin_id = ? AND version = ?",
        )
        .bind(plugin_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    // ---- disclosures (grants) -------------------------------------------------------------

    /// Makes sure one disclosure row exists per permission; never acknowledges anything.
    pub async fn ensure_disclosures(
        &self,
        plugin_id: &str,
        permissions: &[String],
    ) -> DbResult<()> {
        for p in permissions {
            sqlx::query(
                "INSERT OR IGNORE INTO plugin_disclosure_acks (plugin_id, permission, scope) VALUES (?, ?, '')",
            )
            .bind(plugin_id)
            .bind(p)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Acknowledges (grants) the listed permissions; returns how many rows changed.
    pub async fn acknowledge(&self, plugin_id: &str, permissions: &[String]) -> DbResult<u64> {
        let mut n = 0;
        for p in permissions {
            n += sqlx::query(
                "UPDATE plugin_disclosure_acks SET acknowledged = 1, acknowledged_at = ?
                 WHERE plugin_id = ? AND permission = ? AND acknowledged = 0",
            )
            .bind(now_ms())
            .bind(plugin_id)
            .bind(p)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(n)
    }

    /// The disclosures of a plugin and whether each is granted.
    pub async fn list_disclosures(&self, plugin_id: &str) -> DbResult<Vec<DisclosureRow>> {
        Ok(sqlx::query_as(
            "SELECT permission, acknowledged FROM plugin_disclosure_acks WHERE plugin_id = ? ORDER BY permission",
        )
        .bind(plugin_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The permissions the operator granted a plugin.
    pub async fn granted_permissions(
        &self,
        plugin_id: &str,
    ) -> DbResult<std::collections::BTreeSet<String>> {
        Ok(self
            .list_disclosures(plugin_id)
            .await?
            .into_iter()
            .filter(|d| d.acknowledged)
            .map(|d| d.permission)
            .collect())
    }

    // ---- receipts -------------------------------------------------------------------------

    /// Writes a batch of receipts with one multi-row insert.
    pub async fn insert_events(&self, events: &[EventRow]) -> DbResult<()> {
        // 12 columns per row keeps each statement far below SQLite's bound-variable limit.
        for chunk in events.chunks(256) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO plugin_events (id, plugin_id, plugin_version, kind, status, work_item_id,
                   job_id, hook_name, duration_ms, execution_mode, detail_json, created_at) ",
            );
            q.push_values(chunk, |mut row, e| {
                row.push_bind(&e.id)
                    .push_bind(&e.plugin_id)
                    .push_bind(&e.plugin_version)
                    .push_bind(&e.kind)
                    .push_bind(&e.status)
                    .push_bind(&e.work_item_id)
                    .push_bind(&e.job_id)
                    .push_bind(&e.hook_name)
                    .push_bind(e.duration_ms)
                    .push_bind(&e.execution_mode)
                    .push_bind(&e.detail_json)
                    .push_bind(e.created_at);
            });
            q.build().execute(&self.pool).await?;
        }
        Ok(())
    }

    /// A page of a plugin's receipts, newest first; pass the last id as `before` for the next.
    pub async fn list_events(
        &self,
        plugin_id: &str,
        limit: u32,
        before: Option<&str>,
    ) -> DbResult<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM plugin_events WHERE plugin_id = ? AND (? IS NULL OR id < ?)
             ORDER BY id DESC LIMIT ?",
        )
        .bind(plugin_id)
        .bind(before)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    // ---- secrets and kv -------------------------------------------------------------------

    /// Stores an (already encrypted) secret value.
    pub async fn set_secret(
        &self,
        plugin_id: &str,
        key: &str,
        value_encrypted: &str,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO plugin_secrets (plugin_id, key, value_encrypted, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT(plugin_id, key) DO UPDATE SET value_encrypted = excluded.value_encrypted,
               updated_at = excluded.updated_at",
        )
        .bind(plugin_id)
        .bind(key)
        .bind(value_encrypted)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All (encrypted) secrets of a plugin.
    pub async fn list_secrets(&self, plugin_id: &str) -> DbResult<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT key, value_encrypted FROM plugin_secrets WHERE plugin_id = ?")
                .bind(plugin_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// A plugin's kv value.
    pub async fn kv_get(&self, plugin_id: &str, key: &str) -> DbResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM plugin_kv WHERE plugin_id = ? AND key = ?")
                .bind(plugin_id)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets a plugin's kv value unless the plugin would then hold more than `max_keys` keys or
    /// `max_bytes` bytes (keys and values; a replaced value counts once, at its new size). The
    /// check and the write are one statement, so concurrent sets cannot overshoot together.
    /// Returns `Ok(None)` when written, `Ok(Some(quota))` naming the quota that refused it.
    pub async fn kv_set_within(
        &self,
        plugin_id: &str,
        key: &str,
        value: &[u8],
        max_keys: u64,
        max_bytes: u64,
    ) -> DbResult<Option<KvQuotaHit>> {
        let size = (key.len() + value.len()) as i64;
        let written = sqlx::query(
            "INSERT INTO plugin_kv (plugin_id, key, value, updated_at)
             SELECT ?1, ?2, ?3, ?4
             WHERE (SELECT COUNT(*) FROM plugin_kv WHERE plugin_id = ?1 AND key <> ?2) < ?5
               AND (SELECT COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(value)), 0)
                    FROM plugin_kv WHERE plugin_id = ?1 AND key <> ?2) + ?6 <= ?7
             ON CONFLICT(plugin_id, key) DO UPDATE
               SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(plugin_id)
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .bind(max_keys as i64)
        .bind(size)
        .bind(max_bytes as i64)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if written > 0 {
            return Ok(None);
        }
        let (keys,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM plugin_kv WHERE plugin_id = ? AND key <> ?")
                .bind(plugin_id)
                .bind(key)
                .fetch_one(&self.pool)
                .await?;
        Ok(Some(if keys as u64 >= max_keys {
            KvQuotaHit::Keys
        } else {
            KvQuotaHit::Bytes
        }))
    }

    /// Deletes a plugin's kv key; returns whether it existed.
    pub async fn kv_delete(&self, plugin_id: &str, key: &str) -> DbResult<bool> {
        let r = sqlx::query("DELETE FROM plugin_kv WHERE plugin_id = ? AND key = ?")
            .bind(plugin_id)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A plugin's kv keys with `prefix`, in byte order.
    pub async fn kv_list(
        &self,
        plugin_id: &str,
        prefix: &str,
        limit: u32,
    ) -> DbResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM plugin_kv WHERE plugin_id = ? AND substr(key, 1, length(?)) = ?
             ORDER BY key LIMIT ?",
        )
        .bind(plugin_id)
        .bind(prefix)
        .bind(prefix)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    // ---- integration instances ------------------------------------------------------------

    /// Creates an integration instance.
    pub async fn insert_instance(
        &self,
        id: &str,
        plugin_id: &str,
        integration_type: &str,
        name: &str,
        config_json: &str,
        enabled: bool,
    ) -> DbResult<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO plugin_instances (id, plugin_id, type, name, config_json, enabled, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(plugin_id)
        .bind(integration_type)
        .bind(name)
        .bind(config_json)
        .bind(enabled)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One instance.
    pub async fn get_instance(&self, id: &str) -> DbResult<Option<InstanceRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_instances WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Changes an instance's name and/or stored config (each only when given).
    pub async fn update_instance(
        &self,
        id: &str,
        name: Option<&str>,
        config_json: Option<&str>,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE plugin_instances SET name = COALESCE(?, name),
             config_json = COALESCE(?, config_json), updated_at = ? WHERE id = ?",
        )
        .bind(name)
        .bind(config_json)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Enables or disables an instance.
    pub async fn set_instance_enabled(&self, id: &str, enabled: bool) -> DbResult<()> {
        sqlx::query("UPDATE plugin_instances SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes an instance and its agent assignment (work items, runs and idempotency keys
    /// stay: they are history). Returns whether it existed.
    pub async fn delete_instance(&self, id: &str) -> DbResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM agent_assignments WHERE plugin_instance_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM plugin_instances WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// All instances.
    pub async fn list_instances(&self) -> DbResult<Vec<InstanceRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_instances ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    // ---- work items -----------------------------------------------------------------------

    /// Creates a work item unless `idempotency_key` was already used on this instance.
    ///
    /// Atomic: the key row and the work item are written in one transaction, and the key's
    /// primary key (not a check-then-insert) decides which of concurrent deliveries wins.
    /// With `agent_id`, the agent's job is queued in the same transaction, so a created work
    /// item always has its job.
    /// The job, when given as `(job id, agent id)`, starts `held`: the ingress releases it after
    /// `work_item.post_create` and boot releases any a stopped process left held.
    pub async fn create_work_item_idempotent(
        &self,
        id: &str,
        item: &NewWorkItem,
        idempotency_key: &str,
        job: Option<(&str, &str)>,
    ) -> DbResult<CreateOutcome> {
        let id = id.to_string();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (plugin_instance_id, key, work_item_id, created_at)
             VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&item.plugin_instance_id)
        .bind(idempotency_key)
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let existing: String = sqlx::query_scalar(
                "SELECT work_item_id FROM idempotency_keys WHERE plugin_instance_id = ? AND key = ?",
            )
            .bind(&item.plugin_instance_id)
            .bind(idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(CreateOutcome::Duplicate(existing));
        }
        sqlx::query(
            "INSERT INTO work_items (id, plugin_instance_id, integration_type, title, text, session_key,
               source_ref, sender_json, command, payload_json, response_context_json, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        )
        .bind(&id)
        .bind(&item.plugin_instance_id)
        .bind(&item.integration_type)
        .bind(&item.title)
        .bind(&item.text)
        .bind(&item.session_key)
        .bind(&item.source_ref)
        .bind(&item.sender_json)
        .bind(&item.command)
        .bind(&item.payload_json)
        .bind(&item.response_context_json)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some((job_id, agent)) = job {
            sqlx::query(
                "INSERT INTO jobs (id, work_item_id, agent_id, status, created_at, updated_at)
                 VALUES (?, ?, ?, 'held', ?, ?)",
            )
            .bind(job_id)
            .bind(&id)
            .bind(agent)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(CreateOutcome::Created(id))
    }

    /// The work item an idempotency key already created, if any.
    pub async fn find_idempotent(&self, instance_id: &str, key: &str) -> DbResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT work_item_id FROM idempotency_keys WHERE plugin_instance_id = ? AND key = ?",
        )
        .bind(instance_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// One work item.
    pub async fn get_work_item(&self, id: &str) -> DbResult<Option<WorkItemRow>> {
        Ok(sqlx::query_as("SELECT * FROM work_items WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Work items of an instance, oldest first.
    pub async fn list_work_items(&self, instance_id: &str) -> DbResult<Vec<WorkItemRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM work_items WHERE plugin_instance_id = ? ORDER BY created_at, id",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// The database as the sandbox's kv store: every call scoped to the plugin id the sandbox
/// passes, quotas checked in the same statement as the write.
impl nitejar_sandbox::capabilities::kv::KvStore for Db {
    fn get<'a>(
        &'a self,
        plugin_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvStoreError>> {
        Box::pin(async move { self.kv_get(plugin_id, key).await.map_err(kv_storage) })
    }

    fn set<'a>(
        &'a self,
        plugin_id: &'a str,
        key: &'a str,
        value: &'a [u8],
        quota: KvQuota,
    ) -> BoxFuture<'a, Result<(), KvStoreError>> {
        Box::pin(async move {
            match self
                .kv_set_within(plugin_id, key, value, quota.max_keys, quota.max_bytes)
                .await
                .map_err(kv_storage)?
            {
                None => Ok(()),
                Some(KvQuotaHit::Keys) => Err(KvStoreError::TooManyKeys {
                    max: quota.max_keys,
                }),
                Some(KvQuotaHit::Bytes) => Err(KvStoreError::TooManyBytes {
                    max: quota.max_bytes,
                }),
            }
        })
    }

    fn delete<'a>(
        &'a self,
        plugin_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, KvStoreError>> {
        Box::pin(async move { self.kv_delete(plugin_id, key).await.map_err(kv_storage) })
    }

    fn list<'a>(
        &'a self,
        plugin_id: &'a str,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, KvStoreError>> {
        Box::pin(async move {
            self.kv_list(plugin_id, prefix, limit)
                .await
                .map_err(kv_storage)
        })
    }
}

fn kv_storage(e: DbError) -> KvStoreError {
    KvStoreError::Storage(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kv_quotas_count_keys_and_bytes_and_a_replaced_value_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).await.unwrap();
        let set = |key: &'static str, value: &'static [u8]| {
            let db = db.clone();
            async move { db.kv_set_within("p", key, value, 3, 30).await.unwrap() }
        };
        // Three keys of 6 bytes each (key + value).
        for key in ["a", "b", "c"] {
            assert_eq!(set(key, b"12345").await, None);
        }
        assert_eq!(set("d", b"1").await, Some(KvQuotaHit::Keys));
        assert_eq!(db.kv_get("p", "d").await.unwrap(), None, "nothing written");
        // Replacing "a" counts its new size only: 12 + 1 + 17 = 30 fits, 31 does not.
        assert_eq!(set("a", b"12345678901234567").await, None);
        assert_eq!(
            set("a", b"123456789012345678").await,
            Some(KvQuotaHit::Bytes)
        );
        assert_eq!(
            db.kv_get("p", "a").await.unwrap().as_deref(),
            Some(&b"12345678901234567"[..]),
            "the refused value did not replace the stored one"
        );
        // Keys are counted in bytes, not characters: with "c" gone, 24 bytes are stored, and a
        // key of four two-byte characters (8 bytes, 4 characters) would make 32.
        db.kv_delete("p", "c").await.unwrap();
        assert_eq!(
            db.kv_set_within("p", "éééé", b"", 3, 30).await.unwrap(),
            Some(KvQuotaHit::Bytes)
        );
        assert_eq!(
            db.kv_set_within("p", "ééé", b"", 3, 30).await.unwrap(),
            None
        );
        // Another plugin's quota is its own.
        assert_eq!(db.kv_set_within("q", "d", b"1", 3, 30).await.unwrap(), None);
    }
}
