//! Agents, their runs (jobs, steps, receipts, delivery) and the hook table.

use crate::instances::WorkItem;
use crate::plugins::Receipt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Model calls per run unless an agent says otherwise.
pub const DEFAULT_MAX_TURNS: u32 = 8;

/// Which backend an agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// The built-in deterministic model.
    Offline,
    /// The configured OpenAI-compatible endpoint.
    Openai,
}

fn default_temperature() -> f64 {
    0.2
}
fn default_max_tokens() -> u32 {
    1024
}
fn default_max_turns() -> u32 {
    DEFAULT_MAX_TURNS
}

/// An agent's model settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSettings {
    /// Backend.
    pub provider: Provider,
    /// Model name sent to the backend (1 to 256 characters).
    pub model: String,
    /// Sampling temperature (0.0 to 2.0, default 0.2).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Completion token limit (at least 1, default 1024).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Model calls per run (1 to 64, default 8).
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
}

impl ModelSettings {
    /// Checks the values; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if self.model.trim().is_empty() || self.model.len() > 256 {
            return Err("model must be 1 to 256 characters".into());
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err("temperature must be between 0.0 and 2.0".into());
        }
        if self.max_tokens == 0 {
            return Err("maxTokens must be at least 1".into());
        }
        if !(1..=64).contains(&self.max_turns) {
            return Err("maxTurns must be between 1 and 64".into());
        }
        Ok(())
    }
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// System prompt.
    pub system_prompt: String,
    /// Model settings (absent if the stored ones cannot be read).
    pub model: Option<ModelSettings>,
    /// Whether it answers instances without an assignment.
    pub is_default: bool,
    /// Team (skill scope `team`).
    pub team: Option<String>,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
}

/// `GET /agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentList {
    /// Every agent.
    pub agents: Vec<Agent>,
}

/// `POST /agents`, `PUT /agents/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRequest {
    /// 1-64 characters of letters, digits, `-`, `_` or `.`; unique.
    pub name: String,
    /// System prompt (64 KiB at most).
    pub system_prompt: String,
    /// Model settings.
    pub model: ModelSettings,
    /// Team (skill scope `team`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// `PUT /instances/{id}/agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignAgentRequest {
    /// The agent that answers the instance's work items.
    pub agent_id: String,
}

/// Answer of `PUT /instances/{id}/agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignAgentResponse {
    /// The instance.
    pub instance_id: String,
    /// Its agent now.
    pub agent_id: String,
}

/// A durable job: one agent run of a work item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
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
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Last start.
    pub started_at: Option<i64>,
    /// End time.
    pub finished_at: Option<i64>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
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
    /// What happened (open-ended JSON).
    pub detail: Value,
    /// Time.
    pub created_at: i64,
}

/// The reply's delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Job.
    pub job_id: String,
    /// Work item.
    pub work_item_id: String,
    /// `pending` (between attempts), `posting` (an attempt handed the reply to the integration;
    /// its outcome is not recorded yet: after a crash, the next run of the job checks what
    /// reached the platform), `delivered`, `failed`, `blocked`, `unsupported`.
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

/// A receipt of a run, with its detail parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunReceipt {
    /// The receipt.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// Its detail, parsed.
    pub detail: Value,
}

/// `GET /work-items/{id}/run`, `GET /jobs/{id}`: a run seen whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// The work item.
    pub work_item: Option<WorkItem>,
    /// Its job (absent when no agent answers the instance).
    pub job: Option<Job>,
    /// The run's outcome (open-ended JSON; null until it ends).
    pub result: Value,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Every receipt correlated with the work item, in order.
    pub receipts: Vec<RunReceipt>,
    /// The reply's delivery.
    pub delivery: Option<Delivery>,
}

/// What a hook handler failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailPolicy {
    /// Continue as if the handler was not there.
    #[serde(alias = "failOpen")]
    FailOpen,
    /// On a blocking hook, block the operation.
    #[serde(alias = "failClosed")]
    FailClosed,
}

/// One registered handler, in dispatch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookHandler {
    /// Plugin id.
    pub plugin_id: String,
    /// Its active version.
    pub version: String,
    /// Higher runs first.
    pub priority: i32,
    /// What a failure means.
    pub fail_policy: FailPolicy,
    /// Its deadline.
    pub timeout_ms: u64,
}

/// `GET /hooks`: the hook table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookTableView {
    /// Budget of one event's whole chain.
    pub chain_budget_ms: u64,
    /// Per-handler timeout when neither manifest nor operator sets one.
    pub default_timeout_ms: u64,
    /// Handlers of each event (by its dotted name), in dispatch order.
    pub hooks: BTreeMap<String, Vec<HookHandler>>,
}

/// `PUT /plugins/{id}/hooks/{hook}`: the operator's change to one registration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookOverride {
    /// Replacement priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Replacement failure policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_policy: Option<FailPolicy>,
    /// Replacement timeout (1 to the chain budget, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `false` unregisters the handler without disabling the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Answer of `PUT` and `DELETE /plugins/{id}/hooks/{hook}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookOverrideResponse {
    /// Plugin id.
    pub plugin_id: String,
    /// The hook event.
    pub hook: String,
    /// The override in force (null: the manifest's registration).
    #[serde(rename = "override")]
    pub override_: Option<HookOverride>,
}
