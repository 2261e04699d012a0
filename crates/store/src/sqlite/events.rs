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

    async fn insert_receipts(
        &self,
        receipts: std::sync::Arc<Vec<nitejar_sandbox::receipts::Receipt>>,
    ) -> DbResult<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        self.write(move |c| insert_receipts_now(c, &receipts)).await
    }

    async fn search_events(
        &self,
        plugin_id: &str,
        filter: &EventFilter,
        limit: u32,
        before: Option<&str>,
    ) -> DbResult<Vec<EventRow>> {
        // Only the conditions that apply, so the planner picks the index that serves them
        // (`(plugin_id, kind, id)`, `(plugin_id, status, id)` or `(plugin_id, id)`); a rare
        // value also states its partial index's condition ([`rare_terms`]).
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
        q.push(rare_terms(filter));
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        Ok(q.build_query_as()
            .fetch_all(&mut *self.pool.get().await?)
            .await?)
    }

    async fn recent_failures(&self, limit: u32) -> DbResult<Vec<EventRow>> {
        Ok(sqlx::query_as(RECENT_FAILURES_SQL)
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
        Ok(sqlx::query_as(WORK_ITEM_EVENTS_SQL)
            .bind(work_item_id)
            .fetch_all(&mut *self.pool.get().await?)
            .await?)
    }
}

/// A work item's receipts, oldest first (bind: the work item's id): read through
/// `idx_plugin_events_work_item`, which holds the receipts with a work item only (migration
/// 0013; see the store tests).
pub(crate) const WORK_ITEM_EVENTS_SQL: &str =
    "SELECT * FROM plugin_events WHERE work_item_id = ? ORDER BY id";

/// Every plugin's latest failures: one index range per outcome (idx_plugin_events_status, which
/// holds the outcomes other than `ok`: each part states that), merged newest first; `?1` is
/// the limit.
pub(crate) const RECENT_FAILURES_SQL: &str = "SELECT * FROM (
   SELECT * FROM (SELECT * FROM plugin_events WHERE status = 'error' AND status <> 'ok' ORDER BY id DESC LIMIT ?1)
   UNION ALL
   SELECT * FROM (SELECT * FROM plugin_events WHERE status = 'timeout' AND status <> 'ok' ORDER BY id DESC LIMIT ?1)
   UNION ALL
   SELECT * FROM (SELECT * FROM plugin_events WHERE status = 'blocked' AND status <> 'ok' ORDER BY id DESC LIMIT ?1)
 ) ORDER BY id DESC LIMIT ?1";

/// Kinds most of a plugin's receipts have: read through `(plugin_id, id)`, and left out of
/// `idx_plugin_events_plugin_kind`, which holds the rare kinds only (migration 0012 compares
/// with each, in this order: a query states the index's condition as the migration wrote it).
const COMMON_KINDS: [&str; 3] = ["hook", "integration", "tool"];

/// The terms a receipt search adds so SQLite may use the partial indexes of migration 0012: an
/// index with a `WHERE` is used only by a query that states that condition, and a bound value
/// proves nothing. A filter on an outcome other than `ok` states `status <> 'ok'`, one on a kind
/// other than the common ones states that it is not one of them; a filter on `ok` or a common
/// kind states nothing and reads the plugin's receipts newest first, of which those are most.
pub(crate) fn rare_terms(filter: &EventFilter) -> String {
    let mut terms = String::new();
    if filter.status.as_deref().is_some_and(|s| s != "ok") {
        terms.push_str(" AND status <> 'ok'");
    }
    if let Some(kind) = filter.kind.as_deref()
        && !COMMON_KINDS.contains(&kind)
    {
        for common in COMMON_KINDS {
            terms.push_str(&format!(" AND kind <> '{common}'"));
        }
    }
    terms
}

/// The columns of a receipt's row, in the order the inserts bind them.
const EVENT_COLUMNS: &str = "id, plugin_id, plugin_version, kind, status, work_item_id, job_id, \
    hook_name, duration_ms, execution_mode, detail_json, created_at";

