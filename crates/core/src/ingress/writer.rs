//! Group commit of webhook work items: one task writes every new work item (with its key and
//! job) through [`Store::create_work_items`], taking whatever deliveries queued up meanwhile as
//! one batch, with at most [`BATCHES_IN_FLIGHT`] batches handed to the store at once. Under load
//! many deliveries share one transaction; alone, a delivery is a batch of one and waits for
//! nothing. Each delivery is answered only after its batch is committed, so a 202 still means
//! stored.

use nitejar_store::{Created, Store, WorkItemCreate};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most work items written in one transaction.
pub const MAX_BATCH: usize = 128;

/// Batches handed to the store at once. With one, the database's write thread waited between
/// two batches while this task was woken with the first's commit and handed over the next; with
/// two, the next batch waits in the write thread's queue and starts as the commit returns
/// (batches queued together share a commit there). Batches are written in the order they
/// were taken, so a key's first delivery is still the one that makes its work item.
const BATCHES_IN_FLIGHT: usize = 2;

/// Deliveries waiting for the writer before senders wait for room (back-pressure).
const QUEUE: usize = 4096;

/// Why a work item was not written: the batch's transaction failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct WriteFailed {
    /// The database's state (busy, locked, full), not the delivery's: retry later.
    pub transient: bool,
    /// The database error.
    pub message: String,
}

type Reply = oneshot::Sender<Result<Created, WriteFailed>>;

/// The handle deliveries send their work items to (cheap to clone).
#[derive(Clone)]
pub struct WorkItemWriter {
    tx: mpsc::Sender<(WorkItemCreate, Reply)>,
}

impl WorkItemWriter {
    /// Starts the writer task on the current tokio runtime; it ends when every handle is
    /// dropped (after writing what was queued).
    pub fn start(store: Arc<dyn Store>) -> WorkItemWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, rx));
        WorkItemWriter { tx }
    }

    /// Writes one work item (in the next batch) and returns what happened to it.
    pub async fn create(&self, item: WorkItemCreate) -> Result<Created, WriteFailed> {
        let stopped = || WriteFailed {
            transient: true,
            message: "the work item writer has stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(WorkItemCreate, Reply)>) {
    use futures::StreamExt;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            // Answer a batch as soon as its commit returns.
            Some((outcome, replies)) = in_flight.next(), if !in_flight.is_empty() => {
                answer(outcome, replies);
            }
            got = rx.recv(), if open && in_flight.len() < BATCHES_IN_FLIGHT => {
                let Some((item, reply)) = got else {
                    open = false;
                    continue;
                };
                let mut items = Vec::with_capacity(MAX_BATCH);
                let mut replies = Vec::with_capacity(MAX_BATCH);
                items.push(item);
                replies.push(reply);
                while items.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok((item, reply)) => {
                            items.push(item);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let store = store.clone();
                let mut batch =
                    Box::pin(async move { (store.create_work_items(&items).await, replies) });
                // Polled once now: that hands the batch to the store, so batches reach it in
                // the order they were taken.
                match futures::poll!(batch.as_mut()) {
                    std::task::Poll::Ready((outcome, replies)) => answer(outcome, replies),
                    std::task::Poll::Pending => in_flight.push(batch),
                }
            }
        }
    }
}

/// Answers every delivery of a batch with its own outcome, or all of them with the batch's
/// failure.
fn answer(outcome: nitejar_store::DbResult<Vec<Created>>, replies: Vec<Reply>) {
    match outcome {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            let failed = WriteFailed {
                transient: e.is_transient(),
                message: e.to_string(),
            };
            for reply in replies {
                let _ = reply.send(Err(failed.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitejar_store::{CreateOutcome, JobPlan, NewWorkItem};

    fn create(n: usize, key: &str) -> WorkItemCreate {
        WorkItemCreate {
            id: format!("w{n}"),
            item: NewWorkItem {
                plugin_instance_id: "i".into(),
                integration_type: "webhook".into(),
                title: "t".into(),
                text: format!("{n}"),
                session_key: "s".into(),
                source_ref: key.into(),
                sender_json: None,
                command: None,
                payload_json: "{}".into(),
                response_context_json: None,
            },
            idempotency_key: key.into(),
            job: JobPlan::None,
        }
    }

    /// Many deliveries at once: each is answered with its own outcome (new, or the work item
    /// its key made first), and exactly one work item per key is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_deliveries_each_get_their_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = nitejar_store::open(&dir.path().join("t.db")).await.unwrap();
        let writer = WorkItemWriter::start(store.clone());
        // 300 deliveries of 200 keys: keys 0..100 are sent twice.
        let sends = (0..300).map(|n| {
            let writer = writer.clone();
            let key = format!("k{}", n % 200);
            tokio::spawn(async move { (n, writer.create(create(n, &key)).await.unwrap()) })
        });
        let mut created = 0;
        let mut first_of_key = std::collections::HashMap::new();
        let mut duplicates = Vec::new();
        for s in sends {
            let (n, c) = s.await.unwrap();
            match c.outcome {
                CreateOutcome::Created(id) => {
                    assert_eq!(id, format!("w{n}"));
                    created += 1;
                    first_of_key.insert(n % 200, id);
                }
                CreateOutcome::Duplicate(id) => duplicates.push((n % 200, id)),
            }
        }
        assert_eq!(created, 200);
        assert_eq!(duplicates.len(), 100);
        for (key, id) in duplicates {
            assert_eq!(
                first_of_key[&key], id,
                "a duplicate names its key's work item"
            );
        }
    }
}
