//! SQL of the instance and work item aggregates.

use super::SqliteStore;
use crate::*;
use async_trait::async_trait;

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn insert_instance(
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
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(())
    }

    async fn get_instance(&self, id: &str) -> DbResult<Option<InstanceRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_instances WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *self.pool.get().await?)
                .await?,
        )
    }

    async fn update_instance(
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
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(())
    }

    async fn set_instance_enabled(&self, id: &str, enabled: bool) -> DbResult<()> {
        sqlx::query("UPDATE plugin_instances SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *self.writer.get().await?)
            .await?;
        Ok(())
    }

    async fn delete_instance(&self, id: &str) -> DbResult<bool> {
        let mut conn = self.writer.get().await?;
        let mut tx = conn.begin().await?;
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

    async fn list_instances(&self) -> DbResult<Vec<InstanceRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_instances ORDER BY created_at")
                .fetch_all(&mut *self.pool.get().await?)
                .await?,
        )
    }
}

/// A session's turns before a work item, newest first, each with its delivered reply (binds:
/// instance, session key, the item's created_at and id, limit). Served by
/// `idx_work_items_session` and `idx_deliveries_work_item` (see the store tests). A work item
/// has at most one job and a job one delivery, so the reply is one row.
pub(crate) const SESSION_HISTORY_SQL: &str = "SELECT w.id AS work_item_id, w.text, w.command,
                    (SELECT d.content FROM deliveries d
                     WHERE d.work_item_id = w.id AND d.status = 'delivered' LIMIT 1) AS reply
             FROM work_items w
             WHERE w.plugin_instance_id = ? AND w.session_key = ?
               AND (w.created_at, w.id) < (?, ?)
             ORDER BY w.created_at DESC, w.id DESC
             LIMIT ?";

/// The id of the agent that answers an instance (binds: instance): the assigned one, else the
/// oldest default.
pub(crate) const AGENT_FOR_INSTANCE_ID_SQL: &str = "SELECT a.id FROM agents a
     LEFT JOIN agent_assignments s ON s.agent_id = a.id AND s.plugin_instance_id = ?
     WHERE s.plugin_instance_id IS NOT NULL OR a.is_default = 1
     ORDER BY s.plugin_instance_id IS NULL, a.created_at LIMIT 1";

