//! The embedded SQLite backend (WAL): every aggregate trait of this crate, implemented in one
//! module per aggregate. The rarer reads and writes go through sqlx; the frequent writes run on
//! the write thread's own connection ([`write_thread`], rusqlite on the same SQLite library),
//! and the hot paths' point reads on the caller's thread ([`quick_reads`]).
//! The migrations in the repository's `migrations/` are compiled in and run at open.

use crate::*;
use async_trait::async_trait;
use checkpoints::Checkpointer;
use connections::Connections;
use futures::future::BoxFuture;
use instance_cache::InstanceCache;
use nitejar_sandbox::capabilities::kv::{KvQuota, KvStoreError};
use quick_reads::QuickReads;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use write_thread::WriteThread;

mod checkpoints;
mod connections;
mod events;
mod import;
mod instance_cache;
mod instances;
pub(crate) mod library;
mod plugins;
mod quick_reads;
mod runs;
mod skills;
mod write_thread;

/// Connections for the rarer reads (the admin API, lifecycle, a run's rarer lookups); the hot
/// paths' reads have connections of their own ([`quick_reads`]), writes too (see
/// [`SqliteStore`]). Four, sized when the run workers read here too: more only added thread
/// hand-offs on two cores (measured then: 8 finished fewer runs per second than 4).
const READ_CONNECTIONS: usize = 4;

/// The SQLite store (cheap to clone: shared connections).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Connections for the rarer reads (WAL: readers never wait for the writer).
    pool: Arc<Connections>,
    /// The writer: the connection the rarer writes go through, and the turn every write of
    /// this process waits for (the write thread's too). SQLite admits one writer at a time, and
    /// a connection that finds the write lock taken sleeps in SQLite's busy handler (1, 2, 5 ms
    /// and more) even when the holder is done a microsecond later: under load the connection
    /// threads spent a quarter of their time asleep that way. Queued here instead, writes wait
    /// their turn in order and never sleep on the lock (another process can still hold it:
    /// that is what the busy timeout is for).
    writer: Arc<Connections>,
    /// Where the frequent writes run, on a connection of their own (see [`write_thread`]).
    writes: Arc<WriteThread>,
    /// Connections for the hot paths' point reads, made on the caller's thread (see
    /// [`quick_reads`]).
    reads: Arc<QuickReads>,
    /// Copies the write-ahead log into the database off the writer's path (see
    /// [`checkpoints`]).
    checkpoints: Arc<Checkpointer>,
    /// Integration instances read lately (see [`instance_cache`]).
    instances: Arc<InstanceCache>,
}

impl SqliteStore {
    /// Opens (creating if needed) the SQLite database at `path` and runs migrations.
    pub async fn open(path: &Path) -> DbResult<SqliteStore> {
        Self::open_with(path, crate::Durability::default()).await
    }

    /// [`SqliteStore::open`] with a chosen [`crate::Durability`].
    pub async fn open_with(path: &Path, durability: crate::Durability) -> DbResult<SqliteStore> {
        library::configure();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        owner_only(path)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                crate::Durability::Process => SqliteSynchronous::Normal,
                crate::Durability::Power => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma(
                "wal_autocheckpoint",
                checkpoints::WAL_AUTOCHECKPOINT_PAGES.to_string(),
            );
        let writer = Connections::open(&opts, 1).await?;
        sqlx::migrate!("../../migrations")
            .run(&mut *writer.get().await?)
            .await?;
        let pool = Connections::open(&opts, READ_CONNECTIONS).await?;
        let writer = Arc::new(writer);
        let checkpoints = Arc::new(Checkpointer::start(path)?);
        Ok(SqliteStore {
            pool: Arc::new(pool),
            writes: Arc::new(WriteThread::start(
                path,
                durability,
                writer.clone(),
                checkpoints.clone(),
            )?),
            reads: Arc::new(QuickReads::new(path)),
            writer,
            checkpoints,
            instances: Arc::default(),
        })
    }

    /// Closes the connections (waits for those in use to be given back).
    pub async fn close(&self) {
        self.checkpoints.close();
        self.reads.close();
        self.pool.close().await;
        self.writer.close().await;
        self.writes.close();
        // Last: a read that began before the connections closed can no longer keep its row.
        self.instances.forget_all();
    }

