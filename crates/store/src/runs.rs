//! SQL of agent runs: hook overrides, agents and assignments, durable jobs, run steps and
//! deliveries (migration `0002_runs.sql`).

use super::{Db, DbResult, now_ms};
use nitejar_sandbox::hooks::{HookName, HookOverride};
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

impl Db {
    /// The operator's hook overrides of a plugin.
    pub async fn list_hook_overrides(
        &self,
        plugin_id: &str,
    ) -> DbResult<Vec<(HookName, HookOverride)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT hook_name, override_json FROM plugin_hook_overrides WHERE plugin_id = ?",
        )
        .bind(plugin_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(h, j)| Some((HookName::parse(&h)?, serde_json::from_str(&j).ok()?)))
            .collect())
    }

    /// Sets (or with `None` removes) one hook override.
    pub async fn set_hook_override(
        &self,
        plugin_id: &str,
        hook: HookName,
        value: Option<&HookOverride>,
    ) -> DbResult<()> {
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO plugin_hook_overrides (plugin_id, hook_name, override_json, updated_at)
                     VALUES (?, ?, ?, ?)
                     ON CONFLICT(plugin_id, hook_name) DO UPDATE
                       SET override_json = excluded.override_json, updated_at = excluded.updated_at",
                )
                .bind(plugin_id)
                .bind(hook.as_str())
                .bind(serde_json::to_string(v).unwrap_or_default())
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query(
                    "DELETE FROM plugin_hook_overrides WHERE plugin_id = ? AND hook_name = ?",
                )
                .bind(plugin_id)
                .bind(hook.as_str())
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Creates an agent; returns its id.
    pub async fn insert_agent(&self, a: &AgentFields<'_>, is_default: bool) -> DbResult<String> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO agents (id, name, system_prompt, model_json, team, is_default, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(a.name)
        .bind(a.system_prompt)
        .bind(a.model_json)
        .bind(a.team)
        .bind(is_default)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Replaces an agent's fields; false when it does not exist.
    pub async fn update_agent(&self, id: &str, a: &AgentFields<'_>) -> DbResult<bool> {
        Ok(sqlx::query(
            "UPDATE agents SET name = ?, system_prompt = ?, model_json = ?, team = ?, updated_at = ? WHERE id = ?",
        )
        .bind(a.name)
        .bind(a.system_prompt)
        .bind(a.model_json)
        .bind(a.team)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// One agent by id.
    pub async fn get_agent(&self, id: &str) -> DbResult<Option<AgentRow>> {
        Ok(sqlx::query_as("SELECT * FROM agents WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// One agent by name.
    pub async fn get_agent_by_name(&self, name: &str) -> DbResult<Option<AgentRow>> {
        Ok(sqlx::query_as("SELECT * FROM agents WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every agent, by name.
    pub async fn list_agents(&self) -> DbResult<Vec<AgentRow>> {
        Ok(sqlx::query_as("SELECT * FROM agents ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Assigns `agent_id` to answer `instance_id` (replacing any earlier assignment).
    pub async fn assign_agent(&self, instance_id: &str, agent_id: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO agent_assignments (plugin_instance_id, agent_id, created_at) VALUES (?, ?, ?)
             ON CONFLICT(plugin_instance_id) DO UPDATE SET agent_id = excluded.agent_id",
        )
        .bind(instance_id)
        .bind(agent_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The agent answering `instance_id`: its assignment, else the default agent.
    pub async fn agent_for_instance(&self, instance_id: &str) -> DbResult<Option<AgentRow>> {
        Ok(sqlx::query_as(
            "SELECT a.* FROM agents a
             LEFT JOIN agent_assignments s ON s.agent_id = a.id AND s.plugin_instance_id = ?
             WHERE s.plugin_instance_id IS NOT NULL OR a.is_default = 1
             ORDER BY s.plugin_instance_id IS NULL, a.created_at LIMIT 1",
        )
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Boot: jobs a stopped process left `running` or `held` go back to the queue.
    pub async fn requeue_orphaned_jobs(&self) -> DbResult<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET status = 'queued', claimed_by = NULL, updated_at = ?
             WHERE status IN ('running', 'held')",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Releases a `held` job to the queue.
    pub async fn release_job(&self, job_id: &str) -> DbResult<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'queued', updated_at = ? WHERE id = ? AND status = 'held'",
        )
        .bind(now_ms())
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims the oldest queued job for `worker` (atomic: one claimer per job).
    pub async fn claim_job(&self, worker: &str) -> DbResult<Option<JobRow>> {
        let now = now_ms();
        Ok(sqlx::query_as(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, claimed_by = ?,
               started_at = ?, updated_at = ?
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1)
               AND status = 'queued'
             RETURNING *",
        )
        .bind(worker)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ends a job (`done` or `failed`) and sets its work item's status.
    pub async fn finish_job(
        &self,
        job: &JobRow,
        status: &str,
        work_item_status: &str,
        result_json: Option<&str>,
        error: Option<&str>,
    ) -> DbResult<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE jobs SET status = ?, result_json = ?, last_error = ?, finished_at = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(status)
        .bind(result_json)
        .bind(error)
        .bind(now)
        .bind(now)
        .bind(&job.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE work_items SET status = ?, updated_at = ? WHERE id = ?")
            .bind(work_item_status)
            .bind(now)
            .bind(&job.work_item_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a work item's status.
    pub async fn set_work_item_status(&self, id: &str, status: &str) -> DbResult<()> {
        sqlx::query("UPDATE work_items SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One job.
    pub async fn get_job(&self, id: &str) -> DbResult<Option<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The job of a work item.
    pub async fn job_for_work_item(&self, work_item_id: &str) -> DbResult<Option<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE work_item_id = ?")
            .bind(work_item_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records one step of a run.
    pub async fn insert_step(
        &self,
        job_id: &str,
        attempt: i64,
        turn: u32,
        kind: &str,
        detail: &serde_json::Value,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO run_steps (job_id, attempt, turn, kind, detail_json, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(attempt)
        .bind(turn)
        .bind(kind)
        .bind(detail.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The steps of a job, in order.
    pub async fn list_steps(&self, job_id: &str) -> DbResult<Vec<StepRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM run_steps WHERE job_id = ? ORDER BY id")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The delivery of a job.
    pub async fn get_delivery(&self, job_id: &str) -> DbResult<Option<DeliveryRow>> {
        Ok(sqlx::query_as("SELECT * FROM deliveries WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Writes a job's delivery state (one row per job).
    pub async fn upsert_delivery(&self, d: &DeliveryRow) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO deliveries (job_id, work_item_id, status, content, attempts, external_id, error,
               created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(job_id) DO UPDATE SET status = excluded.status, content = excluded.content,
               attempts = excluded.attempts, external_id = excluded.external_id,
               error = excluded.error, updated_at = excluded.updated_at",
        )
        .bind(&d.job_id)
        .bind(&d.work_item_id)
        .bind(&d.status)
        .bind(&d.content)
        .bind(d.attempts)
        .bind(&d.external_id)
        .bind(&d.error)
        .bind(d.created_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Receipts of a job, oldest first.
    pub async fn events_for_job(&self, job_id: &str) -> DbResult<Vec<super::EventRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_events WHERE job_id = ? ORDER BY id")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Receipts of a work item, oldest first.
    pub async fn events_for_work_item(&self, work_item_id: &str) -> DbResult<Vec<super::EventRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM plugin_events WHERE work_item_id = ? ORDER BY id")
                .bind(work_item_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
