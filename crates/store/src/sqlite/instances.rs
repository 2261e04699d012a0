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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_instance(&self, id: &str) -> DbResult<Option<InstanceRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_instances WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_instance_enabled(&self, id: &str, enabled: bool) -> DbResult<()> {
        sqlx::query("UPDATE plugin_instances SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_instance(&self, id: &str) -> DbResult<bool> {
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

    async fn list_instances(&self) -> DbResult<Vec<InstanceRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_instances ORDER BY created_at")
                .fetch_all(&self.pool)
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

#[async_trait]
impl WorkItemStore for SqliteStore {
    async fn create_work_item_idempotent(
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

    async fn find_idempotent(&self, instance_id: &str, key: &str) -> DbResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT work_item_id FROM idempotency_keys WHERE plugin_instance_id = ? AND key = ?",
        )
        .bind(instance_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn get_work_item(&self, id: &str) -> DbResult<Option<WorkItemRow>> {
        Ok(sqlx::query_as("SELECT * FROM work_items WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_work_items(&self, instance_id: &str) -> DbResult<Vec<WorkItemRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM work_items WHERE plugin_instance_id = ? ORDER BY created_at, id",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
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
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn session_history(&self, item: &WorkItemRow, limit: u32) -> DbResult<Vec<SessionTurn>> {
        Ok(sqlx::query_as(SESSION_HISTORY_SQL)
        .bind(&item.plugin_instance_id)
        .bind(&item.session_key)
        .bind(item.created_at)
        .bind(&item.id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn set_work_item_status(&self, id: &str, status: &str) -> DbResult<()> {
        sqlx::query("UPDATE work_items SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
