//! The integration aggregate: configured instances of an integration type, and the work items
//! their webhooks create (idempotent per instance and key).

use crate::DbResult;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;

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

/// An earlier message of a conversation and the reply delivered for it.
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct SessionTurn {
    /// The work item.
    pub work_item_id: String,
    /// What the user wrote (the work item's text).
    pub text: String,
    /// Its command (`clear` starts the conversation afresh).
    pub command: Option<String>,
    /// The reply delivered for it, if one was.
    pub reply: Option<String>,
}

/// One work item to create (see [`WorkItemStore::create_work_items`]).
#[derive(Debug, Clone)]
pub struct WorkItemCreate {
    /// The new work item's id.
    pub id: String,
    /// Its fields.
    pub item: NewWorkItem,
    /// Scoped to the instance: a key seen before creates nothing.
    pub idempotency_key: String,
    /// Its agent-run job.
    pub job: JobPlan,
}

/// The job a created work item gets, in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum JobPlan {
    /// No job (no agent answers the instance).
    None,
    /// A job with this id for this agent.
    Agent {
        /// Job id.
        job_id: String,
        /// Agent id.
        agent_id: String,
        /// Stored `held` (released after `work_item.post_create`; boot releases any a
        /// stopped process left held) instead of `queued`.
        held: bool,
    },
    /// A job with this id for the instance's agent (assigned, else the default), looked up
    /// in the transaction; none when there is no agent.
    InstanceAgent {
        /// Job id.
        job_id: String,
        /// As in [`JobPlan::Agent`].
        held: bool,
    },
}

/// What creating one work item did.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// A new work item, or the one its key created before.
    pub outcome: CreateOutcome,
    /// The new item's job id, when it got one.
    pub job_id: Option<String>,
}

/// Whether an idempotent create made a new row.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// A new work item with this id.
    Created(String),
    /// The key was seen before; this is the work item it created.
    Duplicate(String),
}

/// Integration instances (config JSON with sensitive fields already encrypted by the caller).
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Creates an integration instance.
    async fn insert_instance(
        &self,
        id: &str,
        plugin_id: &str,
        integration_type: &str,
        name: &str,
        config_json: &str,
        enabled: bool,
    ) -> DbResult<()>;

    /// One instance.
    async fn get_instance(&self, id: &str) -> DbResult<Option<InstanceRow>>;

    /// Changes an instance's name and/or stored config (each only when given).
    async fn update_instance(
        &self,
        id: &str,
        name: Option<&str>,
        config_json: Option<&str>,
    ) -> DbResult<()>;

    /// Enables or disables an instance.
    async fn set_instance_enabled(&self, id: &str, enabled: bool) -> DbResult<()>;

    /// Deletes an instance and its agent assignment (work items, runs and idempotency keys
    /// stay: they are history). Returns whether it existed.
    async fn delete_instance(&self, id: &str) -> DbResult<bool>;

    /// All instances.
    async fn list_instances(&self) -> DbResult<Vec<InstanceRow>>;
}

/// Which work items to list (every field that is set must match).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkItemFilter {
    /// Only this instance's.
    pub instance_id: Option<String>,
    /// Only those with this status.
    pub status: Option<String>,
}

/// Work items; creating one also queues its agent-run job in the same transaction.
#[async_trait]
pub trait WorkItemStore: Send + Sync {
    /// Creates a batch of work items, each unless its idempotency key was already used on its
    /// instance (by an earlier batch or an earlier item of this one), with their jobs: one
    /// transaction for the whole batch, so every item of it is stored or none is.
    ///
    /// The key's primary key (not a check-then-insert) decides which of concurrent deliveries
    /// wins; a created work item always has its job when it gets one (see [`JobPlan`]).
    /// Outcomes come back in the batch's order.
    async fn create_work_items(&self, batch: &[WorkItemCreate]) -> DbResult<Vec<Created>>;

    /// The work item an idempotency key already created, if any.
    async fn find_idempotent(&self, instance_id: &str, key: &str) -> DbResult<Option<String>>;

    /// One work item.
    async fn get_work_item(&self, id: &str) -> DbResult<Option<WorkItemRow>>;

    /// Work items of an instance, oldest first.
    async fn list_work_items(&self, instance_id: &str) -> DbResult<Vec<WorkItemRow>>;

    /// A page of work items matching `filter`, newest first; pass the last one's
    /// `(created_at, id)` as `before` for the next page.
    async fn search_work_items(
        &self,
        filter: &WorkItemFilter,
        limit: u32,
        before: Option<(i64, String)>,
    ) -> DbResult<Vec<WorkItemRow>>;

    /// The conversation before `item`: at most `limit` earlier work items of its instance and
    /// session key, newest first, each with the reply delivered for it.
    async fn session_history(&self, item: &WorkItemRow, limit: u32) -> DbResult<Vec<SessionTurn>>;
}