    /// A plugin's kv value.
    pub async fn kv_get(&self, plugin_id: &str, key: &str) -> DbResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM plugin_kv WHERE plugin_id = ? AND key = ?")
                .bind(plugin_id)
                .bind(key)
                .fetch_optional(&mut *self.pool.get().await?)
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
        let (plugin, k, v) = (plugin_id.to_string(), key.to_string(), value.to_vec());
        let written = self
            .write(move |c| {
                Ok(c.prepare_cached(
                    "INSERT INTO plugin_kv (plugin_id, key, value, updated_at)
                     SELECT ?1, ?2, ?3, ?4
                     WHERE (SELECT COUNT(*) FROM plugin_kv WHERE plugin_id = ?1 AND key <> ?2) < ?5
                       AND (SELECT COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(value)), 0)
                            FROM plugin_kv WHERE plugin_id = ?1 AND key <> ?2) + ?6 <= ?7
                     ON CONFLICT(plugin_id, key) DO UPDATE
                       SET value = excluded.value, updated_at = excluded.updated_at",
                )?
                .execute(rusqlite::params![
                    plugin,
                    k,
                    v,
                    now_ms(),
                    max_keys as i64,
                    size,
                    max_bytes as i64
                ])?)
            })
            .await?;
        if written > 0 {
            return Ok(None);
        }
        let (keys,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM plugin_kv WHERE plugin_id = ? AND key <> ?")
                .bind(plugin_id)
                .bind(key)
                .fetch_one(&mut *self.pool.get().await?)
                .await?;
        Ok(Some(if keys as u64 >= max_keys {
            KvQuotaHit::Keys
        } else {
            KvQuotaHit::Bytes
        }))
    }

    /// Deletes a plugin's kv key; returns whether it existed.
    pub async fn kv_delete(&self, plugin_id: &str, key: &str) -> DbResult<bool> {
        let (plugin, key) = (plugin_id.to_string(), key.to_string());
        self.write(move |c| Ok(runs::forget_now(c, &plugin, &key)?))
            .await
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
        .fetch_all(&mut *self.pool.get().await?)
        .await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn probe_write(&self) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO host_health (id, checked_at) VALUES (1, ?)
             ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(now_ms())
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(())
    }
}

