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

/// The claim of the oldest queued job, around its three binds (worker, now, now): one claimer
/// per job. The oldest is read from `idx_jobs_status` in order (see the store tests).
pub(crate) const CLAIM_JOB_SQL: [&str; 4] = [
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, claimed_by = ",
    ", started_at = ",
    ", updated_at = ",
    " WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1)
       AND status = 'queued'
     RETURNING *;",
];

/// Appends the claim of the oldest queued job for `worker` (see [`CLAIM_JOB_SQL`]); its work
/// item becomes `running` with it (trigger `jobs_status_to_work_item`).
fn push_claim(q: &mut Writes, worker: &str, now: i64) {
    q.push(CLAIM_JOB_SQL[0])
        .push_bind(worker.to_string())
        .push(CLAIM_JOB_SQL[1])
        .push_bind(now)
        .push(CLAIM_JOB_SQL[2])
        .push_bind(now)
        .push(CLAIM_JOB_SQL[3]);
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
        let finished: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT finished_at / 60000, status, COUNT(*) FROM jobs
             WHERE finished_at >= ? GROUP BY 1, 2",
        )
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
        let now = now_ms();
        let mut q = Writes::new("");
        push_claim(&mut q, worker, now);
        self.on_write_thread(move |store| async move {
            Ok(q.build_query_as()
                .fetch_optional(&mut *store.writer.get().await?)
                .await?)
        })
        .await
    }

    async fn finish_job(&self, job: &JobRow, end: &JobEnd<'_>) -> DbResult<Option<JobRow>> {
        use futures::TryStreamExt;
        use sqlx::{Either, FromRow};
        let now = now_ms();
        let mut q = Writes::new("");
        push_steps(&mut q, &job.id, job.attempts, end.steps);
        if let Some(d) = end.delivery {
            push_delivery(&mut q, d);
        }
        if let Some((plugin_id, key)) = end.forget {
            push_forget(&mut q, plugin_id, key);
        }
        // The work item follows (trigger `jobs_status_to_work_item`).
        q.push("UPDATE jobs SET status = ")
            .push_bind(end.status.to_string())
            .push(", result_json = ")
            .push_bind(end.result_json.map(str::to_string))
            .push(", last_error = ")
            .push_bind(end.error.map(str::to_string))
            .push(", finished_at = ")
            .push_bind(now)
            .push(", updated_at = ")
            .push_bind(now)
            .push(" WHERE id = ")
            .push_bind(job.id.clone())
            .push(";");
        // Statements before the claim: once they have all reported their end, the job is ended.
        let ending = usize::from(!end.steps.is_empty())
            + usize::from(end.delivery.is_some())
            + usize::from(end.forget.is_some())
            + 1;
        if let Some(worker) = end.claim_next {
            push_claim(&mut q, worker, now);
        }
        let job_id = job.id.clone();
        self.on_write_thread(move |store| async move {
            // Several statements, one round trip (see `run_inputs` on sqlx's deprecation).
            let mut conn = store.writer.get().await?;
            #[allow(deprecated)]
            let mut results = q.build().fetch_many(&mut *conn);
            let mut ended = 0;
            let mut next = None;
            loop {
                match results.try_next().await {
                    Ok(Some(Either::Left(_))) => ended += 1,
                    Ok(Some(Either::Right(row))) if ended >= ending => {
                        next = Some(JobRow::from_row(&row)?)
                    }
                    Ok(Some(Either::Right(_))) => {}
                    Ok(None) => return Ok(next),
                    Err(e) if ended >= ending => {
                        // The job is ended; the next one stays queued for any worker.
                        tracing::warn!(job.id = %job_id, "claiming the next job failed: {e}");
                        return Ok(None);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        })
        .await
    }

    async fn insert_steps(&self, job_id: &str, attempt: i64, steps: &[NewStep]) -> DbResult<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut q = Writes::new("");
        push_steps(&mut q, job_id, attempt, steps);
        self.on_write_thread(move |store| async move {
            q.build().execute(&mut *store.writer.get().await?).await?;
            Ok(())
        })
        .await
    }

    async fn run_inputs(&self, work_item_id: &str, agent_id: &str) -> DbResult<RunInputs> {
        use futures::TryStreamExt;
        use sqlx::{Either, FromRow};
        // Three statements, one round trip; each statement's end is reported in the stream,
        // so an empty result is told apart from the next statement's row. sqlx 0.8 marks
        // several statements in one query as deprecated (only its SQLite driver has them);
        // moving to a later sqlx means a join decoded by position here instead.
        let mut conn = self.pool.get().await?;
        #[allow(deprecated)]
        let mut rows = sqlx::query(
            "SELECT * FROM work_items WHERE id = ?1;
             SELECT * FROM plugin_instances
               WHERE id = (SELECT plugin_instance_id FROM work_items WHERE id = ?1);
             SELECT * FROM agents WHERE id = ?2;",
        )
        .bind(work_item_id)
        .bind(agent_id)
        .fetch_many(&mut *conn);
        let mut out = RunInputs::default();
        let mut statement = 0;
        while let Some(next) = rows.try_next().await? {
            match next {
                Either::Left(_) => statement += 1,
                Either::Right(row) => match statement {
                    0 => out.item = Some(WorkItemRow::from_row(&row)?),
                    1 => out.instance = Some(InstanceRow::from_row(&row)?),
                    _ => out.agent = Some(AgentRow::from_row(&row)?),
                },
            }
        }
        Ok(out)
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
        let mut q = Writes::new("");
        push_steps(&mut q, &d.job_id, attempt, steps);
        push_delivery(&mut q, d);
        if let Some((plugin_id, key)) = forget {
            push_forget(&mut q, plugin_id, key);
        }
        self.on_write_thread(move |store| async move {
            q.build().execute(&mut *store.writer.get().await?).await?;
            Ok(())
        })
        .await
    }
}

/// Statements built with owned values, to run on the write thread.
type Writes = sqlx::QueryBuilder<'static, sqlx::Sqlite>;

/// Appends the statement inserting `steps` (none when empty), ended with `;`.
fn push_steps(q: &mut Writes, job_id: &str, attempt: i64, steps: &[NewStep]) {
    if steps.is_empty() {
        return;
    }
    q.push("INSERT INTO run_steps (job_id, attempt, turn, kind, detail_json, created_at) ");
    q.push_values(steps, |mut b, step| {
        b.push_bind(job_id.to_string())
            .push_bind(attempt)
            .push_bind(step.turn)
            .push_bind(step.kind.clone())
            .push_bind(step.detail.to_string())
            .push_bind(step.created_at);
    });
    q.push(";");
}

/// Appends the upsert of a job's delivery state, ended with `;`.
fn push_delivery(q: &mut Writes, d: &DeliveryRow) {
    q.push(
        "INSERT INTO deliveries (job_id, work_item_id, status, content, attempts, external_id, error,
           created_at, updated_at) VALUES (",
    );
    let mut values = q.separated(", ");
    values
        .push_bind(d.job_id.clone())
        .push_bind(d.work_item_id.clone())
        .push_bind(d.status.clone())
        .push_bind(d.content.clone())
        .push_bind(d.attempts)
        .push_bind(d.external_id.clone())
        .push_bind(d.error.clone())
        .push_bind(d.created_at)
        .push_bind(now_ms());
    q.push(
        ") ON CONFLICT(job_id) DO UPDATE SET status = excluded.status, content = excluded.content,
           attempts = excluded.attempts, external_id = excluded.external_id,
           error = excluded.error, updated_at = excluded.updated_at;",
    );
}

/// Appends the removal of a plugin's kv entry, ended with `;`.
fn push_forget(q: &mut Writes, plugin_id: &str, key: &str) {
    q.push("DELETE FROM plugin_kv WHERE plugin_id = ")
        .push_bind(plugin_id.to_string())
        .push(" AND key = ")
        .push_bind(key.to_string())
        .push(";");
}