/// Rows a multi-row insert of [`insert_receipts_now`] writes at once.
const RECEIPTS_PER_INSERT: usize = 16;

/// The insert of `rows` receipts' rows. `OR FAIL`: a refused row ends the statement and leaves
/// the rows before it, which the write thread's savepoint around the whole write then undoes
/// (see [`super::write_thread`]); SQLite's default (`ABORT`) would undo them itself, so it keeps
/// a statement journal for every multi-row insert, a copy of each page the insert touches (the
/// last leaf of the table and of each index): 6% of a receipt batch's insert, measured.
fn insert_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT OR FAIL INTO plugin_events ({EVENT_COLUMNS}) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// The insert of one receipt's row.
fn insert_one_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| insert_sql(1))
}

/// The insert of [`RECEIPTS_PER_INSERT`] receipts' rows.
fn insert_many_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| insert_sql(RECEIPTS_PER_INSERT))
}

/// [`EventStore::insert_receipts`], on the write thread's connection (all of it is written or
/// none: see [`super::write_thread`]): each receipt's row is bound straight from it, its id
/// (a v7 uuid, made in batch order) formatted on the stack; rows go [`RECEIPTS_PER_INSERT`] to
/// an insert (one statement step opens the table's and its indexes' cursors once for all of
/// them), the rest one by one.
fn insert_receipts_now(
    c: &rusqlite::Connection,
    receipts: &[nitejar_sandbox::receipts::Receipt],
) -> DbResult<()> {
    /// Binds `r`'s row at parameters `first..first + 12` (text is copied by SQLite, so the
    /// id's buffer is reused at once).
    fn bind(
        insert: &mut rusqlite::CachedStatement<'_>,
        first: usize,
        r: &nitejar_sandbox::receipts::Receipt,
    ) -> rusqlite::Result<()> {
        let mut buf = uuid::Uuid::encode_buffer();
        let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        insert.raw_bind_parameter(first, &*id)?;
        insert.raw_bind_parameter(first + 1, &*r.plugin_id)?;
        insert.raw_bind_parameter(first + 2, r.plugin_version.as_deref())?;
        insert.raw_bind_parameter(first + 3, &*r.kind)?;
        insert.raw_bind_parameter(first + 4, &*r.status)?;
        insert.raw_bind_parameter(first + 5, &r.work_item_id)?;
        insert.raw_bind_parameter(first + 6, &r.job_id)?;
        insert.raw_bind_parameter(first + 7, r.hook_name.as_deref())?;
        insert.raw_bind_parameter(first + 8, r.duration_ms)?;
        insert.raw_bind_parameter(first + 9, r.execution_mode)?;
        insert.raw_bind_parameter(first + 10, r.detail.to_json())?;
        insert.raw_bind_parameter(first + 11, r.created_at)
    }
    let mut whole = receipts.chunks_exact(RECEIPTS_PER_INSERT);
    if receipts.len() >= RECEIPTS_PER_INSERT {
        let mut insert = c.prepare_cached(insert_many_sql())?;
        for rows in &mut whole {
            for (i, r) in rows.iter().enumerate() {
                bind(&mut insert, 1 + i * 12, r)?;
            }
            insert.raw_execute()?;
        }
    }
    let rest = whole.remainder();
    if !rest.is_empty() {
        let mut insert = c.prepare_cached(insert_one_sql())?;
        for r in rest {
            bind(&mut insert, 1, r)?;
            insert.raw_execute()?;
        }
    }
    Ok(())
}

/// [`EventStore::insert_events`], on the write thread's connection (all of it is written or
/// none: see [`super::write_thread`]), one prepared insert per row.
fn insert_events_now(c: &rusqlite::Connection, events: &[EventRow]) -> DbResult<()> {
    {
        let mut insert = c.prepare_cached(insert_one_sql())?;
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