impl SqliteStore {
    /// [`WorkItemStore::create_work_items`], run on the write thread.
    async fn create_work_items_now(&self, batch: &[WorkItemCreate]) -> DbResult<Vec<Created>> {
        let now = now_ms();
        let mut conn = self.writer.get().await?;
        let mut tx = conn.begin().await?;
        // Which keys are new: SQLite inserts the rows in order, so of two items of this batch
        // with one key the first wins, as between batches.
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO idempotency_keys (plugin_instance_id, key, work_item_id, created_at) ",
        );
        q.push_values(batch, |mut b, c| {
            b.push_bind(&c.item.plugin_instance_id)
                .push_bind(&c.idempotency_key)
                .push_bind(&c.id)
                .push_bind(now);
        });
        q.push(" ON CONFLICT DO NOTHING RETURNING work_item_id");
        let inserted: std::collections::HashSet<String> = q
            .build_query_scalar::<String>()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let new: Vec<&WorkItemCreate> = batch.iter().filter(|c| inserted.contains(&c.id)).collect();
        if !new.is_empty() {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO work_items (id, plugin_instance_id, integration_type, title, text,
                   session_key, source_ref, sender_json, command, payload_json,
                   response_context_json, status, created_at, updated_at) ",
            );
            q.push_values(&new, |mut b, c| {
                let i = &c.item;
                b.push_bind(&c.id)
                    .push_bind(&i.plugin_instance_id)
                    .push_bind(&i.integration_type)
                    .push_bind(&i.title)
                    .push_bind(&i.text)
                    .push_bind(&i.session_key)
                    .push_bind(&i.source_ref)
                    .push_bind(&i.sender_json)
                    .push_bind(&i.command)
                    .push_bind(&i.payload_json)
                    .push_bind(&i.response_context_json)
                    .push_bind("pending")
                    .push_bind(now)
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        // The instances' agents, once per instance of the batch, when a plan asks for them.
        let mut agents = std::collections::HashMap::<&str, Option<String>>::new();
        for c in &new {
            if let JobPlan::InstanceAgent { .. } = c.job
                && !agents.contains_key(c.item.plugin_instance_id.as_str())
            {
                let agent: Option<String> = sqlx::query_scalar(AGENT_FOR_INSTANCE_ID_SQL)
                    .bind(&c.item.plugin_instance_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                agents.insert(&c.item.plugin_instance_id, agent);
            }
        }
        let jobs: Vec<(&str, &str, &str, &str)> = new
            .iter()
            .filter_map(|c| {
                let (job_id, agent, held) = match &c.job {
                    JobPlan::None => return None,
                    JobPlan::Agent {
                        job_id,
                        agent_id,
                        held,
                    } => (job_id.as_str(), agent_id.as_str(), *held),
                    JobPlan::InstanceAgent { job_id, held } => (
                        job_id.as_str(),
                        agents.get(c.item.plugin_instance_id.as_str())?.as_deref()?,
                        *held,
                    ),
                };
                Some((
                    job_id,
                    c.id.as_str(),
                    agent,
                    if held { "held" } else { "queued" },
                ))
            })
            .collect();
        if !jobs.is_empty() {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO jobs (id, work_item_id, agent_id, status, created_at, updated_at) ",
            );
            q.push_values(&jobs, |mut b, (job_id, item, agent, status)| {
                b.push_bind(*job_id)
                    .push_bind(*item)
                    .push_bind(*agent)
                    .push_bind(*status)
                    .push_bind(now)
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        // Keys used before: the work item they created.
        let mut existing = std::collections::HashMap::<(String, String), String>::new();
        let dups: Vec<&WorkItemCreate> =
            batch.iter().filter(|c| !inserted.contains(&c.id)).collect();
        if !dups.is_empty() {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT plugin_instance_id, key, work_item_id FROM idempotency_keys
                 WHERE (plugin_instance_id, key) IN (VALUES ",
            );
            let mut sep = q.separated(", ");
            for c in &dups {
                sep.push("(")
                    .push_bind_unseparated(&c.item.plugin_instance_id)
                    .push_unseparated(", ")
                    .push_bind_unseparated(&c.idempotency_key)
                    .push_unseparated(")");
            }
            q.push(")");
            for (instance, key, id) in q
                .build_query_as::<(String, String, String)>()
                .fetch_all(&mut *tx)
                .await?
            {
                existing.insert((instance, key), id);
            }
        }
        let job_of: std::collections::HashMap<&str, &str> =
            jobs.iter().map(|(job, item, _, _)| (*item, *job)).collect();
        let outcomes = batch
            .iter()
            .map(|c| {
                if inserted.contains(&c.id) {
                    return Ok(Created {
                        outcome: CreateOutcome::Created(c.id.clone()),
                        job_id: job_of.get(c.id.as_str()).map(|j| j.to_string()),
                    });
                }
                // A key that was not inserted exists (in this transaction's view).
                let key = (c.item.plugin_instance_id.clone(), c.idempotency_key.clone());
                let first = existing
                    .get(&key)
                    .cloned()
                    .ok_or(sqlx::Error::RowNotFound)?;
                Ok(Created {
                    outcome: CreateOutcome::Duplicate(first),
                    job_id: None,
                })
            })
            .collect::<DbResult<Vec<Created>>>()?;
        tx.commit().await?;
        Ok(outcomes)
    }
}

#[async_trait]
impl WorkItemStore for SqliteStore {
    async fn create_work_items(&self, batch: &[WorkItemCreate]) -> DbResult<Vec<Created>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch = batch.to_vec();
        self.on_write_thread(move |store| async move { store.create_work_items_now(&batch).await })
            .await
    }

    async fn find_idempotent(&self, instance_id: &str, key: &str) -> DbResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT work_item_id FROM idempotency_keys WHERE plugin_instance_id = ? AND key = ?",
        )
        .bind(instance_id)
        .bind(key)
        .fetch_optional(&mut *self.pool.get().await?)
        .await?)
    }

    async fn get_work_item(&self, id: &str) -> DbResult<Option<WorkItemRow>> {
        Ok(sqlx::query_as("SELECT * FROM work_items WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn list_work_items(&self, instance_id: &str) -> DbResult<Vec<WorkItemRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM work_items WHERE plugin_instance_id = ? ORDER BY created_at, id",
        )
        .bind(instance_id)
        .fetch_all(&mut *self.pool.get().await?)
        .await?)
    }

    async fn search_work_items(
        &self,
        filter: &WorkItemFilter,
        limit: u32,
        before: Option<(i64, String)>,
    ) -> DbResult<Vec<WorkItemRow>> {
        // Only the conditions that apply, so the planner can use the index that serves them.
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT * FROM work_items WHERE 1 = 1");
        if let Some(instance) = &filter.instance_id {
            q.push(" AND plugin_instance_id = ").push_bind(instance);
        }
        if let Some(status) = &filter.status {
            q.push(" AND status = ").push_bind(status);
        }
        if let Some((at, id)) = before {
            q.push(" AND (created_at < ")
                .push_bind(at)
                .push(" OR (created_at = ")
                .push_bind(at)
                .push(" AND id < ")
                .push_bind(id)
                .push("))");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(limit);
        Ok(q.build_query_as()
            .fetch_all(&mut *self.pool.get().await?)
            .await?)
    }

    async fn session_history(&self, item: &WorkItemRow, limit: u32) -> DbResult<Vec<SessionTurn>> {
        Ok(sqlx::query_as(SESSION_HISTORY_SQL)
            .bind(&item.plugin_instance_id)
            .bind(&item.session_key)
            .bind(item.created_at)
            .bind(&item.id)
            .bind(limit)
            .fetch_all(&mut *self.pool.get().await?)
            .await?)
    }
}