/// The database as the sandbox's kv store: every call scoped to the plugin id the sandbox
/// passes, quotas checked in the same statement as the write.
impl nitejar_sandbox::capabilities::kv::KvStore for SqliteStore {
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

/// The database holds encrypted secrets, configs and every receipt: it is created readable by
/// its owner only (SQLite gives its `-wal` and `-shm` files the same mode), and an existing file
/// readable by others is narrowed to the owner, with a warning.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
        }
        let with = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name)
        };
        for file in [with(""), with("-wal"), with("-shm")] {
            let file = file.as_path();
            let Ok(m) = std::fs::metadata(file) else {
                continue;
            };
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %file.display(),
                    mode = format!("{mode:o}"),
                    "readable by other users; narrowing it to the owner (0600)"
                );
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kv_quotas_count_keys_and_bytes_and_a_replaced_value_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
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

    /// What a load reads in one snapshot is what the separate reads return; an unknown plugin
    /// has none; load outcomes are recorded on the rows in one write.
    #[tokio::test]
    async fn load_inputs_match_the_separate_reads_and_load_outcomes_are_recorded() {
        use nitejar_sandbox::hooks::{HookName, HookOverride};
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        for id in ["a", "b"] {
            db.record_install(&InstallRecord {
                plugin_id: id,
                name: id,
                trust_level: "untrusted",
                source_kind: "local",
                source_ref: Some("/pkg"),
                version: "1.0.0",
                checksum: "c0ffee",
                install_path: "/plugins/a/versions/1.0.0",
                manifest_json: "{}",
                api_version: "0.1.0",
                wasm: b"\0asm",
                signature_json: Some("{\"sig\":1}"),
                source_json: None,
            })
            .await
            .unwrap();
        }
        let perms = ["network:api.example.com".to_string(), "secret:token".into()];
        db.ensure_disclosures("a", &perms).await.unwrap();
        db.acknowledge("a", &perms[..1]).await.unwrap();
        db.set_secret("a", "token", "sealed").await.unwrap();
        db.set_fuel_override("a", Some(5_000)).await.unwrap();
        let over = HookOverride {
            priority: Some(7),
            fail_policy: None,
            timeout_ms: Some(90),
            enabled: None,
        };
        db.set_hook_override("a", HookName::ResponsePreDeliver, Some(&over))
            .await
            .unwrap();

        let got = db.load_inputs("a").await.unwrap().unwrap();
        let row = db.get_plugin("a").await.unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&got.plugin).unwrap(),
            serde_json::to_value(&row).unwrap()
        );
        let version = got.version.unwrap();
        let stored = db.get_version("a", "1.0.0").await.unwrap().unwrap();
        assert_eq!(
            (version.checksum.as_str(), version.signature_json.as_deref()),
            (stored.checksum.as_str(), stored.signature_json.as_deref())
        );
        assert_eq!(got.disclosures, db.list_disclosures("a").await.unwrap());
        assert!(got.disclosures.iter().any(|d| d.acknowledged));
        assert_eq!(got.secrets, db.list_secrets("a").await.unwrap());
        assert_eq!(got.fuel_per_call, Some(5_000));
        assert_eq!(
            got.hook_overrides,
            db.list_hook_overrides("a").await.unwrap()
        );
        assert_eq!(got.hook_overrides.len(), 1);
        // Another plugin's settings are not mixed in; an unknown plugin has no inputs.
        let b = db.load_inputs("b").await.unwrap().unwrap();
        assert!(b.disclosures.is_empty() && b.secrets.is_empty() && b.hook_overrides.is_empty());
        assert_eq!(b.fuel_per_call, None);
        assert!(db.load_inputs("nope").await.unwrap().is_none());

        db.set_plugin_load_errors(&[("a".into(), Some("it broke".into())), ("b".into(), None)])
            .await
            .unwrap();
        let error = |id: &'static str| {
            let db = db.clone();
            async move { db.get_plugin(id).await.unwrap().unwrap().last_load_error }
        };
        assert_eq!(error("a").await.as_deref(), Some("it broke"));
        assert_eq!(error("b").await, None);
        db.set_plugin_load_errors(&[("a".into(), None)])
            .await
            .unwrap();
        assert_eq!(error("a").await, None, "cleared by the next good load");
    }

    /// Work item `id` of `instance` with idempotency key `key` and job plan `job`.
    fn create(id: &str, instance: &str, key: &str, job: JobPlan) -> WorkItemCreate {
        WorkItemCreate {
            id: id.into(),
            item: NewWorkItem {
                plugin_instance_id: instance.into(),
                integration_type: "webhook".into(),
                title: id.into(),
                text: id.into(),
                session_key: "s".into(),
                source_ref: key.into(),
                sender_json: None,
                command: None,
                payload_json: "{}".into(),
                response_context_json: None,
            },
            idempotency_key: key.into(),
            job,
        }
    }

    /// Many one-item writes at once, as webhook deliveries could make them (the write thread
    /// puts those waiting together into one commit, each in a savepoint): each is answered with
    /// its own outcome (new, or the work item its key made first), and exactly one work item
    /// per key is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_one_item_writes_each_get_their_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        // 300 deliveries of 200 keys: keys 0..100 are sent twice.
        let sends = (0..300).map(|n| {
            let db = db.clone();
            let item = create(
                &format!("w{n}"),
                "i",
                &format!("k{}", n % 200),
                JobPlan::None,
            );
            tokio::spawn(async move { (n, db.create_work_items(&[item]).await.unwrap()) })
        });
        let mut first_of_key = std::collections::HashMap::new();
        let mut duplicates = Vec::new();
        for s in sends {
            let (n, mut outcomes) = s.await.unwrap();
            assert_eq!(outcomes.len(), 1);
            match outcomes.remove(0).outcome {
                CreateOutcome::Created(id) => {
                    assert_eq!(id, format!("w{n}"));
                    assert!(first_of_key.insert(n % 200, id).is_none(), "one per key");
                }
                CreateOutcome::Duplicate(id) => duplicates.push((n % 200, id)),
            }
        }
        assert_eq!(first_of_key.len(), 200);
        assert_eq!(duplicates.len(), 100);
        for (key, id) in duplicates {
            assert_eq!(
                first_of_key[&key], id,
                "a duplicate names its key's work item"
            );
        }
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM work_items")
            .fetch_one(&mut *db.pool.get().await.unwrap())
            .await
            .unwrap();
        assert_eq!(stored, 200);
    }

    /// Work item `w` of instance `i` with job `j` for agent `a` (`held`: not claimable yet).
    async fn work_item_w_with_job_j(db: &SqliteStore, held: bool) -> crate::Created {
        let job = JobPlan::Agent {
            job_id: "j".into(),
            agent_id: "a".into(),
            held,
        };
        db.create_work_items(&[create("w", "i", "k", job)])
            .await
            .unwrap()
            .remove(0)
    }

    /// A claimed job whose run could not record its end goes back to the queue: only while it
    /// is still `running` and claimed by the same worker, and a host fault (the database
    /// refused a write) does not count the attempt.
    #[tokio::test]
    async fn a_claimed_job_is_returned_to_the_queue_by_its_worker_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        sqlx::query(
            "INSERT INTO agents (id, name, system_prompt, model_json, created_at, updated_at)
             VALUES ('a', 'a', '', '{}', 0, 0)",
        )
        .execute(&mut *db.pool.get().await.unwrap())
        .await
        .unwrap();
        let created = work_item_w_with_job_j(&db, true).await;
        assert_eq!(created.job_id.as_deref(), Some("j"));
        db.release_job("j").await.unwrap();
        let job = db.claim_job("one").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.attempts), ("running", 1));
        assert!(
            !db.return_job("j", "other", true).await.unwrap(),
            "not its job"
        );
        assert!(db.return_job("j", "one", true).await.unwrap());
        let job = db.get_job("j").await.unwrap().unwrap();
        assert_eq!(
            (job.status.as_str(), job.attempts, job.claimed_by.as_deref()),
            ("queued", 0, None),
            "a host fault does not count"
        );
        db.claim_job("two").await.unwrap().unwrap();
        assert!(db.return_job("j", "two", false).await.unwrap());
        assert_eq!(db.get_job("j").await.unwrap().unwrap().attempts, 1);
        let job = db.claim_job("two").await.unwrap().unwrap();
        db.finish_job(&job, &JobEnd::new("done")).await.unwrap();
        assert!(
            !db.return_job("j", "two", true).await.unwrap(),
            "a finished job stays finished"
        );
        assert_eq!(db.get_job("j").await.unwrap().unwrap().status, "done");
    }

    /// A run reads its work item, instance and agent in one round trip, and writes its reply
    /// (with the steps so far and, when settled, the removal of the delivery guard) and its end
    /// (with the last steps) in one round trip each.
    #[tokio::test]
    async fn a_run_reads_and_writes_in_few_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        sqlx::query(
            "INSERT INTO agents (id, name, system_prompt, model_json, created_at, updated_at)
             VALUES ('a', 'a', '', '{}', 0, 0);
             INSERT INTO plugin_instances (id, plugin_id, type, name, config_json, created_at, updated_at)
             VALUES ('i', 'plug', 'webhook', 'i', '{}', 0, 0);",
        )
        .execute(&mut *db.pool.get().await.unwrap())
        .await
        .unwrap();
        work_item_w_with_job_j(&db, false).await;
        let job = db.claim_job("one").await.unwrap().unwrap();

        let inputs = db.run_inputs("w", "a").await.unwrap();
        assert_eq!(inputs.item.unwrap().id, "w");
        assert_eq!(inputs.instance.unwrap().plugin_id, "plug");
        assert_eq!(inputs.agent.unwrap().id, "a");
        let gone = db.run_inputs("nope", "a").await.unwrap();
        assert!(gone.item.is_none() && gone.instance.is_none());
        assert_eq!(
            gone.agent.unwrap().id,
            "a",
            "a later statement still answers"
        );
        assert!(db.run_inputs("w", "nope").await.unwrap().agent.is_none());

        let step = |kind: &str| NewStep {
            turn: 1,
            kind: kind.into(),
            detail: serde_json::json!({ "k": kind }),
            created_at: 5,
        };
        let guard = "nitejar/delivery/j";
        assert_eq!(
            db.kv_set_within("plug", guard, b"1", 10, 1000)
                .await
                .unwrap(),
            None
        );
        let mut row = DeliveryRow {
            job_id: "j".into(),
            work_item_id: "w".into(),
            status: "posting".into(),
            content: Some("hi".into()),
            attempts: 1,
            external_id: None,
            error: None,
            created_at: 1,
            updated_at: 1,
        };
        db.record_delivery(
            &row,
            job.attempts,
            &[step("prompt"), step("model_call")],
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            db.get_delivery("j").await.unwrap().unwrap().status,
            "posting"
        );
        assert!(db.kv_get("plug", guard).await.unwrap().is_some());
        row.status = "delivered".into();
        row.external_id = Some("x1".into());
        db.record_delivery(&row, job.attempts, &[step("final")], Some(("plug", guard)))
            .await
            .unwrap();
        let d = db.get_delivery("j").await.unwrap().unwrap();
        assert_eq!(
            (d.status.as_str(), d.external_id.as_deref()),
            ("delivered", Some("x1"))
        );
        assert_eq!(
            db.kv_get("plug", guard).await.unwrap(),
            None,
            "the guard is gone"
        );
        // A second job is queued: the end of the first claims it in the same round trip.
        db.create_work_items(&[create(
            "w2",
            "i",
            "k2",
            JobPlan::Agent {
                job_id: "j2".into(),
                agent_id: "a".into(),
                held: false,
            },
        )])
        .await
        .unwrap();
        let end = JobEnd {
            steps: &[step("note")],
            result_json: Some("{}"),
            claim_next: Some("one"),
            ..JobEnd::new("done")
        };
        let next = db.finish_job(&job, &end).await.unwrap().unwrap();
        assert_eq!(
            (
                next.id.as_str(),
                next.status.as_str(),
                next.claimed_by.as_deref()
            ),
            ("j2", "running", Some("one"))
        );
        let kinds: Vec<String> = db
            .list_steps("j")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(kinds, ["prompt", "model_call", "final", "note"]);
        assert_eq!(db.get_job("j").await.unwrap().unwrap().status, "done");
        assert_eq!(db.get_work_item("w").await.unwrap().unwrap().status, "done");
        assert_eq!(
            db.get_work_item("w2").await.unwrap().unwrap().status,
            "running"
        );

        // The reply settled with the end (nothing ran between them): steps, the settled
        // state, the guard's removal and the end in one round trip; nothing left to claim.
        assert_eq!(
            db.kv_set_within("plug", "nitejar/delivery/j2", b"1", 10, 1000)
                .await
                .unwrap(),
            None
        );
        let settled = DeliveryRow {
            job_id: "j2".into(),
            work_item_id: "w2".into(),
            status: "unsupported".into(),
            error: Some("no replies".into()),
            ..row.clone()
        };
        let end = JobEnd {
            steps: &[step("final")],
            delivery: Some(&settled),
            forget: Some(("plug", "nitejar/delivery/j2")),
            claim_next: Some("one"),
            ..JobEnd::new("done")
        };
        assert!(db.finish_job(&next, &end).await.unwrap().is_none());
        let d = db.get_delivery("j2").await.unwrap().unwrap();
        assert_eq!(
            (d.status.as_str(), d.error.as_deref()),
            ("unsupported", Some("no replies"))
        );
        assert_eq!(
            db.kv_get("plug", "nitejar/delivery/j2").await.unwrap(),
            None
        );
        assert_eq!(db.list_steps("j2").await.unwrap().len(), 1);
        assert_eq!(db.get_job("j2").await.unwrap().unwrap().status, "done");
    }

    fn receipt(n: usize, plugin: &str, kind: &str, status: &str) -> EventRow {
        EventRow {
            id: format!("{n:08}"),
            plugin_id: plugin.into(),
            plugin_version: None,
            kind: kind.into(),
            status: status.into(),
            work_item_id: None,
            job_id: None,
            hook_name: None,
            duration_ms: None,
            execution_mode: "wasm_sandbox".into(),
            detail_json: None,
            created_at: n as i64,
        }
    }

    /// Receipts handed over as they were emitted are stored with the row their conversion
    /// gives, ids (v7 uuids, as text) in batch order across batches; a batch is all or nothing.
    #[tokio::test]
    async fn receipts_are_stored_as_emitted_in_order() {
        use nitejar_sandbox::receipts::{CallDetail, Receipt};
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let made = |n: usize| {
            let r = Receipt::new(
                "p",
                "hook",
                if n.is_multiple_of(2) { "ok" } else { "error" },
            )
            .version("1.2.3")
            .correlate(Some("wi-1"), n.is_multiple_of(3).then_some("job-1"))
            .hook(Some("run.pre_prompt"))
            .duration(std::time::Duration::from_millis(n as u64));
            if n.is_multiple_of(2) {
                r.call_detail(CallDetail::of(
                    "run.pre_prompt",
                    &Ok::<(), nitejar_sandbox::failure::PluginFailure>(()),
                    &Default::default(),
                    Some(n as u64),
                ))
            } else {
                r.detail(serde_json::json!({ "n": n }))
            }
        };
        // Past one multi-row insert, with a rest; then fewer than one.
        let first: Vec<Receipt> = (0..37).map(made).collect();
        let second: Vec<Receipt> = (37..41).map(made).collect();
        db.insert_receipts(std::sync::Arc::new(first.clone()))
            .await
            .unwrap();
        db.insert_receipts(std::sync::Arc::new(second.clone()))
            .await
            .unwrap();
        db.insert_receipts(std::sync::Arc::new(Vec::new()))
            .await
            .unwrap();
        let mut stored = db.list_events("p", 100, None).await.unwrap();
        stored.reverse();
        assert_eq!(stored.len(), 41);
        for (row, r) in stored.iter().zip(first.into_iter().chain(second)) {
            assert!(uuid::Uuid::parse_str(&row.id).is_ok_and(|u| u.get_version_num() == 7));
            let expected = EventRow {
                id: row.id.clone(),
                ..EventRow::from(r)
            };
            assert_eq!(row, &expected);
        }
        assert!(
            stored.windows(2).all(|w| w[0].id < w[1].id),
            "ids follow the emit order"
        );
        // A batch with a row the table refuses stores none of its rows: the refused row
        // inside a multi-row insert (after rows of the same statement), or among the rest.
        db.write(|c| {
            c.execute_batch(
                "CREATE TRIGGER no_empty_kind BEFORE INSERT ON plugin_events
                 WHEN NEW.kind = '' BEGIN SELECT RAISE(ABORT, 'empty kind'); END",
            )?;
            Ok(())
        })
        .await
        .unwrap();
        for refused in [5, 18] {
            let mut bad = (0..20).map(made).collect::<Vec<_>>();
            bad[refused].kind = "".into();
            assert!(db.insert_receipts(std::sync::Arc::new(bad)).await.is_err());
            assert_eq!(db.list_events("p", 100, None).await.unwrap().len(), 41);
        }
    }

    /// Receipts filtered by kind and outcome page newest first, each filter using its index;
    /// the recent failures merge every plugin's.
    #[tokio::test]
    async fn receipts_filter_page_and_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let rows: Vec<EventRow> = (0..300)
            .map(|n| {
                let (kind, status) = match n % 3 {
                    0 => ("hook", "ok"),
                    1 => ("hook", "timeout"),
                    _ => ("upgrade", "ok"),
                };
                receipt(n, if n % 2 == 0 { "a" } else { "b" }, kind, status)
            })
            .collect();
        db.insert_events(&rows).await.unwrap();
        let filter = |kind: Option<&str>, status: Option<&str>| EventFilter {
            kind: kind.map(str::to_string),
            status: status.map(str::to_string),
        };
        let f = filter(Some("hook"), Some("timeout"));
        let page = db.search_events("a", &f, 20, None).await.unwrap();
        assert_eq!(page.len(), 20);
        assert!(page.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert!(
            page.iter()
                .all(|r| r.plugin_id == "a" && r.kind == "hook" && r.status == "timeout")
        );
        let next = db
            .search_events("a", &f, 500, Some(&page[19].id))
            .await
            .unwrap();
        assert_eq!(
            page.len() + next.len(),
            50,
            "every 6th receipt is a's hook timeout"
        );
        assert!(next[0].id < page[19].id);
        assert_eq!(
            db.search_events("b", &filter(Some("upgrade"), None), 500, None)
                .await
                .unwrap()
                .len(),
            50
        );
        assert_eq!(db.list_events("a", 500, None).await.unwrap().len(), 150);
        let failures = db.recent_failures(7).await.unwrap();
        assert_eq!(failures.len(), 7);
        assert_eq!(
            failures[0].id, "00000298",
            "the newest failure of any plugin"
        );
        // The common values are found too (through the plugin's receipts, newest first).
        let hooks_ok = db
            .search_events("a", &filter(Some("hook"), Some("ok")), 500, None)
            .await
            .unwrap();
        assert_eq!(hooks_ok.len(), 50, "every 6th receipt is a's hook ok");
        assert!(hooks_ok.windows(2).all(|w| w[0].id > w[1].id));
        // Each filter is served by an index, not by reading the plugin's other receipts: a
        // rare value by its partial index (the search states the index's condition), a common
        // one by the plugin's receipts newest first; never a sort.
        let plan = |sql: String| {
            let db = &db;
            async move {
                let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
                    "EXPLAIN QUERY PLAN SELECT * FROM plugin_events WHERE {sql} ORDER BY id DESC LIMIT 50"
                ))
                .fetch_all(&mut *db.pool.get().await.unwrap())
                .await
                .unwrap();
                plan.into_iter()
                    .map(|p| p.3)
                    .collect::<Vec<String>>()
                    .join("; ")
            }
        };
        for (kind, status, index) in [
            (Some("upgrade"), None, "idx_plugin_events_plugin_kind"),
            (None, Some("timeout"), "idx_plugin_events_plugin_status"),
            (
                Some("hook"),
                Some("timeout"),
                "idx_plugin_events_plugin_status",
            ),
            (Some("hook"), None, "idx_plugin_events_plugin "),
            (None, Some("ok"), "idx_plugin_events_plugin "),
        ] {
            let f = filter(kind, status);
            let mut sql = "plugin_id = 'a'".to_string();
            if let Some(k) = kind {
                sql.push_str(&format!(" AND kind = '{k}'"));
            }
            if let Some(s) = status {
                sql.push_str(&format!(" AND status = '{s}'"));
            }
            sql.push_str(&events::rare_terms(&f));
            let plan = plan(sql.clone()).await;
            assert!(
                plan.contains(index) && !plan.contains("TEMP B-TREE"),
                "{sql}: {plan}"
            );
        }
        // The recent failures: one range of the outcomes' index per outcome (the store's own
        // query), never a scan of the table.
        let failures_plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
            "EXPLAIN QUERY PLAN {}",
            events::RECENT_FAILURES_SQL
        ))
        .bind(7)
        .fetch_all(&mut *db.pool.get().await.unwrap())
        .await
        .unwrap();
        let uses = failures_plan
            .iter()
            .filter(|p| p.3.contains("USING INDEX idx_plugin_events_status"))
            .count();
        assert!(
            uses == 3
                && !failures_plan
                    .iter()
                    .any(|p| p.3.starts_with("SCAN plugin_events")),
            "{failures_plan:?}"
        );
        // The filters' indexes hold only the rare rows (partial indexes): an `ok` hook call is
        // in none of them.
        let partial: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%'
               AND name IN ('idx_plugin_events_status', 'idx_plugin_events_plugin_status',
                            'idx_plugin_events_plugin_kind')",
        )
        .fetch_one(&mut *db.pool.get().await.unwrap())
        .await
        .unwrap();
        assert_eq!(partial, 3);
        // Their conditions are plain comparisons: an insert builds no temporary table for them
        // (`kind NOT IN (...)` did, on every receipt).
        let program: Vec<String> = sqlx::query_as::<_, (i64, String)>(
            "EXPLAIN INSERT INTO plugin_events (id, plugin_id, kind, status, created_at)
             VALUES ('x', 'a', 'hook', 'ok', 0)",
        )
        .fetch_all(&mut *db.pool.get().await.unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|(_, op)| op)
        .collect();
        assert!(!program.is_empty(), "the insert's program was read");
        assert!(
            !program.iter().any(|op| op == "OpenEphemeral"),
            "{program:?}"
        );
    }

    /// The durability setting is the connection's `synchronous` mode: NORMAL (1) by default,
    /// FULL (2) when commits must survive power loss.
    #[tokio::test]
    async fn durability_sets_how_commits_are_synced() {
        let dir = tempfile::tempdir().unwrap();
        for (durability, mode) in [
            (crate::Durability::Process, 1),
            (crate::Durability::Power, 2),
        ] {
            let db = SqliteStore::open_with(&dir.path().join("t.db"), durability)
                .await
                .unwrap();
            let got: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *db.pool.get().await.unwrap())
                .await
                .unwrap();
            assert_eq!(got, mode, "{durability:?}");
            assert_eq!(
                db.writes.synchronous(),
                mode,
                "the write thread's connection"
            );
            db.close().await;
        }
    }

    /// A batch of work items is one transaction: a key already used (before, or by an earlier
    /// item of the same batch) creates nothing and names the first item; jobs go to the given
    /// agent, or to the instance's (assigned, else default, else none), held or queued.
    #[tokio::test]
    async fn a_batch_of_work_items_is_idempotent_within_and_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        sqlx::query(
            "INSERT INTO agents (id, name, system_prompt, model_json, is_default, created_at, updated_at)
             VALUES ('default', 'default', '', '{}', 1, 0, 0), ('assigned', 'assigned', '', '{}', 0, 1, 1)",
        )
        .execute(&mut *db.pool.get().await.unwrap())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO agent_assignments (plugin_instance_id, agent_id, created_at)
             VALUES ('i2', 'assigned', 0)",
        )
        .execute(&mut *db.pool.get().await.unwrap())
        .await
        .unwrap();
        let by_instance = |job: &str| JobPlan::InstanceAgent {
            job_id: job.into(),
            held: false,
        };
        let out = db
            .create_work_items(&[
                create("w1", "i1", "k1", by_instance("j1")),
                create("w2", "i2", "k1", by_instance("j2")),
                create("w3", "i1", "k1", by_instance("j3")),
                create(
                    "w4",
                    "i1",
                    "k4",
                    JobPlan::Agent {
                        job_id: "j4".into(),
                        agent_id: "assigned".into(),
                        held: true,
                    },
                ),
                create("w5", "i1", "k5", JobPlan::None),
            ])
            .await
            .unwrap();
        let outcomes: Vec<(CreateOutcome, Option<&str>)> = out
            .iter()
            .map(|c| (c.outcome.clone(), c.job_id.as_deref()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (CreateOutcome::Created("w1".into()), Some("j1")),
                (CreateOutcome::Created("w2".into()), Some("j2")),
                (CreateOutcome::Duplicate("w1".into()), None),
                (CreateOutcome::Created("w4".into()), Some("j4")),
                (CreateOutcome::Created("w5".into()), None),
            ]
        );
        let jobs: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, agent_id, status FROM jobs ORDER BY id")
                .fetch_all(&mut *db.pool.get().await.unwrap())
                .await
                .unwrap();
        let jobs: Vec<(&str, &str, &str)> = jobs
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        assert_eq!(
            jobs,
            [
                ("j1", "default", "queued"),
                ("j2", "assigned", "queued"),
                ("j4", "assigned", "held"),
            ]
        );
        // A later batch: the key is known, a new one is not.
        let out = db
            .create_work_items(&[
                create("w6", "i2", "k1", by_instance("j6")),
                create("w7", "i1", "k7", by_instance("j7")),
            ])
            .await
            .unwrap();
        assert_eq!(out[0].outcome, CreateOutcome::Duplicate("w2".into()));
        assert_eq!(out[1].outcome, CreateOutcome::Created("w7".into()));
        let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM work_items")
            .fetch_one(&mut *db.pool.get().await.unwrap())
            .await
            .unwrap();
        assert_eq!(items, 5);
        // Without any agent, an instance's item gets no job.
        sqlx::query("DELETE FROM agents")
            .execute(&mut *db.pool.get().await.unwrap())
            .await
            .unwrap();
        let out = db
            .create_work_items(&[create("w8", "i1", "k8", by_instance("j8"))])
            .await
            .unwrap();
        assert_eq!(out[0].job_id, None);
    }

    /// The queries every run makes are served by indexes: a session's turns and their replies
    /// (no scan of the deliveries, no sort), and the claim of the oldest queued job.
    #[tokio::test]
    async fn the_run_path_queries_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        for (sql, binds) in [
            (instances::SESSION_HISTORY_SQL, 5),
            (runs::CLAIM_JOB_SQL, 2),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
            for _ in 0..binds {
                q = q.bind("x");
            }
            let plan = q
                .fetch_all(&mut *db.pool.get().await.unwrap())
                .await
                .unwrap();
            let text: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
            assert!(
                !text
                    .iter()
                    .any(|t| t.starts_with("SCAN") || t.contains("TEMP B-TREE")),
                "{sql}: {text:?}"
            );
        }
    }

    /// The indexes that leave NULLs out (migration 0013: a parse receipt has no work item, a
    /// job no finish time until it ends) still serve the queries that read them.
    #[tokio::test]
    async fn the_indexes_without_nulls_still_serve_their_queries() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        for (sql, index) in [
            (events::WORK_ITEM_EVENTS_SQL, "idx_plugin_events_work_item"),
            (runs::FINISHED_PER_MINUTE_SQL, "idx_jobs_finished"),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .bind(1)
                    .fetch_all(&mut *db.pool.get().await.unwrap())
                    .await
                    .unwrap();
            let text: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
            assert!(
                text.iter().any(|t| t.contains(&format!("INDEX {index} ")))
                    && !text.iter().any(|t| t.starts_with("SCAN")),
                "{sql}: {text:?}"
            );
        }
    }

    /// An install of an earlier version upgrades to Nitejar's keys (migration 0008): a
    /// redelivery of an update stored as `update:<id>` is still recognised, and conversations
    /// keep one session.
    #[tokio::test]
    async fn keys_stored_in_the_earlier_formats_are_rewritten_to_nitejars() {
        // This test opens SQLite before any store: the library is configured first, as every
        // way into SQLite in this crate does (`library::a_store_opened_first_...` relies on it).
        library::configure();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            // The database as the version before 0008 left it.
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(&path)
                        .create_if_missing(true),
                )
                .await
                .unwrap();
            let mut before = sqlx::migrate!("../../migrations");
            before.migrations = before
                .migrations
                .iter()
                .filter(|m| m.version < 8)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            before.run(&pool).await.unwrap();
            for (id, kind) in [("tg", "telegram"), ("gh", "github"), ("wh", "webhook")] {
                sqlx::query(
                    "INSERT INTO plugin_instances (id, plugin_id, type, name, config_json,
                       created_at, updated_at) VALUES (?, ?, ?, ?, '{}', 0, 0)",
                )
                .bind(id)
                .bind(format!("builtin.{kind}"))
                .bind(kind)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
            }
            let rows = [
                (
                    "w1",
                    "tg",
                    "telegram",
                    "telegram:-100",
                    "telegram:chat:-100/message:5",
                    None,
                ),
                (
                    "w2",
                    "tg",
                    "telegram",
                    "telegram:-100:77",
                    "telegram:chat:-100/message:6",
                    Some(r#"{"chatId":-100,"messageId":6,"messageThreadId":77}"#),
                ),
                (
                    "w3",
                    "gh",
                    "github",
                    "github:acme/api#12",
                    "github:acme/api/issues/12#comment-999",
                    None,
                ),
                (
                    "w4",
                    "gh",
                    "github",
                    "github:acme/api#13",
                    "github:acme/api/issues/13#opened",
                    None,
                ),
                (
                    "w5",
                    "gh",
                    "github",
                    "github:acme/api#14",
                    "github:acme/api/check-runs/4242",
                    None,
                ),
                (
                    "w6",
                    "wh",
                    "webhook",
                    "github:acme/api#15",
                    "update:1",
                    None,
                ),
            ];
            for (id, inst, kind, session, source, ctx) in rows {
                sqlx::query(
                    "INSERT INTO work_items (id, plugin_instance_id, integration_type, title, text,
                       session_key, source_ref, payload_json, response_context_json, created_at,
                       updated_at) VALUES (?, ?, ?, 't', 't', ?, ?, '{}', ?, 0, 0)",
                )
                .bind(id)
                .bind(inst)
                .bind(kind)
                .bind(session)
                .bind(source)
                .bind(ctx)
                .execute(&pool)
                .await
                .unwrap();
            }
            for (inst, key) in [
                ("tg", "update:730918401"),
                ("gh", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                ("wh", "update:1"),
            ] {
                sqlx::query(
                    "INSERT INTO idempotency_keys (plugin_instance_id, key, work_item_id,
                       created_at) VALUES (?, ?, 'w1', 0)",
                )
                .bind(inst)
                .bind(key)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let db = SqliteStore::open(&path).await.unwrap();
        let items: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, session_key, source_ref FROM work_items ORDER BY id")
                .fetch_all(&mut *db.pool.get().await.unwrap())
                .await
                .unwrap();
        let expected = [
            ("w1", "telegram:-100", "telegram:-100:5"),
            ("w2", "telegram:-100:thread:77", "telegram:-100:77:6"),
            ("w3", "acme/api#issue:12", "acme/api#issue:12#comment:999"),
            ("w4", "acme/api#issue:13", "acme/api#issue:13"),
            ("w5", "acme/api#issue:14", "acme/api#pr:14#check:4242"),
            // Another integration's rows are not touched, whatever they look like.
            ("w6", "github:acme/api#15", "update:1"),
        ];
        let got: Vec<(&str, &str, &str)> = items
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        assert_eq!(got, expected);
        let keys: Vec<(String, String)> =
            sqlx::query_as("SELECT plugin_instance_id, key FROM idempotency_keys ORDER BY 1")
                .fetch_all(&mut *db.pool.get().await.unwrap())
                .await
                .unwrap();
        assert_eq!(
            keys,
            [
                (
                    "gh".into(),
                    "github:72d3162e-cc78-11e3-81ab-4c9367dc0958".into()
                ),
                ("tg".into(), "telegram:730918401".into()),
                ("wh".into(), "update:1".into()),
            ]
        );
    }
}
