//! SQL of the agent and job aggregates.

use super::SqliteStore;
use crate::*;
use async_trait::async_trait;

#[async_trait]
impl AgentStore for SqliteStore {
    async fn insert_agent(&self, a: &AgentFields<'_>, is_default: bool) -> DbResult<String> {
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
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(id)
    }

    async fn update_agent(&self, id: &str, a: &AgentFields<'_>) -> DbResult<bool> {
        Ok(sqlx::query(
            "UPDATE agents SET name = ?, system_prompt = ?, model_json = ?, team = ?, updated_at = ? WHERE id = ?",
        )
        .bind(a.name)
        .bind(a.system_prompt)
        .bind(a.model_json)
        .bind(a.team)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *self.writer.get().await?)
        .await?
        .rows_affected()
            > 0)
    }

    async fn get_agent(&self, id: &str) -> DbResult<Option<AgentRow>> {
        Ok(sqlx::query_as("SELECT * FROM agents WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn get_agent_by_name(&self, name: &str) -> DbResult<Option<AgentRow>> {
        Ok(sqlx::query_as("SELECT * FROM agents WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn list_agents(&self) -> DbResult<Vec<AgentRow>> {
        Ok(sqlx::query_as("SELECT * FROM agents ORDER BY name")
            .fetch_all(&mut *self.pool.get().await?)
            .await?)
    }

    async fn assign_agent(&self, instance_id: &str, agent_id: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO agent_assignments (plugin_instance_id, agent_id, created_at) VALUES (?, ?, ?)
             ON CONFLICT(plugin_instance_id) DO UPDATE SET agent_id = excluded.agent_id",
        )
        .bind(instance_id)
        .bind(agent_id)
        .bind(now_ms())
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(())
    }

    async fn agent_for_instance(&self, instance_id: &str) -> DbResult<Option<AgentRow>> {
        let sql = format!(
            "SELECT * FROM agents WHERE id = ({})",
            super::instances::AGENT_FOR_INSTANCE_ID_SQL
        );
        Ok(sqlx::query_as(&sql)
            .bind(instance_id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }
}

/// Jobs finished per minute and outcome since a time (bind: ms): a range of `idx_jobs_finished`,
/// which holds finished jobs only (migration 0013; see the store tests).
pub(crate) const FINISHED_PER_MINUTE_SQL: &str = "SELECT finished_at / 60000, status, COUNT(*)
     FROM jobs WHERE finished_at >= ? GROUP BY 1, 2";

/// The claim of the oldest queued job (binds: worker, now): one claimer per job. The oldest
/// is read from `idx_jobs_status` in order (see the store tests); its work item becomes
/// `running` with it (trigger `jobs_status_to_work_item`).
pub(crate) const CLAIM_JOB_SQL: &str =
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, claimed_by = ?1,
       started_at = ?2, updated_at = ?2
     WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1)
       AND status = 'queued'
     RETURNING *";

/// Claims the oldest queued job for `worker` (see [`CLAIM_JOB_SQL`]).
fn claim(c: &rusqlite::Connection, worker: &str, now: i64) -> rusqlite::Result<Option<JobRow>> {
    use rusqlite::OptionalExtension;
    c.prepare_cached(CLAIM_JOB_SQL)?
        .query_row(rusqlite::params![worker, now], job_row)
        .optional()
}

/// An `agents` row read by a rusqlite connection.
fn agent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        id: r.get("id")?,
        name: r.get("name")?,
        system_prompt: r.get("system_prompt")?,
        model_json: r.get("model_json")?,
        is_default: r.get("is_default")?,
        team: r.get("team")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

/// A `jobs` row read by the write thread's connection.
fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: r.get("id")?,
        work_item_id: r.get("work_item_id")?,
        agent_id: r.get("agent_id")?,
        status: r.get("status")?,
        attempts: r.get("attempts")?,
        claimed_by: r.get("claimed_by")?,
        last_error: r.get("last_error")?,
        result_json: r.get("result_json")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
    })
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn activity(&self, since_ms: i64) -> DbResult<Vec<ActivityMinute>> {
        let received: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT created_at / 60000, COUNT(*) FROM work_items WHERE created_at >= ? GROUP BY 1",
        )
        .bind(since_ms)
        .fetch_all(&mut *self.pool.get().await?)
        .await?;
        let finished: Vec<(i64, String, i64)> = sqlx::query_as(FINISHED_PER_MINUTE_SQL)
            .bind(since_ms)
            .fetch_all(&mut *self.pool.get().await?)
            .await?;
        let mut by_minute = std::collections::BTreeMap::<i64, ActivityMinute>::new();
        for (minute, n) in received {
            by_minute.entry(minute).or_default().received += n;
        }
        for (minute, status, n) in finished {
            let m = by_minute.entry(minute).or_default();
            match status.as_str() {
                "done" => m.done += n,
                "failed" => m.failed += n,
                _ => {}
            }
        }
        Ok(by_minute
            .into_iter()
            .map(|(minute, m)| ActivityMinute { minute, ..m })
            .collect())
    }

    async fn requeue_orphaned_jobs(&self) -> DbResult<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET status = 'queued', claimed_by = NULL, updated_at = ?
             WHERE status IN ('running', 'held')",
        )
        .bind(now_ms())
        .execute(&mut *self.writer.get().await?)
        .await?
        .rows_affected())
    }

    async fn release_job(&self, job_id: &str) -> DbResult<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'queued', updated_at = ? WHERE id = ? AND status = 'held'",
        )
        .bind(now_ms())
        .bind(job_id)
        .execute(&mut *self.writer.get().await?)
        .await?;
        Ok(())
    }

    async fn return_job(&self, job_id: &str, worker: &str, host_fault: bool) -> DbResult<bool> {
        Ok(sqlx::query(
            "UPDATE jobs SET status = 'queued', claimed_by = NULL, updated_at = ?,
               attempts = CASE WHEN ? THEN MAX(attempts - 1, 0) ELSE attempts END
             WHERE id = ? AND status = 'running' AND claimed_by = ?",
        )
        .bind(now_ms())
        .bind(host_fault)
        .bind(job_id)
        .bind(worker)
        .execute(&mut *self.writer.get().await?)
        .await?
        .rows_affected()
            == 1)
    }

    async fn claim_job(&self, worker: &str) -> DbResult<Option<JobRow>> {
        let worker = worker.to_string();
        self.write(move |c| Ok(claim(c, &worker, now_ms())?)).await
    }

    async fn finish_job(&self, job: &JobRow, end: &JobEnd<'_>) -> DbResult<Option<JobRow>> {
        let end = OwnedEnd::of(job, end);
        let job_id = job.id.clone();
        self.write(move |c| {
            let now = now_ms();
            // The end is written whole or not at all (see `write_thread`): steps, the settled
            // reply, the guard's removal, and the job's status (the work item follows:
            // trigger `jobs_status_to_work_item`).
            insert_steps_now(c, &end.job_id, end.attempt, &end.steps)?;
            if let Some(d) = &end.delivery {
                upsert_delivery_now(c, d)?;
            }
            if let Some((plugin_id, key)) = &end.forget {
                forget_now(c, plugin_id, key)?;
            }
            c.prepare_cached(
                "UPDATE jobs SET status = ?1, result_json = ?2, last_error = ?3,
                   finished_at = ?4, updated_at = ?4 WHERE id = ?5",
            )?
            .execute(rusqlite::params![
                end.status,
                end.result_json,
                end.error,
                now,
                end.job_id
            ])?;
            let Some(worker) = end.claim_next else {
                return Ok(None);
            };
            match claim(c, &worker, now) {
                Ok(next) => Ok(next),
                // An error that ended the transaction (a full disk) took the end with it.
                Err(e) if c.is_autocommit() => Err(e.into()),
                Err(e) => {
                    tracing::warn!(job.id = %job_id, "claiming the next job failed: {e}");
                    Ok(None)
                }
            }
        })
        .await
    }

    async fn insert_steps(&self, job_id: &str, attempt: i64, steps: &[NewStep]) -> DbResult<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let (job_id, steps) = (job_id.to_string(), owned_steps(steps));
        self.write(move |c| Ok(insert_steps_now(c, &job_id, attempt, &steps)?))
            .await
    }

    async fn run_inputs(&self, work_item_id: &str, agent_id: &str) -> DbResult<RunInputs> {
        use super::instances::{instance_row, work_item_row};
        use rusqlite::OptionalExtension;
        let (item_id, agent_id) = (work_item_id.to_owned(), agent_id.to_owned());
        self.read(move |c| {
            // One read transaction, so the three rows are of one moment.
            let tx = c.unchecked_transaction()?;
            let inputs = RunInputs {
                item: tx
                    .prepare_cached("SELECT * FROM work_items WHERE id = ?")?
                    .query_row([&item_id], work_item_row)
                    .optional()?,
                instance: tx
                    .prepare_cached(
                        "SELECT * FROM plugin_instances
                         WHERE id = (SELECT plugin_instance_id FROM work_items WHERE id = ?)",
                    )?
                    .query_row([&item_id], instance_row)
                    .optional()?,
                agent: tx
                    .prepare_cached("SELECT * FROM agents WHERE id = ?")?
                    .query_row([&agent_id], agent_row)
                    .optional()?,
            };
            tx.commit()?;
            Ok(inputs)
        })
        .await
    }

    async fn get_job(&self, id: &str) -> DbResult<Option<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn job_for_work_item(&self, work_item_id: &str) -> DbResult<Option<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE work_item_id = ?")
            .bind(work_item_id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn list_steps(&self, job_id: &str) -> DbResult<Vec<StepRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM run_steps WHERE job_id = ? ORDER BY id")
                .bind(job_id)
                .fetch_all(&mut *self.pool.get().await?)
                .await?,
        )
    }

    async fn get_delivery(&self, job_id: &str) -> DbResult<Option<DeliveryRow>> {
        Ok(sqlx::query_as("SELECT * FROM deliveries WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn upsert_delivery(&self, d: &DeliveryRow) -> DbResult<()> {
        self.record_delivery(d, 0, &[], None).await
    }

    async fn record_delivery(
        &self,
        d: &DeliveryRow,
        attempt: i64,
        steps: &[NewStep],
        forget: Option<(&str, &str)>,
    ) -> DbResult<()> {
        let (d, steps) = (d.clone(), owned_steps(steps));
        let forget = forget.map(|(p, k)| (p.to_string(), k.to_string()));
        self.write(move |c| {
            insert_steps_now(c, &d.job_id, attempt, &steps)?;
            upsert_delivery_now(c, &d)?;
            if let Some((plugin_id, key)) = &forget {
                forget_now(c, plugin_id, key)?;
            }
            Ok(())
        })
        .await
    }
}

/// A step as the write thread inserts it (its detail serialised).
struct OwnedStep {
    turn: u32,
    kind: String,
    detail: String,
    created_at: i64,
}

/// `steps`, owned, to be inserted on the write thread.
fn owned_steps(steps: &[NewStep]) -> Vec<OwnedStep> {
    steps
        .iter()
        .map(|s| OwnedStep {
            turn: s.turn,
            kind: s.kind.clone(),
            detail: s.detail.to_string(),
            created_at: s.created_at,
        })
        .collect()
}

/// A [`JobEnd`] of a job, owned, to be written on the write thread.
struct OwnedEnd {
    job_id: String,
    attempt: i64,
    status: String,
    steps: Vec<OwnedStep>,
    result_json: Option<String>,
    error: Option<String>,
    delivery: Option<DeliveryRow>,
    forget: Option<(String, String)>,
    claim_next: Option<String>,
}

impl OwnedEnd {
    fn of(job: &JobRow, end: &JobEnd<'_>) -> OwnedEnd {
        OwnedEnd {
            job_id: job.id.clone(),
            attempt: job.attempts,
            status: end.status.to_string(),
            steps: owned_steps(end.steps),
            result_json: end.result_json.map(str::to_string),
            error: end.error.map(str::to_string),
            delivery: end.delivery.cloned(),
            forget: end.forget.map(|(p, k)| (p.to_string(), k.to_string())),
            claim_next: end.claim_next.map(str::to_string),
        }
    }
}

/// Inserts `steps` of attempt `attempt` of job `job_id`.
fn insert_steps_now(
    c: &rusqlite::Connection,
    job_id: &str,
    attempt: i64,
    steps: &[OwnedStep],
) -> rusqlite::Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let mut insert = c.prepare_cached(
        "INSERT INTO run_steps (job_id, attempt, turn, kind, detail_json, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for s in steps {
        insert.execute(rusqlite::params![
            job_id,
            attempt,
            s.turn,
            s.kind,
            s.detail,
            s.created_at
        ])?;
    }
    Ok(())
}

/// Writes a job's delivery state (one row per job).
fn upsert_delivery_now(c: &rusqlite::Connection, d: &DeliveryRow) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO deliveries (job_id, work_item_id, status, content, attempts, external_id,
           error, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(job_id) DO UPDATE SET status = excluded.status, content = excluded.content,
           attempts = excluded.attempts, external_id = excluded.external_id,
           error = excluded.error, updated_at = excluded.updated_at",
    )?
    .execute(rusqlite::params![
        d.job_id,
        d.work_item_id,
        d.status,
        d.content,
        d.attempts,
        d.external_id,
        d.error,
        d.created_at,
        now_ms()
    ])?;
    Ok(())
}

/// Removes a plugin's kv entry; returns whether it existed (also [`SqliteStore::kv_delete`]).
pub(super) fn forget_now(
    c: &rusqlite::Connection,
    plugin_id: &str,
    key: &str,
) -> rusqlite::Result<bool> {
    Ok(
        c.prepare_cached("DELETE FROM plugin_kv WHERE plugin_id = ?1 AND key = ?2")?
            .execute([plugin_id, key])?
            > 0,
    )
}
