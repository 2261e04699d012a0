//! The agent and run aggregates: agents and their assignment to instances; jobs (one agent run
//! per work item), their steps, and the delivery of the reply.

use crate::DbResult;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;

/// An `agents` row.
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRow {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// System prompt.
    pub system_prompt: String,
    /// Model settings JSON (`{provider, model, temperature, maxTokens, maxTurns}`).
    #[serde(skip)]
    pub model_json: String,
    /// Whether it answers instances without an assignment.
    pub is_default: bool,
    /// Team (skill scope `team`).
    pub team: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A `jobs` row.
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// The work item it answers.
    pub work_item_id: String,
    /// The agent running it.
    pub agent_id: String,
    /// `queued`, `running`, `done`, `failed`.
    pub status: String,
    /// Starts so far (a restart mid-run counts one).
    pub attempts: i64,
    /// Worker that claimed it.
    pub claimed_by: Option<String>,
    /// Why it failed.
    pub last_error: Option<String>,
    /// Outcome JSON.
    #[serde(skip)]
    pub result_json: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Last start.
    pub started_at: Option<i64>,
    /// End time.
    pub finished_at: Option<i64>,
}

/// A `run_steps` row.
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRow {
    /// Sequence number.
    pub id: i64,
    /// Job.
    pub job_id: String,
    /// Attempt of the job.
    pub attempt: i64,
    /// Turn (0 before the first model call).
    pub turn: i64,
    /// `prompt`, `model_call`, `tool_call`, `final`, `note`.
    pub kind: String,
    /// Detail JSON.
    #[serde(skip)]
    pub detail_json: String,
    /// Time.
    pub created_at: i64,
}

/// A `deliveries` row.
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRow {
    /// Job.
    pub job_id: String,
    /// Work item.
    pub work_item_id: String,
    /// `pending`, `delivered`, `failed`, `blocked`.
    pub status: String,
    /// Text posted (after `response.pre_deliver`).
    pub content: Option<String>,
    /// Post attempts.
    pub attempts: i64,
    /// Platform message id.
    pub external_id: Option<String>,
    /// Last error or block reason.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// New or changed agent fields.
#[derive(Debug, Clone)]
pub struct AgentFields<'a> {
    /// Name.
    pub name: &'a str,
    /// System prompt.
    pub system_prompt: &'a str,
    /// Model settings JSON.
    pub model_json: &'a str,
    /// Team (skill scope `team`), if any.
    pub team: Option<&'a str>,
}

/// What happened in one minute (the overview's chart).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityMinute {
    /// The minute (ms since the epoch / 60 000).
    pub minute: i64,
    /// Work items received.
    pub received: i64,
    /// Runs finished `done`.
    pub done: i64,
    /// Runs finished `failed`.
    pub failed: i64,
}

/// Agents and which agent answers an instance.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates an agent; returns its id.
    async fn insert_agent(&self, a: &AgentFields<'_>, is_default: bool) -> DbResult<String>;

    /// Replaces an agent's fields; false when it does not exist.
    async fn update_agent(&self, id: &str, a: &AgentFields<'_>) -> DbResult<bool>;

    /// One agent by id.
    async fn get_agent(&self, id: &str) -> DbResult<Option<AgentRow>>;

    /// One agent by name.
    async fn get_agent_by_name(&self, name: &str) -> DbResult<Option<AgentRow>>;

    /// Every agent, by name.
    async fn list_agents(&self) -> DbResult<Vec<AgentRow>>;

    /// Assigns `agent_id` to answer `instance_id` (replacing any earlier assignment).
    async fn assign_agent(&self, instance_id: &str, agent_id: &str) -> DbResult<()>;

    /// The agent answering `instance_id`: its assignment, else the default agent.
    async fn agent_for_instance(&self, instance_id: &str) -> DbResult<Option<AgentRow>>;
}

/// A run step to record (see [`JobStore::insert_steps`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    /// Model turn (0 before the first).
    pub turn: u32,
    /// `prompt`, `model_call`, `tool_call`, `final`, `note`, ...
    pub kind: String,
    /// What happened.
    pub detail: serde_json::Value,
    /// When (ms since the Unix epoch).
    pub created_at: i64,
}

