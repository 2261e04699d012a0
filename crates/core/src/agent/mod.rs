//! The agent run: work item -> durable job -> run -> delivery, with the seven run-side hooks.
//!
//! A webhook's work item gets a job in the same transaction (see [`crate::ingress`]). Workers
//! claim queued jobs atomically (one claimer per job); a run that ends claims the worker's next
//! job in the same round trip as its end (with a backlog, a claim costs no round trip of its
//! own). A run builds the system prompt (the agent's prompt plus the tool providers' sections),
//! dispatches `run.pre_prompt`, then loops up to the agent's turn limit: `model.pre_call`, the
//! model call, `model.post_call`, and for each tool call `tool.pre_exec`, the tool,
//! `tool.post_exec`. The final response goes through
//! `response.pre_deliver`, the integration's `post-response` (retried, with the job id as the
//! idempotency key) and `response.post_deliver`.
//!
//! The workers run on a runtime of their own whose threads are scheduled after the ingress's
//! ([`runs_runtime`]): a burst of webhooks is answered first, the runs take what it leaves.
//!
//! Durability: a job left `running` by a stopped process is re-queued at boot and run again; a
//! run that stops because the database refused a write (disk full, locked) is handed back to
//! the queue by its worker at once, without counting the attempt, and runs again once writes
//! work; a job claimed with another's end and not started when the process stops is handed
//! back the same way. A job whose delivery is recorded `delivered` (or `blocked`) never posts
//! again, so a reply is delivered once; the outcome of a post is written right after it (with
//! the job's end when no `response.post_deliver` handler runs in between, so a crash between
//! the post and that write leaves `posting` exactly as before). The remaining window (the
//! platform accepted the post, the process died before recording it) is covered by the
//! idempotency key the integration passes on.

pub mod ingress_load;
pub mod model;
mod run;
pub mod runs_runtime;
pub mod tools;

use crate::crypto::SecretBox;
use crate::hooks::HookDispatcher;
use crate::limits::RUN_WORKERS_WHILE_INGRESS_BUSY;
use crate::plugins::registry::PluginRegistry;
use crate::skills::SkillCatalog;
use ingress_load::IngressLoad;
use model::ModelClient;
use nitejar_sandbox::runtime::PluginRuntime;
use nitejar_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub use run::run_job;

/// How often idle workers look for queued jobs without being woken.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What an agent run needs: the store (work item, agent, job, steps, delivery), the loaded
/// plugins and their hook chains, the sandbox, the model backends, the secret box (the
/// integration's config is decrypted for the delivery call), the skills index, and two deadlines.
pub struct Runner {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Loaded plugins (tools, prompt sections, the integration that delivers).
    pub registry: Arc<PluginRegistry>,
    /// Runs the hook chains.
    pub dispatcher: Arc<HookDispatcher>,
    /// The sandbox.
    pub runtime: Arc<PluginRuntime>,
    /// Model backends.
    pub models: ModelClient,
    /// Decrypts the instance config for delivery.
    pub secrets: SecretBox,
    /// The skills of a run.
    pub skills: Arc<SkillCatalog>,
    /// Deadline of a prompt-section call.
    pub hook_timeout_ms: u64,
    /// Deadline of a delivery or receipt call.
    pub integration_timeout_ms: u64,
}

/// The agent-run workers of this process (cheap to clone: a shared wake-up and stop flag).
#[derive(Clone)]
pub struct Workers {
    wake: Arc<Notify>,
    worker_id: String,
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            wake: Arc::new(Notify::new()),
            worker_id: format!("worker-{}", uuid::Uuid::now_v7()),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }
}

