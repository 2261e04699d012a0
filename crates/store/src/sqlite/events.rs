//! SQL of the receipts aggregate.

use super::SqliteStore;
use crate::*;
use async_trait::async_trait;

#[async_trait]
impl EventStore for SqliteStore {
    async fn insert_events(&self, events: &[EventRow]) -> DbResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.write(move |c| insert_events_now(c, &events)).await
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

/// [`EventStore::insert_events`], on the write thread's connection (all of it is written or
/// none: see [`super::write_thread`]), one prepared insert per row.
fn insert_events_now(c: &rusqlite::Connection, events: &[EventRow]) -> DbResult<()> {
    {
        let mut insert = c.prepare_cached(
            "INSERT INTO plugin_events (id, plugin_id, plugin_version, kind, status, work_item_id,
               job_id, hook_name, duration_ms, execution_mode, detail_json, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for e in events {
            insert.execute(rusqlite::params![
                e.id,
                e.plugin_id,
                e.plugin_version,
                e.kind,
                e.status,
                e.work_item_id,
                e.job_id,
                e.hook_name,
                e.duration_ms,
                e.execution_mode,
                e.detail_json,
                e.created_at
            ])?;
        }
    }
    Ok(())
}