/// Agent-run jobs: claimed by workers, re-queued after a stop, with steps and the delivery record.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Work items received and runs finished per minute since `since_ms` (ms since the
    /// epoch), oldest minute first; minutes with nothing are left out.
    async fn activity(&self, since_ms: i64) -> DbResult<Vec<ActivityMinute>>;

    /// Boot: jobs a stopped process left `running` or `held` go back to the queue.
    async fn requeue_orphaned_jobs(&self) -> DbResult<u64>;

    /// Releases a `held` job to the queue.
    async fn release_job(&self, job_id: &str) -> DbResult<()>;

    /// Hands a job this worker claimed back to the queue when its run stopped without
    /// recording an end (a write failed). `host_fault`: the database refused a write (full,
    /// locked), so the attempt is not counted against the job. Returns whether the job was
    /// still this worker's and `running` (a job already finished is left as it is).
    async fn return_job(&self, job_id: &str, worker: &str, host_fault: bool) -> DbResult<bool>;

    /// Claims the oldest queued job for `worker` (atomic: one claimer per job); its work item
    /// becomes `running` in the same statement.
    async fn claim_job(&self, worker: &str) -> DbResult<Option<JobRow>>;

    /// Ends a job as `end` says, in one hand-off to the writer: one transaction with its steps
    /// not written yet, the reply's settled state and the removal of the delivery guard (when
    /// the run left them to be written with its end) and the job's status (its work item gets
    /// the same status in the same statement); then the claim of the next queued job for
    /// `end.claim_next`. An `Err` means the job is not ended (nothing of the transaction is
    /// written); once it is, a failed claim is logged and reads as no job claimed. Returns the
    /// job claimed next, if any.
    async fn finish_job(&self, job: &JobRow, end: &JobEnd<'_>) -> DbResult<Option<JobRow>>;

    /// Records steps of a run, each with the time it happened (one transaction).
    async fn insert_steps(&self, job_id: &str, attempt: i64, steps: &[NewStep]) -> DbResult<()>;

    /// What a run reads before it starts, in one round trip: the work item, the instance it
    /// came from and the agent (each `None` when it is gone).
    async fn run_inputs(&self, work_item_id: &str, agent_id: &str) -> DbResult<RunInputs>;

    /// One job.
    async fn get_job(&self, id: &str) -> DbResult<Option<JobRow>>;

    /// The job of a work item.
    async fn job_for_work_item(&self, work_item_id: &str) -> DbResult<Option<JobRow>>;

    /// The steps of a job, in order.
    async fn list_steps(&self, job_id: &str) -> DbResult<Vec<StepRow>>;

    /// The delivery of a job.
    async fn get_delivery(&self, job_id: &str) -> DbResult<Option<DeliveryRow>>;

    /// Writes a job's delivery state (one row per job).
    async fn upsert_delivery(&self, d: &DeliveryRow) -> DbResult<()>;

    /// Writes a job's delivery state after `steps` (of the job's attempt `attempt`), and then
    /// removes `forget` (plugin id, kv key: the integration's delivery guard entry) from the
    /// plugin's kv: one transaction (all of it is written, or none of it and the error).
    async fn record_delivery(
        &self,
        d: &DeliveryRow,
        attempt: i64,
        steps: &[NewStep],
        forget: Option<(&str, &str)>,
    ) -> DbResult<()>;
}

/// How a job ends (see [`JobStore::finish_job`]).
#[derive(Debug, Clone, Copy)]
pub struct JobEnd<'a> {
    /// `done` or `failed`.
    pub status: &'a str,
    /// The run's steps not written yet (of the job's current attempt).
    pub steps: &'a [NewStep],
    /// Outcome JSON.
    pub result_json: Option<&'a str>,
    /// Why it failed.
    pub error: Option<&'a str>,
    /// The reply's settled state, when the run leaves it to be written with the end (nothing
    /// ran between the post and the end).
    pub delivery: Option<&'a DeliveryRow>,
    /// Plugin id and kv key of the integration's delivery guard entry to remove.
    pub forget: Option<(&'a str, &'a str)>,
    /// Claims the next queued job for this worker in the same hand-off to the writer.
    pub claim_next: Option<&'a str>,
}

impl<'a> JobEnd<'a> {
    /// A job ending with `status` and nothing else to write.
    pub fn new(status: &'a str) -> JobEnd<'a> {
        JobEnd {
            status,
            steps: &[],
            result_json: None,
            error: None,
            delivery: None,
            forget: None,
            claim_next: None,
        }
    }
}

/// What a run reads before it starts (see [`JobStore::run_inputs`]).
#[derive(Debug, Clone, Default)]
pub struct RunInputs {
    /// The work item.
    pub item: Option<crate::WorkItemRow>,
    /// The instance the work item came from.
    pub instance: Option<crate::InstanceRow>,
    /// The agent that answers.
    pub agent: Option<AgentRow>,
}
