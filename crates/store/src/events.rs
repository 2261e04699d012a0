//! The receipts aggregate: every action a plugin or the host took, as stored rows.

use crate::DbResult;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;
use std::borrow::Cow;

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
    /// The row of a receipt: its id is made here, so ids follow the order receipts reach the
    /// writer (the emit order), and its detail is serialised here, off the caller's path.
    fn from(r: nitejar_sandbox::receipts::Receipt) -> Self {
        EventRow {
            id: uuid::Uuid::now_v7().to_string(),
            plugin_id: r.plugin_id.to_string(),
            plugin_version: r.plugin_version.as_deref().map(str::to_string),
            kind: r.kind.into_owned(),
            status: r.status.into_owned(),
            work_item_id: r.work_item_id,
            job_id: r.job_id,
            hook_name: r.hook_name.map(Cow::into_owned),
            duration_ms: r.duration_ms,
            execution_mode: r.execution_mode.to_string(),
            detail_json: r.detail.to_json(),
            created_at: r.created_at,
        }
    }
}

/// Which of a plugin's receipts to list (every field that is set must match).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Only this kind (`hook`, `integration`, `install`, ...).
    pub kind: Option<String>,
    /// Only this outcome (`ok`, `error`, `timeout`, ...).
    pub status: Option<String>,
}

/// Stored receipts: written in batches by the receipt writer, read newest first.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Writes a batch of receipts in one transaction (all of them, or none and the error).
    async fn insert_events(&self, events: &[EventRow]) -> DbResult<()>;

    /// Writes a batch of receipts as they were emitted, in one transaction (all of them, or
    /// none and the error): each one's row is made on the write thread (its id there, in
    /// batch order, and its detail serialised there), so a receipt is neither converted nor
    /// copied on the way. The batch is shared, so a refused one is kept by the caller and
    /// given again.
    async fn insert_receipts(
        &self,
        receipts: std::sync::Arc<Vec<nitejar_sandbox::receipts::Receipt>>,
    ) -> DbResult<()>;

    /// A page of a plugin's receipts, newest first; pass the last id as `before` for the next.
    async fn list_events(
        &self,
        plugin_id: &str,
        limit: u32,
        before: Option<&str>,
    ) -> DbResult<Vec<EventRow>> {
        self.search_events(plugin_id, &EventFilter::default(), limit, before)
            .await
    }

    /// A page of a plugin's receipts that match `filter`, newest first.
    async fn search_events(
        &self,
        plugin_id: &str,
        filter: &EventFilter,
        limit: u32,
        before: Option<&str>,
    ) -> DbResult<Vec<EventRow>>;

    /// The latest receipts of every plugin whose outcome was `error`, `timeout` or `blocked`,
    /// newest first.
    async fn recent_failures(&self, limit: u32) -> DbResult<Vec<EventRow>>;

    /// Receipts of a job, oldest first.
    async fn events_for_job(&self, job_id: &str) -> DbResult<Vec<super::EventRow>>;

    /// Receipts of a work item, oldest first.
    async fn events_for_work_item(&self, work_item_id: &str) -> DbResult<Vec<super::EventRow>>;
}
