//! SQL of the receipts aggregate.

use super::SqliteStore;
use crate::*;
use async_trait::async_trait;

#[async_trait]
impl EventStore for SqliteStore {
    async fn insert_events(&self, events: &[EventRow]) -> DbResult<()> {
        let events = events.to_vec();
        self.on_write_thread(move |store| async move { store.insert_events_now(&events).await })
            .await
    }

    async fn search_events(
        &self,
        plugin_id: &str,
        filter: &EventFilter,
        limit: u32,
        before: Option<&str>,
    ) -> DbResult<Vec<EventRow>> {
        // Only the conditions that apply, so the planner picks the index that serves them
        // (`(plugin_id, kind, id)`, `(plugin_id, status, id)` or `(plugin_id, id)`).
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT * FROM plugin_events WHERE plugin_id = ",
        );
        q.push_bind(plugin_id);
        if let Some(before) = before {
            q.push(" AND id < ").push_bind(before);
        }
        if let Some(kind) = &filter.kind {
            q.push(" AND kind = ").push_bind(kind);
        }
        if let Some(status) = &filter.status {
            q.push(" AND status = ").push_bind(status);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        Ok(q.build_query_as()
            .fetch_all(&mut *self.pool.get().await?)
            .await?)
    }

    async fn recent_failures(&self, limit: u32) -> DbResult<Vec<EventRow>> {
        // One index range per outcome (idx_plugin_events_status), merged newest first.
        Ok(sqlx::query_as(
            "SELECT * FROM (
               SELECT * FROM (SELECT * FROM plugin_events WHERE status = 'error' ORDER BY id DESC LIMIT ?1)
               UNION ALL
               SELECT * FROM (SELECT * FROM plugin_events WHERE status = 'timeout' ORDER BY id DESC LIMIT ?1)
               UNION ALL
               SELECT * FROM (SELECT * FROM plugin_events WHERE status = 'blocked' ORDER BY id DESC LIMIT ?1)
             ) ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit)
        .fetch_all(&mut *self.pool.get().await?)
        .await?)
    }

    async fn events_for_job(&self, job_id: &str) -> DbResult<Vec<super::EventRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_events WHERE job_id = ? ORDER BY id")
                .bind(job_id)
                .fetch_all(&mut *self.pool.get().await?)
                .await?,
        )
    }

    async fn events_for_work_item(&self, work_item_id: &str) -> DbResult<Vec<super::EventRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_events WHERE work_item_id = ? ORDER BY id")
                .bind(work_item_id)
                .fetch_all(&mut *self.pool.get().await?)
                .await?,
        )
    }
}

impl SqliteStore {
    /// [`EventStore::insert_events`], run on the write thread.
    async fn insert_events_now(&self, events: &[EventRow]) -> DbResult<()> {
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
            q.build().execute(&mut *self.writer.get().await?).await?;
        }
        Ok(())
    }
}
