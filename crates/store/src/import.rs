//! Rows brought over from another database (`nitejar import nitejar`): written with their own
//! ids and timestamps, never rewritten when they are already here, and never queued to run
//! (imported work items are history).

use crate::DbResult;
use async_trait::async_trait;

/// An integration instance as the source stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedInstance {
    /// Instance id (kept, so the webhook URL stays the same).
    pub id: String,
    /// Owning plugin here.
    pub plugin_id: String,
    /// Integration type.
    pub integration_type: String,
    /// Display name.
    pub name: String,
    /// Config JSON, byte for byte as stored there (unless a plaintext secret was encrypted).
    pub config_json: String,
    /// Whether webhooks are accepted.
    pub enabled: bool,
    /// Creation time (Unix milliseconds).
    pub created_at: i64,
    /// Last change (Unix milliseconds).
    pub updated_at: i64,
}

/// A work item as the source stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedWorkItem {
    /// Work item id (kept).
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
    /// Payload JSON.
    pub payload_json: String,
    /// Status, as the source named it (lowercased).
    pub status: String,
    /// Creation time (Unix milliseconds).
    pub created_at: i64,
    /// Last change (Unix milliseconds).
    pub updated_at: i64,
}

/// What importing one work item wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportedCounts {
    /// Whether the work item row was new.
    pub work_item_created: bool,
    /// Idempotency keys written (keys already here are left as they are).
    pub keys_created: u64,
}

/// Writes imported rows.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Inserts an instance exactly as given; `false` (and nothing written) when its id exists.
    async fn import_instance(&self, instance: &ImportedInstance) -> DbResult<bool>;

    /// Inserts a work item unless its id exists, and its idempotency keys (scoped to its
    /// instance) unless they exist, in one transaction. No job is queued.
    async fn import_work_item(
        &self,
        item: &ImportedWorkItem,
        idempotency_keys: &[String],
    ) -> DbResult<ImportedCounts>;
}
