//! SQL of the instance and work item aggregates.

use super::SqliteStore;
use super::write_thread::Priority;
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
        let _forget = self.instances.writing(id);
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
        use rusqlite::OptionalExtension;
        if let Some(row) = self.instances.get(id) {
            return Ok(Some(row));
        }
        let (generation, read_at) = (self.instances.generation(), std::time::Instant::now());
        let id = id.to_owned();
        let row = self
            .read(move |c| {
                c.prepare_cached("SELECT * FROM plugin_instances WHERE id = ?")?
                    .query_row([&id], instance_row)
                    .optional()
            })
            .await?;
        if let Some(row) = &row {
            self.instances.put(row, generation, read_at);
        }
        Ok(row)
    }

    async fn update_instance(
        &self,
        id: &str,
        name: Option<&str>,
        config_json: Option<&str>,
    ) -> DbResult<()> {
        let _forget = self.instances.writing(id);
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
        let _forget = self.instances.writing(id);
        sqlx::query("UPDATE plugin_instances SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *self.writer.get().await?)
            .await?;
        Ok(())
    }

    async fn delete_instance(&self, id: &str) -> DbResult<bool> {
        let _forget = self.instances.writing(id);
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

/// A `plugin_instances` row read by a rusqlite connection.
pub(super) fn instance_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        id: r.get("id")?,
        plugin_id: r.get("plugin_id")?,
        integration_type: r.get("type")?,
        name: r.get("name")?,
        config_json: r.get("config_json")?,
        enabled: r.get("enabled")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

/// A `work_items` row read by a rusqlite connection.
pub(super) fn work_item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkItemRow> {
    Ok(WorkItemRow {
        id: r.get("id")?,
        plugin_instance_id: r.get("plugin_instance_id")?,
        integration_type: r.get("integration_type")?,
        title: r.get("title")?,
        text: r.get("text")?,
        session_key: r.get("session_key")?,
        source_ref: r.get("source_ref")?,
        command: r.get("command")?,
        payload_json: r.get("payload_json")?,
        response_context_json: r.get("response_context_json")?,
        status: r.get("status")?,
        created_at: r.get("created_at")?,
    })
}

/// [`WorkItemStore::create_work_items`], on the write thread's connection (all of it is
/// written or none: see [`super::write_thread`]), one prepared statement per row.
fn create_work_items_now(
    c: &rusqlite::Connection,
    batch: &[WorkItemCreate],
) -> DbResult<Vec<Created>> {
    use rusqlite::{OptionalExtension, params};
    let now = now_ms();
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut key = c.prepare_cached(
            "INSERT INTO idempotency_keys (plugin_instance_id, key, work_item_id, created_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )?;
        let mut first = c.prepare_cached(
            "SELECT work_item_id FROM idempotency_keys WHERE plugin_instance_id = ?1 AND key = ?2",
        )?;
        let mut item = c.prepare_cached(
            "INSERT INTO work_items (id, plugin_instance_id, integration_type, title, text,
               session_key, source_ref, sender_json, command, payload_json,
               response_context_json, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'pending', ?12, ?12)",
        )?;
        let mut agent_of = c.prepare_cached(AGENT_FOR_INSTANCE_ID_SQL)?;
        let mut job = c.prepare_cached(
            "INSERT INTO jobs (id, work_item_id, agent_id, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?;
        // The instances' agents, once per instance of the batch, when a plan asks for them.
        let mut agents = std::collections::HashMap::<&str, Option<String>>::new();
        // In batch order: of two items with one key, the first wins, as between batches.
        for create in batch {
            let i = &create.item;
            if key.execute(params![
                i.plugin_instance_id,
                create.idempotency_key,
                create.id,
                now
            ])? == 0
            {
                // A key used before: the work item it created (in this transaction's view).
                let id: String = first
                    .query_row(params![i.plugin_instance_id, create.idempotency_key], |r| {
                        r.get(0)
                    })?;
                outcomes.push(Created {
                    outcome: CreateOutcome::Duplicate(id),
                    job_id: None,
                });
                continue;
            }
            item.execute(params![
                create.id,
                i.plugin_instance_id,
                i.integration_type,
                i.title,
                i.text,
                i.session_key,
                i.source_ref,
                i.sender_json,
                i.command,
                i.payload_json,
                i.response_context_json,
                now
            ])?;
            let plan = match &create.job {
                JobPlan::None => None,
                JobPlan::Agent {
                    job_id,
                    agent_id,
                    held,
                } => Some((job_id, Some(agent_id.clone()), *held)),
                JobPlan::InstanceAgent { job_id, held } => {
                    let agent = match agents.get(i.plugin_instance_id.as_str()) {
                        Some(a) => a.clone(),
                        None => {
                            let a: Option<String> = agent_of
                                .query_row([&i.plugin_instance_id], |r| r.get(0))
                                .optional()?;
                            agents.insert(&i.plugin_instance_id, a.clone());
                            a
                        }
                    };
                    Some((job_id, agent, *held))
                }
            };
            let job_id = match plan {
                Some((job_id, Some(agent), held)) => {
                    let status = if held { "held" } else { "queued" };
                    job.execute(params![job_id, create.id, agent, status, now])?;
                    Some(job_id.clone())
                }
                // No job, or no agent answers the instance.
                _ => None,
            };
            outcomes.push(Created {
                outcome: CreateOutcome::Created(create.id.clone()),
                job_id,
            });
        }
    }
    Ok(outcomes)
}

#[async_trait]
impl WorkItemStore for SqliteStore {
    async fn create_work_items(&self, batch: &[WorkItemCreate]) -> DbResult<Vec<Created>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch = batch.to_vec();
        self.write_as(Priority::Urgent, move |c| create_work_items_now(c, &batch))
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
        let (instance, session, created_at, id) = (
            item.plugin_instance_id.clone(),
            item.session_key.clone(),
            item.created_at,
            item.id.clone(),
        );
        self.read(move |c| {
            c.prepare_cached(SESSION_HISTORY_SQL)?
                .query_map(
                    rusqlite::params![instance, session, created_at, id, limit],
                    |r| {
                        Ok(SessionTurn {
                            work_item_id: r.get("work_item_id")?,
                            text: r.get("text")?,
                            command: r.get("command")?,
                            reply: r.get("reply")?,
                        })
                    },
                )?
                .collect()
        })
        .await
    }
}