impl Workers {
    /// Wakes a worker (a job was queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Identifies this process in `jobs.claimed_by`.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Stops claiming new jobs (runs in progress finish or are re-queued at the next boot).
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    /// Starts `count` workers running jobs with `runner`, on the runtime of `on` (the
    /// [`runs_runtime::RunsRuntime`] in a server). While `load` reads saturated, only the first
    /// [`RUN_WORKERS_WHILE_INGRESS_BUSY`] start runs (see [`ingress_load`]).
    pub fn start(
        &self,
        runner: &Arc<Runner>,
        count: usize,
        on: &tokio::runtime::Handle,
        load: &Arc<IngressLoad>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..count.max(1))
            .map(|index| {
                let runner = runner.clone();
                let workers = self.clone();
                // The first workers never yield: runs go on, more slowly, under any burst.
                let yields_to = (index >= RUN_WORKERS_WHILE_INGRESS_BUSY).then(|| load.clone());
                on.spawn(async move { worker_loop(runner, workers, yields_to).await })
            })
            .collect()
    }
}

/// Whether a run's end claims its worker's next job (the claim shares the end's round trip):
/// decided when the run ends, so a worker that yields to a saturated ingress
/// ([`ingress_load`]) claims nothing then, and holds no job while it waits.
#[derive(Debug, Clone, Copy)]
pub struct ClaimNext<'a> {
    /// The worker (`jobs.claimed_by`).
    pub worker_id: &'a str,
    /// Claim only while this load is not saturated (`None`: always claim).
    pub unless_saturated: Option<&'a IngressLoad>,
}

impl<'a> ClaimNext<'a> {
    /// The worker id to claim for now, if a claim is due.
    pub fn now(self) -> Option<&'a str> {
        match self.unless_saturated {
            Some(load) if load.saturated() => None,
            _ => Some(self.worker_id),
        }
    }
}

/// Hands a job whose run ended without recording its outcome back to the queue, trying until
/// the database takes the write (it may still be full) or the process stops (boot re-queues it
/// then). Without this the job would stay `running`, claimed by a live worker, until a restart.
async fn return_job(runner: &Runner, workers: &Workers, job_id: &str, host_fault: bool) {
    let mut wait = Duration::from_millis(100);
    loop {
        match runner
            .store
            .return_job(job_id, workers.worker_id(), host_fault)
            .await
        {
            Ok(_) => return,
            Err(e) => {
                if workers.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                tracing::warn!(job_id = %job_id, "queueing the job again failed, retrying: {e}");
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

async fn worker_loop(runner: Arc<Runner>, workers: Workers, yields_to: Option<Arc<IngressLoad>>) {
    let workers = &workers;
    // The job the last run claimed with its end (see [`run_job`]).
    let mut next: Option<nitejar_store::JobRow> = None;
    loop {
        if workers.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(job) = next.take() {
                // Claimed, never started: back to the queue, the attempt not counted.
                return_job(&runner, workers, &job.id, true).await;
            }
            return;
        }
        // A saturated ingress: start no run until it clears (a job claimed with the last end
        // is never held; none was, see `ClaimNext`). Checked again for a stop meanwhile.
        if next.is_none()
            && let Some(load) = &yields_to
            && load.saturated()
        {
            let _ = tokio::time::timeout(POLL_INTERVAL, load.until_clear()).await;
            continue;
        }
        let claimed = match next.take() {
            Some(job) => Ok(Some(job)),
            None => runner.store.claim_job(workers.worker_id()).await,
        };
        match claimed {
            Ok(Some(job)) => {
                let id = job.id.clone();
                let span = tracing::info_span!(
                    "agent.run",
                    job.id = %job.id,
                    work_item.id = %job.work_item_id,
                    attempt = job.attempts,
                );
                let claim_next = ClaimNext {
                    worker_id: workers.worker_id(),
                    unless_saturated: yields_to.as_deref(),
                };
                match tracing::Instrument::instrument(run_job(&runner, job, claim_next), span).await
                {
                    Ok(claimed) => next = claimed,
                    Err(e) => {
                        let host_fault = run::database_refused(&e);
                        if host_fault {
                            tracing::warn!(job_id = %id, "the run stopped on a database write; it is queued again: {e:#}");
                        } else {
                            tracing::error!(job_id = %id, "run failed: {e:#}");
                        }
                        return_job(&runner, workers, &id, host_fault).await;
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                if workers.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                tracing::error!("claiming a job failed: {e}");
            }
        }
        let _ = tokio::time::timeout(POLL_INTERVAL, workers.wake.notified()).await;
    }
}
